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

.PHONY: install run test test-unit test-integration test-e2e bench demo clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

test: install
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

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
