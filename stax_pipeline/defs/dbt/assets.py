"""Transform assets: the dbt project, run for exactly the window of the Dagster run."""


import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    Output,
)
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from dagster_dbt.dbt_project import DbtProject

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.dbt.project import ensure_manifest, stax_dbt_project
from stax_pipeline.defs.partitions import WAREHOUSE_POOL, single_run, sync_partitions
from stax_pipeline.lib.warehouse import read_warehouse
from stax_pipeline.lib.window import dbt_vars, window_from_context
from stax_pipeline.settings import load_settings

log = logging.getLogger(__name__)

_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "marts"}
SPEND_MART = AssetKey(["marts", "fct_spend_daily"])


class StaxDbtTranslator(DagsterDbtTranslator):
    """Models keyed ``<schema>/<model>`` (as in the warehouse) and grouped by stage; sources
    keep dagster-dbt's ``<source>/<table>`` keys, which the dlt assets produce."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] not in ("model", "seed", "snapshot"):
            return spec
        schema = props.get("config", {}).get("schema") or props["schema"]
        return spec.replace_attributes(
            key=AssetKey([schema, props["name"]]),
            group_name=_GROUPS.get(schema, "marts"),
        )


@dbt_assets(
    manifest=ensure_manifest(),
    project=stax_dbt_project,
    dagster_dbt_translator=StaxDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    partitions_def=sync_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def stax_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """``dbt build`` of the selected models with the run's window as vars: incremental marts
    delete and re-insert exactly those (connection, day)s."""
    settings = load_settings()
    window, connections = window_from_context(context)
    invocation = dbt.cli(
        ["build", "--vars", json.dumps(dbt_vars(window, connections))],
        context=context,
        raise_on_error=False,
    )
    # Buffered: dbt holds DuckDB's write lock until it exits, and the spend metadata below
    # reads the warehouse.
    events = list(invocation.stream())
    checks = sum(isinstance(e, AssetCheckResult) for e in events)
    log.info(
        "dbt build %s: %d models, %d checks, %s", window, len(events) - checks, checks,
        "ok" if invocation.is_successful() else "FAILED",
    )
    spend = _window_spend(settings, window, connections) if invocation.is_successful() else None
    for event in events:
        key = getattr(event, "asset_key", None) or _output_key(context, event)
        if spend is not None and key == SPEND_MART and isinstance(event, (Output, MaterializeResult)):
            event = event.with_metadata({**(event.metadata or {}), **spend})
        yield event
    if not invocation.is_successful():
        invocation.wait()  # raises with dbt's own error summary
    store = ConnectionStore(settings)
    for connection in connections:
        store.mark_synced(connection, datetime.now(UTC), window)


def _output_key(context: AssetExecutionContext, event: Any) -> AssetKey | None:
    if isinstance(event, Output):
        return context.assets_def.keys_by_output_name.get(event.output_name)
    return None


def _window_spend(settings, window, connections) -> dict[str, Any]:
    with read_warehouse(settings) as con:
        total, rows = con.execute(
            """
            select coalesce(sum(cost_usd), 0), count(*) from marts.fct_spend_daily
            where date >= ? and date < ? and list_contains(?, connection)
            """,
            [window.start, window.end, connections],
        ).fetchall()[0]
    return {"window_cost_usd": float(total), "window_rows": int(rows)}
