"""A servable checkpoint: the trained model plus everything needed to feed and decode it.

Layout of a bundle folder (written by training, read by serving and the demo):

    model/            OxygenModel.save (safetensors + config)
    sids/             semantic_ids Codebook.save (codes, centroids, item ids)
    space.json        profile vocabulary, collate windows and (with candidates) the transition counts
    scenarios.json    per scenario: item pool and whether a trigger item is required
    titles.json       item id -> title (optional, for people reading recommendations)
    rerank.json       the transition-channel re-rank chosen on valid (optional; oxygen.decoding.rerank)
    guidance.json     instruction-guidance weight per scenario chosen on valid, the scenarios whose
                      weight is gated and the SID levels guided (optional; {"weights": {...},
                      "gated": [...], "levels": [0, 1, 2]}; a flat {scenario: weight} is read too;
                      oxygen.decoding.guidance; `python -m bench.instruction_guidance --save`)
    need_slots.json   slots per scenario for the open needs a request's instruction states (optional;
                      {scenario: m}; oxygen.decoding.need_slots; `python -m bench.need_slots --save`)
    categories.json   item id -> leaf category (optional; need slots decode inside a category)
    version.txt       model version string

    bundle = Bundle.load("runs/demo/bundle")
    out = bundle.decoder().decode(batch, histories, beam=50, k=10, pools=["search", ...])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from oxygen.data.batching import CollateConfig, FeatureSpace
from oxygen.data.transitions import TransitionTable
from oxygen.decoding.decode import Decoder, DecoderTables
from oxygen.decoding.guidance import LEVELS
from oxygen.decoding.need_slots import need_pool
from oxygen.decoding.rerank import RerankSpec
from oxygen.device import resolve_device
from oxygen.model.encdec import OxygenModel
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.trie import PrefixTrie

TRIGGER_SCENARIOS = ("channel", "cart", "checkout")
CATALOGUE_POOL = "(catalogue)"  # the decoder pool over every item, for scenarios the bundle has no pool for


@dataclass
class ScenarioSpec:
    """One scenario's item pool (item ids), whether requests must name a trigger item, and whether
    its requests read the user's stored reasoning instruction (the model was trained with
    generated instructions on this scenario's rows, or by the paper's scheme)."""

    pool: list[int]
    requires_trigger: bool
    reads_instruction: bool = True


@dataclass
class Bundle:
    """Model + codebook + feature space + scenario pools (+ titles) of one trained version."""

    model: OxygenModel
    codebook: Codebook
    space: FeatureSpace
    collate_cfg: CollateConfig
    scenarios: dict[str, ScenarioSpec]
    titles: dict[int, str] = field(default_factory=dict)
    version: str = "dev"
    rerank: RerankSpec | None = None
    guidance: dict[str, float] = field(default_factory=dict)  # scenario -> instruction-guidance weight
    guidance_gated: frozenset[str] = frozenset()  # scenarios guided only where the instruction states an open need
    guidance_levels: tuple[int, ...] = LEVELS  # the SID levels guidance acts on
    need_slots: dict[str, int] = field(default_factory=dict)  # scenario -> slots for the instruction's open needs
    categories: dict[int, str] = field(default_factory=dict)  # item id -> leaf category

    def __post_init__(self) -> None:
        if self.rerank is not None and self.space.transitions is None:
            raise ValueError("a bundle that re-ranks with the transition channel needs the transition counts "
                             "(FeatureSpace.transitions); build the space with transitions=True or drop the rerank")
        unknown = sorted(set(self.guidance) - set(self.scenarios))
        if unknown:
            raise ValueError(f"guidance weights for scenarios {unknown} the bundle does not serve "
                             f"(its scenarios: {sorted(self.scenarios)})")
        self.guidance_gated, self.guidance_levels = frozenset(self.guidance_gated), tuple(self.guidance_levels)
        if not self.guidance_levels or not set(self.guidance_levels) <= set(LEVELS):
            raise ValueError(f"guidance levels {list(self.guidance_levels)} must be a non-empty subset of {list(LEVELS)}")
        if not self.guidance_gated <= set(self.guidance):
            raise ValueError(f"gated guidance for scenarios {sorted(self.guidance_gated - set(self.guidance))} "
                             "without a guidance weight; give each gated scenario a weight")
        self.need_slots = {s: int(m) for s, m in self.need_slots.items() if int(m) != 0}
        bad = sorted(s for s, m in self.need_slots.items() if s not in self.scenarios or m < 0)
        if bad:
            raise ValueError(f"need slots for scenarios {bad}: each must be a scenario the bundle serves "
                             f"({sorted(self.scenarios)}) with slots >= 0")
        if self.need_slots and not self.categories:
            raise ValueError("need slots decode inside an item's category, but the bundle has no item categories "
                             "(categories.json); train it on items with categories, or drop need_slots")

    @property
    def instruction_scenarios(self) -> frozenset[str]:
        """The scenarios whose requests read the user's stored instruction."""
        return frozenset(s for s, spec in self.scenarios.items() if spec.reads_instruction)

    def decoder(self, catalogue_pool: str | None = None, model: OxygenModel | None = None,
                tables: DecoderTables | None = None) -> Decoder:
        """The one decode path over this bundle's scenario pools (oxygen.decoding.decode), plus a
        pool named `catalogue_pool` over the whole codebook when given (for requests of scenarios
        the bundle has no pool for); `model`: another weight version of the bundle's model (a
        post-training policy), default the bundle's own; `tables`: this bundle's decoder tables
        built elsewhere (`decoder(...).tables()`, e.g. shared through Ray's object store), used
        as they are instead of building the tries here."""
        model = self.model if model is None else model
        if tables is not None:
            names = set(self.scenarios) | set(self._need_pools()) | ({catalogue_pool} if catalogue_pool is not None else set())
            if set(tables.names) != names or len(tables.item_ids) != len(self.space.item_ids):
                raise ValueError(f"decoder tables of pools {tables.names} over {len(tables.item_ids)} items do not "
                                 f"belong to this bundle (pools {sorted(names)}, {len(self.space.item_ids)} items); "
                                 "build them from the same bundle with bundle.decoder(...).tables()")
            dec = Decoder.from_tables(model.eval(), tables, self.space.transitions, self.rerank)
        else:
            dec = Decoder(model.eval(), self._pools(catalogue_pool), self.space.item_ids, self.space.transitions,
                          self.rerank)
        dec.guidance, dec.gated, dec.guidance_levels = self.guidance, self.guidance_gated, self.guidance_levels
        dec.need_slots, dec.item_category = dict(self.need_slots), self.categories
        return dec

    def _need_pools(self) -> dict[str, list[int]]:
        """{need pool name: item ids}: each need-slot scenario's pool cut to each category it holds."""
        out: dict[str, list[int]] = {}
        for s in sorted(self.need_slots):
            for item in self.scenarios[s].pool:
                if item in self.categories:
                    out.setdefault(need_pool(s, self.categories[item]), []).append(item)
        return out

    def _pools(self, catalogue_pool: str | None) -> dict[str, PrefixTrie]:
        """Each scenario's pool trie, each need pool's (`_need_pools`), plus `catalogue_pool` over
        the whole codebook when given."""
        full = PrefixTrie(self.codebook.codes, self.codebook.item_ids)
        pools = {s: full.restrict(spec.pool) for s, spec in self.scenarios.items()}
        pools.update({name: full.restrict(items) for name, items in self._need_pools().items()})
        if catalogue_pool is not None:
            if catalogue_pool in pools:
                raise ValueError(f"catalogue_pool {catalogue_pool!r} is one of the bundle's scenarios; name it otherwise")
            pools[catalogue_pool] = full
        return pools

    def pools_for(self, scenarios: Sequence[str | None]) -> list[str]:
        """Each request's decoder pool: its scenario's, else CATALOGUE_POOL (decoder(CATALOGUE_POOL))."""
        return [s if s in self.scenarios else CATALOGUE_POOL for s in scenarios]

    def save(self, out: Path | str) -> Path:
        """Write the bundle folder (see the module docstring)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save(out / "model")
        self.codebook.save(out / "sids")
        (out / "space.json").write_text(json.dumps(self._space_json()))
        (out / "scenarios.json").write_text(json.dumps(
            {s: {"pool": spec.pool, "requires_trigger": spec.requires_trigger,
                 "reads_instruction": spec.reads_instruction} for s, spec in self.scenarios.items()}))
        (out / "titles.json").write_text(json.dumps({str(k): v for k, v in self.titles.items()}))
        (out / "version.txt").write_text(self.version)
        if self.rerank is not None:
            (out / "rerank.json").write_text(json.dumps(asdict(self.rerank)))
        if self.guidance:
            (out / "guidance.json").write_text(json.dumps(
                guidance_json(self.guidance, self.guidance_gated, self.guidance_levels)))
        save_need_slots(out, self.need_slots, self.categories)
        return out

    def _space_json(self) -> dict:
        """space.json: the profile vocabulary, the CollateConfig fields and the transition counts."""
        vocab = [[f, v, i] for (f, v), i in sorted(self.space.profile_vocab.items(), key=lambda x: x[1])]
        trans = self.space.transitions.to_json() if self.space.transitions is not None else None
        return {"profile_vocab": vocab, **asdict(self.collate_cfg), "transitions": trans}

    @classmethod
    def load(cls, out: Path | str, device: str = "cpu") -> "Bundle":
        """Read a bundle folder with its model on `device` (oxygen.device: auto | cpu | cuda; the
        decode path follows the model); a missing part is a FileNotFoundError naming it."""
        out = Path(out)
        for part in ("model", "sids", "space.json", "scenarios.json"):
            if not (out / part).exists():
                raise FileNotFoundError(f"{out / part} missing: not a bundle folder (train one with apps.train)")
        cb = Codebook.load(out / "sids")
        sp = json.loads((out / "space.json").read_text())
        trans = TransitionTable.from_json(sp["transitions"]) if sp.get("transitions") is not None else None
        space = FeatureSpace(cb.item_ids, cb.codes, {(f, v): i for f, v, i in sp["profile_vocab"]}, trans)
        scen = {s: ScenarioSpec(d["pool"], d["requires_trigger"], d.get("reads_instruction", True))
                for s, d in json.loads((out / "scenarios.json").read_text()).items()}
        titles_p = out / "titles.json"
        titles = {int(k): v for k, v in json.loads(titles_p.read_text()).items()} if titles_p.exists() else {}
        version = (out / "version.txt").read_text().strip() if (out / "version.txt").exists() else "dev"
        ccfg = CollateConfig(**{f.name: sp[f.name] for f in fields(CollateConfig) if f.name in sp})
        spec = out / "rerank.json"
        rerank = RerankSpec(**json.loads(spec.read_text())) if spec.exists() else None
        guidance, gated, levels = read_guidance(out / "guidance.json")
        slots = json.loads((out / "need_slots.json").read_text()) if (out / "need_slots.json").exists() else {}
        cats_p = out / "categories.json"
        cats = {int(k): v for k, v in json.loads(cats_p.read_text()).items()} if cats_p.exists() else {}
        model = OxygenModel.load(out / "model").to(resolve_device(device))
        return cls(model, cb, space, ccfg, scen, titles, version, rerank, guidance, gated, levels, slots, cats)


def save_need_slots(out: Path, need_slots: dict[str, int], categories: dict[int, str]) -> None:
    """Write need_slots.json (removed when no scenario has slots) and categories.json (when given)
    into bundle folder `out`."""
    slots = {s: int(m) for s, m in need_slots.items() if int(m) > 0}
    if slots:
        (out / "need_slots.json").write_text(json.dumps(slots))
    elif (out / "need_slots.json").exists():
        (out / "need_slots.json").unlink()
    if categories:
        (out / "categories.json").write_text(json.dumps({str(k): v for k, v in categories.items()}))


def guidance_json(weights: dict[str, float], gated: Sequence[str] | frozenset[str] = (),
                  levels: Sequence[int] = LEVELS) -> dict:
    """guidance.json's content: {"weights": {scenario: w}, "gated": [scenario, ...], "levels": [...]}."""
    return {"weights": {str(k): float(v) for k, v in weights.items()}, "gated": sorted(gated),
            "levels": [int(x) for x in levels]}


