"""The HTTP service under real Ray Serve: endpoints, OpenAPI, 4xx messages for bad input, and a
property-based check (hypothesis) that no request body, however odd, gets a 5xx."""

from __future__ import annotations

import socket

import httpx
import pytest
import ray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ray import serve

from oxygen.serving.local import start_local as start


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(bundle_dir, redis_server):
    base = start(bundle_dir, redis_server.url, _port(), max_batch_size=8)
    yield base
    serve.shutdown()
    ray.shutdown()


def test_endpoints(url):
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "model_version": "test-v1"}
    scen = {s["id"]: s for s in httpx.get(f"{url}/v1/scenarios").json()}
    assert scen["cart"] == {"id": "cart", "pool_size": 60, "requires_trigger": True}
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "/v1/recommend" in spec["paths"] and "RecommendRequest" in str(spec)
    r = httpx.post(f"{url}/v1/recommend", json={"scenario": "cart", "user_id": "alice", "trigger_item": 3, "k": 4},
                   timeout=60)
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) == 4 and body["reasoning_instruction"] == "used"
    assert all(0 <= it["item_id"] < 60 and len(it["semantic_id"]) == 3 for it in body["items"])


@pytest.mark.parametrize("body, status, words", [
    ('{"scenario": "homepage", "user_id": ', 422, "JSON"),
    ({"scenario": "homepage", "user_id": "alice", "k": 0}, 422, "k"),
    ({"scenario": "homepage", "user_id": "alice", "beam": 9999}, 422, "beam"),
    ({"scenario": "homepage", "user_id": "alice", "history": list(range(300))}, 422, "history"),
    ({"scenario": "homepage", "user_id": "alice", "colour": "red"}, 422, "colour"),
    ({"scenario": "mall", "user_id": "alice"}, 404, "unknown scenario"),
    ({"scenario": "cart", "user_id": "alice"}, 422, "requires trigger_item"),
    ({"scenario": "cart", "user_id": "alice", "trigger_item": 5000}, 404, "unknown trigger_item"),
    ({"scenario": "homepage", "user_id": "nobody"}, 404, "unknown user_id"),
])
def test_bad_input_is_4xx_with_a_message(url, body, status, words):
    kw = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, str) else {"json": body}
    r = httpx.post(f"{url}/v1/recommend", timeout=60, **kw)
    assert r.status_code == status and words in r.text


bodies = st.fixed_dictionaries(
    {"scenario": st.sampled_from(["search", "homepage", "channel", "cart", "checkout", "x", ""]),
     "user_id": st.sampled_from(["alice", "bob", "nobody", ""])},
    optional={"trigger_item": st.one_of(st.none(), st.integers(-5, 200)),
              "query": st.one_of(st.none(), st.text(max_size=300)),
              "history": st.one_of(st.none(), st.lists(st.integers(-2, 130), max_size=210)),
              "k": st.integers(-1, 120), "beam": st.one_of(st.none(), st.integers(-1, 600)),
              "sampling": st.one_of(st.none(), st.fixed_dictionaries(
                  {"temperature": st.floats(-1, 12, allow_nan=False)},
                  optional={"top_p": st.floats(-0.5, 1.5, allow_nan=False), "top_k": st.integers(-1, 5000),
                            "seed": st.integers(0, 10)}))})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_request_gets_a_5xx(url, body):
    r = httpx.post(f"{url}/v1/recommend", json=body, timeout=60)
    assert r.status_code < 500, (body, r.text)
