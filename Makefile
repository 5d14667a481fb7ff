# Two commands do all set-up on a fresh clone (see README):
#   make demo   - install into .venv, then run the demo pipeline (dvc repro, CPU, offline)
#   make test   - install into .venv, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow bench clean-state

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
	$(BIN)/pytest -m slow

bench: setup
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/inference.py

clean-state:
	-$(BIN)/inpaintflow server stop
	rm -rf .inpaintflow
