"""A small Python client of the service: post user events (and ask for recommendations).

    client = OxygenClient("http://127.0.0.1:8000", api_key=os.environ.get("OXYGEN_API_KEY"))
    client.send_events([{"user_id": "u1", "type": "cart", "item": 12, "scenario": "homepage"}])
    client.recommend("homepage", "u1", k=10)

`send_events` retries a batch the service could not store (HTTP 5xx, e.g. Redis restarting, or
no connection) with a short pause, up to `retries` times, so an outage delays events but does not
drop them; a 4xx is the caller's mistake and raises `ClientError` with the service's message.
"""

from __future__ import annotations

import time

import httpx


class ClientError(RuntimeError):
    """The service refused a request (4xx) or stayed unavailable; the message says why."""


class OxygenClient:
    """POST /v1/events and /v1/recommend over HTTP."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 30.0, retries: int = 50,
                 pause_s: float = 0.2) -> None:
        self.url, self.timeout_s, self.retries, self.pause_s = url.rstrip("/"), timeout_s, retries, pause_s
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.retried = 0  # batches sent again after a 5xx or a connection error

    def send_events(self, events: list[dict]) -> int:
        """Append `events` (dicts of EventIn fields); -> how many the service accepted."""
        for _ in range(self.retries + 1):
            try:
                r = httpx.post(f"{self.url}/v1/events", json={"events": events}, headers=self.headers,
                               timeout=self.timeout_s)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 200:
                return int(r.json()["accepted"])
            if r is not None and r.status_code < 500:
                raise ClientError(f"events refused: HTTP {r.status_code} {r.text}")
            self.retried += 1
            time.sleep(self.pause_s)
        raise ClientError(f"the service at {self.url} stayed unavailable for {self.retries} retries; events not sent")

    def recommend(self, scenario: str, user_id: str, **fields) -> dict:
        """One recommendation (RecommendRequest fields); the response JSON (ClientError on a 4xx/5xx)."""
        r = httpx.post(f"{self.url}/v1/recommend", json={"scenario": scenario, "user_id": user_id, **fields},
                       timeout=self.timeout_s)
        if r.status_code != 200:
            raise ClientError(f"recommend refused: HTTP {r.status_code} {r.text}")
        return r.json()
