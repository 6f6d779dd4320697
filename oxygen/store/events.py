"""Near-line user events in Redis: the event stream, the windows that merge a user's high-value
events into one regeneration, leases, and the dead-letter stream.

Keys (prefix p):
    p:events           Redis Stream of events, read by the consumer group `nearline`
    p:events:dead      dead-letter stream (events whose regeneration kept failing, or malformed)
    p:due              ZSET user -> window end (unix s); the first event of a window fixes it (ZADD NX)
    p:win:{user}       SET of the stream ids in the user's open window
    p:proc:{user}      SET of the stream ids of the window being processed
    p:lease            ZSET user -> lease deadline; p:owner HASH user -> the worker holding it
    p:fail:{user}      failed attempts of the user's current window
    p:done             audit stream: one entry per finished window (user, stream ids, outcome, worker)

Life of an event (`ingest` and the worker calls, each one atomic Lua script):
    ingest    XADD to the stream and append to the user's state (serving reads it at once);
    schedule  a worker read it (XREADGROUP); a high-value event joins the user's open window
              (window end = the event's arrival + window_s) unless it is already in the window
              or being processed (so a reclaimed event is never counted twice); others are acked;
    claim     at the window's end one worker takes the user: open window -> proc, lease set;
              an event arriving now opens the next window, never lost;
    complete  after the instruction write: XACK every id of the window, drop proc and the lease,
              and append the window to the audit stream (all in one script);
    fail      attempt += 1; retried after a back-off, dead-lettered after `max_tries`;
    reap      a lease past its deadline (a dead worker) puts the user back in p:due (proc kept).
Events a dead worker read but never scheduled stay pending in the group and are taken over by
`reclaim` (XAUTOCLAIM) after `reclaim_idle_s`; scheduling them again is idempotent.

    ev = EventLog(client, window_s=300)
    ev.ingest([UserEvent("u1", "cart", item=12, scenario="homepage", ts=1764000000)])
    batch = ev.read("worker-1")                  # [(stream id, UserEvent | error)], scheduled
    for user, ids in ev.claim("worker-1"): ...   # due windows; then ev.complete / ev.fail
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from oxygen.store.embedded import redis_url
from oxygen.store.instructions import reach

EVENT_TYPES = ("search", "click", "cart", "purchase")
HIGH_VALUE = ("search", "cart", "purchase")
GROUP = "nearline"

_INGEST = """
local cap = tonumber(KEYS[3])
local function list(s, name)
  local t = s[name]
  if type(t) ~= 'table' or next(t) == nil then t = {} end
  return t
end
local function trim(t)
  while #t > cap do table.remove(t, 1) end
  return t
end
for i = 1, #ARGV, 2 do
  local e = cjson.decode(ARGV[i + 1])
  local key = KEYS[1] .. ':user:' .. e.user_id
  local raw = redis.call('GET', key)
  local s = raw and cjson.decode(raw) or {user_id = e.user_id}
  if e.item ~= nil and e.item ~= cjson.null then
    local hist = list(s, 'history')
    local n = #hist
    local fill = {behaviours = 'click', scenarios = 'homepage', timestamps = 0}
    local value = {behaviours = e.type == 'search' and 'click' or e.type,
                   scenarios = (e.scenario ~= cjson.null and e.scenario) or (e.type == 'search' and 'search') or 'homepage',
                   timestamps = e.ts}
    for name, filler in pairs(fill) do
      local t = list(s, name)
      while #t < n do table.insert(t, 1, filler) end
      while #t > n do table.remove(t, 1) end
      table.insert(t, value[name])
      s[name] = trim(t)
    end
    table.insert(hist, e.item)
    s.history = trim(hist)
  end
  if e.query ~= nil and e.query ~= cjson.null then
    local q = list(s, 'queries')
    table.insert(q, {e.ts, e.query})
    s.queries = trim(q)
  end
  redis.call('SET', key, cjson.encode(s))
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', KEYS[4], '*', 'event', ARGV[i + 1])
end
return #ARGV / 2
"""

_SCHEDULE = """
local p, user, id = KEYS[1], ARGV[1], ARGV[2]
if redis.call('SISMEMBER', p .. ':proc:' .. user, id) == 1 or redis.call('SISMEMBER', p .. ':win:' .. user, id) == 1 then
  return 0
