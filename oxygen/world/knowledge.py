"""The shop world's knowledge base, loaded from the YAML files in `oxygen/world/kb/`.

`Knowledge.load()` reads taxonomy.yaml (category tree and vocabularies), complements.yaml,
context.yaml (contextual needs), places.yaml (cities, climates), calendar.yaml and personas.yaml,
checks every cross-reference, and exposes them as plain arrays indexed by integer ids:

    kb = Knowledge.load()
    kb.leaves[7], kb.tops[kb.leaf_top[7]], kb.complement[7]   # leaf name, its top, complement row

`complement` is a dense Float[L, L] matrix (row = cart leaf, column = wanted leaf, 0 = none).
Bad files raise `KnowledgeError` naming the file, the entry and how to fix it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

KB_DIR = Path(__file__).resolve().parent / "kb"
KB_FILES: tuple[str, ...] = ("taxonomy.yaml", "complements.yaml", "context.yaml", "places.yaml",
                             "calendar.yaml", "personas.yaml")


class KnowledgeError(ValueError):
    """A knowledge-base file is malformed; the message names file, entry and the fix."""


@dataclass(frozen=True)
class Rule:
    """One contextual-need rule: when `when` holds in a matching city for a matching persona."""

    when: str
    climates: tuple[str, ...] | None
    personas: tuple[int, ...] | None
    north: bool | None
    needs: tuple[tuple[int, float], ...]  # (leaf id, strength)


@dataclass(frozen=True)
class Persona:
    """A kind of user: age bands, family stage, hobbies, spending mix and interest prior."""

    name: str
    weight: float
    age_bands: tuple[str, ...]
    family_stage: str
    hobbies: tuple[str, ...]
    spending: tuple[float, ...]  # probability of each spending level
    interests: tuple[tuple[int, float], ...]  # (mid id, weight)


@dataclass(frozen=True)
class City:
    """A city with its climate, whether it is northern, and its share of users."""

    name: str
    climate: str
    north: bool
    weight: float


@dataclass
class Knowledge:
    """Everything the simulator knows about the world, as id-indexed lists and arrays."""

    tops: list[str]
    mids: list[str]
    leaves: list[str]
    leaf_mid: np.ndarray  # Int[L]
    leaf_top: np.ndarray  # Int[L]
    leaf_price: np.ndarray  # Float[L], typical price in USD
    leaf_words: list[tuple[str, ...]]  # product nouns per leaf
    mid_specs: list[tuple[str, ...]]
    top_brands: list[tuple[str, ...]]
    top_adjectives: list[tuple[str, ...]]
    top_features: list[tuple[str, ...]]
    complement: np.ndarray  # Float[L, L]
    rules: list[Rule]
    cities: list[City]
    climate_rates: dict[str, dict[str, float]]  # climate -> weather event -> daily rate
    seasons: dict[int, str]  # month -> season
    holidays: dict[str, tuple[int, int, int, int]]  # name -> (month, day, before, after)
    weather: dict[str, tuple[tuple[int, ...], int]]  # event -> (months, duration days)
    personas: list[Persona]
    spending_levels: tuple[str, ...]
    version: str  # sha256 prefix of the KB files

    @classmethod
    def load(cls, kb_dir: Path | str = KB_DIR) -> Knowledge:
        """Read and validate every KB file in `kb_dir`."""
        kb_dir = Path(kb_dir)
        raw, digest = {}, hashlib.sha256()
        for name in KB_FILES:
            path = kb_dir / name
            if not path.exists():
                raise KnowledgeError(f"{path}: missing knowledge-base file; restore it from git")
            text = path.read_bytes()
            digest.update(text)
            raw[name] = yaml.safe_load(text) or {}
        tree = _parse_tree(raw["taxonomy.yaml"], kb_dir / "taxonomy.yaml")
        leaf_id = {n: i for i, n in enumerate(tree["leaves"])}
        mid_id = {n: i for i, n in enumerate(tree["mids"])}
        personas, spending = _parse_personas(raw["personas.yaml"], mid_id, kb_dir / "personas.yaml")
        places = raw["places.yaml"]
        cities = [City(n, c["climate"], bool(c["north"]), float(c["weight"]))
                  for n, c in places["cities"].items()]
        rates = {k: {e: float(v[e]) for e in v if e != "description"} for k, v in places["climates"].items()}
        for c in cities:
            _need(c.climate in rates, kb_dir / "places.yaml", c.name, f"unknown climate {c.climate!r}")
        cal = raw["calendar.yaml"]
        seasons = {int(m): s for s, months in cal["seasons"].items() for m in months}
        _need(sorted(seasons) == list(range(1, 13)), kb_dir / "calendar.yaml", "seasons",
              "every month 1..12 must belong to exactly one season")
        holidays = {n: (int(h["month"]), int(h["day"]), int(h["before"]), int(h["after"]))
                    for n, h in cal["holidays"].items()}
        weather = {n: (tuple(int(m) for m in w["months"]), int(w["days"])) for n, w in cal["weather"].items()}
        whens = set(seasons.values()) | set(holidays) | set(weather)
        pid = {p.name: i for i, p in enumerate(personas)}
        rules = _parse_rules(raw["context.yaml"], leaf_id, pid, whens, set(rates), kb_dir / "context.yaml")
        comp = _parse_complements(raw["complements.yaml"], leaf_id, kb_dir / "complements.yaml")
        return cls(tops=tree["tops"], mids=tree["mids"], leaves=tree["leaves"],
                   leaf_mid=np.array(tree["leaf_mid"]), leaf_top=np.array(tree["leaf_top"]),
                   leaf_price=np.array(tree["leaf_price"], dtype=np.float64),
                   leaf_words=tree["leaf_words"], mid_specs=tree["mid_specs"],
                   top_brands=tree["top_brands"], top_adjectives=tree["top_adjectives"],
                   top_features=tree["top_features"], complement=comp, rules=rules, cities=cities,
                   climate_rates=rates, seasons=seasons, holidays=holidays, weather=weather,
                   personas=personas, spending_levels=spending, version=digest.hexdigest()[:16])

    def siblings(self, leaf: int) -> np.ndarray:
        """Int[k]: the other leaves under the same mid category as `leaf`."""
        same = np.flatnonzero(self.leaf_mid == self.leaf_mid[leaf])
        return same[same != leaf]

    def context_leaves(self, persona: int) -> np.ndarray:
        """Int[k]: sorted leaves that any contextual rule may make `persona` need."""
        out = {leaf for r in self.rules if r.personas is None or persona in r.personas
               for leaf, _ in r.needs}
        return np.array(sorted(out), dtype=np.int64)


def _need(ok: bool, path: Path, entry: str, problem: str) -> None:
    """Raise KnowledgeError(path: entry: problem) unless ok."""
    if not ok:
        raise KnowledgeError(f"{path}: {entry}: {problem}")


def _strength(value: object, path: Path, entry: str) -> float:
    """A strength in (0, 1] or a KnowledgeError."""
    ok = isinstance(value, (int, float)) and 0 < float(value) <= 1
    _need(ok, path, entry, f"strength must be a number in (0, 1], got {value!r}")
    return float(value)


def _parse_tree(doc: dict, path: Path) -> dict:
    """Flatten the nested top > mid > leaf tree into id-indexed lists."""
    out: dict[str, list] = {k: [] for k in ("tops", "mids", "leaves", "leaf_mid", "leaf_top", "leaf_price",
                                            "leaf_words", "mid_specs", "top_brands", "top_adjectives",
                                            "top_features")}
    _need(isinstance(doc.get("tree"), dict), path, "tree", "the file needs a `tree:` mapping of top categories")
    for top, t in doc["tree"].items():
        for key in ("brands", "adjectives", "features", "mids"):
            _need(key in t and t[key], path, top, f"top category needs a non-empty `{key}`")
        out["tops"].append(top)
        for key in ("brands", "adjectives", "features"):
            out[f"top_{key}"].append(tuple(str(x) for x in t[key]))
        for mid, m in t["mids"].items():
            _need(bool(m.get("specs")) and bool(m.get("leaves")), path, f"{top} > {mid}",
                  "mid category needs non-empty `specs` and `leaves`")
            out["mids"].append(mid)
            out["mid_specs"].append(tuple(str(x) for x in m["specs"]))
            for leaf, spec in m["leaves"].items():
                where = f"{top} > {mid} > {leaf}"
                _need(leaf not in out["leaves"], path, where, "leaf name is used twice; names must be unique")
                _need(isinstance(spec, dict) and spec.get("words") and float(spec.get("price", 0)) > 0,
                      path, where, "leaf needs {price: <positive number>, words: [nouns...]}")
                out["leaves"].append(leaf)
                out["leaf_mid"].append(len(out["mids"]) - 1)
                out["leaf_top"].append(len(out["tops"]) - 1)
                out["leaf_price"].append(float(spec["price"]))
                out["leaf_words"].append(tuple(str(w) for w in spec["words"]))
    return out


def _parse_complements(doc: dict, leaf_id: dict[str, int], path: Path) -> np.ndarray:
    """Float[L, L] complement strengths from `complements: {leaf: {leaf: strength}}`."""
    comp = np.zeros((len(leaf_id), len(leaf_id)), dtype=np.float64)
    for src, targets in (doc.get("complements") or {}).items():
        _need(src in leaf_id, path, src, "unknown leaf; use a leaf name from taxonomy.yaml")
        for dst, s in targets.items():
            _need(dst in leaf_id, path, f"{src} -> {dst}", "unknown leaf; use a leaf name from taxonomy.yaml")
            _need(dst != src, path, f"{src} -> {dst}", "a leaf cannot complement itself")
            comp[leaf_id[src], leaf_id[dst]] = _strength(s, path, f"{src} -> {dst}")
    return comp


def _parse_rules(doc: dict, leaf_id: dict[str, int], pid: dict[str, int], whens: set[str],
                 climates: set[str], path: Path) -> list[Rule]:
    """Contextual-need rules with leaf and persona names resolved to ids."""
    rules = []
    for n, r in enumerate(doc.get("rules") or []):
        where = f"rule #{n + 1} ({r.get('when')})"
        _need(r.get("when") in whens, path, where, f"`when` must be a season, holiday or weather event: {sorted(whens)}")
        for c in r.get("climates") or []:
            _need(c in climates, path, where, f"unknown climate {c!r}; known: {sorted(climates)}")
        for p in r.get("personas") or []:
            _need(p in pid, path, where, f"unknown persona {p!r}; known: {sorted(pid)}")
        _need(bool(r.get("needs")), path, where, "a rule needs a non-empty `needs` mapping")
        for leaf in r["needs"]:
            _need(leaf in leaf_id, path, f"{where} {leaf}", "unknown leaf; use a leaf name from taxonomy.yaml")
        needs = tuple((leaf_id[k], _strength(v, path, f"{where} {k}")) for k, v in r["needs"].items())
        climates_t = tuple(r["climates"]) if r.get("climates") else None
        personas_t = tuple(pid[p] for p in r["personas"]) if r.get("personas") else None
        rules.append(Rule(r["when"], climates_t, personas_t, r.get("north"), needs))
    return rules


def _parse_personas(doc: dict, mid_id: dict[str, int], path: Path) -> tuple[list[Persona], tuple[str, ...]]:
    """Personas with interest mids resolved to ids, and the spending levels."""
    levels = tuple(doc.get("spending_power") or ())
    _need(len(levels) >= 2, path, "spending_power", "list at least two spending levels")
    out = []
    for name, p in (doc.get("personas") or {}).items():
        _need(len(p.get("spending", [])) == len(levels), path, name,
              f"`spending` needs one probability per level {list(levels)}")
        for mid in p.get("interests") or {}:
            _need(mid in mid_id, path, f"{name} {mid}", "unknown mid category; use one from taxonomy.yaml")
        _need(bool(p.get("interests")) and bool(p.get("age_band")), path, name,
              "persona needs `age_band` and `interests`")
        spend = np.array(p["spending"], dtype=np.float64)
        out.append(Persona(name, float(p["weight"]), tuple(p["age_band"]), str(p["family_stage"]),
                           tuple(p["hobbies"]), tuple(spend / spend.sum()),
                           tuple((mid_id[m], float(w)) for m, w in p["interests"].items())))
    return out, levels
