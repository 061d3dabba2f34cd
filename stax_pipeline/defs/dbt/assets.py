"""Transform assets: the dbt project, run for exactly the window of the Dagster run."""


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
from stax_pipeline.defs.dbt.mart_figures import mart_figures
from stax_pipeline.defs.dbt.project import ensure_manifest, stax_dbt_project
from stax_pipeline.defs.partitions import WAREHOUSE_POOL, single_run, sync_partitions
from stax_pipeline.lib.dbt import dbt_run_dir, window_in_environment
from stax_pipeline.lib.serving import publish_marts
from stax_pipeline.lib.timings import record_phase, timed
from stax_pipeline.lib.warehouse import wait_for_warehouse
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
    """``dbt build`` of the selected models for the run's window (in ``STAX_DBT_WINDOW``):
    incremental models delete and re-insert exactly those (connection, day)s."""
    settings = load_settings()
    wait_for_warehouse(settings)
    window, connections = window_from_context(context)
    with dbt_run_dir(settings, context.run.run_id) as target, timed() as elapsed:
        with window_in_environment(dbt_vars(window, connections)):
            # Unit tests check the SQL, not the data: they run in the test suite, not in syncs.
            invocation = dbt.cli(
                ["build", "--exclude-resource-type", "unit_test"],
                context=context,
                raise_on_error=False,
                target_path=target,
            )
        # Buffered: dbt holds DuckDB's write lock until it exits, and the spend metadata below
        # reads the warehouse.
        events = list(invocation.stream())
    for connection in connections:
        record_phase(
            settings, run_id=context.run.run_id, connection=connection, phase="dbt",
            seconds=elapsed[0],
        )  # fmt: skip
    checks = sum(isinstance(e, AssetCheckResult) for e in events)
    log.info(
        "dbt build %s: %d models, %d checks, %s", window, len(events) - checks, checks,
        "ok" if invocation.is_successful() else "FAILED",
    )
    # each day of each mart: its rows and dollars (the UI plots them per partition)
    figures = mart_figures(settings, window, connections) if invocation.is_successful() else None
    if figures is not None:  # BI tools read this published copy, never the warehouse
        published = publish_marts(settings)
        if SPEND_MART in figures:  # the publish's figures ride on the spend mart
            figures.window[SPEND_MART].update(published.metadata())
        for connection in connections:
            record_phase(
                settings, run_id=context.run.run_id, connection=connection, phase="publish",
                seconds=published.seconds,
            )  # fmt: skip
    for event in events:
        key = getattr(event, "asset_key", None) or _output_key(context, event)
        if figures is not None and key in figures and isinstance(event, (Output, MaterializeResult)):
            event = figures.attach(context, key, event)
        yield event
    if not invocation.is_successful():
        raise invocation.get_error()  # dbt's own error summary (wait() does not raise here)
    store = ConnectionStore(settings)
    for connection in connections:
        store.mark_synced(connection, datetime.now(UTC), window)


def _output_key(context: AssetExecutionContext, event: Any) -> AssetKey | None:
    if isinstance(event, Output):
        return context.assets_def.keys_by_output_name.get(event.output_name)
    return None
