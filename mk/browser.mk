# Chromium for the browser test (tests/e2e/test_browser.py), from Debian: the test drives
# /usr/bin/chromium through Playwright's Python package and never downloads a browser of its own
# (no `playwright install`). Included from the Makefile; `make test` depends on `browser`.
#
# Installing needs root (CI runs as root with no stdin). Without root the target says so and carries
# on: the browser test then skips, naming the reason, instead of failing the whole run.

# The path tests/e2e/test_browser.py launches.
CHROMIUM := /usr/bin/chromium

# Including this file must not change the Makefile's default goal.
_BROWSER_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: browser

browser:
	@if [ -x "$(CHROMIUM)" ]; then \
	  echo "chromium: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends chromium </dev/null && \
	  test -x "$(CHROMIUM)"; \
	else \
	  echo "chromium: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get);" \
	    "tests/e2e/test_browser.py will be skipped. Install it with: apt-get install chromium"; \
	fi

.DEFAULT_GOAL := $(_BROWSER_MK_DEFAULT_GOAL)
