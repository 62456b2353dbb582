# Mutation testing (mutmut 3): does the test suite notice when the code that carries a guarantee is
# broken on purpose? A tool to run before a release, never part of `make test`; docs/mutation.md says
# how to read its report. Included from the Makefile, which defines PYTHON, VENV and SHELL (bash).
#
#   make mutate                              every module below (hours on 2 cores: see docs/mutation.md)
#   make mutate MODULES="store tokens"       some of them (clients alone: ~10-25 minutes)
#   make mutate MUTATE_TESTS="tests/..."     another test selection
#   make mutate MODULES=tokens MUTANTS='authcore.tokens.x_same_digest*'   only some functions' mutants
#
# mutmut lives in a virtual environment of its own (.tools/mutmut: uv.lock never changes) that sees the
# project's packages through a .pth file pointing at .venv's site-packages, after its own; its pytest is
# pinned to the project's. Changing MUTMUT_VERSION reinstalls it. It runs in a copy of the work tree
# (.tools/mutate/work: git-ignored, and the tree other people edit is never mutated in place), where the
# layer's modules sit under src/ so that mutmut names them as the tests import them (authcore.store, not
# layers.authcore.store); mutmut writes its mutants to work/mutants/, where `layers` is a link to the
# mutated src/. Per mutant, mutmut runs only the tests (of MUTATE_TESTS) that called the mutated function
# in a first, recording run, in a process forked from that run, and stops at the first failure.

MUTMUT_VERSION := 3.8.1
MUTMUT_VENV := .tools/mutmut
MUTMUT := $(MUTMUT_VENV)/.installed-$(MUTMUT_VERSION)
MUTATE_DIR := .tools/mutate
MODULES ?= store sessions device tokens clients
# unit tests of the pure modules, and the integration tests that drive the flows through the handlers
MUTATE_TESTS ?= tests/unit/test_tokens.py tests/unit/test_mutants.py \
	tests/integration/test_token_lifecycle.py tests/integration/test_device_flow.py \
	tests/integration/test_budget_and_faults.py tests/integration/test_mutants.py
MUTATE_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MUTANTS ?=

# Including this file must not change the Makefile's default goal.
_MUTATE_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: mutate mutate-report

