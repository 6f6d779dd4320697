"""The unified ranking model: the causal request mask (checked against a slow rule-by-rule
reference and by perturbing later requests), list-wise vs point-wise dependence, the funnel,
packing, save/load, and a fit that learns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oxygen.config import RankerConfig
from oxygen.data.io import load_impressions
from oxygen.data.schema import SCENARIOS, Row
from oxygen.rl.rank_data import RankSpace, requests_from_impressions, requests_from_rows, timelines
from oxygen.rl.rank_fit import build_model, evaluate, fit_ranker, load_ranker, pack, predict, save_ranker
from oxygen.rl.ranking import CANDIDATE, DISTANCE_BUCKETS, EVENT, PROFILE, REQUEST, attention_mask, month_scopes, request_bias_factors
from tests.worlds import tiny_world

CFG = RankerConfig(d_model=32, heads=4, d_ff=64, layers=2, dropout=0.0, epochs=3, batch_size=16)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rank")
    ds = tiny_world(root / "w", root / "s", users=80, seed=5, items=300, days=30)
    rows = [r for s in ds.splits.values() for r in s]
    space = RankSpace.fit(ds.items, ds.splits["train"])
    imps = load_impressions(root / "w")
    return root / "w", ds, rows, space, requests_from_impressions(imps)


def _multi(space, reqs, rows, n=3):
    """A packed batch whose first sample has at least `n` requests."""
    data = pack(space, reqs, rows, CFG)
    keep = torch.nonzero(data.batch.rq_mask.sum(1) >= n).flatten()[:4]
    return data.batch.select(keep)


def slow_mask(b, listwise: bool) -> np.ndarray:
    """The mask rule written out token by token."""
    B, P = b.profile.shape
    H, (R, C) = b.ev_item.shape[1], b.cand_item.shape[1:]
    toks = ([(PROFILE, None, -1, True)] * P
            + [(EVENT, h, -1, None) for h in range(H)] + [(REQUEST, r, r, None) for r in range(R)]
            + [(CANDIDATE, (r, c), r, None) for r in range(R) for c in range(C)])
    out = np.zeros((B, len(toks), len(toks)), bool)
    for s in range(B):
        def info(t):
            kind, where, group, _ = t
            if kind == PROFILE:
                return kind, -np.inf, group, True
            if kind == EVENT:
                return kind, int(b.ev_ts[s, where]), group, bool(b.ev_mask[s, where])
            if kind == REQUEST:
                return kind, int(b.rq_ts[s, where]), group, bool(b.rq_mask[s, where])
            return kind, int(b.rq_ts[s, where[0]]), group, bool(b.cand_mask[s, where[0], where[1]])
        meta = [info(t) for t in toks]
        for i, (ki, ti, gi, _) in enumerate(meta):
            for j, (kj, tj, gj, vj) in enumerate(meta):
                ok = (kj == PROFILE or (kj == EVENT and ki != PROFILE and tj < ti)
                      or (kj == REQUEST and ki in (REQUEST, CANDIDATE) and (gj <= gi if listwise else gj == gi))
                      or (kj == CANDIDATE and ki == CANDIDATE and gi == gj and (listwise or i == j)))
                out[s, i, j] = (ok and vj) or i == j
    return out


@pytest.mark.parametrize("listwise", [True, False])
def test_mask_matches_the_slow_reference(world, listwise):
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows)
    assert np.array_equal(attention_mask(b, listwise).numpy(), slow_mask(b, listwise))


def _with_random_request_bias(model):
    """The model with its request-distance bias drawn at random (it starts at zero)."""
    if hasattr(model, "request_bias"):
        with torch.no_grad():
            model.request_bias.copy_(torch.randn(model.request_bias.shape, generator=torch.Generator().manual_seed(3)))
    return model


@pytest.mark.parametrize("request_bias", [False, True])
def test_a_candidate_never_sees_a_later_request_or_event(world, request_bias):
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=3)
    model = _with_random_request_bias(build_model(CFG.model_copy(update={"request_bias": request_bias}), space).eval())
    before = model.probabilities(b)
    cut = b.rq_ts[:, 1:2]  # change everything from the second request on
    later = b.rq_mask & (b.rq_ts >= cut)
    changed = dataclasses.replace(
        b, rq_scen=torch.where(later, 3, b.rq_scen), rq_trig=torch.where(later, 7, b.rq_trig),
        cand_item=torch.where(later[..., None], (b.cand_item + 5) % 300 + 1, b.cand_item),
        rq_query=torch.where(later[..., None], 17, b.rq_query), ev_item=torch.where(b.ev_ts >= cut, 9, b.ev_item))
    after = model.probabilities(changed)
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-6)   # the first request: untouched
    assert not torch.allclose(before[:, 1:], after[:, 1:], atol=1e-4)


def test_listwise_candidates_see_their_list_pointwise_do_not(world):
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=1)
    other = b.cand_item.clone()
    other[:, 0, 1:] = (other[:, 0, 1:] + 11) % 300 + 1  # change every candidate but the first
    for listwise, moves in ((True, True), (False, False)):
        model = build_model(CFG.model_copy(update={"listwise": listwise}), space).eval()
        p0 = model.probabilities(b)[:, 0, 0]
        p1 = model.probabilities(dataclasses.replace(b, cand_item=other))[:, 0, 0]
        assert (not torch.allclose(p0, p1, atol=1e-5)) == moves


def test_funnel_is_nested_and_fit_learns_and_roundtrips(world, tmp_path: Path):
    _, _, rows, space, reqs = world
    cfg = CFG.model_copy(update={"epochs": 12, "patience": 12, "max_requests": 2, "lr": 3e-3})
    train = pack(space, reqs[: int(0.8 * len(reqs))], rows, cfg)
    valid = pack(space, reqs[int(0.8 * len(reqs)):], rows, cfg)
    model, result = fit_ranker(cfg.model_copy(update={"patience": 12}), space, train, valid)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    p = predict(model, valid.batch)
    assert (p[..., 0] >= p[..., 1] - 1e-7).all() and (p[..., 1] >= p[..., 2] - 1e-7).all()
    rep = evaluate(model, train)["all"]
    assert rep["auc_click"] > 0.6 and rep["candidates"] == int(train.batch.cand_mask.sum())
    loaded, space2 = load_ranker(save_ranker(model, space, tmp_path / "r.pt"))
    assert np.allclose(predict(loaded, valid.batch), p, atol=1e-6)
    assert space2.to_dict() == space.to_dict()


def test_packs_hold_events_strictly_before_their_last_request(world):
    _, _, rows, space, reqs = world
    samples = space.samples(reqs, timelines(rows), max_requests=4, max_events=10)
    assert sum(len(s.requests) for s in samples) == len(reqs)
    for s in samples:
        assert len({r.user_id for r in s.requests}) == 1 and len(s.requests) <= 4 and len(s.events) <= 10
        assert [r.ts for r in s.requests] == sorted(r.ts for r in s.requests)
        assert all(e[0] < s.requests[-1].ts for e in s.events)


def test_rows_with_sampled_negatives(world):
    _, ds, _, _, _ = world
    test = ds.splits["test"][:50]
    reqs = requests_from_rows(test, ds.item_ids, negatives=5, seed=0)
    for r, row in zip(reqs, test):
        assert r.items[0] == row.target and len(set(r.items)) == 6
        assert r.labels[0, 0] == 1 and r.labels[1:].sum() == 0
        assert r.labels[0].sum() == {"click": 1, "cart": 2, "purchase": 3}[row.behaviour]


def test_popularity_weighted_negatives_follow_the_train_targets():
    """negative_weights: (train target count + 1) ** power, normalised (None at power 0); drawn
    with them, a popular item is a negative about as often as its weight says."""
    from types import SimpleNamespace

    from oxygen.rl.rank_data import negative_weights

    items = [10, 11, 12, 13]
    train = [SimpleNamespace(target=t) for t in [10] * 15 + [11] * 3 + [99]]
    assert negative_weights(train, items, 0.0) is None
    w = negative_weights(train, items, 1.0)
    np.testing.assert_allclose(w, np.array([16, 4, 1, 1]) / 22)
    power = np.array([16, 4, 1, 1]) ** 0.75
    np.testing.assert_allclose(negative_weights(train, items, 0.75), power / power.sum())
    rows = [Row(user_id="u", history=[1], target=13, behaviour="click", timestamp=k) for k in range(4000)]
    reqs = requests_from_rows(rows, items, negatives=1, seed=0, weights=w)
    drawn = np.bincount([r.items[1] - 10 for r in reqs], minlength=3)[:3] / len(reqs)
    np.testing.assert_allclose(drawn, np.array([16, 4, 1]) / 21, atol=0.03)  # the target (13) is never its own negative


def test_missing_checkpoint_names_the_command(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="apps.train_ranker"):
        load_ranker(tmp_path / "nope.pt")


def test_a_checkpoint_of_another_format_is_refused(world, tmp_path: Path):
    _, _, _, space, _ = world
    path = save_ranker(build_model(CFG, space), space, tmp_path / "r.pt")
    blob = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in blob.items() if k != "format"}, path)  # what format 1 wrote
    with pytest.raises(ValueError, match="format 1.*apps.train_ranker"):
        load_ranker(path)


def test_candidates_carry_their_own_request_query(world):
    """List-wise, a candidate also sees earlier request tokens; its own query rides on its token."""
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=2)
    model = build_model(CFG, space).eval()
    R, C = b.cand_item.shape[1:]
    query = b.rq_query.clone()
    query[:, 1] = torch.arange(1, query.shape[2] + 1)  # a new query for the second request only
    before, after = (model.tokens(dataclasses.replace(b, rq_query=q))[:, -R * C:].view(len(b), R, C, -1)
                     for q in (b.rq_query, query))
    valid = b.cand_mask[:, 1]
    assert not torch.allclose(before[:, 1][valid], after[:, 1][valid])
    assert torch.equal(before[:, 0], after[:, 0]) and torch.equal(before[:, 2:], after[:, 2:])


def test_candidates_carry_their_own_request_scenario_and_month(world):
    """A candidate's token changes with its own request's month (looked up by scenario and month),
    not with another request's; without the setting the month only reaches the request token."""
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=2)
    R, C = b.cand_item.shape[1:]
    month = b.rq_month.clone()
    month[:, 1] = month[:, 1] % 12 + 1  # another month for the second request only
    for on in (True, False):
        model = build_model(CFG.model_copy(update={"candidate_month": on}), space).eval()
        before, after = (model.tokens(dataclasses.replace(b, rq_month=m))[:, -R * C:].view(len(b), R, C, -1)
                         for m in (b.rq_month, month))
        valid = b.cand_mask[:, 1]
        assert torch.allclose(before[:, 1][valid], after[:, 1][valid]) != on
        assert torch.equal(before[:, 0], after[:, 0]) and torch.equal(before[:, 2:], after[:, 2:])
    model = build_model(CFG, space).eval()
    scen = b.rq_scen.clone()
    scen[:, 1] = scen[:, 1] % 5 + 1  # the same month in another scenario: another embedding row
    rows_used = b.rq_month + 13 * b.rq_scen, b.rq_month + 13 * scen
    assert not torch.equal(*(model.cand_month(r)[:, 1] for r in rows_used))


