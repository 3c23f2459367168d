# LinkRay. `make run` sets up and runs the controller; `make test` sets up and runs all tests;
# `make demo` runs a simulated site with LinkRay in the middle (docs/demo.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 0.0.0.0
PORT ?= 8000
SCENARIO ?= office-day
SPEED ?= 60
DEMO_ARGS ?=

.PHONY: install run run-pair test test-prerequisites test-unit test-integration test-e2e bench bench-scale demo clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Two server processes on one port (SO_REUSEPORT: the kernel spreads chargers and page requests
# over both). Needs REDIS_URL, and DATABASE_URL for PostgreSQL; see docs/performance.md.
run-pair: install
	@test -n "$(REDIS_URL)" || { echo "run-pair: set REDIS_URL (and DATABASE_URL); one process needs neither: make run"; exit 2; }
	$(PY) manage.py migrate --no-input
	trap 'kill 0' INT TERM; \
	$(PY) manage.py serve --host $(HOST) --port $(PORT) --reuse-port & \
	$(PY) manage.py serve --host $(HOST) --port $(PORT) --reuse-port & \
	wait

# The browser tests need Debian's Chromium and the RS-485 tests socat: installed here when run as
# root (as CI is), otherwise `make test` stops and says what to install. Never a silent skip.
test-prerequisites:
	@missing=""; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "make test needs:$$missing. Install with: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

test: install test-prerequisites
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

demo: install
	$(PY) -m sitesim.demo --scenario $(SCENARIO) --speed $(SPEED) $(DEMO_ARGS)

bench: install
	$(PY) bench/relay.py

bench-scale: install
	$(PY) bench/scale.py --chargers 1000,2000,5000 --stacks embedded,scaleout

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