end
redis.call('SADD', p .. ':win:' .. user, id)
redis.call('ZADD', p .. ':due', 'NX', ARGV[3], user)
return 1
"""

_CLAIM = """
local p, now, deadline, n, owner = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', p .. ':due', '-inf', now, 'LIMIT', 0, 4 * n)) do
  if #out >= 2 * n then break end
  local held = redis.call('ZSCORE', p .. ':lease', user)
  if not held or tonumber(held) < now then
    redis.call('ZREM', p .. ':due', user)
    local win, proc = p .. ':win:' .. user, p .. ':proc:' .. user
    if redis.call('EXISTS', win) == 1 then
      redis.call('SUNIONSTORE', proc, proc, win)
      redis.call('DEL', win)
    end
    redis.call('ZADD', p .. ':lease', deadline, user)
    redis.call('HSET', p .. ':owner', user, owner)
    table.insert(out, user)
    table.insert(out, redis.call('SMEMBERS', proc))
  end
end
return out
"""

_COMPLETE = """
local p, user, owner = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HGET', p .. ':owner', user) ~= owner then return -1 end
local proc = p .. ':proc:' .. user
local ids = redis.call('SMEMBERS', proc)
local acked = 0
if #ids > 0 then acked = redis.call('XACK', p .. ':events', ARGV[3], unpack(ids)) end
redis.call('XADD', p .. ':done', 'MAXLEN', '~', ARGV[5], '*', 'user', user, 'ids', table.concat(ids, ','),
           'outcome', ARGV[4], 'worker', owner)
redis.call('DEL', proc, p .. ':fail:' .. user)
redis.call('ZREM', p .. ':lease', user)
redis.call('HDEL', p .. ':owner', user)
return acked
"""

_FAIL = """
local p, user, owner = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HGET', p .. ':owner', user) ~= owner then return -1 end
local tries = redis.call('INCR', p .. ':fail:' .. user)
redis.call('ZREM', p .. ':lease', user)
redis.call('HDEL', p .. ':owner', user)
if tries < tonumber(ARGV[4]) then
  redis.call('ZADD', p .. ':due', ARGV[5], user)
  return 0
end
local proc = p .. ':proc:' .. user
local ids = redis.call('SMEMBERS', proc)
redis.call('XADD', p .. ':done', 'MAXLEN', '~', ARGV[7], '*', 'user', user, 'ids', table.concat(ids, ','),
           'outcome', 'dead', 'worker', owner)