def test_candidate_month_reaches_only_the_scenarios_it_names(world):
    """With candidate_month a list of scenarios, a candidate's token follows its request's month in
    those scenarios only; a request of another scenario gives the same token in every month."""
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=2)
    R, C = b.cand_item.shape[1:]
    month = b.rq_month % 12 + 1  # another month for every request
    for scope in (["homepage"], ["search", "cart", "checkout"]):
        model = build_model(CFG.model_copy(update={"candidate_month": scope}), space).eval()
        before, after = (model.tokens(dataclasses.replace(b, rq_month=m))[:, -R * C:].view(len(b), R, C, -1)
                         for m in (b.rq_month, month))
        for s, r in zip(*torch.nonzero(b.rq_mask, as_tuple=True)):
            valid = b.cand_mask[s, r]
            named = SCENARIOS[int(b.rq_scen[s, r]) - 1] in scope
            assert torch.allclose(before[s, r][valid], after[s, r][valid]) != named


def test_month_scopes_by_scenario_id():
    """month_scopes marks scenario ids 1..5 in SCENARIOS order; True is all of them, False none."""
    assert month_scopes(True).tolist() == [False] + [True] * 5 + [False] * 2
    assert month_scopes(False).tolist() == [False] * 8
    assert month_scopes(["cart"]).tolist()[1 + SCENARIOS.index("cart")] and month_scopes(["cart"]).sum() == 1


