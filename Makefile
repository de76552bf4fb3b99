# tlc-luigi. Two commands do everything on a fresh machine: `make demo` and `make test`.
# Every target installs what it needs first (idempotently), so none depends on hand set-up.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  := .stack
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test lint bench bench-e2e report publish image-test stack-up stack-down stack-status clean

setup: $(VENV)/.installed

# Rebuilt only when the pins change; `pip install -e .` makes `luigi --module tasks` work anywhere.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e . 2>/dev/null
	@bash scripts/install_postgres.sh >/dev/null
	@touch $@

stack-up: setup
	$(PY) -m scripts.stack up --dir $(STACK)

stack-down:
	@if [ -x $(PY) ]; then $(PY) -m scripts.stack down --dir $(STACK); fi

stack-status: setup
	$(PY) -m scripts.stack status --dir $(STACK)

demo: setup
	$(PY) -m scripts.demo --stack $(STACK)

lint: setup
	$(VENV)/bin/ruff check tasks tlc scripts tests
	$(VENV)/bin/ruff format --check tasks tlc scripts tests

# podman is optional for the suite: where it cannot be installed, tests/test_image.py says why it skips.
test: setup lint
	@bash scripts/install_chromium.sh
	@bash scripts/install_podman.sh || echo "podman could not be installed: tests/test_image.py will skip"
	@bash scripts/install_apt_tool.sh /usr/bin/systemd-analyze systemd
	@bash scripts/install_apt_tool.sh /usr/bin/curl curl
	$(PY) -m pytest

# Build both images with podman (base and layers cached in /var/cache/tlc-luigi/podman) and run
# one month through them end to end; tests/test_image.py does the same inside `make test`.
image-test: setup
	@bash scripts/install_podman.sh
	$(PY) -m scripts.image_test

bench: setup
	$(PY) -m scripts.bench

bench-e2e: setup
	$(PY) -m scripts.bench_e2e

# Reconcile every ingested month across the real sinks of the local stack (or of real GCP when
# .stack/env is absent); writes data/report.html and exits 1 on any mismatch.
report: setup
	@if [ -f $(STACK)/env ]; then . ./$(STACK)/env; fi; $(PY) -m tlc.report --html data/report.html

# The course's dbt sources (README "Use it with dbt"): views with the TLC column names over what
# landed, in DuckDB (data/taxi_rides_ny.duckdb), BigQuery (nytaxi) and Postgres (prod).
publish: setup
	@if [ -f $(STACK)/env ]; then . ./$(STACK)/env; fi; $(PY) -m tlc.publish

clean: stack-down
	rm -rf $(STACK) data bench-out test-artifacts
