# Everything a fresh clone needs, from a machine with Python 3.13 on PATH.
# `make serve` starts the whole API locally; `make test` runs every test.

SHELL := /bin/bash
# The first Python 3.13 that actually runs (a pyenv shim may exist without the version being selected).
PYTHON ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do \
	  $$p -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)' 2>/dev/null && break; done)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
UV_VERSION := 0.13.9
UV := .tools/uv/bin/uv
VENV := .venv
PORT ?= 3000

.PHONY: help serve test admin lint typecheck format openapi bench clean

include mk/sam.mk
include mk/browser.mk
include mk/node.mk
include mk/bench.mk
include mk/mutate.mk
include mk/invoke.mk
include mk/soak.mk

help:
	@echo "make serve   start the whole API on http://127.0.0.1:$(PORT) with embedded AWS services"
	@echo "make test    run every test"
	@echo "make invoke  FN=TokenFunction EVENT=events/token.device_pending.json: one event through the real Lambda runtime (docs/invoke.md)"
	@echo "make admin ARGS='clients list'   the admin command (against make serve's stack unless TABLE_NAME is set)"
	@echo "make openapi  write openapi.json from the models; make bench-cpu: CPU and memory beside a floor (bench/README.md)"
	@echo "make lint    ruff + mypy; make bench: the load benchmark; make clean"
	@echo "make soak    the lifecycle model test, long (SOAK_STEPS=100000, SOAK_SEED=N to repeat a run)"
	@echo "make mutate  mutation testing of the layer before a release (MODULES='store tokens'; docs/mutation.md)"

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required on PATH (python3.13)"; exit 1; }
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced

# ARGS: more options of local.serve, e.g. ARGS="--runtime lambda" (the functions on the Lambda runtime)
serve: $(VENV)/.synced $(if $(findstring lambda,$(ARGS)),$(LAMBDA_RUNTIME))
	$(VENV)/bin/python -m local.serve --port $(PORT) $(ARGS)

admin: $(VENV)/.synced
	@$(VENV)/bin/python -m local.admin $(ARGS)

test: $(VENV)/.synced $(SAM) $(LAMBDA_RUNTIME) browser node-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/authcore local authcli
	@for f in functions/*/app.py; do $(VENV)/bin/mypy "$$f" || exit 1; done  # each is a module named app

format: $(VENV)/.synced
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

openapi: $(VENV)/.synced
	$(VENV)/bin/python -m local.openapi > openapi.json.tmp && mv openapi.json.tmp openapi.json || { rm -f openapi.json.tmp; exit 1; }

clean:
	rm -rf $(VENV) .tools .aws-sam .local test-output
