# koa-ledger. `make run` and `make test` set up their own virtualenv (.venv) on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test bench lint lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "koa-ledger needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)

# The main job: a demo year of a mid-size city in the embedded SQLite store (var/koa.sqlite).
run: setup
	$(BIN)/koa demo

test: setup
	$(BIN)/python -m pytest

# Speed and memory, each as a ratio to a baseline measured in the same run (PostgreSQL on 127.0.0.1).
# QUICK=1 scales the generated data down for a quick look.
bench: setup
	$(BIN)/python benchmarks/import_payment_run.py $(if $(QUICK),--rows 20000,)
	$(BIN)/python benchmarks/replay.py $(if $(QUICK),--bookings 50000,)
	$(BIN)/python benchmarks/export_workbook.py $(if $(QUICK),--bookings 50000,)
	$(BIN)/python benchmarks/api_load.py $(if $(QUICK),--seconds 5,)

lint: setup
	$(BIN)/ruff check .

# Re-pin the dependencies after editing pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra test -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
