"""The recommender core without Ray: every scenario answers from its pool, instructions are
labelled, bad requests are RequestErrors with a fix, and a stopped Redis degrades, never fails."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.model.bundle import Bundle
from oxygen.serving.core import RecommenderCore, RequestError
from oxygen.serving.schemas import EventsRequest, ItemEvent, RecommendRequest
from oxygen.serving.stores import DEFAULT_DOWN, DEFAULT_MISSING, Stores
from oxygen.store.embedded import EmbeddedRedis


def encode(texts):
    return np.full((len(texts), 384), 0.1, dtype=np.float32)


@pytest.fixture(scope="module")
def core(bundle_dir, redis_server):
    return RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url), encode)


def test_every_scenario_answers_from_its_pool(core):
    reqs = [RecommendRequest(scenario="search", user_id="alice", query="warm socks", k=7),
            RecommendRequest(scenario="homepage", user_id="alice"),
            RecommendRequest(scenario="channel", user_id="bob", trigger_item=30, k=5),
            RecommendRequest(scenario="cart", user_id="new", history=[1, 2], trigger_item=2, k=3),
            RecommendRequest(scenario="checkout", user_id="alice", trigger_item=61, beam=64, k=20)]
    out = core.recommend_batch(reqs)
    for req, resp in zip(reqs, out):
        ids = [it.item_id for it in resp.items]
        assert len(ids) == req.k == len(set(ids))
        assert set(ids) <= set(core.bundle.scenarios[req.scenario].pool)
        assert all(it.title == f"item {it.item_id}" for it in resp.items)
        assert resp.model_version == "test-v1" and resp.latency_ms > 0
    assert [r.reasoning_instruction for r in out] == ["query", "used", DEFAULT_MISSING, DEFAULT_MISSING, "used"]


def test_sampling_is_seeded(core):
    req = RecommendRequest(scenario="homepage", user_id="alice", k=5, sampling={"temperature": 2.0, "seed": 3})
    a, b = core.recommend_batch([req, req])
    assert [i.item_id for i in a.items] == [i.item_id for i in b.items]


@pytest.mark.parametrize("req, status, words", [
    (dict(scenario="mall", user_id="alice"), 404, "unknown scenario"),
    (dict(scenario="cart", user_id="alice", trigger_item=999), 404, "unknown trigger_item"),
    (dict(scenario="homepage", user_id="nobody"), 404, "unknown user_id"),
    (dict(scenario="homepage", user_id="x", history=[1, 9999]), 404, "unknown item ids"),
])
def test_bad_requests_say_what_to_fix(core, req, status, words):
    good = RecommendRequest(scenario="homepage", user_id="alice", k=2)
    out = core.recommend_batch([RecommendRequest(**req), good])
    assert isinstance(out[0], RequestError) and out[0].status == status and words in out[0].message
    assert len(out[1].items) == 2  # one bad request does not fail the batch


def test_redis_down_degrades(bundle_dir):
    server = EmbeddedRedis().start()
    core = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(server.url, timeout_s=0.2), encode)
    server.stop()
    out = core.recommend_batch([RecommendRequest(scenario="homepage", user_id="alice", k=4),
                                RecommendRequest(scenario="search", user_id="bob", query="x", k=4)])
    assert out[0].reasoning_instruction == DEFAULT_DOWN and len(out[0].items) == 4
    assert out[1].reasoning_instruction == "query"


def test_events_with_redis_down_are_a_503_to_retry(bundle_dir):
    server = EmbeddedRedis().start()
    core = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(server.url, timeout_s=0.2), encode)
    server.stop()
    out = core.ingest(EventsRequest(events=[ItemEvent(user_id="u", type="cart", item=1)]))
    assert isinstance(out, RequestError) and out.status == 503 and "retry" in out.message


def test_bundle_keeps_the_collate_settings(bundle_dir, tmp_path):
    """history_trigger (and the windows) survive save/load, so serving collates like training did."""
    import dataclasses

    from oxygen.model.bundle import Bundle

    b = Bundle.load(bundle_dir)
    b.collate_cfg = dataclasses.replace(b.collate_cfg, history_trigger=True)
    again = Bundle.load(b.save(tmp_path / "b2"))
    assert again.collate_cfg == b.collate_cfg and again.collate_cfg.history_trigger


def test_rerank_bundle_round_trip_and_serving_stays_in_pool(bundle_dir, redis_server, tmp_path):
    """A bundle's re-rank spec (saved as rerank.json) re-ranks with the transition channel, within pools."""
    from oxygen.data.schema import Row
    from oxygen.data.transitions import TransitionTable
    from oxygen.decoding.rerank import RerankSpec

    b = Bundle.load(bundle_dir)
    pool = b.scenarios["cart"].pool
    outside = next(i for i in b.codebook.item_ids.tolist() if i not in set(pool))
    b.space.transitions = TransitionTable.build([Row(user_id="x", history=[2], target=pool[-1]),
                                                 Row(user_id="y", history=[2], target=outside)])
    b.rerank = RerankSpec(weight=0.9)
    again = Bundle.load(b.save(tmp_path / "fused"))
    assert again.rerank == b.rerank and again.space.transitions.counts == b.space.transitions.counts
    core = RecommenderCore(again, Stores.connect(redis_server.url), encode)
    resp = core.recommend_batch([RecommendRequest(scenario="cart", user_id="new", history=[1, 2], trigger_item=2, k=5)])[0]
    ids = [it.item_id for it in resp.items]
    assert ids[0] == pool[-1] and outside not in ids and len(set(ids)) == 5 and set(ids) <= set(pool)
    assert resp.items[0].score >= resp.items[1].score
    b.space.transitions = None
    with pytest.raises(ValueError, match="transition counts"):
        Bundle(b.model, b.codebook, b.space, b.collate_cfg, b.scenarios, rerank=RerankSpec(weight=0.5))


