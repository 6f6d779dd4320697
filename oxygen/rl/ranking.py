"""The unified list-wise ranking model: one Transformer scores the candidates of every scenario.

A sample (oxygen.rl.rank_data.RankBatch) is one user's requests packed in time order. Tokens, in
this order: P profile tokens, H event tokens (item + leaf + price + behaviour + scenario + recency),
R request tokens (scenario + trigger item + query words + month: the scenario instruction), R x C
candidate tokens (item + leaf + price + train popularity + their request's scenario, trigger leaf,
query words and, in the scenarios `candidate_month` names, (scenario, month) + the cross features of candidate and
request: relation to the trigger, how often the user met its leaf before). A candidate carries its
own request's trigger, query and month itself because, list-wise, it also sees earlier request
tokens and could not otherwise tell which of them is its own. The attention mask
(`attention_mask`) is causal over requests: a candidate sees the profile, the events strictly
before its request, the request tokens up to its own (list-wise) and the other candidates of its
own request (list-wise) or only itself (point-wise); it never sees a later request. With
`request_bias` the list-wise model adds a learned logit per layer and head to a request token by how
many requests back it is from the attending token's own (`request_bias_factors`). Three heads on
each candidate (a shared head plus, with `scenario_tower`, a small MLP of its request's scenario)
give the funnel: p_click = s(a), p_cart = p_click s(b), p_purchase = p_cart s(c), trained with BCE
on each marginal.

    model = Ranker(RankerConfig(), space.sizes)
    probs = model.probabilities(batch)          # Float[B, R, C, 3]: click, cart, purchase
    loss = model(batch).loss                    # BCE over the valid candidates, summed over heads
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from oxygen.config import RankerConfig
from oxygen.data.schema import SCENARIOS
from oxygen.rl.rank_data import POP_BUCKETS, PRICE_BUCKETS, QUERY_BUCKETS, SEEN_CAP, TRIGGER_RELATIONS, RankBatch

PROFILE, EVENT, REQUEST, CANDIDATE = 0, 1, 2, 3
HEADS = ("click", "cart", "purchase")
FORMAT = 2  # the checkpoint format: raise it when the tokens or parameters change (2: candidates carry the query)
DISTANCE_BUCKETS = 4  # request_bias: own request, 1, 2, 3+ requests back


@dataclass
class RankLoss:
    """The loss and its per-head parts (floats) for the training loop."""

    loss: torch.Tensor
    metrics: dict[str, float]


def month_scopes(scope: bool | list[str]) -> torch.Tensor:
    """Bool[8] by scenario id (rank_data's: 1 + the index in SCENARIOS; 0 is none): whose candidates
    carry the (scenario, month) token under `RankerConfig.candidate_month` (True: every scenario)."""
    names = SCENARIOS if scope is True else (scope or [])
    return torch.tensor([False] + [s in names for s in SCENARIOS] + [False] * (7 - len(SCENARIOS)))


def _layout(batch: RankBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(kind, group), each Long[T]: every token's kind and the request it belongs to (-1: profile, events)."""
    P, H, (R, C) = batch.profile.shape[1], batch.ev_item.shape[1], batch.cand_item.shape[1:]
    on = {"device": batch.profile.device}
    kind = torch.cat([torch.full((P,), PROFILE, **on), torch.full((H,), EVENT, **on), torch.full((R,), REQUEST, **on),
                      torch.full((R * C,), CANDIDATE, **on)])
    group = torch.cat([torch.full((P + H,), -1, **on), torch.arange(R, **on), torch.arange(R, **on).repeat_interleave(C)])
    return kind, group


def request_bias_factors(batch: RankBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The request-distance bias as a product of per-token factors, so it can ride on q.k.

    Returns (bucket Long[T, R], key Float[T, R]): for a request or candidate token i and a request
    index r, how many requests back r is from i's request, capped at DISTANCE_BUCKETS - 1 (0: its
    own; a later request, which `attention_mask` hides, also 0), -1 for profile and event tokens;
    and key[j, r] = 1 where token j is request r's token. The bias of pair (i, j) is then
    sum_r table[bucket[i, r]] * key[j, r]: a request key's distance bucket, 0 for any other key."""
    kind, group = _layout(batch)
    R = batch.rq_mask.shape[1]
    r = torch.arange(R, device=kind.device)
    back = (group[:, None] - r[None, :]).clamp(0, DISTANCE_BUCKETS - 1)
    bucket = torch.where((kind >= REQUEST)[:, None], back, torch.full_like(back, -1))
    key = ((kind == REQUEST)[:, None] & (group[:, None] == r[None, :])).float()
    return bucket, key


def attention_mask(batch: RankBatch, listwise: bool) -> torch.Tensor:
    """Bool[B, T, T]: token i may attend token j (see the module docstring); T = P + H + R + R*C."""
    (B, P), (R, C) = batch.profile.shape, batch.cand_item.shape[1:]
    dev = batch.profile.device
    kind, group = _layout(batch)
    ts = torch.cat([torch.full((B, P), torch.iinfo(torch.int64).min, device=dev), batch.ev_ts, batch.rq_ts,
                    batch.rq_ts[:, :, None].expand(B, R, C).reshape(B, R * C)], dim=1)
    valid = torch.cat([torch.ones(B, P, dtype=torch.bool, device=dev), batch.ev_mask, batch.rq_mask,
                       batch.cand_mask.reshape(B, R * C)], dim=1)
    ki, kj = kind[:, None], kind[None, :]
    gi, gj = group[:, None], group[None, :]
    earlier = ts[:, None, :] < ts[:, :, None]  # [B, i, j]: j happened strictly before i
    sees_requests = (gj <= gi) if listwise else (gj == gi)
    same = torch.eye(len(kind), dtype=torch.bool, device=dev)
    allow = ((kj == PROFILE)
             | ((kj == EVENT) & (ki != PROFILE) & earlier)
             | ((kj == REQUEST) & (ki >= REQUEST) & sees_requests)
             | ((kj == CANDIDATE) & (ki == CANDIDATE) & (gi == gj) & (listwise | same)))
    return (allow & valid[:, None, :]) | same


class Block(nn.Module):
    """Pre-LN Transformer block with a full boolean attention mask, over Float[B, T, d]."""

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                extra: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x Float[B, T, d], mask Bool[B, T, T] -> Float[B, T, d]. `extra` = (Float[heads, T, E],
        Float[T, E]) extends every head's queries and keys by E dimensions whose product, at the
        heads' own scale, is added to the attention logits (the request bias). The mask stays
        boolean: a float B x heads x T x T mask instead cost 1.5x the train step (bench.ranker_step)."""
        B, T, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, dh).permute(2, 0, 3, 1, 4)
        if extra is not None:
            q_ext, k_ext = extra
            E = k_ext.shape[-1]
            q = torch.cat([q, q_ext[None].expand(B, -1, -1, -1)], dim=-1)
            k = torch.cat([k, k_ext[None, None].expand(B, self.heads, -1, -1)], dim=-1)
            v = torch.cat([v, v.new_zeros(B, self.heads, T, E)], dim=-1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=dh ** -0.5,
                                           dropout_p=self.attn_dropout if self.training else 0.0)[..., :dh]
        x = x + self.out(a.transpose(1, 2).reshape(B, T, d))
        return x + self.ffn(self.ln2(x))


class Ranker(nn.Module):
    """The ranking model (list-wise or point-wise by `cfg.listwise`) over the id sizes of a RankSpace."""

    def __init__(self, cfg: RankerConfig, sizes: dict[str, int]) -> None:
        super().__init__()
        d, self.cfg = cfg.d_model, cfg
        if d % cfg.heads:
            raise ValueError(f"RankerConfig: d_model {d} is not divisible by heads {cfg.heads}; pick heads that divide it")
        self.item, self.leaf = nn.Embedding(sizes["items"], d, padding_idx=0), nn.Embedding(sizes["leaves"], d)
        self.price, self.profile = nn.Embedding(PRICE_BUCKETS, d), nn.Embedding(sizes["profile"], d)
        self.slot, self.kind = nn.Embedding(16, d), nn.Embedding(4, d)
        self.behaviour, self.scenario = nn.Embedding(8, d), nn.Embedding(8, d)
        self.recency, self.query = nn.Embedding(cfg.max_events + 1, d), nn.Embedding(QUERY_BUCKETS, d, padding_idx=0)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.d_ff, cfg.dropout, cfg.attn_dropout) for _ in range(cfg.layers))
        self.month, self.relation = nn.Embedding(13, d), nn.Embedding(len(TRIGGER_RELATIONS), d)
        self.seen, self.trigger_leaf = nn.Embedding(SEEN_CAP + 1, d), nn.Embedding(sizes["leaves"], d)
        self.popularity = nn.Embedding(POP_BUCKETS, d)
        self.cand_query = nn.Embedding(QUERY_BUCKETS, d, padding_idx=0)
        if cfg.candidate_month:
            self.cand_month = nn.Embedding(8 * 13, d)  # by (scenario, month), in the scenarios of month_on
            self.register_buffer("month_on", month_scopes(cfg.candidate_month), persistent=False)
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, 3)
        if cfg.scenario_tower:  # by scenario id (8 slots like `scenario`); the output layer starts at zero
            w = cfg.scenario_tower
            self.tower_in = nn.Parameter(torch.randn(8, d, w) / d ** 0.5)
            self.tower_bias = nn.Parameter(torch.zeros(8, w))
            self.tower_out = nn.Parameter(torch.zeros(8, w, 3))
        if cfg.listwise and cfg.request_bias:  # zero at the start: the plain list-wise model
            self.request_bias = nn.Parameter(torch.zeros(cfg.layers, cfg.heads, DISTANCE_BUCKETS))

    def _item(self, item: torch.Tensor, leaf: torch.Tensor, price: torch.Tensor) -> torch.Tensor:
        return self.item(item) + self.leaf(leaf) + self.price(price)

    def tokens(self, b: RankBatch) -> torch.Tensor:
        """Float[B, T, d]: the token sequence (events and triggers look their leaf and price up in the
        buffers `set_item_features` registered)."""
        leaf_of, price_of = self.item_leaf, self.item_price
        B, P = b.profile.shape
        H, (R, C) = b.ev_item.shape[1], b.cand_item.shape[1:]
        prof = self.profile(b.profile) + self.slot(torch.arange(P, device=b.profile.device))
        n_ev = b.ev_mask.sum(1, keepdim=True)  # events are left-aligned: recency counts back from each sample's last
        rec = (n_ev - 1 - torch.arange(H, device=b.profile.device)).clamp(0, self.cfg.max_events)
        ev = (self._item(b.ev_item, leaf_of[b.ev_item], price_of[b.ev_item]) + self.behaviour(b.ev_beh)
              + self.scenario(b.ev_scen) + self.recency(rec))
        trig = self._item(b.rq_trig, leaf_of[b.rq_trig], price_of[b.rq_trig]) * (b.rq_trig > 0)[..., None]
        rq = self.scenario(b.rq_scen) + trig + self.query(b.rq_query).sum(2) + self.month(b.rq_month)
        context = (self.scenario(b.rq_scen) + self.trigger_leaf(leaf_of[b.rq_trig]) * (b.rq_trig > 0)[..., None]
                   + self.cand_query(b.rq_query).sum(2))
        if self.cfg.candidate_month:
            context = context + self.cand_month(b.rq_month + 13 * b.rq_scen) * self.month_on[b.rq_scen, None]
        cand = (self._item(b.cand_item, b.cand_leaf, b.cand_price) + context[:, :, None]
                + self.relation(b.cand_rel) + self.seen(b.cand_seen) + self.popularity(b.cand_pop))
        parts = [prof + self.kind.weight[PROFILE], ev + self.kind.weight[EVENT], rq + self.kind.weight[REQUEST],
                 cand.reshape(B, R * C, -1) + self.kind.weight[CANDIDATE]]
        return torch.cat(parts, dim=1)

    def logits(self, b: RankBatch) -> torch.Tensor:
        """Float[B, R, C, 3]: the funnel logits (click, cart given click, purchase given cart)."""
        x = self.tokens(b)
        mask, extras = attention_mask(b, self.cfg.listwise), self.bias_extras(b)
        for block, extra in zip(self.blocks, extras):
            x = block(x, mask, extra)
        B, (R, C) = len(b), b.cand_item.shape[1:]
        h = self.ln(x[:, -R * C:]).view(B, R, C, -1)
        return self.head(h) + self.tower(h, b.rq_scen) if self.cfg.scenario_tower else self.head(h)

    def tower(self, h: torch.Tensor, scen: torch.Tensor) -> torch.Tensor:
        """h Float[B, R, C, d], scen Long[B, R] -> Float[B, R, C, 3]: each request's scenario tower on
        its candidates (a model built with `scenario_tower` > 0)."""
        hidden = F.gelu(torch.einsum("brcd,brdw->brcw", h, self.tower_in[scen]) + self.tower_bias[scen][:, :, None])
        return torch.einsum("brcw,brwk->brck", hidden, self.tower_out[scen])

    def bias_extras(self, b: RankBatch) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per block: the request bias as extra query / key dimensions (Block.forward), None without it.
        Queries get table[bucket] x sqrt(head dim), Float[heads, T, R], which the heads' 1/sqrt(head
        dim) scale cancels; keys get the one-hot of their request, Float[T, R]."""
        if not hasattr(self, "request_bias"):
            return [None] * len(self.blocks)
        bucket, key = request_bias_factors(b)
        table = F.pad(self.request_bias, (0, 1))  # bucket -1 (not a request or candidate token): the zero column
        scale = (self.cfg.d_model // self.cfg.heads) ** 0.5
        return [(q_ext, key) for q_ext in (table[:, :, bucket] * scale).unbind(0)]

    def set_item_features(self, leaf: torch.Tensor, price: torch.Tensor) -> None:
        """Register Long[items] leaf ids and price buckets (saved with the weights)."""
        self.register_buffer("item_leaf", leaf.long(), persistent=True)
        self.register_buffer("item_price", price.long(), persistent=True)

    @staticmethod
    def funnel_log_probs(logits: torch.Tensor) -> torch.Tensor:
        """Float[..., 3] logits -> log marginals (log p_click, log p_cart, log p_purchase)."""
        return F.logsigmoid(logits).cumsum(-1)

    def probabilities(self, b: RankBatch) -> torch.Tensor:
        """Float[B, R, C, 3]: p_click >= p_cart >= p_purchase per candidate."""
        return self.funnel_log_probs(self.logits(b)).exp()

    def forward(self, b: RankBatch) -> RankLoss:
        """BCE of each funnel marginal over the valid candidates, summed over the three heads."""
        logp = self.funnel_log_probs(self.logits(b))
        log1m = torch.log1p(-logp.exp().clamp(max=1 - 1e-6))
        nll = -(b.labels * logp + (1 - b.labels) * log1m)
        m = b.cand_mask[..., None].float()
        per_head = (nll * m).sum((0, 1, 2)) / m.sum().clamp(min=1)
        return RankLoss(per_head.sum(), {f"bce_{h}": float(v) for h, v in zip(HEADS, per_head.detach())})
