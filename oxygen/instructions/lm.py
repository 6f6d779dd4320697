"""The small instruction LM trained here: a byte-level BPE tokenizer with a chat template, and a
Qwen2-architecture causal LM trained from scratch (fp32, CPU) on (prompt, completion) pairs with the
loss on completion tokens only. The saved folder is a plain Hugging Face model folder that the `hf`
(transformers) and `vllm` backends both load.

    tok = train_tokenizer([p + c for p, c in pairs], vocab_size=8192)
    ids, n_prompt, cut = encode_pair(tok, prompt, completion, ctx=1024)
    model = build_model(LMConfig(), tok)      # trained by oxygen.training.instructor.train_lm (THE loop)

The folder holds config.json, model.safetensors, tokenizer.json + tokenizer_config.json (with the
chat template), generation_config.json (greedy), loss_curve.png and oxygen.json (training metadata
and `version`, a hash of the weights, config and tokenizer).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from oxygen.config import LMConfig  # noqa: E402

__all__ = ["LMConfig", "CHAT_TEMPLATE", "train_tokenizer", "encode_pair", "build_model", "save_folder", "folder_hash"]

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


def _batches(examples: list[tuple[list[int], int]], size: int) -> list[list[int]]:
    """Indices of `examples` in batches of similar length (little padding), for evaluation."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    return [order[i: i + size] for i in range(0, len(order), size)]


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
    for idx in _batches(examples, batch_size):
        loss, n = completion_loss(model, *(t.to(model.device) for t in pad_batch(examples, idx, pad)))
        total, count = total + loss.item(), count + n
    return total / max(count, 1)


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


def save_folder(model, tokenizer, out: Path, cfg: LMConfig) -> None:
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
