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

# Speed and memory of issue 7, one table: every figure with its baseline measured in the same run,
# the ratio and the target (PostgreSQL on 127.0.0.1). QUICK=1 scales the generated year down
# (a few minutes); the full run (a 2,000,000-booking year) takes about a quarter of an hour.
# The API rows come from a koa serve of its own (api_load.py). The single scripts
# (import_payment_run.py, replay.py, export_workbook.py, api_load.py) still run on their own.
bench: setup
	$(BIN)/python benchmarks/bench_all.py $(if $(QUICK),--quick,)

lint: setup
	$(BIN)/ruff check .

# Re-pin the dependencies after editing pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra test -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
