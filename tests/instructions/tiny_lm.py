"""A tiny instruction LM trained in seconds on a toy (prompt -> needs) task, shared by the LM and
backend tests: the completion is a deterministic function of the season, city and hobby in the
prompt, so a model that learned something writes the right season phrase."""

from __future__ import annotations

import random
from pathlib import Path

from oxygen.config import LMConfig
from oxygen.training.instructor import train_lm

CITIES = ["Harbin", "Sanya", "Beijing", "Chengdu", "Shanghai", "Lhasa"]
SEASONS = {"winter": "a warm coat", "summer": "sun cream", "spring": "an umbrella", "autumn": "a light jacket"}
HOBBIES = ["hiking", "gaming", "cooking", "reading"]
CONFIG = LMConfig(vocab_size=400, hidden=64, layers=2, heads=2, intermediate=128, ctx=128, epochs=10,
                  lr=5e-3, batch_size=16, warmup_steps=10, seed=0)


def prompt(season: str, city: str, hobby: str) -> str:
    """The toy prompt for one user."""
    return f"Date: {season}. City: {city}. Hobby: {hobby}. Write the user's needs."


def completion(season: str, city: str, hobby: str) -> str:
    """What the toy teacher answers."""
    return f"needs: {SEASONS[season]} for {season} in {city}; {hobby} gear. reason: {season} weather and {hobby}."


def toy_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` random (prompt, completion) pairs."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        args = rng.choice(list(SEASONS)), rng.choice(CITIES), rng.choice(HOBBIES)
        out.append((prompt(*args), completion(*args)))
    return out


def tiny_lm(tmp_path_factory) -> Path:
    """The tiny LM's HF folder, trained once per test session (400 pairs, ~10-30 s on 2 cores)."""
    folder = tmp_path_factory.getbasetemp() / "tiny_instruction_lm"
    if not (folder / "oxygen.json").exists():
        train_lm(toy_pairs(400, 0), toy_pairs(40, 1), folder, CONFIG)
    return folder
