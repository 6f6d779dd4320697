"""`ModelBatch`: the one tensor batch the model, trainers and serving exchange.

Built from schema rows by `oxygen.data.batching` (the collate step). Semantic ids are per-level
codes: level l holds an integer in [0, K_l). Padding positions carry code 0 and mask False.
B = batch, S = short-history length, H = long-history length, L = SID levels,
P = profile feature slots, E = instruction-text embedding dim (the item text encoder's, 384).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ModelBatch:
    """Inputs (and targets) of the encoder-decoder for B examples.

    short_codes     Long[B, S, L]  SID codes of the most recent history items (oldest first)
    short_items     Long[B, S]     dense item index + 1 (0 = padding), for the optional id embedding
    short_behaviour Long[B, S]     behaviour id (0 pad, 1 click, 2 cart, 3 purchase, 4 unknown)
    short_scenario  Long[B, S]     scenario id (0 pad/unknown, 1.. in SCENARIOS order)
    short_mask      Bool[B, S]     True at real positions
    long_codes      Long[B, H, L]  older history (before the short window), candidates for IGR
    long_items      Long[B, H]
    long_behaviour  Long[B, H]
    long_scenario   Long[B, H]
    long_mask       Bool[B, H]
    profile         Long[B, P]     profile feature ids (0 = unknown), see batching.PROFILE_FIELDS
    scenario        Long[B]        scenario id of the request (0 = unknown)
    trigger_codes   Long[B, L]     trigger item codes (zeros when absent)
    trigger_mask    Bool[B]        True when a trigger item is given (else the default trigger)
    instr_emb       Float[B, E]    reasoning-instruction text embedding (zeros when absent)
    instr_mask      Bool[B]        True when instr_emb is real (else the learnable default)
    cand_codes      Long[B, C, L]  collaborative candidates: items that often followed the recent
    cand_items      Long[B, C]       history (oxygen.data.transitions), best first; C = 0 when off
    cand_mask       Bool[B, C]
    target_codes    Long[B, L]     SID codes of the target item (zeros at inference)
    target_items    Long[B]        dense item index of the target (-1 at inference)
    weight          Float[B]       loss weight from the target behaviour (purchase > cart > click)
    """

    short_codes: torch.Tensor
    short_items: torch.Tensor
    short_behaviour: torch.Tensor
    short_scenario: torch.Tensor
    short_mask: torch.Tensor
    long_codes: torch.Tensor
    long_items: torch.Tensor
    long_behaviour: torch.Tensor
    long_scenario: torch.Tensor
    long_mask: torch.Tensor
    profile: torch.Tensor
    scenario: torch.Tensor
    trigger_codes: torch.Tensor
    trigger_mask: torch.Tensor
    instr_emb: torch.Tensor
    instr_mask: torch.Tensor
    cand_codes: torch.Tensor
    cand_items: torch.Tensor
    cand_mask: torch.Tensor
    target_codes: torch.Tensor
    target_items: torch.Tensor
    weight: torch.Tensor

    def __len__(self) -> int:
        return int(self.scenario.shape[0])

    def to(self, device: torch.device | str) -> "ModelBatch":
        """A copy with every tensor moved to `device`."""
        return ModelBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def device(self) -> torch.device:
        """Where the batch's tensors are."""
        return self.scenario.device

    def select(self, index: torch.Tensor) -> "ModelBatch":
        """The sub-batch of rows `index` (Long[b], on any device)."""
        index = (index if isinstance(index, torch.Tensor) else torch.as_tensor(index, device="cpu")).to(self.device)
        return ModelBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})
