"""`make demo`, step 7: near-line slow thinking over HTTP. A user's event is posted to the service,
their instruction is regenerated when the 5-second window closes, and the next homepage answer
reads it.

    python -m apps.nearline --data runs/demo/world --set window_s=5     # the workers alone
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from apps.serve import load_users

WINDOW_S = 5.0


def homepage(url: str, user: str) -> dict:
    """One homepage answer for `user` (top 5)."""
    from oxygen.serving.client import OxygenClient
    return OxygenClient(url).recommend("homepage", user, k=5)


def print_answer(title: str, body: dict) -> None:
    """The instruction the answer read and its items."""
    print(f"  {title}: reasoning instruction {body['reasoning_instruction']}")
    if body.get("instruction"):
        print(f"    instruction: {body['instruction']['text']}")
        for reason in body["instruction"]["reasons"][:3]:
            print(f"      because {reason}")
    for i, it in enumerate(body["items"], 1):
        print(f"    {i}. {it['title'] or it['item_id']}")


def show_nearline(bundle: Path, world: Path, port: int = 8012) -> float:
    """Post one purchase, wait for the regeneration, show the homepage before and after; the
    seconds from the post to the stored instruction."""
    from oxygen.config import NearlineConfig
    from oxygen.data.io import load_dataset
    from oxygen.serving.client import OxygenClient
    from oxygen.serving.local import start_local, start_nearline_local, stop_local
    from oxygen.serving.nearline import stop_nearline
    from oxygen.store.embedded import EmbeddedRedis
    from oxygen.store.instructions import InstructionStore

    os.environ.setdefault("OXYGEN_API_KEY", secrets.token_hex(12))
    test = load_dataset(world, splits=("test",)).splits["test"]
    row = next(r for r in test if r.scenario == "homepage" and r.behaviour == "purchase")
    with EmbeddedRedis(aof=True) as server:
        load_users(server.url, world, splits=("train", "valid"))  # what the service knew before the test period
        url = start_local(bundle, server.url, port)
        sup = start_nearline_local(world, server.url, NearlineConfig(window_s=WINDOW_S, max_workers=1))
        try:
            print_answer(f"user {row.user_id}, homepage before any near-line event", homepage(url, row.user_id))
            event = {"user_id": row.user_id, "type": "purchase", "item": row.target, "scenario": "homepage",
                     "ts": row.timestamp}
            accepted = OxygenClient(url, os.environ["OXYGEN_API_KEY"]).send_events([event])
            print(f"  POST /v1/events {event} -> accepted {accepted}")
            t0, store = time.time(), InstructionStore.connect(server.url)
            print(f"  the near-line worker waits for the {WINDOW_S:g} s window to close, then regenerates ...")
            while store.get_many([row.user_id])[0] is None:
                if time.time() - t0 > 120:
                    raise SystemExit("near-line demo: no instruction was written within 120 s")
                time.sleep(0.2)
            took = time.time() - t0
            print(f"  instruction written {took:.1f} s after the event")
            print_answer("homepage after it", homepage(url, row.user_id))
        finally:
            stop_nearline(sup)
            stop_local()
    return took