def test_copy_head_bundle_serves_the_mixture_within_pools(bundle_dir, redis_server, tmp_path):
    """A model with a copy head (gate forced to ~1) answers with the request's own history items
    first, round-trips through save/load, and never leaves the scenario pool."""
    import torch

    from oxygen.model import OxygenModel

    b = Bundle.load(bundle_dir)
    torch.manual_seed(0)
    model = OxygenModel(b.model.cfg.model_copy(update={"copy_head": True})).eval()
    torch.nn.init.constant_(model.copy.gate.bias, 20.0)
    again = Bundle.load(Bundle(model, b.codebook, b.space, b.collate_cfg, b.scenarios, b.titles, "copy-v1")
                        .save(tmp_path / "copy"))
    assert again.model.cfg.copy_head
    core = RecommenderCore(again, Stores.connect(redis_server.url), encode)
    pool = set(again.scenarios["cart"].pool)
    outside = next(i for i in again.codebook.item_ids.tolist() if i not in pool)
    req = RecommendRequest(scenario="cart", user_id="new", history=[3, 7, outside], trigger_item=9, k=5)
    ids = [it.item_id for it in core.recommend_batch([req])[0].items]
    assert set(ids[:2]) == {3, 7} and outside not in ids and len(set(ids)) == 5 and set(ids) <= pool


def test_a_vanishing_temperature_serves_legal_items(core):
    """Regression (found by the HTTP property test): temperature 1e-179 used to give a 500."""
    req = RecommendRequest(scenario="search", user_id="alice", k=5, sampling={"temperature": 1.1e-179})
    cold = core.recommend_batch([req])[0]
    warm = core.recommend_batch([RecommendRequest(scenario="search", user_id="alice", k=5)])[0]
    assert [i.item_id for i in cold.items] == [i.item_id for i in warm.items]


def test_a_used_instruction_comes_back_with_its_reasons(core):
    homepage, = core.recommend_batch([RecommendRequest(scenario="homepage", user_id="alice", k=3)])
    assert homepage.reasoning_instruction == "used"
    assert homepage.instruction.text == "winter in Harbin" and homepage.instruction.source == "knowledge"
    assert homepage.instruction.reasons == ["electric blankets: cold-humid winter"]
    missing, = core.recommend_batch([RecommendRequest(scenario="homepage", user_id="bob", k=3)])
    assert missing.instruction is None and missing.reasoning_instruction == DEFAULT_MISSING


def test_search_queries_are_rewritten_online(bundle_dir, redis_server):
    from oxygen.instructions.backends.knowledge import KnowledgeBackend
    from oxygen.serving.core import query_rewriter

    seen = []
    core = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url),
                           lambda texts: seen.extend(texts) or encode(texts), query_rewriter(KnowledgeBackend()))
    noisy, clean = core.recommend_batch([RecommendRequest(scenario="search", user_id="bob", query="gaming mou", k=3),
                                         RecommendRequest(scenario="search", user_id="bob", query="wireless mouse", k=3)])
    assert (noisy.reasoning_instruction, noisy.query_used) == ("query (rewritten)", "gaming mouse")
    assert (clean.reasoning_instruction, clean.query_used) == ("query", "wireless mouse")
    assert sorted(seen) == ["gaming mouse", "wireless mouse"]  # the model reads the rewritten query


