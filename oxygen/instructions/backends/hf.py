"""The `hf` backend: any local Hugging Face causal-LM folder through transformers (fp32, CPU), with
left-padded batched greedy generation. Also the folder checks and chat-template tokenization the
`vllm` backend shares, so both feed the model the very same token ids.

    backend = HFBackend("runs/instructor", max_new_tokens=256, batch_size=16)
    texts = backend.generate(["...prompt..."])          # completion text only, greedy
    backend.version                                      # oxygen.json's hash, else a folder hash
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from oxygen.instructions.backends.base import BackendError

WEIGHTS = ("*.safetensors", "*.bin")


def check_folder(model_dir: Path | str) -> Path:
    """`model_dir` as a Path once it looks like a HF causal-LM folder (config.json, weights,
    tokenizer files); else a `BackendError` naming the path and what to fix."""
    path = Path(model_dir)
    if not path.is_dir():
        raise BackendError(f"model folder {path} does not exist; pass a folder written by "
                           "`python -m apps.train_instructor --out DIR` or a local Hugging Face model folder")
    missing = [n for n in ("config.json",) if not (path / n).exists()]
    if not any(any(path.glob(w)) for w in WEIGHTS):
        missing.append("model weights (*.safetensors)")
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        missing.append("tokenizer files (tokenizer.json, tokenizer_config.json)")
    if missing:
        raise BackendError(f"model folder {path} lacks {', '.join(missing)}; save the model and its tokenizer "
                           "there with save_pretrained (or retrain with apps.train_instructor)")
    return path


def folder_version(path: Path) -> str:
    """The model version: `version` of the folder's oxygen.json (our trained LM), else a hash of its
    config, tokenizer config and the names and sizes of its weight files."""
    meta = path / "oxygen.json"
    if meta.exists():
        try:
            return str(json.loads(meta.read_text())["version"])
        except (ValueError, KeyError):
            pass
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer_config.json"):
        if (path / name).exists():
            h.update((path / name).read_bytes())
    for w in sorted(p for pattern in WEIGHTS for p in path.glob(pattern)):
        h.update(f"{w.name}:{w.stat().st_size}".encode())
    return h.hexdigest()[:16]


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The folder's tokenizer, left-padding, with a pad token (eos when it has none) and a chat template."""
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise BackendError(f"model folder {path}: the tokenizer does not load ({e}); save it there with "
                           "tokenizer.save_pretrained") from None
    if not tok.chat_template:
        raise BackendError(f"model folder {path}: the tokenizer has no chat template; add `chat_template` to "
                           "tokenizer_config.json (or a chat_template.jinja file)")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str], limit: int) -> tuple[list[list[int]], int]:
    """(ids, cut): each prompt as one chat user turn plus the generation prompt, token ids; one longer
    than `limit` tokens keeps its last `limit` (oldest text cut first), counted in `cut`."""
    out, cut = [], 0
    for p in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        if len(ids) > limit:
            ids, cut = ids[-limit:], cut + 1
        out.append(ids)
    return out, cut


def context_length(config: object, default: int = 2048) -> int:
    """The model's context (max_position_embeddings) from its HF config."""
    return int(getattr(config, "max_position_embeddings", None) or default)


class HFBackend:
    """Greedy generation with transformers on CPU (fp32) from a local causal-LM folder."""

    name = "hf"

    def __init__(self, model_dir: Path | str, max_new_tokens: int = 256, batch_size: int = 16,
                 threads: int | None = None):
        self.path = check_folder(model_dir)
        self.version = folder_version(self.path)
        self.default_max_new_tokens, self.batch_size = max_new_tokens, batch_size
        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = load_tokenizer(self.path)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise BackendError(f"model folder {self.path}: the model does not load with transformers ({e}); "
                               "check config.json and the weights match") from None
        self.model.eval()
        self.context = context_length(self.model.config)
        self.cut_prompts = 0  # prompts cut to fit the context, since loading

    def generate(self, prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        """One completion per prompt (special tokens removed), greedy, in batches of `batch_size`."""
        new = max_new_tokens or self.default_max_new_tokens
        if new >= self.context:
            raise BackendError(f"max_new_tokens {new} >= the context of {self.path} ({self.context} tokens)")
        ids, cut = prompt_ids(self.tokenizer, prompts, self.context - new)
        self.cut_prompts += cut
        out: list[str] = []
        for start in range(0, len(ids), self.batch_size):
            out += self._batch(ids[start: start + self.batch_size], new)
        return out

    @torch.no_grad()
    def _batch(self, ids: list[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy generation for one left-padded batch of token-id prompts."""
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        width = enc["input_ids"].shape[1]
        return [self.tokenizer.decode(row[width:], skip_special_tokens=True) for row in gen]
