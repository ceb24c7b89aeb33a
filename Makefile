# The whole set-up on a fresh machine: `make reproduce` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
CONSTRAINT := $(VENV)/torch-constraint.txt

.PHONY: reproduce test fuzz install install-all lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first (the CPU wheel on disk), then the rest constrained to it so nothing pulls another build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	echo "$(TORCH)" > $(CONSTRAINT)
	$(BIN)/pip install --quiet -c $(CONSTRAINT) -e .
	touch $@

$(VENV)/.installed-all: $(VENV)/.installed
	$(BIN)/pip install --quiet -c $(CONSTRAINT) -e '.[dev,dashboard,ray,tl,llc]'
	touch $@

install: $(VENV)/.installed
install-all: $(VENV)/.installed-all

reproduce: install
	$(BIN)/groklab reproduce --config nanda

lint: install-all
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: install-all
	bash scripts/install-browser.sh
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests

# The property-based tests with the long budget (hypothesis profile "long"); `make test` runs them small.
fuzz: install-all
	GROKLAB_HYPOTHESIS_PROFILE=long OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics

clean:
	rm -rf $(VENV) runs .pytest_cache
