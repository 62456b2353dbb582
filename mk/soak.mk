# The lifecycle model (tests/integration/test_model.py, the machine in tests/support/model.py) run long:
# SOAK_STEPS steps of the same state machine `make test` runs for about 2,000, with a random seed that is
# printed first (SOAK_SEED=N runs that one again). Never part of `make test`. Included from the Makefile,
# which defines VENV and SHELL (bash). 100,000 steps take about an hour on 2 cores.
#
#   make soak                                 100,000 steps
#   make soak SOAK_STEPS=5000 SOAK_SEED=42    a short one, a given seed
#
# It prints one summary line at the end: examples, steps, requests, faults injected (answered as
# dependency errors, answers lost and retried), invariants checked, the most HMACs a request cost.

SOAK_STEPS ?= 100000
SOAK_SEED ?=

# Including this file must not change the Makefile's default goal.
_SOAK_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: soak

soak: $(VENV)/.synced
	@seed="$(SOAK_SEED)"; seed="$${seed:-$$RANDOM$$RANDOM}"; echo "soak: $(SOAK_STEPS) steps, seed $$seed"; \
	SOAK_STEPS=$(SOAK_STEPS) $(VENV)/bin/python -m pytest tests/integration/test_model.py -k lifecycle \
		-s -q -p no:logging -p no:cacheprovider --timeout=0 --hypothesis-seed="$$seed"

.DEFAULT_GOAL := $(_SOAK_MK_DEFAULT_GOAL)
