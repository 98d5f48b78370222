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

# Two test processes of one torch thread each: a small model's decoding steps keep one core busy, and one thread
# per process keeps two processes from oversubscribing the cores (pytest alone, with no flags, runs serially).
# Not -q: the header says which CPU kind, threads and dtypes the run had (tests/conftest.py).
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist worksteal

test: setup
	$(PYTEST) --durations=20

# The tests outside tests/integration/: no real model loads (tests/support/no_real_models.py fails any that tries).
test-fast: setup
	$(PYTEST) -m "not integration"

bench: setup
	$(BIN)/python benchmarks/speed/speed.py
