# Every target runs in .venv/ (created by `make setup`); the exact versions come from constraints.txt. The GPU
# targets (test-gpu, bench, gpu-check) also take another interpreter, e.g. a GPU machine's own torch without network:
# `make bench PY=python3` runs with it and skips setup.
VENV_PY := .venv/bin/python
PY ?= $(VENV_PY)
GPU_SETUP := $(if $(filter $(VENV_PY),$(PY)),setup)
RUNS ?= runs
OUT ?= results/tables
FIGURES ?= results/figures
REPORT ?= results/report.html
CHECK_OUT ?= results/gpu_check
WHEELS ?= gpu-wheels
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-slow test-gpu train tables figures report bench gpu-check gpu-wheels lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: .venv/.installed ## create .venv/ with the pinned dependencies (quick when already done)

.venv/.installed: pyproject.toml constraints.txt
	test -x $(VENV_PY) || python3 -m venv .venv
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[harness,dev]'
	touch $@

demo: setup ## the main job on the embedded synthetic dataset: a small sweep, its table, figures and report in results/demo/
	$(PY) train.py experiment=demo $(ARGS)
	$(PY) -m scripts.tables --runs runs/demo --out results/demo --datasets synthetic
	$(PY) -m scripts.figures --runs runs/demo --out results/demo
	$(PY) -m scripts.report --runs runs/demo --out results/demo/report.html

test: setup ## the test suite (slow tests excluded)
	$(PY) -m pytest -n 2 $(ARGS)

test-slow: setup ## only the slow tests (minutes: real-data learning checks)
	$(PY) -m pytest -m slow $(ARGS)

test-gpu: $(GPU_SETUP) ## only the GPU tests (each skips without CUDA): precisions, compile, packing, resume, bench
	$(PY) -m pytest -m gpu $(ARGS)

train: setup ## one experiment, e.g. make train ARGS="loss=tce loss.alpha=1.5 noise=0.4"
	$(PY) train.py $(ARGS)

tables: setup ## Tables 1-2, the other tables and paired.csv from RUNS (default runs/) into OUT (default results/tables/)
	$(PY) -m scripts.tables --runs $(RUNS) --out $(OUT)

figures: setup ## Figs. 1-3, memorization and reliability figures from RUNS into FIGURES (default results/figures/)
	$(PY) -m scripts.figures --runs $(RUNS) --out $(FIGURES)

report: setup ## one self-contained HTML page from RUNS: tables, paired comparison, figures, incomplete runs
	$(PY) -m scripts.report --runs $(RUNS) --out $(REPORT)

bench: $(GPU_SETUP) ## throughput per precision, evaluation cost, hours per preset; writes results/bench/<device>.json
	$(PY) -m scripts.bench $(ARGS)

gpu-check: $(GPU_SETUP) ## the one-call device check (scripts/gpu_check.py, <= 8 min) into CHECK_OUT (results/gpu_check/)
	$(PY) scripts/gpu_check.py --out $(CHECK_OUT) $(ARGS)

gpu-wheels: setup ## the wheels gpu-check needs beyond torch, into WHEELS (gpu-wheels/), for a GPU machine offline
	$(VENV_PY) -m scripts.gpu_wheels $(WHEELS)

lint: setup ## ruff
	$(PY) -m ruff check .

clean: ## remove caches (keeps .venv/, runs/ and results/)
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
