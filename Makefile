# Two commands set up everything on a fresh machine with Python 3.11+:
#   make run    create .venv, install opsconsole, launch it
#   make test   create or update .venv with the test extras, run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "opsconsole needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/opsconsole $(ARGS)

# Real BullMQ and Bull for the queue tests: exact versions in tests/node/package.json, the lock for the rest.
# (npm ci refuses this lock: it leaves out other platforms' optional packages.)
NODE_DEPS := tests/node/node_modules/.installed
$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null; then \
		npm install --prefix tests/node --no-audit --no-fund --no-save --loglevel=error && touch $@; \
	else echo "npm not found: the BullMQ comparison tests will be skipped (or fail under CI=true)"; fi

test: $(VENV)/.installed-test $(NODE_DEPS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-test $(NODE_DEPS)
	$(BIN)/python benchmarks/probe_round.py
	$(BIN)/python benchmarks/queue_round.py
	$(BIN)/python benchmarks/engine_step.py
	$(BIN)/python benchmarks/dashboard.py

clean:
	rm -rf $(VENV) .pytest_cache
