"""The knowledge teacher: a deterministic reasoner that answers the three branch prompts the way an
imperfect general LLM would, from world knowledge only.

It reads nothing but the prompt text (the `label: value` and behaviour lines that
`oxygen.instructions.prompts` writes) and the shop world's knowledge base: the calendar, climates
and contextual-need rules (context.yaml), complement relations (complements.yaml) and the query
vocabulary (taxonomy.yaml). It never sees hidden truth or simulator state. It knows only part of
the world: a rule, or a complement pair, is known when a hash of it with `seed` falls below
`coverage`. It names products with synonyms from the vocabulary, never category ids.

    backend = KnowledgeBackend(coverage=0.8)
    backend.generate([stp_prompt(state)])   # ['{"needs": [{"need": "baby pajamas", "reason": ...}]}']
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np

from oxygen.instructions.backends.spelling import QueryRewriter
from oxygen.instructions.prompts import ANSWER, LONG_HEADER, QUERIES_HEADER, SHORT_HEADER, TASK_INTENT, TASK_REWRITE, TASK_STP
from oxygen.instructions.state import default_kb
from oxygen.world.knowledge import Knowledge, Rule

MAX_NEEDS = 6
MAX_COMPLEMENTS = 3
ACTION_WEIGHT = {"click": 1.0, "cart": 2.0, "purchase": 3.0}
EVENT_LINE = re.compile(r"^(?P<when>\d{4}-\d{2}-\d{2} \d{2}:\d{2}|undated) (?P<action>\S+) (?P<title>.*?) ?"
                        r"\[(?P<path>[^\[\]]*)\](?: in (?P<scenario>\S+))?$")
UNKNOWN = "Sorry, I can only answer the three instruction tasks."


def uniform(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) for (seed, parts), the same in every process."""
    h = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0 ** 64


def fields(prompt: str) -> dict[str, str]:
    """`label: value` lines of a prompt before the answer schema (first occurrence of each label)."""
    out: dict[str, str] = {}
    for line in prompt.split(ANSWER)[0].splitlines()[1:]:
        label, sep, value = line.partition(": ")
        if sep and label and label not in out:
            out[label] = value.strip()
    return out


def behaviour(prompt: str) -> list[dict]:
    """The behaviour lines of an intent prompt as dicts (section long/short, when, action, title, path)."""
    out, section = [], None
    for line in prompt.split(ANSWER)[0].splitlines():
        if line in (LONG_HEADER, SHORT_HEADER, QUERIES_HEADER):
            section = {LONG_HEADER: "long", SHORT_HEADER: "short"}.get(line)
            continue
        m = EVENT_LINE.match(line) if section else None
        if m:
            path = tuple(p.strip() for p in m["path"].split(">") if p.strip())
            out.append({"section": section, "when": m["when"], "action": m["action"], "title": m["title"],
                        "path": path, "scenario": m["scenario"]})
    return out