def test_a_failing_rewriter_keeps_the_raw_query(bundle_dir, redis_server):
    from oxygen.serving.core import query_rewriter

    class Down:
        name, version = "vllm", "x"

        def generate(self, prompts, max_new_tokens=256):
            raise TimeoutError("instruction service timed out")

    core = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url), encode, query_rewriter(Down()))
    out, = core.recommend_batch([RecommendRequest(scenario="search", user_id="bob", query="gaming mou", k=3)])
    assert (out.reasoning_instruction, out.query_used, len(out.items)) == ("query", "gaming mou", 3)


def test_a_scenario_that_reads_no_instruction_uses_the_default(bundle_dir, redis_server, tmp_path):
    from oxygen.serving.stores import DEFAULT_UNREAD

    bundle = Bundle.load(bundle_dir)
    bundle.scenarios["checkout"].reads_instruction = False
    bundle = Bundle.load(bundle.save(tmp_path / "b"))  # the flag survives save / load
    assert not bundle.scenarios["checkout"].reads_instruction and bundle.scenarios["homepage"].reads_instruction
    core = RecommenderCore(bundle, Stores.connect(redis_server.url), encode)
    home, checkout = core.recommend_batch([RecommendRequest(scenario="homepage", user_id="alice", k=3),
                                           RecommendRequest(scenario="checkout", user_id="alice", trigger_item=61, k=3)])
    assert home.reasoning_instruction == "used" and home.instruction is not None
    assert checkout.reasoning_instruction == DEFAULT_UNREAD and checkout.instruction is None


def test_a_trigger_scenario_without_its_trigger_is_refused_by_the_schema():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="requires trigger_item"):
        RecommendRequest(scenario="cart", user_id="alice")


def test_a_beam_below_k_is_raised_to_k(core):
    out = core.recommend_batch([RecommendRequest(scenario="homepage", user_id="alice", k=30, beam=10)])[0]
    assert len(out.items) == 30 == len({it.item_id for it in out.items})


def test_the_query_encoder_caches_the_last_distinct_queries(monkeypatch):
    """The LRU cache: a repeated query skips the encoder, answers equal the uncached vectors, the
    least recently used query goes first when full."""
    import oxygen.serving.core as core_mod

    calls: list[list[str]] = []

    def fake_encode(texts, cache_dir=None, progress=False, device="auto"):
        calls.append(list(texts))
        return np.stack([np.full(4, float(len(t)), dtype=np.float32) for t in texts])

    monkeypatch.setattr(core_mod, "encode_texts", fake_encode)
    encode = core_mod.text_query_encoder(cache_size=2)  # warm-up fills one slot
    out = encode(["ab", "abc", "ab"])
    assert calls[-1] == ["ab", "abc"] and out.shape == (3, 4) and out[:, 0].tolist() == [2.0, 3.0, 2.0]
    n = len(calls)
    encode(["abc", "ab"])
    assert len(calls) == n  # both cached
    encode(["x"])  # full at 2: the least recently used ("abc") goes
    encode(["ab"])
    assert len(calls) == n + 1
    encode(["abc"])
    assert calls[-1] == ["abc"]


def test_a_cached_query_does_not_wait_for_another_querys_forward_pass(monkeypatch):
    """One thread is inside the encoder for a new query (held there); another thread asking for a
    cached query gets its vector meanwhile, and the held pass's vector is cached once it ends."""
    import threading

    import oxygen.serving.core as core_mod

    entered, release = threading.Event(), threading.Event()

    def fake_encode(texts, cache_dir=None, progress=False, device="auto"):
        if "slow" in texts:
            entered.set()
            assert release.wait(10)
        return np.stack([np.full(4, float(len(t)), dtype=np.float32) for t in texts])

    monkeypatch.setattr(core_mod, "encode_texts", fake_encode)
    encode = core_mod.text_query_encoder()
    encode(["ab"])
    slow = threading.Thread(target=encode, args=(["slow"],))
    slow.start()
    assert entered.wait(10)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(encode(["ab"])))
    reader.start()
    reader.join(5)
    done_while_held = not reader.is_alive()
    release.set()
    slow.join(10)
    assert done_while_held and got[0][0, 0] == 2.0
    monkeypatch.setattr(core_mod, "encode_texts", lambda *a, **k: pytest.fail("cached queries need no pass"))
    assert encode(["slow", "ab"])[:, 0].tolist() == [4.0, 2.0]


