# Node packages of the openid-client interop test (tests/e2e/test_interop_openid_client.py), exactly as
# tests/e2e/interop_node/package-lock.json pins them: `npm ci` from the npm registry, into
# tests/e2e/interop_node/node_modules (git-ignored). Included from the Makefile; `make test` depends on
# `node-deps`. Re-installs only when package.json or package-lock.json changes.
#
# Without npm on PATH the target says so and carries on: the interop test then skips, naming the reason.

NODE_INTEROP := tests/e2e/interop_node
NODE_INTEROP_STAMP := $(NODE_INTEROP)/node_modules/.package-lock.json

# Including this file must not change the Makefile's default goal.
_NODE_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: node-deps

node-deps: $(NODE_INTEROP_STAMP)

$(NODE_INTEROP_STAMP): $(NODE_INTEROP)/package.json $(NODE_INTEROP)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  echo "cd $(NODE_INTEROP) && npm ci"; \
	  (cd $(NODE_INTEROP) && npm ci --no-audit --no-fund --loglevel=error) && touch $@; \
	else \
	  echo "npm is not on PATH: tests/e2e/test_interop_openid_client.py will be skipped." \
	    "Install Node.js 20 or later (Debian: apt-get install nodejs npm)"; \
	fi

.DEFAULT_GOAL := $(_NODE_MK_DEFAULT_GOAL)