class KnowledgeBackend:
    """The `knowledge` backend: world knowledge at partial `coverage`, deterministic for a `seed`."""

    name = "knowledge"

    def __init__(self, kb: Knowledge | None = None, coverage: float = 0.8, seed: int = 0):
        """Decide once which rules and complement pairs this teacher knows."""
        if not 0.0 < coverage <= 1.0:
            raise ValueError(f"coverage={coverage}; pass a share of the rules in (0, 1]")
        self.kb = kb or default_kb()
        self.coverage, self.seed = float(coverage), int(seed)
        self.version = f"kb{self.kb.version}-cov{coverage}"
        self.rules: list[tuple[int, Rule]] = [(i, r) for i, r in enumerate(self.kb.rules)
                                              if uniform(seed, "rule", i) < coverage]
        self.leaf_id = {n: i for i, n in enumerate(self.kb.leaves)}
        self.cities = {c.name: c for c in self.kb.cities}
        self.persona_id = {p.name: i for i, p in enumerate(self.kb.personas)}
        self.rewriter = QueryRewriter(self.kb)

    def generate(self, prompts: list[str], max_new_tokens: int = 256) -> list[str]:
        """One JSON answer per prompt (an apology for prompts that are none of the three tasks)."""
        return [self._answer(p) for p in prompts]

    def _answer(self, prompt: str) -> str:
        """Dispatch on the prompt's TASK line."""
        task = prompt.split("\n", 1)[0].strip()
        if task == TASK_STP:
            return json.dumps({"needs": self.needs(fields(prompt))})
        if task == TASK_REWRITE:
            query = fields(prompt).get("query", "")
            return json.dumps({"query": self.rewriter.rewrite(query) if query else ""})
        if task == TASK_INTENT:
            return json.dumps({"intents": self.intents(behaviour(prompt))})
        return UNKNOWN

    def phrase(self, leaf: int, salt: str) -> str:
        """A natural name of `leaf`: one of its product nouns, picked by (seed, leaf, salt)."""
        words = self.kb.leaf_words[leaf]
        return words[int(uniform(self.seed, "word", leaf, salt) * len(words))]

    def _matches(self, rule: Rule, situation: set[str], climate: str | None, north: bool | None,
                 persona: int | None) -> bool:
        """Whether a rule applies to this situation, climate, north/south and persona."""
        if rule.when not in situation:
            return False
        if rule.climates is not None and climate not in rule.climates:
            return False
        if rule.personas is not None and persona not in rule.personas:
            return False
        return rule.north is None or north == rule.north

    def needs(self, f: dict[str, str]) -> list[dict[str, str]]:
        """STP answer: the needs of the known rules that match the prompt's fields, strongest first."""
        situation = {f.get("season", "")} | {t.strip() for k in ("holidays", "weather")
                                              for t in f.get(k, "").split(",") if t.strip()}
        city = self.cities.get(f.get("city", ""))
        climate = f.get("climate") or (city.climate if city else None)
        persona = self.persona_id.get(f.get("persona", ""))
        best: dict[int, tuple[float, Rule]] = {}
        for _, rule in self.rules:
            if self._matches(rule, situation, climate, city.north if city else None, persona):
                for leaf, s in rule.needs:
                    if leaf not in best or s > best[leaf][0]:
                        best[leaf] = (s, rule)
        order = sorted(best, key=lambda leaf: (-best[leaf][0], leaf))[:MAX_NEEDS]
        salt = "|".join(sorted(situation)) + f.get("city", "")
        return [{"need": self.phrase(leaf, salt), "reason": self._reason(best[leaf][1], f)} for leaf in order]

    def _reason(self, rule: Rule, f: dict[str, str]) -> str:
        """"winter in Harbin, a cold climate, for young parents"."""
        out = rule.when.replace("_", " ") + (f" in {f['city']}" if f.get("city") else "")
        if rule.climates is not None:
            out += f", a {f.get('climate') or rule.climates[0]} climate"
        if rule.north is not None:
            out += ", a northern city" if rule.north else ", a southern city"
        if rule.personas is not None and f.get("persona"):
            out += f", for {f['persona'].replace('_', ' ')}"
        return out

    def _leaf(self, ev: dict) -> int | None:
        """The world leaf of an event from its category path, None when unknown."""
        return self.leaf_id.get(ev["path"][-1]) if ev["path"] else None

    def _complements(self, events: list[dict]) -> list[dict[str, str]]:
        """Intents for the complements of the latest carted or bought items."""
        recent = [i for i, e in enumerate(events) if e["section"] == "short"] or \
            list(range(max(len(events) - 3, 0), len(events)))
        sources = [i for i in recent if events[i]["action"] in ("cart", "purchase", "interacted")]
        out, seen = [], set()
        for i in reversed(sources):
            src = self._leaf(events[i])
            if src is None or src in seen or len(out) == 2:
                continue
            seen.add(src)
            later = {self._leaf(e) for e in events[i:]}
            row = self.kb.complement[src]
            known = [int(t) for t in np.argsort(-row, kind="stable") if row[t] > 0 and int(t) not in later
                     and uniform(self.seed, "pair", src, int(t)) < self.coverage][:MAX_COMPLEMENTS]
            if not known:
                continue
            noun, salt = self.phrase(src, "src"), events[i]["when"]
            goes = ", ".join(self.phrase(t, salt) for t in known)
            verb = {"cart": "added {} to the cart", "purchase": "bought {}"}.get(events[i]["action"], "got {}")
            article = "an" if noun[:1].lower() in "aeiou" else "a"
            out.append({"instruction": f"complements for the new {noun}: {goes}",
                        "reason": f"{verb.format(f'{article} {noun}')}; it goes with {goes}", "kind": "complement"})
        return out

    def _interests(self, events: list[dict]) -> list[dict[str, str]]:
        """Interest fusion over the two most weighted mid categories, and repurchases."""
        mids: dict[str, float] = {}
        leaves: dict[tuple[str, ...], float] = {}
        bought: dict[tuple[str, ...], int] = {}
        for e in events:
            if not e["path"]:
                continue
            w = ACTION_WEIGHT.get(e["action"], 1.0)
            mid = e["path"][-2] if len(e["path"]) >= 2 else e["path"][-1]
            mids[mid] = mids.get(mid, 0.0) + w
            leaves[e["path"]] = leaves.get(e["path"], 0.0) + w
            bought[e["path"]] = bought.get(e["path"], 0) + int(e["action"] == "purchase")
        top = sorted(mids, key=lambda m: (-mids[m], m))[:2]
        out = []
        if top:
            picks = [max((p for p in leaves if (p[-2] if len(p) >= 2 else p[-1]) == m),
                         key=lambda p: (leaves[p], p)) for m in top]
            names = [self._name(p) for p in picks]
            if len(top) == 2:
                out.append({"instruction": f"new picks across {top[0].lower()} and {top[1].lower()}: "
                                           f"{names[0]}, {names[1]}",
                            "reason": f"steady interest in {top[0]} and {top[1]}", "kind": "interest_fusion"})
            else:
                out.append({"instruction": f"more {names[0]}", "reason": f"steady interest in {top[0]}",
                            "kind": "other"})
        again = sorted((p for p in bought if bought[p] >= 2), key=lambda p: (-bought[p], p))[:1]
        out += [{"instruction": f"restock {self._name(p)}", "reason": f"bought {bought[p]} times",
                 "kind": "repurchase"} for p in again]
        return out

    def _name(self, path: tuple[str, ...]) -> str:
        """A natural name of a category path: a world synonym, else the leaf name lower-cased."""
        leaf = self.leaf_id.get(path[-1])
        return self.phrase(leaf, "interest") if leaf is not None else path[-1].lower()

    def intents(self, events: list[dict]) -> list[dict[str, str]]:
        """Intent answer: complements of recent cart/purchase items, fused interests, repurchases."""
        return self._complements(events) + self._interests(events) if events else []