def test_cross_features_match_a_slow_reference(world):
    """cand_seen counts only the user's events strictly before the candidate's own request (not the
    later events a pack also holds); cand_rel is the relation to that request's trigger."""
    _, ds, rows, space, reqs = world
    b = _multi(space, reqs, rows)
    for s in range(len(b)):
        for r in range(int(b.rq_mask[s].sum())):
            trig = int(b.rq_trig[s, r])
            for c in range(int(b.cand_mask[s, r].sum())):
                item = int(b.cand_item[s, r, c])
                leaf = space.leaf[item]
                seen = sum(1 for h in range(b.ev_item.shape[1]) if b.ev_mask[s, h]
                           and int(b.ev_ts[s, h]) < int(b.rq_ts[s, r]) and space.leaf[int(b.ev_item[s, h])] == leaf)
                assert int(b.cand_seen[s, r, c]) == min(seen, 4)
                if trig == 0:
                    rel = 0
                elif item == trig:
                    rel = 1
                elif leaf == space.leaf[trig]:
                    rel = 2
                else:
                    rel = 3 if space.parent[item] == space.parent[trig] and space.parent[item] > 0 else 4
                assert int(b.cand_rel[s, r, c]) == rel
    assert (b.rq_month[b.rq_mask] >= 1).all() and (b.rq_month[b.rq_mask] <= 12).all()