$(MUTMUT): | $(VENV)/.synced
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required on PATH (python3.13)"; exit 1; }
	rm -rf $(MUTMUT_VENV)
	$(PYTHON) -m venv $(MUTMUT_VENV)
	$(MUTMUT_VENV)/bin/pip install -qq --disable-pip-version-check mutmut==$(MUTMUT_VERSION) \
		"pytest==$$($(VENV)/bin/python -c 'import pytest; print(pytest.__version__)')"
	$(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
		> "$$($(MUTMUT_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/project-venv.pth"
	@touch $@

# mutmut's configuration for the copy (setup.cfg: the copy's pyproject.toml has no [tool.mutmut]).
define _MUTATE_SETUP_CFG
[mutmut]
source_paths = src
only_mutate =
$(foreach m,$(MODULES),    src/authcore/$(m).py
)also_copy =
    functions/
    local/
    events/
    authcli/
    template.yaml
    openapi.json
do_not_mutate_patterns =
    ^\s*(audit|refused)\(
timeout_multiplier = 20
timeout_constant = 5
pytest_add_cli_args =
    -p
    no:cacheprovider
pytest_add_cli_args_test_selection =
$(foreach t,$(MUTATE_TESTS),    $(t)
)
endef
export _MUTATE_SETUP_CFG

# mutmut run, less two kinds of string mutant that would each cost a whole test run to learn nothing:
# - a sentence meant for people (a literal with a space that ends in ".", "?" or "!": an error's
#   description), rewritten, dropped from a call or replaced by None: the contract fixes error codes, not
#   wording; a test pinning each sentence would only detect change;
# - a change of case only ("SET" -> "set", "ascii" -> "ASCII"): DynamoDB's keywords and Python's codec
#   names ignore case, so these are equivalent here; "XX" wrapped around the literal still shows
#   whether its value matters at all.
# Calls that only log (audit, refused) are left alone by do_not_mutate_patterns above: test_audit.py and
# test_logs.py check them, outside the per-mutant selection.
define _MUTATE_RUN_PY
import sys
import libcst
from mutmut.__main__ import cli
from mutmut.mutation import mutators

_strings, _args = mutators.operator_string, mutators.operator_arg_removal

def _prose(node):
    value = node.evaluated_value if isinstance(node, libcst.SimpleString) else None
    return isinstance(value, str) and " " in value and value.rstrip()[-1:] in ".?!"

def _strings_that_matter(node):
    if _prose(node):
        return
    for mutant in _strings(node):
        if isinstance(node, libcst.SimpleString) and mutant.value.lower() == node.value.lower():
            continue
        yield mutant

def _args_that_matter(node):  # dropping a sentence, or passing None for it, is rewording it too
    for mutant in _args(node):
        if not any(_prose(a.value) for a in node.args if not any(a is b for b in mutant.args)):
            yield mutant

_ours = {_strings: _strings_that_matter, _args: _args_that_matter}
mutators.mutation_operators[:] = [(t, _ours.get(f, f)) for t, f in mutators.mutation_operators]
sys.argv[0] = "mutmut"
cli()
endef
export _MUTATE_RUN_PY

# The report: killed / survived / timeout / other per module, each survivor with its changed lines;
# every survivor's whole diff in .tools/mutate/survivors.diff. Run in the copy, with mutmut's Python.
define _MUTATE_REPORT_PY
import collections, sys
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

counts = collections.defaultdict(collections.Counter)
survivors = []
unchecked = 0
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    module = path.stem
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        if status == "not checked":  # outside MUTANTS, or the run was interrupted
            unchecked += 1
            continue
        counts[module][status] += 1
        if status == "survived":
            survivors.append((module, name, path))
columns = ["killed", "survived", "timeout", "no tests", "other"]
print(f"{'module':<10}" + "".join(f"{c:>10}" for c in columns) + f"{'score':>8}")
total = collections.Counter()
for module in sorted(counts):
    c = counts[module]
    other = sum(v for k, v in c.items() if k not in columns)
    row = [c["killed"], c["survived"], c["timeout"], c["no tests"], other]
    total.update(dict(zip(columns, row)))
    tested = c["killed"] + c["survived"] + c["timeout"]
    score = f"{100 * (c['killed'] + c['timeout']) / tested:.1f}%" if tested else "-"
    print(f"{module:<10}" + "".join(f"{v:>10}" for v in row) + f"{score:>8}")
print(f"{'total':<10}" + "".join(f"{total[c]:>10}" for c in columns))
if unchecked:
    print(f"({unchecked} mutants not checked: outside MUTANTS, or the run was interrupted)")
with open(sys.argv[1], "w") as out:
    if survivors:
        print(f"\nsurvivors ({len(survivors)}; whole diffs in {sys.argv[1]}):")
    for module, name, path in sorted(survivors):
        diff = get_diff_for_mutant(name, path=path)
        out.write(f"# {name}\n{diff}\n")
        changed = [l[1:].strip() for l in diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
        print(f"  {name}")
        for line in changed:
            print(f"      {line[:150]}")
endef
export _MUTATE_REPORT_PY

# pyc files are written (and only under .tools/mutate): this machine's PYTHONDONTWRITEBYTECODE would
# make every process compile every module it imports.
_MUTATE_ENV := env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$(CURDIR)/$(MUTATE_DIR)/pycache"

mutate: $(MUTMUT)
	@for m in $(MODULES); do test -f layers/authcore/$$m.py || { echo "no module layers/authcore/$$m.py"; exit 1; }; done
	rm -rf $(MUTATE_DIR)/work
	mkdir -p $(MUTATE_DIR)/work/src $(MUTATE_DIR)/work/mutants
	@# the work tree as it is (tracked and new files, not ignored ones), with its uncommitted changes
	git ls-files -z --cached --others --exclude-standard \
		| tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(MUTATE_DIR)/work
	mv $(MUTATE_DIR)/work/layers/authcore $(MUTATE_DIR)/work/src/authcore
	ln -s src $(MUTATE_DIR)/work/mutants/layers
	printf '%s\n' "$$_MUTATE_SETUP_CFG" > $(MUTATE_DIR)/work/setup.cfg
	@echo "mutating $(MODULES) with $(MUTATE_JOBS) workers; log: $(MUTATE_DIR)/run.log"
	@set -o pipefail; start=$$(date +%s); \
	cd $(MUTATE_DIR)/work && $(_MUTATE_ENV) "$(CURDIR)/$(MUTMUT_VENV)/bin/python" -c "$$_MUTATE_RUN_PY" run --max-children $(MUTATE_JOBS) $(foreach m,$(MUTANTS),'$(m)') 2>&1 \
		| tee ../run.log | awk 'BEGIN { RS = "[\r\n]" } $$2 ~ /^[0-9]+\/[0-9]+$$/ { split($$2, p, "/"); if (p[1] != last && (p[1] % 100 == 0 || p[1] == p[2])) { last = p[1]; print; fflush() } }'; \
	status=$$?; echo "mutmut run: exit $$status after $$(( $$(date +%s) - start )) s"; \
	if [ $$status -ne 0 ]; then tr '\r' '\n' < ../run.log | grep -v '^. ' | tail -40; exit $$status; fi
	@$(MAKE) --no-print-directory mutate-report

mutate-report: $(MUTMUT)
	@test -d $(MUTATE_DIR)/work/mutants || { echo "no results: run make mutate first"; exit 1; }
	@cd $(MUTATE_DIR)/work && $(_MUTATE_ENV) "$(CURDIR)/$(MUTMUT_VENV)/bin/python" -c "$$_MUTATE_REPORT_PY" ../survivors.diff

.DEFAULT_GOAL := $(_MUTATE_MK_DEFAULT_GOAL)
