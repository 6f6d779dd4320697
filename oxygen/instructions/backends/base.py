"""The one interface every instruction backend implements: a batch of prompts in, one text each out.

Prompts are plain user-message strings written by `oxygen.instructions` templates; a chat LM backend
wraps each in its tokenizer's chat template (one user turn, generation prompt added), the knowledge
teacher reads the prompt text itself. Parsing of the texts is the caller's job (identical for every
backend). A backend that cannot produce an answer raises `BackendError`; callers count the failure
and keep the user's previous record.

    backend = KnowledgeBackend(coverage=0.8)
    texts = backend.generate(["...prompt..."], max_new_tokens=256)   # list[str], same length
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class BackendError(RuntimeError):
    """A backend failed (could not load, timed out, crashed); the message says where and how to fix."""


@runtime_checkable
class Backend(Protocol):
    """Generates one completion per prompt. `name` (knowledge, hf, vllm) and `version` (model
    version: a folder hash, a coverage setting) go into every stored record."""

    name: str
    version: str

    def generate(self, prompts: list[str], max_new_tokens: int = 256) -> list[str]:
        """One text per prompt, in order (greedy for LM backends unless configured otherwise)."""
        ...
