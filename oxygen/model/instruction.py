"""The decoder's instruction prefix: scenario instruction (scenario ⊕ trigger) and reasoning
instruction I_r, placed around BOS according to `ModelConfig.instruction_placement`.

Scenario instruction: s = scenario embedding, g = trigger item embedding (sum of its SID code
embeddings) or a learnable default-trigger vector when trigger_mask is False;
    instr = MLP([s ; g])                       (one token)
Reasoning instruction: r = adapter MLP(instr_emb Float[B, E]) or a learnable default vector when
instr_mask is False (or for every example when `use_reasoning` is off); with `query_adapter` the
search rows' queries go through an adapter of their own, so learning generated instructions on
other scenarios does not move the query mapping. Our choice of how I_r
conditions the model: r is ADDED to the instruction token (to the scenario token for two_tokens,
to BOS for none), and the encoder always gets r as one input token (oxygen.model.encdec).

Placements (prefix tokens, each Float[d]):
    none          [BOS + r]
    right_of_bos  [BOS, instr + r]            (default)
    replace_bos   [instr + r]
    add_to_bos    [BOS + instr + r]
    left_of_bos   [instr + r, BOS]
    two_tokens    [BOS, s + r, g]

    ip = InstructionPrefix(cfg)
    r = ip.reasoning(instr_emb, instr_mask, scenario)           # Float[B, d]
    prefix = ip.prefix(scen_emb, trig_emb, trigger_mask, r)     # Float[B, P, d]
"""

from __future__ import annotations

import torch
from torch import nn

from oxygen.config import ModelConfig
from oxygen.data.schema import SCENARIOS

SEARCH_ID = SCENARIOS.index("search") + 1  # scenario ids are 1.. in SCENARIOS order (0: unknown)
PREFIX_LEN = {"none": 1, "right_of_bos": 2, "replace_bos": 1, "add_to_bos": 1, "left_of_bos": 2,
              "two_tokens": 3}


def _mlp(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.GELU(), nn.Linear(d, d))


class InstructionPrefix(nn.Module):
    """BOS, default trigger, default reasoning, the scenario⊕trigger fusion and the I_r adapter."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.placement = cfg.instruction_placement
        self.use_reasoning = cfg.use_reasoning
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.default_trigger = nn.Parameter(torch.randn(d) * 0.02)
        self.default_reasoning = nn.Parameter(torch.randn(d) * 0.02)
        self.fuse = _mlp(2 * d, d)
        self.adapter = _mlp(cfg.instr_dim, d)
        self.query_adapter = _mlp(cfg.instr_dim, d) if cfg.query_adapter else None

    @property
    def length(self) -> int:
        """Number of prefix tokens P for this placement."""
        return PREFIX_LEN[self.placement]

    def reasoning(self, instr_emb: torch.Tensor, instr_mask: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """instr_emb Float[B, E], instr_mask Bool[B], scenario Long[B] -> r Float[B, d] (default where
        mask False; search rows through the query adapter when there is one)."""
        default = self.default_reasoning.expand(instr_emb.shape[0], -1)
        if not self.use_reasoning:
            return default
        r = self.adapter(instr_emb)
        if self.query_adapter is not None:
            r = torch.where((scenario == SEARCH_ID)[:, None], self.query_adapter(instr_emb), r)
        return torch.where(instr_mask[:, None], r, default)

    def trigger(self, trig_emb: torch.Tensor, trigger_mask: torch.Tensor) -> torch.Tensor:
        """trig_emb Float[B, d], trigger_mask Bool[B] -> Float[B, d] (default where mask False)."""
        return torch.where(trigger_mask[:, None], trig_emb, self.default_trigger.expand_as(trig_emb))

    def prefix(self, scen: torch.Tensor, trig_emb: torch.Tensor, trigger_mask: torch.Tensor,
               r: torch.Tensor) -> torch.Tensor:
        """scen, trig_emb, r Float[B, d], trigger_mask Bool[B] -> prefix Float[B, P, d]."""
        g = self.trigger(trig_emb, trigger_mask)
        bos = self.bos.expand_as(scen)
        if self.placement == "two_tokens":
            return torch.stack([bos, scen + r, g], dim=1)
        if self.placement == "none":
            return (bos + r)[:, None]
        instr = self.fuse(torch.cat([scen, g], dim=-1)) + r
        tokens = {"right_of_bos": [bos, instr], "replace_bos": [instr], "add_to_bos": [bos + instr],
                  "left_of_bos": [instr, bos]}[self.placement]
        return torch.stack(tokens, dim=1)
