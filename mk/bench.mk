# The load benchmark (bench/load.py; method and figures in bench/README.md). Included from the
# Makefile. `make bench` starts its own local stack on a free port; against a running `make serve`:
#   make bench BENCH_ARGS="--api-url http://127.0.0.1:3000"
# Results: printed, and written as JSON under bench/results/ (git-ignored).

BENCH_ARGS ?=

# Including this file must not change the Makefile's default goal.
_BENCH_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: bench

bench: $(VENV)/.synced
	$(VENV)/bin/python bench/load.py $(BENCH_ARGS)

.DEFAULT_GOAL := $(_BENCH_MK_DEFAULT_GOAL)
