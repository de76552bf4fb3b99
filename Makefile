# tlc-luigi. Two commands do everything on a fresh machine: `make demo` and `make test`.
# Every target installs what it needs first (idempotently), so none depends on hand set-up.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  := .stack
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test lint bench bench-e2e report stack-up stack-down stack-status clean

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
	$(PY) scripts/demo.py --stack $(STACK)

lint: setup
	$(VENV)/bin/ruff check tasks scripts tests
	$(VENV)/bin/ruff format --check tasks scripts tests

test: setup lint
	@bash scripts/install_chromium.sh
	@bash scripts/install_apt_tool.sh /usr/bin/systemd-analyze systemd
	@bash scripts/install_apt_tool.sh /usr/bin/curl curl
	$(PY) -m pytest

bench: setup
	$(PY) scripts/bench.py

bench-e2e: setup
	$(PY) scripts/bench_e2e.py

# Reconcile every ingested month across the real sinks of the local stack (or of real GCP when
# .stack/env is absent); writes data/report.html and exits 1 on any mismatch.
report: setup
	@if [ -f $(STACK)/env ]; then . ./$(STACK)/env; fi; $(PY) -m tasks.report --html data/report.html

clean: stack-down
	rm -rf $(STACK) data bench-out test-artifacts
