# AWS SAM CLI, in a virtual environment of its own under .tools/sam: its pins (aws-sam-translator,
# cfn-lint, boto3, ...) never constrain the project's uv.lock. Included from the Makefile, which defines
# PYTHON (a Python 3.13 interpreter). Editing this file (a version bump) reinstalls it.

SAM_CLI_VERSION := 1.170.0
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
# `sam build` for runtime python3.13 looks up `python3.13` on PATH to install the layer's requirements;
# a pyenv shim there may not have 3.13 selected, so the SAM venv's own python3.13 ($(PYTHON)) comes first.
# No telemetry; a region only because the SAM translator insists on one (nothing is deployed).
SAM_ENV := PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="$${AWS_DEFAULT_REGION:-us-east-1}"
SAM_BUILD_ARGS ?=

# Including this file must not change the Makefile's default goal.
_SAM_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: sam sam-validate sam-build

$(SAM): mk/sam.mk
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required on PATH (python3.13)"; exit 1; }
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $@

sam: $(SAM)

sam-validate: $(SAM)
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml

# The functions have no requirements.txt of their own (their dependencies are the layer's), and `sam
# build` says so once per function: that notice is dropped, anything else it prints is kept.
sam-build: $(SAM)
	@set -o pipefail; $(SAM_ENV) $(SAM) build --template template.yaml --build-dir .aws-sam/build $(SAM_BUILD_ARGS) 2>&1 \
	  | { grep -v "requirements.txt file not found" || true; }

.DEFAULT_GOAL := $(_SAM_MK_DEFAULT_GOAL)