def test_attention_dropout_is_its_own_setting(world):
    """`attn_dropout` alone randomises the training forward pass; eval mode and 0 are deterministic."""
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=1)
    for attn, random_in_train in ((0.0, False), (0.5, True)):
        model = build_model(CFG.model_copy(update={"attn_dropout": attn}), space)
        assert all(block.attn_dropout == attn for block in model.blocks)
        model.train()
        assert (not torch.equal(model.logits(b), model.logits(b))) == random_in_train
        model.eval()
        assert torch.equal(model.logits(b), model.logits(b))


def slow_distance(b) -> list[list[int]]:
    """Per token pair (i, j): how many requests back request token j is from i's request (capped,
    0 for a later one), -1 unless i is a request or candidate token and j a request token."""
    P, H, (R, C) = b.profile.shape[1], b.ev_item.shape[1], b.cand_item.shape[1:]
    toks = [(PROFILE, -1)] * P + [(EVENT, -1)] * H + [(REQUEST, r) for r in range(R)] \
        + [(CANDIDATE, r) for r in range(R) for _ in range(C)]
    return [[min(max(gi - gj, 0), DISTANCE_BUCKETS - 1) if ki in (REQUEST, CANDIDATE) and kj == REQUEST else -1
             for kj, gj in toks] for ki, gi in toks]


def slow_logits(model, b) -> torch.Tensor:
    """The ranker's logits with attention written out: softmax(q.k / sqrt(dh) + bias, masked) v,
    the bias looked up pair by pair from `slow_distance` (the reference for the fused path)."""
    x, mask = model.tokens(b), attention_mask(b, model.cfg.listwise)
    dist = torch.tensor(slow_distance(b))
    for layer, block in enumerate(model.blocks):
        B, T, d = x.shape
        dh = d // block.heads
        q, k, v = block.qkv(block.ln1(x)).view(B, T, 3, block.heads, dh).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / dh ** 0.5
        if hasattr(model, "request_bias"):
            table = model.request_bias[layer]
            scores = scores + torch.where(dist >= 0, table[:, dist.clamp(min=0)], 0.0)[None]
        a = scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1) @ v
        x = x + block.out(a.transpose(1, 2).reshape(B, T, d))
        x = x + block.ffn(block.ln2(x))
    R, C = b.cand_item.shape[1:]
    return model.head(model.ln(x[:, -R * C:])).view(len(b), R, C, 3)


def test_request_bias_factors_rebuild_the_slow_distance(world):
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=3)
    bucket, key = request_bias_factors(b)
    table = torch.randn(DISTANCE_BUCKETS, generator=torch.Generator().manual_seed(1))
    padded = torch.cat([table, torch.zeros(1)])
    dist = torch.tensor(slow_distance(b))
    assert torch.allclose(padded[bucket] @ key.T, torch.where(dist >= 0, table[dist.clamp(min=0)], 0.0))


@pytest.mark.parametrize("request_bias", [False, True])
def test_logits_match_the_slow_attention_reference(world, request_bias):
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=3)
    model = _with_random_request_bias(build_model(CFG.model_copy(update={"request_bias": request_bias}), space).eval())
    with torch.no_grad():
        assert torch.allclose(model.logits(b), slow_logits(model, b), atol=1e-5)


