# The benchmarks (method and figures in bench/README.md). Included from the Makefile.
#
# `make bench`: the load benchmark (bench/load.py). It starts its own local stack on a free port;
# against a running `make serve`:
#   make bench BENCH_ARGS="--api-url http://127.0.0.1:3000"
# `make bench-forged`: what a refused refresh token costs the refresh handler, side by side with a
# real rotation, reuse, an unknown and a malformed token (bench/forged.py; starts its own moto server):
#   make bench-forged BENCH_FORGED_ARGS="--samples 500 --time-limit 300"
# `make bench-cpu`: every function's cold-start CPU and peak memory beside a lean floor script, and the
# warm CPU of an exchange and a refresh beside a floor handler, in one run (bench/cpu.py; ~3 minutes):
#   make bench-cpu BENCH_CPU_ARGS="--rounds 9 --samples 500"      (--quick: a smoke run of ~10 s)
# Results: printed, and written as JSON under bench/results/ (git-ignored).

BENCH_ARGS ?=
BENCH_FORGED_ARGS ?=
BENCH_CPU_ARGS ?=

# Including this file must not change the Makefile's default goal.
_BENCH_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: bench bench-forged bench-cpu

bench: $(VENV)/.synced
	$(VENV)/bin/python bench/load.py $(BENCH_ARGS)

bench-forged: $(VENV)/.synced
	$(VENV)/bin/python bench/forged.py $(BENCH_FORGED_ARGS)

bench-cpu: $(VENV)/.synced
	$(VENV)/bin/python bench/cpu.py $(BENCH_CPU_ARGS)

.DEFAULT_GOAL := $(_BENCH_MK_DEFAULT_GOAL)
