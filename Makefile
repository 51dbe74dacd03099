# Two commands: `make run` (the whole arena locally) and `make test` (the whole suite);
# `make lint` runs the checkers CI runs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/arena
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint deps chromium bench clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

deps: $(VENV)/.installed

# Browser tests drive Debian's chromium; install it from the distribution if it is missing.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: deps
	PORT=$(PORT) $(PY) scripts/devstack.py

test: deps chromium
	DEBUG=true DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) ARENA_METRICS_DIR=$$(mktemp -d) \
	  $(PY) -m pytest $(PYTEST_ARGS)

# Both checkers always run, so one pass shows every finding; mypy's files are in pyproject.toml.
lint: deps
	@status=0; \
	  $(PY) -m ruff check . || status=1; \
	  $(PY) -m mypy || status=1; \
	  exit $$status

bench: deps
	$(PY) bench/leaderboard.py
	$(PY) bench/sampling.py
	$(PY) bench/stream.py
	$(PY) bench/stream.py --steady --n 50,100,200
	$(PY) bench/votes.py

clean:
	rm -rf $(VENV) staticfiles arena.sqlite3
