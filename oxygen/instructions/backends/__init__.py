"""Instruction backends: prompts in, texts out (`base.Backend`); `knowledge` (the teacher),
`hf` (transformers) and `vllm` (the only module that imports vllm)."""
