# Stax pipeline. Everything runs from .venv/, built from uv.lock by `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAX_HOME ?= $(CURDIR)/.stax
export STAX_HOME

DBT_SOURCES := $(shell find dbt_project -name '*.sql' -o -name '*.yml' 2>/dev/null | grep -v '/target/')
MANIFEST := dbt_project/target/manifest.json

.PHONY: install demo test lint format ui manifest clean bench

install: $(BIN)/.installed $(MANIFEST)

# The venv, from the lock file only (`uv sync --frozen` never re-resolves), its modules compiled
# to bytecode now: where Python may not write .pyc files (PYTHONDONTWRITEBYTECODE, a read-only
# venv) every `stax` and dbt process would otherwise compile dagster, dlt and dbt at start-up.
$(BIN)/.installed: uv.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --quiet --compile-bytecode
	@touch $@

# The dbt manifest is prepared by the build, so tests, CI and `stax` load the definitions
# without `dagster dev`; its partial parse, made with the warehouse path a sync's dbt uses
# (lib/dbt.py), spares a new STAX_HOME's first sync a full parse.
manifest: $(MANIFEST)
$(MANIFEST): $(BIN)/.installed $(DBT_SOURCES)
	cd dbt_project && env -u STAX_MASTER_KEY -u STAX_NEW_MASTER_KEY STAX_DBT_WAREHOUSE=warehouse.duckdb ../$(BIN)/dbt parse --quiet --profiles-dir . --target-path target
	@touch $@

demo: install
	$(BIN)/stax demo

test: install
	$(BIN)/python -m pytest

# ruff (lint + format check), pyright on the package, sqlfluff on the dbt models. All configured in
# pyproject.toml and dbt_project/.sqlfluff; `make format` applies what the formatters can fix.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	cd dbt_project && ../$(BIN)/sqlfluff lint models

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd dbt_project && ../$(BIN)/sqlfluff fix models

# The benchmark (benchmarks/README.md): minutes of the whole machine. Options through
# BENCH_ARGS, e.g. make bench BENCH_ARGS="--only product,baseline".
bench: install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# dagster dev with umask 077 and without the master key in its environment (stax_pipeline/cli/ui.py).
ui: install
	$(BIN)/python -m stax_pipeline.cli.ui

clean:
	rm -rf $(VENV) dbt_project/target .pytest_cache
