"""OxygenModel: the fast-thinking encoder-decoder that generates an item's semantic id (SID) level
by level for every scenario, steered by the scenario instruction and the reasoning instruction.

Encoder input (one sequence per example, in this order, + position + segment embeddings):
    P profile tokens | 1 reasoning token r (the learnable default when absent or use_reasoning is
    off; it also keeps every row's key mask non-empty) | C collaborative candidates (items that
    often followed the recent history, best first, + a rank embedding; if candidates > 0) |
    k' IGR-selected long-history items (time order; if use_igr) | S short-history items
Decoder input: the instruction prefix (oxygen.model.instruction; BOS / instruction tokens) then the
SID codes of levels 0..L-2 (teacher forcing; level l has its own input table and output head).
The logits of level l are read at decoder position P - 1 + l.

Loss (forward): weighted NTP + q2i_weight * Q2I + moe_aux_weight * MoE load balancing; with the
copy head (oxygen.model.copy) the NTP term is the NLL of the generate/copy mixture instead.
Inference: the StepModel API (start / step / select) lives in oxygen.model.inference and is exposed
as methods here; `save` / `load` in oxygen.model.checkpoint.

    model = OxygenModel(ModelConfig(codebook_sizes=(256, 256, 256), profile_size=space.profile_size))
    out = model(batch)                       # LossOutput(loss, ntp, q2i, aux, metrics)
    out.loss.backward()
    logp = model.level_log_probs(batch)      # teacher-forced log-probs, list of Float[B, K_l]
    state = model.start(batch); logp0, state = model.step(state, None, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from oxygen.config import ModelConfig
from oxygen.data.batch import ModelBatch
from oxygen.model import checkpoint, inference
from oxygen.model.blocks import DecoderBlock, EncoderBlock
from oxygen.model.copy import CopyHead, copy_prob
from oxygen.model.embed import ItemEmbedder
from oxygen.model.igr import Retriever, gather_positions, igr_select
from oxygen.model.instruction import InstructionPrefix
from oxygen.model.losses import mixture_nll, q2i_loss, weighted_ntp
from oxygen.model.validate import check_batch

SEG_PROFILE, SEG_REASONING, SEG_LONG, SEG_SHORT, SEG_CAND = range(5)


@dataclass
class LossOutput:
    """What `OxygenModel.forward` returns: total loss and its parts (Float[] each) + float metrics."""

    loss: torch.Tensor
    ntp: torch.Tensor
    q2i: torch.Tensor
    aux: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Conditions:
    """Per-example conditioning vectors: scenario emb, reasoning r (Float[B, d]), IGR/Q2I query q Float[B, A]."""

    scen: torch.Tensor
    r: torch.Tensor
    q: torch.Tensor


@dataclass
class Encoded:
    """Encoder output: memory Float[B, T, d], mask Bool[B, T], item index + 1 of each token
    Long[B, T] (0 for profile / reasoning tokens), MoE aux Float[]."""

    memory: torch.Tensor
    mask: torch.Tensor
    items: torch.Tensor
    aux: torch.Tensor


class OxygenModel(nn.Module):
    """Encoder-decoder over ModelBatch; implements oxygen.decoding.protocol.StepModel."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.use_item_id and cfg.n_items < 1:
            raise ValueError("use_item_id needs n_items (the catalogue size) > 0; fill it from the data "
                             "(oxygen.training.prepare.model_config_for) or set use_item_id: false")
        self.cfg, d, L = cfg, cfg.d_model, len(cfg.codebook_sizes)
        self.embed = ItemEmbedder(cfg)
        self.instr = InstructionPrefix(cfg)
        self.retriever = Retriever(cfg)
        self.segment = nn.Embedding(5 if cfg.candidates else 4, d)
        self.cand_rank = nn.Embedding(cfg.candidates, d) if cfg.candidates else None
        self.enc_pos = nn.Embedding(cfg.max_positions, d)
        moe_enc = cfg.moe_experts > 0 and cfg.moe_where in ("encoder", "both")
        moe_dec = cfg.moe_experts > 0 and cfg.moe_where in ("decoder", "both")
        self.encoder = nn.ModuleList(EncoderBlock(cfg, moe_enc) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderBlock(cfg, moe_dec) for _ in range(cfg.dec_layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dec_codes = nn.ModuleList(nn.Embedding(k, d) for k in cfg.codebook_sizes[:-1])
        self.dec_pos = nn.Embedding(self.instr.length + L, d)
        self.heads = nn.ModuleList(nn.Linear(d, k) for k in cfg.codebook_sizes)
        self.drop = nn.Dropout(cfg.dropout)
        self.copy = CopyHead(d) if cfg.copy_head else None

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """K_l for each SID level l (StepModel)."""
        return tuple(self.cfg.codebook_sizes)

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())

    def conditions(self, batch: ModelBatch) -> Conditions:
        """Scenario embedding, reasoning vector r and query q of each example."""
        scen = self.embed.scenario(batch.scenario)
        r = self.instr.reasoning(batch.instr_emb, batch.instr_mask, batch.scenario)
        return Conditions(scen, r, self.retriever.query(scen, r))

    def _long_tokens(self, batch: ModelBatch, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """IGR: the top-k long-history items by q · proj(item), as tokens Float[B, k', d], mask
        Bool[B, k'] and their item index + 1 Long[B, k']."""
        with torch.no_grad():
            scores = self.retriever.scores(q, self.embed.item(batch.long_codes, batch.long_items))
        index, valid = igr_select(scores, batch.long_mask, self.cfg.igr_k)
        parts = [gather_positions(getattr(batch, f"long_{n}"), index)
                 for n in ("codes", "items", "behaviour", "scenario")]
        return self.embed.history(*parts), valid, parts[1]

    def encode(self, batch: ModelBatch, cond: Conditions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (memory Float[B, T, d], mask Bool[B, T], MoE aux Float[])."""
        enc = self.encode_items(batch, cond)
        return enc.memory, enc.mask, enc.aux

    def encode_items(self, batch: ModelBatch, cond: Conditions) -> Encoded:
        """The encoder pass, keeping which item each memory token is (for the copy head)."""
        check_batch(batch, self.cfg)
        B, dev = len(batch), batch.scenario.device
        toks = [self.embed.profile_tokens(batch.profile), cond.r[:, None]]
        masks = [torch.ones(B, batch.profile.shape[1] + 1, dtype=torch.bool, device=dev)]
        items = [torch.zeros(B, batch.profile.shape[1] + 1, dtype=torch.long, device=dev)]
        segs = [SEG_PROFILE, SEG_REASONING]
        if self.cand_rank is not None:
            toks.append(self.embed.item(batch.cand_codes, batch.cand_items) + self.cand_rank.weight)
            masks, items, segs = masks + [batch.cand_mask], items + [batch.cand_items], segs + [SEG_CAND]
        if self.cfg.use_igr and batch.long_mask.shape[1] > 0:
            lt, lm, li = self._long_tokens(batch, cond.q)
            toks, masks, items, segs = toks + [lt], masks + [lm], items + [li], segs + [SEG_LONG]
        toks.append(self.embed.history(batch.short_codes, batch.short_items, batch.short_behaviour,
                                       batch.short_scenario))
        masks, items, segs = masks + [batch.short_mask], items + [batch.short_items], segs + [SEG_SHORT]
        seg_ids = torch.cat([torch.full((t.shape[1],), s, device=dev) for t, s in zip(toks, segs)])
        x, mask = torch.cat(toks, dim=1), torch.cat(masks, dim=1)
        if x.shape[1] > self.cfg.max_positions:
            raise ValueError(f"encoder sequence of {x.shape[1]} tokens > max_positions {self.cfg.max_positions}; "
                             "raise ModelConfig.max_positions or shorten the history windows")
        x = self.drop(x + self.segment(seg_ids) + self.enc_pos(torch.arange(x.shape[1], device=dev)))
        aux = x.new_zeros(())
        for block in self.encoder:
            x, a = block(x, mask)
            aux = aux + a
        return Encoded(self.enc_ln(x), mask, torch.cat(items, dim=1), aux)

    def prefix(self, batch: ModelBatch, cond: Conditions) -> torch.Tensor:
        """Decoder prefix tokens with positions, Float[B, P, d]."""
        trig = self.embed.item(batch.trigger_codes)
        x = self.instr.prefix(cond.scen, trig, batch.trigger_mask, cond.r)
        return x + self.dec_pos(torch.arange(x.shape[1], device=x.device))

    def code_tokens(self, codes: torch.Tensor, first_level: int) -> torch.Tensor:
        """Decoder input tokens for codes Long[N, j] of levels first_level.. (+ positions) -> Float[N, j, d]."""
        P = self.instr.length
        toks = [self.dec_codes[first_level + i](codes[:, i]) + self.dec_pos.weight[P + first_level + i]
                for i in range(codes.shape[1])]
        return torch.stack(toks, dim=1)

    def decode_full(self, batch: ModelBatch, codes: torch.Tensor) -> tuple[torch.Tensor, Encoded, Conditions]:
        """Full decoder pass over the prefix and `codes` Long[B, j] (levels 0..j-1 fed; j may be 0):
        (decoder states after the final norm Float[B, P + j, d], the encoder output, conditions)."""
        cond = self.conditions(batch)
        enc = self.encode_items(batch, cond)
        x = self.prefix(batch, cond)
        if codes.shape[1] > 0:
            x = torch.cat([x, self.code_tokens(codes, 0)], dim=1)
        x = self.drop(x)
        for block in self.decoder:
            x, _, a = block(x, block.memory_kv(enc.memory), enc.mask)
            enc.aux = enc.aux + a
        return self.dec_ln(x), enc, cond

    def teacher_forced(self, batch: ModelBatch, codes: torch.Tensor | None = None
                       ) -> tuple[list[torch.Tensor], torch.Tensor, Conditions]:
        """Full decoder pass fed `codes` Long[B, L] (default batch.target_codes): (logits[l] Float[B, K_l],
        MoE aux, conditions). This is also the slow reference of the cached step API."""
        logits, enc, cond, _ = self._teacher_forced(batch, codes)
        return logits, enc.aux, cond

    def _teacher_forced(self, batch: ModelBatch, codes: torch.Tensor | None
                        ) -> tuple[list[torch.Tensor], Encoded, Conditions, torch.Tensor]:
        """`teacher_forced` plus what the copy head needs: (logits, encoder output, conditions,
        decoder state that predicts level 0 Float[B, d])."""
        codes = batch.target_codes if codes is None else codes
        x, enc, cond = self.decode_full(batch, codes[:, :-1])
        P = self.instr.length
        return [head(x[:, P - 1 + l]) for l, head in enumerate(self.heads)], enc, cond, x[:, P - 1]

    def item_mixture(self, batch: ModelBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """MixtureModel.item_mixture: the copy head at inference, (gate Float[B], token item index + 1
        Long[B, T], probs Float[B, T]); None without a copy head."""
        if self.copy is None:
            return None
        x, enc, _ = self.decode_full(batch, batch.target_codes.new_zeros(len(batch), 0))
        gate, probs = self.copy(x[:, self.instr.length - 1], enc.memory, enc.items, enc.mask)
        return gate, enc.items, probs

    def level_log_probs(self, batch: ModelBatch, codes: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Teacher-forced log-softmax per level, list of Float[B, K_l] (codes default: targets)."""
        logits, _, _ = self.teacher_forced(batch, codes)
        return [F.log_softmax(lg, dim=-1) for lg in logits]

    def forward(self, batch: ModelBatch) -> LossOutput:
        """Training loss on a batch with targets."""
        logits, enc, cond, h0 = self._teacher_forced(batch, None)
        aux = enc.aux
        ntp, per_level = weighted_ntp(logits, batch.target_codes, batch.weight)
        metrics: dict[str, float] = {}
        if self.copy is not None:
            gate, probs = self.copy(h0, enc.memory, enc.items, enc.mask)
            mass = copy_prob(probs, enc.items, batch.target_items)
            ntp = mixture_nll(logits, batch.target_codes, batch.weight, gate, mass)
            metrics = {"copy_gate": gate.mean().item(), "copy_mass": mass.mean().item()}
        q2i, parts = ntp.new_zeros(()), {}
        if self.cfg.use_q2i is not False:  # None (auto, unresolved) counts as on, as in the paper
            target = self.retriever.items(self.embed.item(batch.target_codes))
            q2i, parts = q2i_loss(cond.q, target)
        loss = ntp + self.cfg.q2i_weight * q2i + self.cfg.moe_aux_weight * aux
        metrics.update({"loss": loss.item(), "ntp": ntp.item(), "q2i": q2i.item(), "aux": aux.item()})
        metrics.update({f"q2i_{k}": v.item() for k, v in parts.items()})
        for l, lg in enumerate(logits):
            metrics[f"ntp_l{l}"] = per_level[l].item()
            metrics[f"acc_l{l}"] = (lg.argmax(-1) == batch.target_codes[:, l]).float().mean().item()
        return LossOutput(loss, ntp, q2i, aux, metrics)

    def start(self, batch: ModelBatch) -> inference.DecoderState:
        """StepModel.start: encode once, cross K/V once per request, cache the decoder prefix."""
        return inference.start(self, batch)

    def step(self, state: inference.DecoderState, codes: torch.Tensor | None,
             level: int) -> tuple[torch.Tensor, inference.DecoderState]:
        """StepModel.step: log-probs Float[N, K_level] after feeding codes of level-1 (None at 0)."""
        return inference.step(self, state, codes, level)

    def restart(self, state: inference.DecoderState, rows: torch.Tensor) -> inference.DecoderState:
        """ResumableModel.restart: the fresh state of requests `rows` Long[B'] of the fresh `state`
        (their encoder output reused, not computed again)."""
        return inference.requests(state, rows)

    def select(self, state: inference.DecoderState, index: torch.Tensor) -> inference.DecoderState:
        """StepModel.select: keep/duplicate beams `index` Long[N'] (gathers only the small caches)."""
        return inference.select(state, index)

    def save(self, directory: Path | str) -> None:
        """Write model.safetensors + config.json into `directory`."""
        checkpoint.save(self, directory)

    @classmethod
    def load(cls, directory: Path | str) -> "OxygenModel":
        """Rebuild a model saved with `save`."""
        return checkpoint.load(cls, directory)
