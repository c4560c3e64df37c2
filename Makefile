# lit_mrl developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
SHARDS ?= shards
EVAL_OUT ?= eval_out

.DEFAULT_GOAL := help
.PHONY: help install lint format test test-all demo eval bench clean

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

demo: $(STAMP)  ## the whole pipeline on an offline toy corpus, CPU, ~30 min (DEMO_DIR=demo_out)
	$(PY) -m lit_mrl demo --out $(DEMO_DIR)

eval: $(STAMP)  ## embed + probe + report CKPT (checkpoint or encoder folder) on every task under SHARDS, beside the log-mel baseline
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=path/to/last.ckpt [NAME=column name] [SHARDS=shards] [EVAL_OUT=eval_out]"; exit 2; }
	$(PY) -m lit_mrl evaluate --checkpoint $(CKPT) $(if $(NAME),--name $(NAME)) --shards $(SHARDS) --out $(EVAL_OUT)

bench: $(STAMP)  ## run the CPU benchmarks under bench/, short settings (figures: bench/README.md)
	$(PY) -m bench.encoder_throughput --variant tiny --batch-size 64 --steps 10 --warmup 2
	$(PY) -m bench.pretrain_throughput --variant tiny --batch-size 48 --steps 4
	$(PY) -m bench.encoder_ladder --rungs tiny xs --steps 4
	$(PY) -m bench.embed_speed --tracks 16 --seconds 30 --encoder sfnfnet-tiny
	$(PY) -m bench.probe_search --dropout 0 --baselines loop
	$(PY) -m bench.loader_speed --long-tracks 8 --short-tracks 200 --batches 20 --max-seconds 10
	$(PY) -m bench.embed_memory --minutes 5
	$(PY) -m bench.gpu_readiness --smoke

clean:  ## remove run outputs and caches
	rm -rf lightning_logs wandb runs .pytest_cache .ruff_cache $(DEMO_DIR) $(EVAL_OUT)
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +
