"""A tiny deterministic model over ModelBatch used to test the training loops (not a product model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from oxygen.data.batching import FeatureSpace, collate
from oxygen.data.schema import Row


@dataclass
class ToyOut:
    """What the loops read from a model's forward."""

    loss: torch.Tensor
    metrics: dict = field(default_factory=dict)


class ToyModel(torch.nn.Module):
    """Mean of short-history item embeddings -> logits over the first SID level (no dropout)."""

    def __init__(self, n_items: int = 40, k: int = 8, dim: int = 16):
        super().__init__()
        self.emb = torch.nn.Embedding(n_items + 1, dim)
        self.head = torch.nn.Linear(dim, k)

    def forward(self, batch) -> ToyOut:
        m = batch.short_mask.float().unsqueeze(-1)
        h = (self.emb(batch.short_items) * m).sum(1) / m.sum(1).clamp(min=1)
        return ToyOut(torch.nn.functional.cross_entropy(self.head(h), batch.target_codes[:, 0]))


def toy_data(n_rows: int = 64, n_items: int = 40, k: int = 8):
    """Rows where the target's first code is a function of the last history item."""
    rng = np.random.default_rng(0)
    codes = np.stack([np.arange(n_items) % k, np.zeros(n_items, int), np.arange(n_items)], 1)
    rows = []
    for u in range(n_rows):
        last = int(rng.integers(n_items))
        rows.append(Row(user_id=str(u), history=[int(rng.integers(n_items)), last], target=(last + 1) % n_items))
    space = FeatureSpace.build(list(range(n_items)), codes, rows)
    return collate(rows, space), space


def toy_trainable(model: torch.nn.Module, data, lr: float = 0.05, epochs: int = 6, batch_size: int = 16):
    """The toy model on `data` with AdamW + the cosine schedule (no warmup), as the loop trains it."""
    from oxygen.training.loop import Trainable, adamw_cosine

    steps = epochs * -(-len(data) // batch_size)
    return Trainable(model, data, *adamw_cosine(model, lr, 0.01, 0, steps))
