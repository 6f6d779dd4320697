"""The small instruction LM trained here: a byte-level BPE tokenizer with a chat template, and a
Qwen2-architecture causal LM trained from scratch (fp32, CPU) on (prompt, completion) pairs with the
loss on completion tokens only. The saved folder is a plain Hugging Face model folder that the `hf`
(transformers) and `vllm` backends both load.

    tok = train_tokenizer([p + c for p, c in pairs], vocab_size=8192)
    info = train_lm(train_pairs, valid_pairs, Path("runs/instructor"), LMConfig(epochs=3))
    info["version"], info["best_epoch"], info["valid_loss"]

The folder holds config.json, model.safetensors, tokenizer.json + tokenizer_config.json (with the
chat template), generation_config.json (greedy), loss_curve.png and oxygen.json (training metadata
and `version`, a hash of the weights, config and tokenizer).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from oxygen.config import LMConfig  # noqa: E402

__all__ = ["LMConfig", "CHAT_TEMPLATE", "train_tokenizer", "encode_pair", "train_lm", "folder_hash"]

PAD, START, END = "<|pad|>", "<|im_start|>", "<|im_end|>"
# ChatML, as Qwen writes it: one turn per message, the assistant's answer ends with <|im_end|>
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
HASHED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts` (every string round-trips exactly), with the
    special tokens <|pad|>, <|im_start|>, <|im_end|> (= eos) and the ChatML chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, START, END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=END,
                                   additional_special_tokens=[START], padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def chat_prompt_ids(tokenizer: PreTrainedTokenizerFast, prompt: str) -> list[int]:
    """Token ids of `prompt` as one user turn followed by the assistant's generation prompt."""
    out = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


