"""Instruction backends: prompts in, texts out (`base.Backend`); `knowledge` (the teacher),
`hf` (transformers) and `vllm` (the only module that imports vllm).

    backend = make_backend("vllm", model_dir="runs/demo/instructor")
"""

from __future__ import annotations

from pathlib import Path

from oxygen.instructions.backends.base import Backend, BackendError

BACKENDS: tuple[str, ...] = ("knowledge", "hf", "vllm")


def make_backend(name: str, model_dir: Path | str | None = None, coverage: float = 0.8, seed: int = 0) -> Backend:
    """The backend `name`: the knowledge teacher (`coverage`, `seed`) or an LM folder (`model_dir`)
    through transformers or vLLM. BackendError names what is wrong and how to fix it."""
    if name == "knowledge":
        from oxygen.instructions.backends.knowledge import KnowledgeBackend
        return KnowledgeBackend(coverage=coverage, seed=seed)
    if name not in BACKENDS:
        raise BackendError(f"unknown instruction backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if model_dir is None:
        raise BackendError(f"backend {name!r} needs --model DIR: a causal-LM folder, e.g. from "
                           "`python -m apps.train_instructor --data DATA --out DIR`")
    if name == "hf":
        from oxygen.instructions.backends.hf import HFBackend
        return HFBackend(model_dir)
    from oxygen.instructions.backends.vllm import VLLMBackend
    return VLLMBackend(model_dir)
