# Two commands set up everything on a fresh machine with Python 3.11+:
#   make run    create .venv, install opsconsole, launch it
#   make test   create or update .venv with the test extras, run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test fuzz bench bench-quick clean

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

# The property tests with 40 times the examples `make test` gives them (hypothesis profile "fuzz", see
# tests/conftest.py; about 8 minutes on 2 cores), new ones each run; a failure is kept in .hypothesis/ and
# tried first the next time.
FUZZ_TESTS := tests/unit/test_config_properties.py tests/unit/test_runbook_properties.py \
	tests/unit/test_actions.py tests/unit/test_expect.py
fuzz: $(VENV)/.installed-test
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest $(FUZZ_TESTS) -q $(PYTEST_ARGS)

# Every figure beside a baseline measured in the same run, then a summary of the ratios (about 9
# minutes: the dashboard idles for 5). bench-quick: fewer rounds and a 30 s idle window.
BENCH_RESULTS := $(or $(TMPDIR),/tmp)/opsconsole-bench-$(shell id -u)
bench: $(VENV)/.installed-test $(NODE_DEPS)
	@rm -rf $(BENCH_RESULTS) && mkdir -p $(BENCH_RESULTS)
	$(BIN)/python benchmarks/probe_round.py --sizes 10,100,500 --save $(BENCH_RESULTS)/probe_round.json
	$(BIN)/python benchmarks/queue_round.py --save $(BENCH_RESULTS)/queue_round.json
	$(BIN)/python benchmarks/health_bodies.py --save $(BENCH_RESULTS)/health_bodies.json
	$(BIN)/python benchmarks/masking.py --save $(BENCH_RESULTS)/masking.json
	$(BIN)/python benchmarks/engine_step.py --save $(BENCH_RESULTS)/engine_step.json
	$(BIN)/python benchmarks/dashboard.py --idle 300 --save $(BENCH_RESULTS)/dashboard.json
	@$(BIN)/python benchmarks/summary.py $(BENCH_RESULTS)

bench-quick: $(VENV)/.installed-test $(NODE_DEPS)
	@rm -rf $(BENCH_RESULTS) && mkdir -p $(BENCH_RESULTS)
	$(BIN)/python benchmarks/probe_round.py --rounds 3 --save $(BENCH_RESULTS)/probe_round.json
	$(BIN)/python benchmarks/queue_round.py --rounds 5 --save $(BENCH_RESULTS)/queue_round.json
	$(BIN)/python benchmarks/health_bodies.py --rounds 5 --save $(BENCH_RESULTS)/health_bodies.json
	$(BIN)/python benchmarks/masking.py --save $(BENCH_RESULTS)/masking.json
	$(BIN)/python benchmarks/engine_step.py --rounds 3 --save $(BENCH_RESULTS)/engine_step.json
	$(BIN)/python benchmarks/dashboard.py --quick --save $(BENCH_RESULTS)/dashboard.json
	@$(BIN)/python benchmarks/summary.py $(BENCH_RESULTS)

clean:
	rm -rf $(VENV) .pytest_cache