for _, id in ipairs(ids) do
  local got = redis.call('XRANGE', p .. ':events', id, id)
  local body = (#got > 0) and got[1][2][2] or '{}'
  redis.call('XADD', p .. ':events:dead', '*', 'event', body, 'id', id, 'error', ARGV[6], 'tries', tries)
  redis.call('XACK', p .. ':events', ARGV[3], id)
end
redis.call('DEL', proc, p .. ':fail:' .. user)
return tries
"""

_REAP = """
local p, now = KEYS[1], tonumber(ARGV[1])
local users = redis.call('ZRANGEBYSCORE', p .. ':lease', '-inf', '(' .. now)
for _, user in ipairs(users) do
  redis.call('ZREM', p .. ':lease', user)
  redis.call('HDEL', p .. ':owner', user)
  redis.call('ZADD', p .. ':due', 'LT', now, user)
end
return #users
"""


class EventError(ValueError):
    """A malformed event: the message names the field and what to fix."""


@dataclass(frozen=True)
class UserEvent:
    """One user event. `item` is required except for a search; `query` only for a search."""

    user_id: str
    type: str
    item: int | None = None
    scenario: str | None = None
    ts: int | None = None  # unix seconds; None: the time of ingestion
    query: str | None = None

    def check(self) -> "UserEvent":
        """Self when well-formed, else EventError naming the field."""
        if not isinstance(self.user_id, str) or not self.user_id:
            raise EventError("user_id must be a non-empty string")
        if self.type not in EVENT_TYPES:
            raise EventError(f"type {self.type!r} is not one of {', '.join(EVENT_TYPES)}")
        if self.type == "search" and not self.query:
            raise EventError("a search event needs its query")
        if self.type != "search" and self.item is None:
            raise EventError(f"a {self.type} event needs the item")
        if self.item is not None and (not isinstance(self.item, int) or self.item < 0):
            raise EventError(f"item must be a non-negative integer, got {self.item!r}")
        return self

    @classmethod
    def from_json(cls, body: str) -> "UserEvent":
        """Parse a stream entry (EventError when it is not a valid event)."""
        try:
            return cls(**json.loads(body)).check()
        except (TypeError, json.JSONDecodeError) as e:
            raise EventError(f"not an event: {e}") from e


@dataclass(frozen=True)
class Claim:
    """A user's window taken by one worker: the stream ids it covers and their arrival (unix s)."""

    user_id: str
    ids: tuple[str, ...]

    @property
    def arrivals(self) -> list[float]:
        """Arrival time (unix s) of each event in the window: stream ids are arrival milliseconds."""
        return [int(i.split("-")[0]) / 1000 for i in self.ids]

    @property
    def asof(self) -> float:
        """The newest arrival time in the window."""
        return max(self.arrivals, default=0.0)


class EventLog:
    """The near-line event stream and its windows on one Redis (each method one or two round
    trips); a lost connection is `StoreUnavailable`."""

    def __init__(self, client: redis.Redis, prefix: str = "oxygen", window_s: float = 300.0,
                 high_value: tuple[str, ...] = HIGH_VALUE, max_history: int = 200) -> None:
        self.client, self.prefix, self.window_s = client, prefix, window_s
        self.high_value, self.max_history = frozenset(high_value), max_history
        self.stream, self.dead = f"{prefix}:events", f"{prefix}:events:dead"
        self.maxlen = 1_000_000
        self._scripts = {name: client.register_script(src) for name, src in (
            ("ingest", _INGEST), ("schedule", _SCHEDULE), ("claim", _CLAIM), ("complete", _COMPLETE),
            ("fail", _FAIL), ("reap", _REAP))}

    @classmethod
    def connect(cls, url: str | None = None, prefix: str = "oxygen", window_s: float = 300.0,
                high_value: tuple[str, ...] = HIGH_VALUE, max_history: int = 200, timeout_s: float = 5.0) -> "EventLog":
        """An EventLog on `url` (default: $REDIS_URL or the embedded server)."""
        client = redis.Redis.from_url(url or redis_url(), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, prefix, window_s, high_value, max_history)

    def _call(self, name: str, keys: list, args: list):
        with reach():
            return self._scripts[name](keys=keys, args=args)

    def ensure_group(self) -> None:
        """Create the stream and its consumer group when missing."""
        try:
            with reach():
                self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def ingest(self, events: list[UserEvent]) -> int:
        """Append checked events to the stream and to their users' state, atomically; -> count."""
        now = int(time.time())
        bodies = [json.dumps({**asdict(e.check()), "ts": e.ts if e.ts is not None else now}) for e in events]
        args = [x for b in bodies for x in ("e", b)]
        return int(self._call("ingest", [self.prefix, self.stream, self.max_history, self.maxlen], args)) if args else 0

    def read(self, consumer: str, count: int = 256, block_ms: int = 100) -> list[tuple[str, UserEvent | EventError]]:
        """New events for `consumer`, each scheduled (high value) or acked (the rest); malformed
        entries go to the dead-letter stream. -> [(stream id, event or its error)]."""
        with reach():
            got = self.client.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block_ms)
        entries = got[0][1] if got else []
        return self._schedule(entries)

    def reclaim(self, consumer: str, idle_s: float, count: int = 256) -> list[tuple[str, UserEvent | EventError]]:
        """Take over events pending longer than `idle_s` under any consumer (a dead worker's) and
        schedule them again (idempotent)."""
        with reach():
            _, entries, *_ = self.client.xautoclaim(self.stream, GROUP, consumer, int(idle_s * 1000), "0-0", count=count)
        return self._schedule([e for e in entries if e and e[1]])

    def _schedule(self, entries: list) -> list[tuple[str, UserEvent | EventError]]:
        """Schedule the high-value entries, ack the rest, dead-letter malformed ones: one round trip."""
        out: list[tuple[str, UserEvent | EventError]] = []
        ack, dead = [], []
        pipe = self.client.pipeline(transaction=True)
        for sid, fields in entries:
            sid = sid.decode() if isinstance(sid, bytes) else sid
            try:
                ev = UserEvent.from_json(fields.get(b"event", fields.get("event", b"")).decode())
            except (EventError, AttributeError) as e:
                dead.append((sid, fields, str(e)))
                out.append((sid, e if isinstance(e, EventError) else EventError(str(e))))
                continue
            out.append((sid, ev))
            if ev.type in self.high_value:
                end = int(sid.split("-")[0]) / 1000 + self.window_s
                self._scripts["schedule"](keys=[self.prefix], args=[ev.user_id, sid, end], client=pipe)
            else:
                ack.append(sid)
        for sid, fields, err in dead:
            pipe.xadd(self.dead, {"event": fields.get(b"event", b""), "id": sid, "error": err, "tries": 0})
            ack.append(sid)
        if ack:
            pipe.xack(self.stream, GROUP, *ack)
        with reach():
            pipe.execute()
        return out

    def claim(self, owner: str, n: int = 64, lease_s: float = 60.0, now: float | None = None) -> list[Claim]:
        """Up to n users whose window has ended, now leased to `owner` for `lease_s`."""
        now = time.time() if now is None else now
        flat = self._call("claim", [self.prefix], [now, now + lease_s, n, owner])
        return [Claim(u.decode(), tuple(sorted(i.decode() for i in ids))) for u, ids in zip(flat[::2], flat[1::2])]

    def complete(self, owner: str, claim: Claim, outcome: str = "written") -> bool:
        """Ack the claim's events, release it and audit it (`outcome`: written / stale / empty),
        after its instruction was written; False when the lease was lost (another worker took
        the user over: its write is versioned)."""
        return int(self._call("complete", [self.prefix], [claim.user_id, owner, GROUP, outcome, self.maxlen])) >= 0

    def fail(self, owner: str, claim: Claim, error: str, max_tries: int = 3, backoff_s: float = 1.0) -> bool:
        """Record a failed regeneration: retried after `backoff_s`, or (the max_tries-th failure)
        its events are moved to the dead-letter stream. -> True when dead-lettered."""
        tries = int(self._call("fail", [self.prefix], [claim.user_id, owner, GROUP, max_tries,
                                                       time.time() + backoff_s, error[:500], self.maxlen]))
        return tries >= max_tries

    def reap(self, now: float | None = None) -> int:
        """Users whose lease expired (a dead worker) are due again; -> how many."""
        return int(self._call("reap", [self.prefix], [time.time() if now is None else now]))

    def audit(self) -> list[tuple[str, str, tuple[str, ...], str]]:
        """Every finished window in order: (audit id, user, sorted stream ids, outcome)."""
        out = []
        with reach():
            entries = self.client.xrange(f"{self.prefix}:done")
        for aid, f in entries:
            ids = f[b"ids"].decode()
            out.append((aid.decode(), f[b"user"].decode(), tuple(sorted(ids.split(","))) if ids else (),
                        f[b"outcome"].decode()))
        return out

    def backlog(self) -> dict[str, int]:
        """What is waiting: events not yet read by the group, events pending (read, not acked),
        windows due now, windows open, leases held, dead letters."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.xinfo_groups(self.stream)
        pipe.zcount(f"{self.prefix}:due", "-inf", now)
        pipe.zcard(f"{self.prefix}:due")
        pipe.zcard(f"{self.prefix}:lease")
        pipe.xlen(self.dead)
        try:
            with reach():
                groups, due, open_, leases, dead = pipe.execute()
        except redis.exceptions.ResponseError:  # no stream yet
            return {"unread": 0, "pending": 0, "due": 0, "open": 0, "leased": 0, "dead": 0}
        group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        last = group["last-delivered-id"] if group else b"0-0"
        last = last.decode() if isinstance(last, bytes) else last
        with reach():
            unread = len(self.client.xrange(self.stream, f"({last}", "+", count=10_000))
        return {"unread": unread, "pending": int(group["pending"]) if group else 0, "due": int(due),
                "open": int(open_), "leased": int(leases), "dead": int(dead)}
