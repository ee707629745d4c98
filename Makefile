# Two commands from a fresh clone: `make run` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

# `make test DATABASE_URL=postgres://...` runs the suite on PostgreSQL.
ifdef DATABASE_URL
export DATABASE_URL
endif

.PHONY: run test migrate bench browser pgbouncer fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-test.txt $(VENV)/.runtime-installed
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-test.txt
	touch $@

# The real `cueapi` CLI lives in its own virtualenv (its module name clashes with the SDK's).
.venv-cli/.installed: requirements-cli.txt
	$(PYTHON) -m venv .venv-cli
	.venv-cli/bin/python -m pip install --disable-pip-version-check -q -r requirements-cli.txt
	touch $@

migrate: $(VENV)/.runtime-installed
	$(BIN)/python manage.py migrate --noinput

# API on http://127.0.0.1:8000 plus run_poller and run_dispatcher; Ctrl-C stops all three.
run: migrate
	$(BIN)/python manage.py serve --bind 127.0.0.1:8000

test: $(VENV)/.test-installed .venv-cli/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's Chromium + chromedriver for the browser tests (needs root; .ci/run calls it).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "chromium: $$(chromium --version 2>/dev/null)"; \
	else \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium chromium-driver || { apt-get update -q && apt-get install -y -q chromium chromium-driver; }; \
	fi

# Debian's PgBouncer for tests/test_pgbouncer_live.py (needs root; .ci/run calls it). The test
# starts its own PgBouncer; the packaged service is not needed.
pgbouncer:
	@if command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer; then \
	  echo "pgbouncer: $$(PATH=$$PATH:/usr/sbin pgbouncer --version 2>/dev/null | head -1)"; \
	else \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q pgbouncer || { apt-get update -q && apt-get install -y -q pgbouncer; }; \
	fi

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

.venv-fuzz/.installed: requirements-fuzz.txt
	$(PYTHON) -m venv .venv-fuzz
	.venv-fuzz/bin/python -m pip install --disable-pip-version-check -q -r requirements-fuzz.txt
	touch $@

# schemathesis against a live API from its OpenAPI schema; fails on any 5xx (bench/fuzz.py).
fuzz: $(VENV)/.test-installed .venv-fuzz/.installed
	$(BIN)/python -m bench.fuzz

clean:
	rm -rf $(VENV) .venv-cli .venv-fuzz db.sqlite3 db.sqlite3-wal db.sqlite3-shm
