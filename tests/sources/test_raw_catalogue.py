"""The raw-schema catalogue of each provider (``sources/<provider>_admin/settings.RAW_TABLES``) is
the one place its raw tables and columns are written: the dbt sources and the models that list
the provider's endpoints must agree with it, so a column added to the source cannot be silently
missing from dbt (or a dbt column left pointing at nothing)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from stax_pipeline.providers import PROVIDERS, Provider

MODELS = Path(__file__).resolve().parents[2] / "dbt_project" / "models"
# dlt's column types as the DuckDB destination creates them (what the sources yml declares).
DUCKDB_TYPES = {
    "text": "varchar",
    "bigint": "bigint",
    "double": "double",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp with time zone",
}
DLT_COLUMNS = {"_dlt_load_id", "_dlt_id"}


def _duckdb_type(hint: dict) -> str:
    if hint["data_type"] == "decimal":
        return f"decimal({hint['precision']},{hint['scale']})"
    return DUCKDB_TYPES[hint["data_type"]]


def _declared_sources(provider: Provider) -> dict[str, dict[str, str]]:
    """Tables and column types of the provider's raw schema as its dbt sources yml declares them."""
    path = MODELS / "staging" / provider.name / f"_{provider.name}__sources.yml"
    (source,) = [s for s in yaml.safe_load(path.read_text())["sources"] if s["name"] == provider.dataset_name]
    assert source.get("schema", source["name"]) == provider.dataset_name
    return {
        table["name"]: {column["name"]: column["data_type"] for column in table.get("columns", [])}
        for table in source["tables"]
    }


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_dbt_sources_declare_exactly_the_catalogue(provider: Provider):
    catalogue = provider.module("settings").RAW_TABLES
    declared = _declared_sources(provider)
    assert set(declared) == set(catalogue)
    for table, columns in catalogue.items():
        expected = {name: _duckdb_type(hint) for name, hint in columns.items()}
        found = {name: kind for name, kind in declared[table].items() if name not in DLT_COLUMNS}
        assert found == expected, table


def _jinja_set(sql: str, name: str):
    """The literal value of ``{%- set <name> = … -%}`` in a model."""
    match = re.search(r"{%-?\s*set\s+" + name + r"\s*=\s*(.*?)\s*-?%}", sql, re.DOTALL)
    assert match, f"no `set {name}` in the model"
    return ast.literal_eval(match.group(1))


def test_usage_by_endpoint_lists_every_openai_endpoint_with_its_own_metrics():
    from stax_pipeline.sources.openai_admin.settings import USAGE_ENDPOINTS

    sql = (MODELS / "intermediate" / "int_openai__usage_by_endpoint.sql").read_text()
    endpoints = _jinja_set(sql, "endpoints")
    by_name = {endpoint.name: endpoint for endpoint in USAGE_ENDPOINTS}
    assert list(endpoints) == list(by_name)
    for name, metrics in endpoints.items():
        assert set(metrics) <= set(by_name[name].metrics), name
    dimensions = {name: set(endpoint.dimensions) for name, endpoint in by_name.items()}
    assert set(_jinja_set(sql, "without_model")) == {n for n, d in dimensions.items() if "model" not in d}
    assert set(_jinja_set(sql, "without_api_key")) == {
        n for n, d in dimensions.items() if "api_key_id" not in d
    }
    # …and each has its staging model.
    for name in endpoints:
        assert (MODELS / "staging" / "openai" / f"stg_openai__usage_{name}.sql").exists(), name