def test_a_batch_puts_every_tensor_on_the_models_device(core):
    """Reads, collate, business rules and decoding of a mixed batch with torch's default device made
    `meta` (tests/test_device_paths.py): a tensor made on the default device instead of the model's
    would fail here as it fails next to a model on a GPU; the answers are the ones of a plain call."""
    import torch

    reqs = [RecommendRequest(scenario="search", user_id="alice", query="warm socks", k=7),
            RecommendRequest(scenario="homepage", user_id="alice", exclude_items=[3, 4, 5]),
            RecommendRequest(scenario="cart", user_id="new", history=[1, 2], trigger_item=2, k=3),
            RecommendRequest(scenario="channel", user_id="bob", trigger_item=30, k=5, sampling={"seed": 1})]
    expect = [[i.item_id for i in r.items] for r in core.recommend_batch(reqs)]
    with torch.device("meta"):
        got = [[i.item_id for i in r.items] for r in core.recommend_batch(reqs)]
    assert got == expect


def test_a_query_embedded_ahead_is_not_embedded_again_by_its_batch(monkeypatch, bundle_dir, redis_server):
    """embed_ahead rewrites and embeds queries into the encoder's cache, all in one pass: the batch
    then calls the text encoder for no query, and answers as a core that embedded it in the batch."""
    import oxygen.serving.core as core_mod

    calls: list[list[str]] = []

    def fake_encode(texts, cache_dir=None, progress=False, device="auto"):
        calls.append(list(texts))
        return np.stack([np.full(384, 0.01 * len(t), dtype=np.float32) for t in texts])

    monkeypatch.setattr(core_mod, "encode_texts", fake_encode)
    rewrite = lambda qs: [q.replace("sokcs", "socks") for q in qs]  # noqa: E731
    ahead = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url),
                            core_mod.text_query_encoder(), rewrite)
    plain = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url),
                            core_mod.text_query_encoder(), rewrite)
    req = RecommendRequest(scenario="search", user_id="alice", query="warm sokcs", k=5)
    ahead.embed_ahead([req.query, "", "wool hat", req.query])
    assert calls[-1] == ["warm socks", "wool hat"]
    n = len(calls)
    a = ahead.recommend_batch([req])[0]
    assert len(calls) == n  # the batch found the vector cached
    b = plain.recommend_batch([req])[0]
    assert calls[-1] == ["warm socks"] and a.query_used == b.query_used == "warm socks"
    assert [i.item_id for i in a.items] == [i.item_id for i in b.items]


def test_embedded_says_when_a_query_needs_no_thread_hop(monkeypatch, bundle_dir, redis_server):
    """`embedded` is True only once every query was rewritten and its vector cached; it runs neither
    the rewriter nor the encoder, and a repeated query is rewritten once."""
    import oxygen.serving.core as core_mod

    encoded: list[list[str]] = []
    rewritten: list[list[str]] = []

    def fake_encode(texts, cache_dir=None, progress=False, device="auto"):
        encoded.append(list(texts))
        return np.stack([np.full(384, 0.01 * len(t), dtype=np.float32) for t in texts])

    def rewrite(qs):
        rewritten.append(list(qs))
        return [q.replace("sokcs", "socks") for q in qs]

    monkeypatch.setattr(core_mod, "encode_texts", fake_encode)
    core = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url),
                           core_mod.text_query_encoder(), rewrite)
    n_enc = len(encoded)
    assert not core.embedded(["warm sokcs"]) and rewritten == [] and len(encoded) == n_enc
    core.embed_ahead(["warm sokcs"])
    assert core.embedded(["warm sokcs", ""]) and not core.embedded(["warm sokcs", "wool hat"])
    assert core.rewrite(["warm sokcs", "wool hat"]) == ["warm socks", "wool hat"]
    assert rewritten == [["warm sokcs"], ["wool hat"]]  # each raw query rewritten once
    assert not core.embedded(["wool hat"])  # rewritten, not embedded yet
    assert core.embedded([])  # nothing to embed
    plain = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url),
                            lambda qs: np.zeros((len(qs), 384), np.float32), None)
    assert not plain.embedded(["socks"])  # an encoder without a cache: always embed ahead


