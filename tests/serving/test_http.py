"""The HTTP service under real Ray Serve: endpoints, OpenAPI, one error body for every 4xx, the
split layout answering like the fused one, a property-based check (hypothesis) that no request
body, however odd, gets a 5xx, and an independent OpenAPI fuzzer (schemathesis, all checks)
against the live service so a contract break fails the tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import ray
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ray import serve

from oxygen.serving.local import direct_urls
from oxygen.serving.local import start_local as start
from oxygen.serving.schemas import ErrorResponse


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY = "test-events-key"


@pytest.fixture(scope="module")
def url(bundle_dir, redis_server):
    os.environ["OXYGEN_API_KEY"] = KEY  # the service's events key (local Ray workers inherit it)
    try:
        base = start(bundle_dir, redis_server.url, _port(), max_batch_size=8)
        yield base
    finally:
        os.environ.pop("OXYGEN_API_KEY", None)
        serve.shutdown()
        ray.shutdown()


def test_endpoints(url):
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "model_version": "test-v1"}
    scen = {s["id"]: s for s in httpx.get(f"{url}/v1/scenarios").json()}
    assert scen["cart"] == {"id": "cart", "pool_size": 60, "requires_trigger": True, "instruction_weight": 0.0,
                            "instruction_gated": False, "need_slots": 0}
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "/v1/recommend" in spec["paths"] and "RecommendRequest" in str(spec)
    r = httpx.post(f"{url}/v1/recommend", json={"scenario": "cart", "user_id": "alice", "trigger_item": 3, "k": 4},
                   timeout=60)
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) == 4 and body["reasoning_instruction"] == "used"
    assert all(0 <= it["item_id"] < 60 and len(it["semantic_id"]) == 3 for it in body["items"])


@pytest.mark.parametrize("body, status, words", [
    ('{"scenario": "homepage", "user_id": ', 422, "JSON"),
    ({"scenario": "homepage", "user_id": "alice", "k": 0}, 422, "k"),
    ({"scenario": "homepage", "user_id": "alice", "beam": 9999}, 422, "beam"),
    ({"scenario": "homepage", "user_id": "alice", "history": list(range(300))}, 422, "history"),
    ({"scenario": "homepage", "user_id": "alice", "colour": "red"}, 422, "colour"),
    ({"scenario": "homepage", "user_id": "alice", "k": False}, 422, "k"),
    ({"scenario": "homepage", "user_id": "alice", "k": "5"}, 422, "k"),
    ({"scenario": "mall", "user_id": "alice"}, 404, "unknown scenario"),
    ({"scenario": "cart", "user_id": "alice"}, 422, "requires trigger_item"),
    ({"scenario": "cart", "user_id": "alice", "trigger_item": 5000}, 404, "unknown trigger_item"),
    ({"scenario": "homepage", "user_id": "nobody"}, 404, "unknown user_id"),
])
def test_bad_input_is_4xx_with_one_error_body(url, body, status, words):
    kw = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, str) else {"json": body}
    r = httpx.post(f"{url}/v1/recommend", timeout=60, **kw)
    assert r.status_code == status and words in r.text
    err = ErrorResponse.model_validate(r.json())  # where, what, type, fix: the same shape for every 4xx
    assert all(d.loc and d.msg and d.type and d.fix for d in err.detail)


def test_the_spec_documents_every_status_with_the_error_body(url):
    spec = httpx.get(f"{url}/openapi.json").json()
    statuses = {path: set(op["post"]["responses"]) for path, op in spec["paths"].items() if "post" in op}
    assert statuses["/v1/recommend"] == {"200", "400", "404", "409", "422"}
    assert statuses["/v1/events"] == {"200", "400", "401", "404", "422", "503"}
    for path in statuses:
        for code, resp in spec["paths"][path]["post"]["responses"].items():
            if code != "200":
                assert resp["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    r = httpx.delete(f"{url}/v1/recommend")  # the router's own refusals use the same body
    assert r.status_code == 405 and r.headers["allow"] == "POST" and ErrorResponse.model_validate(r.json())
    r = httpx.get(f"{url}/v2/nothing")
    assert r.status_code == 404 and ErrorResponse.model_validate(r.json()).detail[0].loc == ["path"]


def test_answers_carry_their_time_budget_and_the_rules_hold(url):
    r = httpx.post(f"{url}/v1/recommend", timeout=60,
                   json={"scenario": "cart", "user_id": "alice", "trigger_item": 3, "k": 5, "exclude_items": [4, 5]})
    body = r.json()
    assert r.status_code == 200 and not {3, 4, 5} & {it["item_id"] for it in body["items"]} and len(body["items"]) == 5
    t = body["timing_ms"]
    assert {"batch_wait", "redis", "collate", "encoder", "decode", "respond", "served", "route"} <= set(t)
    assert "handle" not in t and t["route"] >= t["served"] >= t["decode"] > 0  # fused: no hop between deployments


def test_the_replica_answers_on_its_own_port_like_the_proxy(url):
    """Direct ingress (local default): the replica's own URL, from the controller's target groups,
    answers what the proxy port answers."""
    (direct,) = direct_urls()
    assert direct != url and httpx.get(f"{direct}/readyz", timeout=30).status_code == 200
    body = {"scenario": "homepage", "user_id": "alice", "k": 5}
    a, b = (httpx.post(f"{u}/v1/recommend", json=body, timeout=60).json() for u in (url, direct))
    assert [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]]


@contextmanager
def variant_app(bundle_dir, redis_server, name: str, **args):
    """A second app on the same bundle and Redis with `args` changed, at route prefix /NAME."""
    from oxygen.serving.app import build_app

    serve.run(build_app({"bundle": str(bundle_dir), "redis_url": redis_server.url, **args}),
              name=name, route_prefix=f"/{name}")
    try:
        yield
    finally:
        serve.delete(name)


def test_the_split_layout_answers_like_the_fused_one(url, bundle_dir, redis_server):
    """The split front forwards concurrent requests to the back in batches (one handle call each),
    and every caller gets its own answer: the fused one's status and items, in order (an unknown
    user's 404 inside a batch stays that request's own)."""
    bodies = [{"scenario": "channel", "user_id": "alice", "trigger_item": 30 + i, "k": 6} for i in range(4)]
    bodies += [{"scenario": "homepage", "user_id": u, "k": 4 + i} for i, u in enumerate(["alice", "bob", "carol", "u42"])]

    async def post_all(prefix: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(await asyncio.gather(*(client.post(f"{url}{prefix}/v1/recommend", json=b) for b in bodies)))

    with variant_app(bundle_dir, redis_server, "split", layout="split", batch_wait_timeout_s=0.05):
        fused, split = asyncio.run(post_all("")), asyncio.run(post_all("/split"))
        assert [r.status_code for r in split] == [r.status_code for r in fused] == [200] * 6 + [404, 200]
        assert ErrorResponse.model_validate(split[6].json()) == ErrorResponse.model_validate(fused[6].json())
        answers = [(f.json(), s.json()) for f, s in zip(fused, split) if f.status_code == 200]
        for f, s in answers:
            assert [i["item_id"] for i in s["items"]] == [i["item_id"] for i in f["items"]]
            t = s["timing_ms"]
            assert t["handle"] >= 0 and t["front_wait"] >= 0 and t["route"] >= t["served"]
        assert max(s["batch_size"] for _, s in answers) > 1  # forwarded together, decoded together
        r = httpx.post(f"{url}/split/v1/recommend", json={"scenario": "mall", "user_id": "alice"}, timeout=60)
        assert r.status_code == 404 and ErrorResponse.model_validate(r.json())


def test_an_openapi_fuzzer_finds_no_contract_break(url, tmp_path):
    """schemathesis, every check (no 5xx, documented statuses and bodies, schema-valid requests
    accepted, schema-violating ones refused, 405 with Allow), a bounded number of cases."""
    cli = Path(sys.executable).with_name("st")
    out = subprocess.run([str(cli), "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", "25",
                          "--seed", "1", "-w", "1", "--no-color", "--generation-database", "none",
                          "-H", f"X-API-Key: {KEY}"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout.split("SUMMARY")[-1]


bodies = st.fixed_dictionaries(
    {"scenario": st.sampled_from(["search", "homepage", "channel", "cart", "checkout", "x", ""]),
     "user_id": st.sampled_from(["alice", "bob", "nobody", ""])},
    optional={"trigger_item": st.one_of(st.none(), st.integers(-5, 200)),
              "query": st.one_of(st.none(), st.text(max_size=300)),
              "history": st.one_of(st.none(), st.lists(st.integers(-2, 130), max_size=210)),
              "k": st.integers(-1, 120), "beam": st.one_of(st.none(), st.integers(-1, 600)),
              "sampling": st.one_of(st.none(), st.fixed_dictionaries(
                  {"temperature": st.floats(-1, 12, allow_nan=False)},
                  optional={"top_p": st.floats(-0.5, 1.5, allow_nan=False), "top_k": st.integers(-1, 5000),
                            "seed": st.integers(0, 10)}))})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_request_gets_a_5xx(url, body):
    r = httpx.post(f"{url}/v1/recommend", json=body, timeout=60)
    assert r.status_code < 500, (body, r.text)


def _stream_len(server) -> int:
    client = redis.Redis.from_url(server.url)
    return client.xlen("oxygen:events") if client.exists("oxygen:events") else 0


def test_events_need_the_api_key_and_nothing_is_written_without_it(url, redis_server):
    body = {"events": [{"user_id": "carol", "type": "cart", "item": 4, "scenario": "homepage"}]}
    before = _stream_len(redis_server)
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = httpx.post(f"{url}/v1/events", json=body, headers=headers, timeout=60)
        assert r.status_code == 401 and "X-API-Key" in r.text
    assert _stream_len(redis_server) == before
    assert httpx.post(f"{url}/v1/recommend", json={"scenario": "homepage", "user_id": "carol"},
                      timeout=60).status_code == 404  # still unknown


def test_posted_events_reach_the_stream_and_the_users_state(url, redis_server):
    before = _stream_len(redis_server)
    body = {"events": [{"user_id": "dave", "type": "click", "item": 4, "scenario": "homepage"},
                       {"user_id": "dave", "type": "search", "query": "gaming mouse", "scenario": "search"},
                       {"user_id": "dave", "type": "cart", "item": 7, "scenario": "search"}]}
    r = httpx.post(f"{url}/v1/events", json=body, headers={"X-API-Key": KEY}, timeout=60)
    assert r.status_code == 200 and r.json() == {"accepted": 3}
    assert _stream_len(redis_server) == before + 3
    r = httpx.post(f"{url}/v1/recommend", json={"scenario": "homepage", "user_id": "dave", "k": 3}, timeout=60)
    assert r.status_code == 200  # serving now knows dave from his events


@pytest.mark.parametrize("events, status, words", [
    ([{"user_id": "e", "type": "like", "item": 1}], 422, "type"),
    ([{"user_id": "e", "type": "cart"}], 422, "item"),
    ([{"user_id": "e", "type": "search"}], 422, "query"),
    ([{"user_id": "e", "type": "cart", "item": True}], 422, "item"),
    ([{"user_id": "e", "type": "cart", "item": 99999}], 404, "unknown item"),
    ([{"user_id": "e", "type": "cart", "item": 1, "colour": "red"}], 422, "colour"),
    ([{"user_id": "e", "type": "click", "item": 1}] * 1001, 422, "events"),
    ([], 422, "events"),
])
def test_bad_event_batches_are_4xx_and_write_nothing(url, redis_server, events, status, words):
    before = _stream_len(redis_server)
    r = httpx.post(f"{url}/v1/events", json={"events": [{"user_id": "e", "type": "click", "item": 1}] + events
                                             if status == 404 else events},
                   headers={"X-API-Key": KEY}, timeout=60)
    assert r.status_code == status and words in r.text
    assert _stream_len(redis_server) == before


def test_the_python_client_sends_events_and_reports_refusals(url, redis_server):
    from oxygen.serving.client import ClientError, OxygenClient

    before = _stream_len(redis_server)
    client = OxygenClient(url, api_key=KEY)
    assert client.send_events([{"user_id": "erin", "type": "purchase", "item": 3, "scenario": "cart"}]) == 1
    assert _stream_len(redis_server) == before + 1 and client.retried == 0
    assert client.recommend("homepage", "erin", k=2)["user_id"] == "erin"
    with pytest.raises(ClientError, match="401"):
        OxygenClient(url).send_events([{"user_id": "erin", "type": "cart", "item": 3}])
    with pytest.raises(ClientError, match="unknown item"):
        client.send_events([{"user_id": "erin", "type": "cart", "item": 99999}])


def test_serves_own_batcher_answers_like_the_greedy_one(url, bundle_dir, redis_server):
    """`batcher: serve` (Serve's @serve.batch) decodes through the same pass as the default."""
    with variant_app(bundle_dir, redis_server, "sb", batcher="serve"):
        body = {"scenario": "cart", "user_id": "alice", "trigger_item": 3, "k": 5}
        greedy = httpx.post(f"{url}/v1/recommend", json=body, timeout=60).json()
        served = httpx.post(f"{url}/sb/v1/recommend", json=body, timeout=60).json()
        assert [i["item_id"] for i in served["items"]] == [i["item_id"] for i in greedy["items"]]
        assert served["batch_size"] == 1 and served["timing_ms"]["batch_wait"] >= 0
