# make demo: train small translation models on the shipped corpus, reload them, translate, draw attention.
# make test: the test suite but the tests marked slow; make test-all: all of it (what CI runs).
# Each creates .venv and installs the CPU torch first (override with TORCH_SPEC=...).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DATA_DIR ?= ../shared/data
OUTPUTS ?= outputs

.PHONY: install test test-all demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,onnx]"
	touch $@

test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install
	$(BIN)/python -m pytest -q

demo: install
	DATA_DIR=$(DATA_DIR) OUTPUTS=$(OUTPUTS) BIN=$(BIN) bash recipes/demo.sh

clean:
	rm -rf $(VENV) $(OUTPUTS) .pytest_cache
