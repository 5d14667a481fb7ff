# Two commands do all set-up on a fresh clone (see README):
#   make demo   - install into .venv, then run the demo pipeline (dvc repro, CPU, offline)
#   make test   - install into .venv, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow bench bench-pipeline clean-state

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: setup
	$(BIN)/inpaintflow demo

test: setup
	$(BIN)/pytest

test-slow: setup
	$(BIN)/pytest -m slow --durations=0

bench: setup
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/inference.py

# the demo from scratch in a temporary clone, the no-op repro and per-stage times (11+ min on
# 2 cores; not part of `bench`). ARGS=--tiny for a quick check, ARGS="--out FILE.json" to save
bench-pipeline: setup
	$(BIN)/python benchmarks/pipeline.py $(ARGS)

clean-state:
	-$(BIN)/inpaintflow server stop
	rm -rf .inpaintflow