def read_guidance(path: Path) -> tuple[dict[str, float], frozenset[str], tuple[int, ...]]:
    """(weights, gated scenarios, levels) of a guidance.json (no weights when it is absent); a flat
    {scenario: weight} file, as bundles wrote before gating, guides every level ungated."""
    if not path.exists():
        return {}, frozenset(), LEVELS
    table = json.loads(path.read_text())
    if "weights" not in table:
        return {str(k): float(v) for k, v in table.items()}, frozenset(), LEVELS
    return ({str(k): float(v) for k, v in table["weights"].items()}, frozenset(table.get("gated", [])),
            tuple(int(x) for x in table.get("levels", LEVELS)))


def default_scenarios(item_ids: list[int], observed: dict[str, set[int]] | None = None,
                      instruction_scenarios: list[str] | None = None) -> dict[str, ScenarioSpec]:
    """Scenario specs: pools are the items observed as targets of each scenario (all items when a
    scenario has none, e.g. datasets without scenarios: one `default` scenario over the catalogue);
    `instruction_scenarios` read stored instructions (None: every scenario)."""
    observed = observed or {}
    reads = (lambda s: True) if instruction_scenarios is None else (lambda s: s in instruction_scenarios)
    specs = {s: ScenarioSpec(sorted(ids), s in TRIGGER_SCENARIOS, reads(s)) for s, ids in sorted(observed.items()) if ids}
    if not specs:
        specs["default"] = ScenarioSpec(sorted(item_ids), False)
    return specs
