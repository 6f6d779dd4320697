"""The small instruction LM (oxygen.instructions.lm): the BPE tokenizer and its chat template, the
completion-only loss mask, and a real training run into an HF folder (files, metadata, best epoch,
a model that learned the toy task)."""

from __future__ import annotations

import json

import pytest

from oxygen.config import ConfigError, InstructorConfig, LMConfig, load_config
from oxygen.instructions.lm import CHAT_TEMPLATE, encode_pair, folder_hash, pad_batch, train_tokenizer
from oxygen.training.instructor import train_lm
from tests.instructions.tiny_lm import SEASONS, tiny_lm, toy_pairs


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_lm(tmp_path_factory)


def test_tokenizer_round_trips_and_has_the_chat_template():
    texts = [p + "\n" + c for p, c in toy_pairs(50, 0)]
    tok = train_tokenizer(texts, vocab_size=300)
    assert len(tok) <= 300 and tok.chat_template == CHAT_TEMPLATE
    odd = "Ünïcode — 🎮 gaming mou\n  tabs\tand spaces"
    assert tok.decode(tok(odd, add_special_tokens=False)["input_ids"]) == odd
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    for special in ("<|im_start|>", "<|im_end|>", "<|pad|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"


def test_loss_mask_covers_the_completion_and_eos_only():
    tok = train_tokenizer([p + c for p, c in toy_pairs(50, 0)], vocab_size=300)
    ids, n_prompt, cut = encode_pair(tok, "Date: winter.", "needs: a warm coat", ctx=128)
    assert not cut and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True) == "needs: a warm coat"
    _, _, target = pad_batch([(ids, n_prompt)], [0], tok.pad_token_id)
    predicted = [ids[i + 1] for i in range(len(ids) - 1) if target[0, i]]
    assert predicted == ids[n_prompt:]


def test_a_long_pair_loses_its_oldest_prompt_tokens():
    tok = train_tokenizer([p + c for p, c in toy_pairs(50, 0)], vocab_size=300)
    ids, n_prompt, cut = encode_pair(tok, "old " * 200 + "newest", "needs: sun cream", ctx=64)
    assert cut and len(ids) == 64
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True) == "needs: sun cream"
    assert "newest" in tok.decode(ids[:n_prompt])


def test_training_writes_a_complete_hf_folder(folder):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "loss_curve.png", "oxygen.json"):
        assert (folder / name).exists(), name
    meta = json.loads((folder / "oxygen.json").read_text())
    assert meta["version"] == folder_hash(folder)
    assert json.loads((folder / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE
    history = meta["history"]
    assert len(history) == meta["config"]["epochs"]
    assert meta["best_epoch"] == min(history, key=lambda h: h["valid_loss"])["epoch"]
    assert history[-1]["valid_loss"] < 0.5 * history[0]["valid_loss"]
    assert all(h["tokens_per_s"] > 0 for h in history)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["head_dim"] == 32


def test_the_trained_model_learned_the_toy_task(folder):
    from oxygen.instructions.backends.hf import HFBackend
    pairs = toy_pairs(12, 7)
    out = HFBackend(folder, max_new_tokens=48).generate([p for p, _ in pairs])
    for text, (p, _) in zip(out, pairs):
        season = p.split("Date: ")[1].split(".")[0]
        assert text.startswith(f"needs: {SEASONS[season]} for {season}"), (p, text)


def test_configs_refuse_what_vllm_cannot_run_and_empty_data(tmp_path):
    with pytest.raises(ValueError, match="32 or 64"):
        LMConfig(hidden=256, heads=2)
    with pytest.raises(ConfigError, match="lm.epochs"):
        load_config(None, InstructorConfig, sets=["lm.epochs=0"])
    assert load_config(None, InstructorConfig, sets=["lm.epochs=2"]).lm.epochs == 2
    with pytest.raises(ValueError, match="validation pairs"):
        train_lm(toy_pairs(5, 0), [], tmp_path, LMConfig(vocab_size=300, hidden=64, heads=2))
