"""Item embeddings for SIDs from text, behaviour, or both fused; picks the source for a catalogue.

Sources (`SIDConfig.source`):
- text:      sentence-transformer embedding of each item's text (title/brand/description);
             items with empty text get a deterministic random unit vector instead.
- behaviour: contrastive Swing-pair embeddings (`behaviour.py`) from the TRAIN split; items in no
             pair keep a deterministic random vector.
- fused:     behaviour training initialised from the text embeddings (so items in no pair keep their
             text vector), then concat [sqrt(w) * text, sqrt(1 - w) * behaviour] with w = text_weight,
             L2-normalised.
- auto:      fused when any item has text, else behaviour.

    x, info = item_embeddings(cfg, CatalogueInput(item_ids, texts, users, sequences))  # float32 [N, D]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oxygen.config import SIDConfig
from oxygen.semantic_ids.behaviour import (
    BehaviourParams,
    SwingParams,
    mine_pairs,
    random_embeddings,
    train_item_embeddings,
)
from oxygen.semantic_ids.text_encoder import encode_texts, resolve_model_path


@dataclass
class CatalogueInput:
    """Plain inputs of SID building: items (ids, text, category path) and TRAIN rows (user, sequence).

    `sequences[r]` is row r's history + [target] as item ids, owned by user `users[r]`.
    """

    item_ids: list[int]
    texts: list[str]
    users: list[str] = field(default_factory=list)
    sequences: list[list[int]] = field(default_factory=list)
    categories: list[list[str]] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.item_ids):
            raise ValueError(f"{len(self.texts)} texts for {len(self.item_ids)} items; give one per item "
                             "('' when an item has no text)")
        if len(set(self.item_ids)) != len(self.item_ids):
            raise ValueError("item_ids hold duplicates; every catalogue item needs a unique id")

    @property
    def has_text(self) -> bool:
        """True when at least one item has non-empty text."""
        return any(t.strip() for t in self.texts)


def resolve_source(source: str, has_text: bool) -> str:
    """Concrete source for `auto`; a text-based source on a text-less catalogue is an error."""
    if source == "auto":
        return "fused" if has_text else "behaviour"
    if source in ("text", "fused") and not has_text:
        raise ValueError(f"--source {source} needs item text but no item has a title or description; "
                         "use --source behaviour (or auto)")
    if source not in ("text", "behaviour", "fused"):
        raise ValueError(f"unknown source {source!r}; choose text, behaviour, fused or auto")
    return source


def text_embeddings(cfg: SIDConfig, texts: list[str]) -> np.ndarray:
    """Float32 [N, D] text embeddings; rows of empty texts are deterministic random unit vectors.

    Each distinct text is encoded once (catalogues repeat titles), then rows are gathered back.
    """
    has = np.array([bool(t.strip()) for t in texts])
    distinct: dict[str, int] = {}
    rows = [distinct.setdefault(t, len(distinct)) for t in texts if t.strip()]
    enc = encode_texts(list(distinct), cfg.encoder, cfg.text_batch_size, cfg.cache_dir, device=cfg.device)
    x = random_embeddings(len(texts), enc.shape[1], cfg.seed + 7)
    x[has] = enc[np.array(rows, dtype=np.int64)]
    return x


def behaviour_embeddings(cfg: SIDConfig, cat: CatalogueInput,
                         init: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Float32 [N, D] contrastive embeddings of the catalogue's items; info: pairs, items in a pair."""
    index = {i: r for r, i in enumerate(cat.item_ids)}
    unknown = {i for s in cat.sequences for i in s if i not in index}
    if unknown:
        raise ValueError(f"rows mention item id {min(unknown)} which is not in the catalogue; "
                         "fix the rows or the items file")
    dense = [[index[i] for i in s] for s in cat.sequences]
    swing = SwingParams(cfg.swing_alpha, cfg.consecutive_weight, cfg.max_users_per_item)
    pairs = mine_pairs(cat.users, dense, swing)
    params = BehaviourParams(cfg.behaviour_dim, cfg.behaviour_epochs, cfg.behaviour_batch_size,
                             cfg.behaviour_lr, cfg.temperature, cfg.seed)
    covered = len(np.union1d(pairs.a, pairs.b))
    return train_item_embeddings(pairs, len(cat.item_ids), params, init), {
        "pairs": len(pairs), "items_in_pairs": covered}


def item_embeddings(cfg: SIDConfig, cat: CatalogueInput) -> tuple[np.ndarray, dict]:
    """Float32 [N, D] L2-normalised embeddings for `cfg.source` and build info (source, encoder, pairs)."""
    source = resolve_source(cfg.source, cat.has_text)
    info: dict = {"source": source, "encoder": None, "pairs": 0, "items_in_pairs": 0}
    text = None
    if source in ("text", "fused"):
        info["encoder"] = str(resolve_model_path(cfg.encoder))
        text = text_embeddings(cfg, cat.texts)
        if source == "text":
            return text, info
    beh, counts = behaviour_embeddings(cfg, cat, init=text)
    info.update(counts)
    if source == "behaviour":
        return beh, info
    w = cfg.text_weight
    x = np.concatenate([np.sqrt(w) * text, np.sqrt(1.0 - w) * beh], axis=1).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12), info
