# `make demo`: set up, then align one answer on the embedded model. `make test`: set up, then run the tests.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	$(BIN)/darwin-chains align "Give three tips for writing a clear email." --progress on

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

bench: setup
	$(BIN)/python benchmarks/speed/speed.py