def test_a_guided_scenario_decodes_with_its_weight_and_says_so(core, bundle_dir, redis_server, tmp_path):
    """A bundle whose guidance.json weighs homepage: a homepage request with a stored instruction
    is answered differently (and says its weight), one without an instruction (c = u) and the
    other scenarios exactly as before; /v1/scenarios lists the weights."""
    b = Bundle.load(bundle_dir)
    b.guidance = {"homepage": 3.0}
    guided = RecommenderCore(Bundle.load(b.save(tmp_path / "guided")), Stores.connect(redis_server.url), encode)
    reqs = [RecommendRequest(scenario="homepage", user_id="alice", k=10),
            RecommendRequest(scenario="homepage", user_id="bob", k=10),
            RecommendRequest(scenario="search", user_id="alice", query="winter blanket", k=10)]
    before, after = core.recommend_batch(reqs), guided.recommend_batch(reqs)
    ids = [[it.item_id for it in r.items] for r in (*before, *after)]
    assert after[0].reasoning_instruction == "used" and after[0].instruction_weight == 3.0
    assert ids[3] != ids[0]  # alice's instruction, leaned on harder
    assert ids[4] == ids[1] and ids[5] == ids[2]  # bob has none; search is not guided
    assert after[2].instruction_weight == 0.0 and before[0].instruction_weight == 0.0
    weights = {s.id: s.instruction_weight for s in guided.scenario_info()}
    assert weights["homepage"] == 3.0 and weights["search"] == 0.0


def test_gated_guidance_acts_only_where_the_instruction_states_an_open_need(core, bundle_dir, redis_server, tmp_path):
    """A bundle whose homepage weight is gated: alice's homepage list is guided (and says its
    weight) only while her stored record states an open need; with none stated (0) or not judged
    (None) it is the plain list with weight 0; /v1/scenarios says the weight is gated."""
    from dataclasses import replace

    from oxygen.store.instructions import InstructionStore

    b = Bundle.load(bundle_dir)
    b.guidance, b.guidance_gated = {"homepage": 3.0}, frozenset({"homepage"})
    gated = RecommenderCore(Bundle.load(b.save(tmp_path / "gated")), Stores.connect(redis_server.url), encode)
    store = InstructionStore.connect(redis_server.url)
    original = store.get_many(["alice"])[0]
    req = [RecommendRequest(scenario="homepage", user_id="alice", k=10)]
    plain = [it.item_id for it in core.recommend_batch(req)[0].items]
    try:
        for needs, guided in ((2, True), (0, False), (None, False)):
            store.put(replace(original, open_needs=needs))
            out = gated.recommend_batch(req)[0]
            assert ([it.item_id for it in out.items] != plain) == guided, needs
            assert out.instruction_weight == (3.0 if guided else 0.0) and out.reasoning_instruction == "used"
        sampled = gated.recommend_batch([RecommendRequest(scenario="homepage", user_id="alice", k=10,
                                                          sampling={"seed": 1})])[0]
        assert sampled.instruction_weight == 0.0  # beam sampling draws from the model as it is
    finally:
        store.put(original)
    info = {s.id: s for s in gated.scenario_info()}
    assert info["homepage"].instruction_gated and info["homepage"].instruction_weight == 3.0
    assert not info["search"].instruction_gated


def test_need_slots_give_the_open_needs_of_the_stored_instruction_their_items(core, bundle_dir, redis_server, tmp_path):
    """A bundle with two homepage need slots: alice's list gives two slots to the first two open
    need categories of her stored record, each item saying its need, also where the scenario does
    not read the instruction's vector; with no open categories it is the plain list."""
    from dataclasses import replace

    from oxygen.store.instructions import InstructionStore

    b = Bundle.load(bundle_dir)
    b.categories, b.need_slots = {i: f"c{i % 6}" for i in b.codebook.item_ids.tolist()}, {"homepage": 2}
    b.scenarios["homepage"].reads_instruction = False
    slotted = RecommenderCore(Bundle.load(b.save(tmp_path / "slots")), Stores.connect(redis_server.url), encode)
    store = InstructionStore.connect(redis_server.url)
    original = store.get_many(["alice"])[0]
    req = [RecommendRequest(scenario="homepage", user_id="alice", k=10)]
    try:
        store.put(replace(original, open_categories=["c1", "c4", "c5"]))
        out = slotted.recommend_batch(req)[0]
        needs = {it.item_id: it.need for it in out.items if it.need is not None}
        assert sorted(needs.values()) == ["c1", "c4"] and len(out.items) == 10
        assert all(slotted.bundle.categories[i] == c for i, c in needs.items())
        store.put(replace(original, open_categories=None))
        plain = slotted.recommend_batch(req)[0]
        assert all(it.need is None for it in plain.items)
        assert [it.item_id for it in plain.items] != [it.item_id for it in out.items]
    finally:
        store.put(original)
    info = {s.id: s for s in slotted.scenario_info()}
    assert info["homepage"].need_slots == 2 and info["search"].need_slots == 0