def test_request_bias_starts_as_the_plain_model_and_roundtrips(world, tmp_path: Path):
    """At zero the bias is the plain list-wise model; drawn, it moves the scores and survives
    save/load; a point-wise model has no such parameter."""
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=3)
    plain = build_model(CFG.model_copy(update={"request_bias": False}), space).eval()
    biased = build_model(CFG.model_copy(update={"request_bias": True}), space).eval()
    missing = biased.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["request_bias"]
    assert torch.allclose(plain.logits(b), biased.logits(b), atol=1e-6)
    _with_random_request_bias(biased)
    p = predict(biased, b)
    assert not np.allclose(p, predict(plain, b), atol=1e-4)
    loaded, _ = load_ranker(save_ranker(biased, space, tmp_path / "biased.pt"))
    assert loaded.cfg.request_bias and np.allclose(predict(loaded, b), p, atol=1e-6)
    pointwise = build_model(CFG.model_copy(update={"request_bias": True, "listwise": False}), space)
    assert not hasattr(pointwise, "request_bias")


def test_a_checkpoint_from_before_the_bias_month_and_tower_loads_without_them(world, tmp_path: Path):
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=3)
    plain = build_model(CFG.model_copy(update={"request_bias": False, "candidate_month": False, "scenario_tower": 0}),
                        space).eval()
    path = save_ranker(plain, space, tmp_path / "old.pt")
    blob = torch.load(path, weights_only=True)
    for key in ("request_bias", "candidate_month", "scenario_tower"):  # a format-2 checkpoint of before the settings
        del blob["config"][key]
    torch.save(blob, path)
    loaded, _ = load_ranker(path)
    assert not hasattr(loaded, "request_bias") and not hasattr(loaded, "cand_month") and not hasattr(loaded, "tower_in")
    assert np.allclose(predict(loaded, b), predict(plain, b), atol=1e-6)


def slow_tower(model, h: torch.Tensor, scen: torch.Tensor) -> torch.Tensor:
    """The scenario tower one request at a time: its scenario's MLP on each of its candidates."""
    out = torch.zeros(*h.shape[:-1], 3)
    for s in range(h.shape[0]):
        for r in range(h.shape[1]):
            k = int(scen[s, r])
            hidden = F.gelu(h[s, r] @ model.tower_in[k] + model.tower_bias[k])
            out[s, r] = hidden @ model.tower_out[k]
    return out


def test_scenario_tower_starts_as_the_plain_model_and_acts_by_scenario(world, tmp_path: Path):
    """At its zero start the tower is the plain model; drawn, it matches the slow per-request loop,
    a request's scores move only with its own scenario's tower, and it survives save/load."""
    _, _, rows, space, reqs = world
    b = _multi(space, reqs, rows, n=3)
    plain = build_model(CFG.model_copy(update={"scenario_tower": 0}), space).eval()
    towered = build_model(CFG.model_copy(update={"scenario_tower": 8}), space).eval()
    missing = towered.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["tower_bias", "tower_in", "tower_out"]
    assert torch.allclose(plain.logits(b), towered.logits(b), atol=1e-6)
    with torch.no_grad():
        towered.tower_out.copy_(torch.randn(towered.tower_out.shape, generator=torch.Generator().manual_seed(4)))
        h = torch.randn(len(b), *b.cand_item.shape[1:], CFG.d_model)
        assert torch.allclose(towered.tower(h, b.rq_scen), slow_tower(towered, h, b.rq_scen), atol=1e-5)
        k = int(b.rq_scen[0, 0])
        before = towered.logits(b)
        towered.tower_out[k] += 1.0  # only requests of scenario k move
        moved = (towered.logits(b) - before).abs().amax(-1) > 1e-6
        same_scen = (b.rq_scen == k)[:, :, None].expand_as(moved)
        assert moved[b.cand_mask].any() and not moved[b.cand_mask & ~same_scen].any()
    p = predict(towered, b)
    loaded, _ = load_ranker(save_ranker(towered, space, tmp_path / "towered.pt"))
    assert loaded.cfg.scenario_tower == 8 and np.allclose(predict(loaded, b), p, atol=1e-6)
    assert not hasattr(plain, "tower_in")
