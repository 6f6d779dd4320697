"""Training the small instruction LM (oxygen.instructions.lm) with THE training loop.

The (prompt, completion) pairs are tokenised once (`encode_pair`: chat template, oldest prompt
tokens cut to the context); `PairData` serves shuffled batches of them right-padded, the loss is
the per-token cross-entropy on completion tokens only, and `oxygen.training.loop.fit` runs the
epochs with AdamW + warm-up/cosine, gradient clipping, and the epoch selected on the valid loss
(lowest), so the LM trains exactly like every other model of the project.

    meta = train_lm(train_pairs, valid_pairs, Path("runs/demo/instructor"), LMConfig(epochs=3))
    meta["version"], meta["best_epoch"], meta["valid_loss"]
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from oxygen.config import LMConfig
from oxygen.instructions.lm import (
    build_model,
    completion_loss,
    encode_pair,
    folder_hash,
    pad_batch,
    save_curve,
    save_folder,
    train_tokenizer,
    valid_loss,
)
from oxygen.training.loop import LoopConfig, Trainable, adamw_cosine, fit

Example = tuple[list[int], int]  # (token ids, prompt length)


@dataclass
class PairData:
    """Tokenised pairs as the loop's data: len() examples, `select(index)` -> a padded batch
    (ids Long[B, T], attention Long[B, T], completion-target mask Bool[B, T])."""

    examples: list[Example]
    pad: int

    def __len__(self) -> int:
        return len(self.examples)

    def select(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return pad_batch(self.examples, index.tolist(), self.pad)


@dataclass
class LMLoss:
    """The loop's loss object: mean per-token completion loss, and the completion tokens seen."""

    loss: torch.Tensor
    metrics: dict[str, float]


def lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> LMLoss:
    """Per-token cross-entropy on the batch's completion tokens."""
    total, n = completion_loss(model, *batch)
    return LMLoss(total / max(n, 1), {"tokens": float(n)})


def fit_lm(model: torch.nn.Module, train: list[Example], valid: list[Example], cfg: LMConfig, pad: int) -> list[dict]:
    """THE loop on the LM: `cfg.epochs` epochs, the weights of the lowest valid loss kept;
    returns the history (per epoch: train_loss, valid_loss, seconds, tokens_per_s)."""
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    opt, sched = adamw_cosine(model, cfg.lr, cfg.weight_decay, min(cfg.warmup_steps, steps // 4), steps)
    loop = LoopConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, patience=cfg.epochs, seed=cfg.seed,
                      grad_clip=cfg.grad_clip, select="valid_loss", maximize=False, device=cfg.device,
                      precision=cfg.precision)
    result = fit(Trainable(model, PairData(train, pad), opt, sched, lm_loss), loop,
                 lambda m: {"loss": valid_loss(m, valid, cfg.batch_size * 2, pad)})
    tokens = sum(len(ids) for ids, _ in train)
    history, last = [], 0.0
    for row in result.history:
        secs, last = row["seconds"] - last, row["seconds"]
        history.append({**row, "tokens": tokens, "epoch_seconds": secs, "tokens_per_s": tokens / max(secs, 1e-9)})
    return history


def train_lm(pairs: list[tuple[str, str]], valid_pairs: list[tuple[str, str]], out_dir: Path,
             cfg: LMConfig | None = None) -> dict:
    """Train the tokenizer and LM on `pairs`, select the epoch on `valid_pairs` (lowest completion
    loss), save the HF folder to `out_dir`; returns the metadata written to oxygen.json."""
    cfg = cfg or LMConfig()
    if not pairs or not valid_pairs:
        raise ValueError(f"train_lm needs training and validation pairs (got {len(pairs)} and {len(valid_pairs)})")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    start, out = time.time(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer([p + "\n" + c for p, c in pairs], cfg.vocab_size)
    enc_train = [encode_pair(tokenizer, p, c, cfg.ctx) for p, c in pairs]
    enc_valid = [encode_pair(tokenizer, p, c, cfg.ctx) for p, c in valid_pairs]
    model = build_model(cfg, tokenizer)
    history = fit_lm(model, [e[:2] for e in enc_train], [e[:2] for e in enc_valid], cfg, tokenizer.pad_token_id)
    save_folder(model, tokenizer, out, cfg)
    save_curve(history, out / "loss_curve.png")
    best_row = min(history, key=lambda h: h["valid_loss"])
    meta = {"kind": "oxygen instruction LM", "architecture": "Qwen2ForCausalLM", "config": cfg.model_dump(),
            "params": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer),
            "train_pairs": len(pairs), "valid_pairs": len(valid_pairs),
            "cut_pairs": sum(e[2] for e in enc_train + enc_valid),
            "mean_tokens_per_pair": sum(len(e[0]) for e in enc_train) / len(enc_train),
            "best_epoch": best_row["epoch"], "valid_loss": best_row["valid_loss"], "history": history,
            "train_seconds": time.time() - start, "version": folder_hash(out)}
    (out / "oxygen.json").write_text(json.dumps(meta, indent=1))
    return meta
