# dslearn: set-up, tests and the course. `make help` lists the targets.
# Everything runs in .venv, created on first use from the project's own pins (pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The data cache (see dslearn.data): the offline copy of the official MNIST files beside this repository
# when it exists; otherwise dslearn uses ~/.cache/dslearn and downloads what is missing.
export DSLEARN_DATA ?= $(wildcard $(abspath $(CURDIR)/../shared/data))
export HYPOTHESIS_PROFILE ?= ci

.PHONY: help install test lint course lab bench clean

help:
	@echo "make install  - create .venv and install dslearn with the course and test extras"
	@echo "make course   - run every lab headlessly (fast mode) on the offline MNIST default; report in reports/course/"
	@echo "make lab      - JupyterLab 4 on course/index.ipynb (in a container: make lab LAB_ARGS='--ip 0.0.0.0 --no-browser')"
	@echo "make test     - ruff + doctests + the whole test suite (what CI runs)"
	@echo "make bench    - ops, MNIST epochs and @ds.jit against torch (the other scripts: docs/BENCHMARKS.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q -n auto

course: install
	$(BIN)/dslearn course run --fast --report reports/course

# JupyterLab 4 with nbgrader's, the widgets' and plotly's extensions; `dslearn lab` adds --allow-root as root.
lab: install
	$(BIN)/dslearn lab $(LAB_ARGS)

bench: install
	$(BIN)/python benchmarks/ops.py
	$(BIN)/python benchmarks/train_mnist.py
	$(BIN)/python benchmarks/jit.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache reports
