# The Lambda runtime on this machine, without Docker (docs/invoke.md): what `make invoke`, the runtime
# test (tests/e2e/test_runtime.py) and `make serve ARGS="--runtime lambda"` run the functions on.
# Included from the Makefile, which defines PYTHON, UV, VENV and SHELL (bash); mk/sam.mk defines SAM.
#
#   make invoke FN=TokenFunction EVENT=events/token.device_pending.json
#   make invoke EVENT=events/refresh.body.json          the function is the one that serves the route
#   make invoke FN=TokenFunction                        its first event in events/
#   make invoke                                         the list of functions and their events
#
# Under .tools/lambda (re-built only when layers/requirements.txt or this file changes):
#   python/    a Python 3.13 ($(PYTHON)) with nothing installed: the runtime's interpreter
#   layer/     the shared layer as Lambda mounts it at /opt: python/ holds layers/requirements.txt
#              installed for THIS machine (`sam build` builds arm64 for deployment, which cannot run
#              here) and authcore, a link to layers/authcore (edits show at the next cold start)
#   runtime/   awslambdaric, the runtime interface client (Lambda's /var/runtime): never on the layer's
#              or the function's path
#   aws-lambda-rie   the Runtime Interface Emulator that the SAM CLI ships, for this architecture
# The layer and the runtime are compiled ahead (their __pycache__), so that the first cold start does
# not spend seconds compiling botocore: a cold start counts against the function's Timeout.

LAMBDA_DIR := .tools/lambda
LAMBDA_RUNTIME := $(LAMBDA_DIR)/.installed
AWSLAMBDARIC_VERSION := 4.2.2
# uname -m -> the emulator's name for the architecture
LAMBDA_ARCH := $(patsubst aarch64,arm64,$(shell uname -m))
FN ?=
EVENT ?=
INVOKE_ARGS ?=

# Including this file must not change the Makefile's default goal.
_INVOKE_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: invoke lambda-runtime

$(LAMBDA_RUNTIME): layers/requirements.txt mk/invoke.mk | $(SAM) $(UV)
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required on PATH (python3.13)"; exit 1; }
	@rie=$$(ls $(SAM_VENV)/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-$(LAMBDA_ARCH) 2>/dev/null | head -1); \
	if [ -z "$$rie" ]; then \
	  echo "lambda runtime: the SAM CLI ships no emulator for $$(uname -m) (only x86_64 and aarch64);" \
	    "make invoke cannot run here and tests/e2e/test_runtime.py will be skipped"; \
	  exit 0; \
	fi; \
	set -ex; \
	rm -rf $(LAMBDA_DIR); \
	$(PYTHON) -m venv --without-pip $(LAMBDA_DIR)/python; \
	$(UV) pip install --quiet --python $(LAMBDA_DIR)/python/bin/python --target $(LAMBDA_DIR)/layer/python \
	  -r layers/requirements.txt; \
	ln -s ../../../../layers/authcore $(LAMBDA_DIR)/layer/python/authcore; \
	$(UV) pip install --quiet --python $(LAMBDA_DIR)/python/bin/python --target $(LAMBDA_DIR)/runtime \
	  awslambdaric==$(AWSLAMBDARIC_VERSION); \
	ln -s "../../$$rie" $(LAMBDA_DIR)/aws-lambda-rie; \
	$(LAMBDA_DIR)/python/bin/python -m compileall -q -j 0 $(LAMBDA_DIR)/layer/python $(LAMBDA_DIR)/runtime >/dev/null \
	  || echo "lambda runtime: some modules did not compile ahead; they compile at their first import"; \
	touch $@

lambda-runtime: $(LAMBDA_RUNTIME)

invoke: $(VENV)/.synced $(LAMBDA_RUNTIME)
	@$(VENV)/bin/python -m local.invoke $(FN) $(if $(EVENT),--event $(EVENT)) $(INVOKE_ARGS)

.DEFAULT_GOAL := $(_INVOKE_MK_DEFAULT_GOAL)
