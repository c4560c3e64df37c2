# lit_mrl developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.DEFAULT_GOAL := help
.PHONY: help install lint format test test-all demo smoke bench clean

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,demo]'
	# tinysoundfont renders the demo audio; its pyaudio dependency is only for live playback
	$(PY) -m pip install -q --no-deps 'tinysoundfont>=0.3'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and pip install -e '.[dev,demo]'

lint: $(STAMP)  ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)  ## ruff fix + format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP)  ## fast test suite (includes the end-to-end CLI test)
	$(PY) -m pytest

test-all: $(STAMP)  ## every test, slow ones included
	$(PY) -m pytest -m ""

demo: $(STAMP)  ## build demo audio, shard it, pre-train on CPU (offline W&B)
	$(PY) -m data_prep.demo --out $(DEMO_DIR)
	$(PY) -m lit_mrl fit -c configs/demo/pretrain_supervised.yaml --data.root $(DEMO_DIR)/shards/pretrain

bench: $(STAMP)  ## run the benchmarks under bench/
	$(PY) -m bench.run

clean:  ## remove run outputs and caches
	rm -rf lightning_logs wandb runs .pytest_cache .ruff_cache $(DEMO_DIR)
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +
