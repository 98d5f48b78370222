# `make demo`: set up, then align one answer on the embedded model. `make test`: set up, then run the tests.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup vllm demo test test-fast bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# vLLM's CPU build in its own virtual environment (.vllm-venv), for the vLLM tests and the scale-out recipe.
vllm: .vllm-venv/.installed

.vllm-venv/.installed: scripts/setup-vllm.sh
	bash scripts/setup-vllm.sh
	touch $@

demo: setup
	$(BIN)/darwin-chains align "Give three tips for writing a clear email." --progress on

# Two test processes of one torch thread each: a small model's decoding steps keep one core busy, and one thread
# per process keeps two processes from oversubscribing the cores (pytest alone, with no flags, runs serially).
# Not -q: the header says which CPU kind, threads and dtypes the run had (tests/conftest.py).
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist worksteal

# The whole suite; it starts two vLLM servers from .vllm-venv in the background and stops them at its end.
test: setup vllm
	$(PYTEST) --durations=20

# The tests outside tests/integration/: no real model loads (tests/support/no_real_models.py fails any that tries).
test-fast: setup
	$(PYTEST) -m "not integration"

bench: setup
	$(BIN)/python benchmarks/speed/speed.py