def encode_pair(tokenizer: PreTrainedTokenizerFast, prompt: str, completion: str, ctx: int) -> tuple[list[int], int, bool]:
    """(ids, n_prompt, cut) of one training pair: the chat-templated prompt, then the completion and
    eos. A pair longer than `ctx` loses the oldest prompt tokens (`cut` True); the completion is kept
    whole unless it alone exceeds half the context."""
    p = chat_prompt_ids(tokenizer, prompt)
    c = tokenizer(completion, add_special_tokens=False)["input_ids"][: ctx // 2] + [tokenizer.eos_token_id]
    cut = len(p) + len(c) > ctx
    if cut:
        p = p[len(p) + len(c) - ctx:]
    return p + c, len(p), cut


def build_model(cfg: LMConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    """A freshly initialised Qwen2 causal LM of `cfg`'s sizes for `tokenizer`'s vocabulary."""
    torch.manual_seed(cfg.seed)
    conf = Qwen2Config(vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                       num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                       head_dim=cfg.hidden // cfg.heads, max_position_embeddings=cfg.ctx, tie_word_embeddings=True,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                       bos_token_id=None)
    return Qwen2ForCausalLM(conf).float()


def _batches(examples: list[tuple[list[int], int]], size: int, rng: random.Random | None) -> list[list[int]]:
    """Indices of `examples` in batches of similar length (little padding); shuffled when `rng`."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    chunks = [order[i: i + size] for i in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(chunks)
    return chunks


def pad_batch(examples: list[tuple[list[int], int]], idx: list[int], pad: int):
    """Right-padded ids, attention mask and the mask of positions whose next token is a completion token."""
    n = max(len(examples[i][0]) for i in idx)
    ids = torch.full((len(idx), n), pad, dtype=torch.long)
    attn = torch.zeros((len(idx), n), dtype=torch.long)
    target = torch.zeros((len(idx), n), dtype=torch.bool)
    for row, i in enumerate(idx):
        seq, n_prompt = examples[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        attn[row, : len(seq)] = 1
        target[row, n_prompt - 1: len(seq) - 1] = True
    return ids, attn, target


def completion_loss(model: Qwen2ForCausalLM, ids: torch.Tensor, attn: torch.Tensor, target: torch.Tensor):
    """(summed cross-entropy, token count) over completion tokens; the LM head only runs where a
    completion token is predicted (the prompt positions need no logits)."""
    hidden = model.model(input_ids=ids, attention_mask=attn).last_hidden_state
    logits = model.lm_head(hidden[target])
    labels = ids[:, 1:][target[:, :-1]]
    return torch.nn.functional.cross_entropy(logits, labels, reduction="sum"), labels.numel()


@torch.no_grad()
def valid_loss(model: Qwen2ForCausalLM, examples: list[tuple[list[int], int]], batch_size: int, pad: int) -> float:
    """Mean per-token completion loss of `model` on `examples`."""
    model.eval()
    total, count = 0.0, 0
    for idx in _batches(examples, batch_size, None):
        loss, n = completion_loss(model, *pad_batch(examples, idx, pad))
        total, count = total + loss.item(), count + n
    return total / max(count, 1)


def _schedule(opt: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to 10% of the peak rate."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _epoch(model, opt, sched, examples, cfg: LMConfig, rng: random.Random, pad: int, desc: str) -> tuple[float, int, float]:
    """One training epoch: (mean completion loss, tokens seen incl. prompts, seconds)."""
    model.train()
    total, count, tokens, start = 0.0, 0, 0, time.time()
    bar = tqdm(_batches(examples, cfg.batch_size, rng), desc=desc, unit="batch", leave=False)
    for idx in bar:
        ids, attn, target = pad_batch(examples, idx, pad)
        loss, n = completion_loss(model, ids, attn, target)
        (loss / max(n, 1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        total, count, tokens = total + loss.item(), count + n, tokens + int(attn.sum())
        bar.set_postfix(loss=f"{loss.item() / max(n, 1):.3f}")
    return total / max(count, 1), tokens, time.time() - start


def _fit(model, train_ex, valid_ex, cfg: LMConfig, pad: int) -> tuple[dict, list[dict]]:
    """Train `cfg.epochs` epochs, validating after each; the best state (lowest valid loss) and history."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train_ex) / cfg.batch_size)
    sched = _schedule(opt, min(cfg.warmup_steps, steps // 4), steps)
    rng, history, best = random.Random(cfg.seed), [], (math.inf, None)
    for epoch in range(1, cfg.epochs + 1):
        loss, tokens, secs = _epoch(model, opt, sched, train_ex, cfg, rng, pad, f"instructor epoch {epoch}/{cfg.epochs}")
        v = valid_loss(model, valid_ex, cfg.batch_size * 2, pad)
        history.append({"epoch": epoch, "train_loss": loss, "valid_loss": v, "tokens": tokens, "seconds": secs,
                        "tokens_per_s": tokens / max(secs, 1e-9)})
        tqdm.write(f"epoch {epoch}: train loss {loss:.4f}, valid loss {v:.4f}, {tokens / max(secs, 1e-9):.0f} tokens/s")
        if v < best[0]:
            best = (v, copy.deepcopy(model.state_dict()))
    return best[1], history


def save_curve(history: list[dict], png: Path) -> Path:
    """Train and valid completion loss per epoch as a PNG."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["valid_loss"] for h in history], marker="o", label="valid")
    ax.set(xlabel="epoch", ylabel="completion loss (nats/token)", title="instruction LM")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def folder_hash(folder: Path) -> str:
    """The model version: sha256 (first 16 hex digits) of the weights, config and tokenizer files."""
    h = hashlib.sha256()
    for name in HASHED:
        path = Path(folder) / name
        if path.exists():
            h.update(name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _save(model, tokenizer, out: Path, cfg: LMConfig) -> None:
    """Write the HF folder: weights, config, tokenizer with chat template, greedy generation config."""
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.model_max_length = cfg.ctx
    tokenizer.save_pretrained(out)
    # readable by transformers 4.x too (a GPU cluster's vLLM): the generic class, the template inline
    conf_path = out / "tokenizer_config.json"
    conf = json.loads(conf_path.read_text())
    conf.update(tokenizer_class="PreTrainedTokenizerFast", chat_template=CHAT_TEMPLATE)
    conf_path.write_text(json.dumps(conf, indent=1))
    GenerationConfig(do_sample=False, max_new_tokens=256, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(out)


def train_lm(pairs: list[tuple[str, str]], valid_pairs: list[tuple[str, str]], out_dir: Path,
             cfg: LMConfig | None = None) -> dict:
    """Train the tokenizer and LM on `pairs`, select the epoch on `valid_pairs` (lowest completion
    loss), save the HF folder to `out_dir`; returns the metadata written to oxygen.json."""
    cfg = cfg or LMConfig()
    if not pairs or not valid_pairs:
        raise ValueError(f"train_lm needs training and validation pairs (got {len(pairs)} and {len(valid_pairs)})")
    torch.set_num_threads(cfg.threads)
    start, out = time.time(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer([p + "\n" + c for p, c in pairs], cfg.vocab_size)
    enc_train = [encode_pair(tokenizer, p, c, cfg.ctx) for p, c in pairs]
    enc_valid = [encode_pair(tokenizer, p, c, cfg.ctx) for p, c in valid_pairs]
    model = build_model(cfg, tokenizer)
    best, history = _fit(model, [e[:2] for e in enc_train], [e[:2] for e in enc_valid], cfg, tokenizer.pad_token_id)
    model.load_state_dict(best)
    _save(model, tokenizer, out, cfg)
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
