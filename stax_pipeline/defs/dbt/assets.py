"""Transform assets: the dbt marts, built for exactly the window of the Dagster run.

Only the marts are Dagster assets. The staging and intermediate models are dbt's business: every
``dbt build`` rebuilds the ones the selected marts read, in the same invocation, and their tests
still run (a failing one fails the build). As assets they would cost Dagster events in every run
and tell the user nothing the marts do not: so each mart's lineage in the UI goes straight to the
raw dataset it reads (``raw_openai``), through the models in between, and the dbt tests of the
marts are the marts' asset checks.

The marts are not partitioned. A mart is one table of every connection and day, rebuilt by the
sync run for the run's window (its range of the ingest asset's day × connection partitions, which
Dagster runs with the unpartitioned marts in the same run). As day-partitioned assets they cost
one materialization per mart per day — fourteen of every fifteen events of a long sync, about
2.7 KB each, stored twice by Dagster's SQLite event log: 147 MB of Dagster storage for a
1,000-day sync of a small organization against its 29 MB warehouse — and their daily figures
repeated the ingest's. Which days are synced is the ingest asset's partitions (and the credential
store's synced days, which the schedule reads). A backfill launched from the UI runs the marts
after the ingest's days, in a run without partitions: they rebuild the backfill's days. Materializing
the marts alone (no partitions, no backfill) rebuilds them from the raw data for every day.
"""

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    multi_asset,
)

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.dbt.mart_figures import MartFigures, mart_figures
from stax_pipeline.defs.dbt.project import DBT_PROJECT_DIR, load_manifest
from stax_pipeline.defs.partitions import WAREHOUSE_POOL
from stax_pipeline.lib.dbt import DbtBuild, dbt_for_run
from stax_pipeline.lib.serving import publish_marts
from stax_pipeline.lib.timings import record_phase, timed
from stax_pipeline.lib.warehouse import wait_for_warehouse
from stax_pipeline.lib.window import dbt_vars, run_days
from stax_pipeline.settings import Settings, load_settings

log = logging.getLogger(__name__)

MARTS_SCHEMA = "marts"

_MODEL_TYPES = ("model", "seed", "snapshot")


def _schema(node: Mapping[str, Any]) -> str:
    return node.get("config", {}).get("schema") or node["schema"]


def _is_mart(node: Mapping[str, Any]) -> bool:
    return node["resource_type"] in _MODEL_TYPES and _schema(node) == MARTS_SCHEMA


def _mart_key(node: Mapping[str, Any]) -> AssetKey:
    """``marts/<model>``: the relation's name in the warehouse (and in marts.duckdb)."""
    return AssetKey([MARTS_SCHEMA, node["name"]])


def _asset_parents(manifest: Mapping[str, Any], unique_id: str) -> list[AssetKey]:
    """The assets a mart reads: the raw datasets (a dbt source ``raw_openai.costs`` is the ingest
    asset ``raw_openai``) and the marts, seen through the staging and intermediate models."""
    found: dict[AssetKey, None] = {}
    todo = list(manifest["parent_map"].get(unique_id, []))
    seen: set[str] = set()
    while todo:
        parent = todo.pop(0)
        if parent in seen:
            continue
        seen.add(parent)
        node = manifest["sources"].get(parent) or manifest["nodes"].get(parent)
        if node is None:
            continue
        if node["resource_type"] == "source":
            found[AssetKey([node["source_name"]])] = None
        elif _is_mart(node):
            found[_mart_key(node)] = None
        else:
            todo += manifest["parent_map"].get(parent, [])
    return list(found)


def _attached_model(manifest: Mapping[str, Any], test: Mapping[str, Any]) -> str | None:
    """The model a dbt test checks: a generic test's own, a singular test's only parent, or the
    model its ``meta.dagster.ref`` names (a test over several models says which it belongs to)."""
    if test.get("attached_node"):
        return test["attached_node"]
    parents = set(test["depends_on"]["nodes"])
    if len(parents) == 1:
        return next(iter(parents))
    meta = test.get("config", {}).get("meta") or test.get("meta") or {}
    ref = meta.get("dagster", {}).get("ref", {})
    for unique_id, node in manifest["nodes"].items():
        if ref and node["name"] == ref.get("name") and node["resource_type"] in _MODEL_TYPES:
            return unique_id
    return None


def _mart_specs(
    manifest: Mapping[str, Any],
) -> tuple[list[AssetSpec], list[AssetCheckSpec], dict[str, AssetKey], dict[str, AssetCheckKey]]:
    """From the manifest: a spec per mart, a check spec per test of a mart, and the asset (and
    check) key of each dbt unique id."""
    specs: list[AssetSpec] = []
    keys: dict[str, AssetKey] = {}
    for unique_id, node in sorted(manifest["nodes"].items()):
        if not _is_mart(node):
            continue
        keys[unique_id] = _mart_key(node)
        specs.append(
            AssetSpec(
                key=keys[unique_id],
                deps=_asset_parents(manifest, unique_id),
                description=node.get("description") or None,
                group_name=MARTS_SCHEMA,
                kinds={"dbt", "duckdb"},
                metadata={
                    "dbt_unique_id": unique_id,
                    "materialized": node.get("config", {}).get("materialized", ""),
                    "relation": f"{MARTS_SCHEMA}.{node['name']}",
                },
            )
        )
    check_specs: list[AssetCheckSpec] = []
    checks: dict[str, AssetCheckKey] = {}
    for unique_id, node in sorted(manifest["nodes"].items()):
        if node["resource_type"] != "test":
            continue
        attached = _attached_model(manifest, node)
        if attached not in keys:
            continue  # a test of a staging model: it still runs in the build, as dbt's own
        spec = AssetCheckSpec(
            name=node["name"], asset=keys[attached], description=node.get("description") or None
        )
        checks[unique_id] = spec.key
        check_specs.append(spec)
    return specs, check_specs, keys, checks


_SPECS, _CHECK_SPECS, _MART_KEYS, _CHECK_KEYS = _mart_specs(load_manifest())


@multi_asset(
    name="stax_dbt_assets",
    specs=_SPECS,
    check_specs=_CHECK_SPECS,
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def stax_dbt_assets(context: AssetExecutionContext) -> Iterator[Any]:
    """``dbt build`` of the selected marts and every model they read, for the run's window (in
    ``STAX_DBT_WINDOW``): incremental models delete and re-insert exactly those (connection,
    day)s (``lib/window.run_days``: a sync run's range, a UI backfill's days, or every day).
    Then the marts are published, and each mart's materialization carries its figures (the last
    one built, the publish's too)."""
    settings = load_settings()
    wait_for_warehouse(settings)
    days = run_days(context)
    window, connections = (days.window, days.connections) if days else (None, [])
    dbt = dbt_for_run(settings, context.run.run_id, DBT_PROJECT_DIR)  # started early, if it was
    with timed() as elapsed:
        build = dbt.build(dbt_vars(window, connections) if window else {}, _dbt_selection(context))
    _record_phase(settings, context, connections, "dbt", elapsed[0])
    log.info(
        "dbt build %s: %d nodes, %s",
        window or "of every day",
        len(build.results),
        "ok" if build.success else "FAILED",
    )
    # each mart's rows and dollars in what the build rebuilt
    figures = mart_figures(settings, window, connections) if build.success else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stax-publish") as pool:
        # BI tools read this published copy, never the warehouse. DuckDB writes it on its own
        # threads while this one records the materializations (Dagster's Python): they overlap.
        publishing = pool.submit(publish_marts, settings) if figures is not None else None
        events = list(_build_events(context, build, figures))
        # The last mart built (nothing yielded before it reads it, as Dagster requires) carries
        # the publish's figures: its events wait for the publish, the others do not.
        built = [e.asset_key for e in events if isinstance(e, MaterializeResult)]
        last = built[-1] if built and publishing is not None else None
        yield from (e for e in events if e.asset_key != last)
        if publishing is not None:
            published = publishing.result()
            _record_phase(settings, context, connections, "publish", published.seconds)
            for event in (e for e in events if e.asset_key == last):
                if isinstance(event, MaterializeResult):
                    metadata = {**(event.metadata or {}), **published.metadata()}
                    event = MaterializeResult(asset_key=event.asset_key, metadata=metadata)
                yield event
    if not build.success:
        raise DbtBuildError(build.error())
    if days is None:
        return  # nothing was pulled: no connection's days are newly synced
    store, now = ConnectionStore(settings), datetime.now(UTC)
    for connection, synced in days.synced.items():
        for part in synced:
            store.mark_synced(connection, now, part)


class DbtBuildError(Exception):
    """``dbt build`` failed: the failed nodes and dbt's message, then its last console lines."""


def _build_events(
    context: AssetExecutionContext, build: DbtBuild, figures: MartFigures | None
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """A materialization per selected mart the build made (with its figures, if the build
    succeeded), and a check result per selected test of a mart that ran, in dbt's order."""
    selected_checks = context.selected_asset_check_keys
    for result in build.results:
        unique_id = result["unique_id"]
        key = _MART_KEYS.get(unique_id)
        if key is not None and key in context.selected_asset_keys and result["status"] == "success":
            metadata = {"unique_id": unique_id, "execution_seconds": float(result.get("execution_time") or 0)}
            if figures is not None and key in figures:
                metadata.update(figures[key])
            yield MaterializeResult(asset_key=key, metadata=metadata)
        check = _CHECK_KEYS.get(unique_id)
        if (
            check is not None
            and check in selected_checks
            and result["status"] in ("pass", "warn", "fail", "error")
        ):
            yield _check_result(check, result)


def _record_phase(
    settings: Settings, context: AssetExecutionContext, connections: list[str], phase: str, seconds: float
) -> None:
    """The run's time in ``phase``, once per connection it synced (``timings.jsonl``)."""
    for connection in connections:
        record_phase(settings, run_id=context.run.run_id, connection=connection, phase=phase, seconds=seconds)


def _dbt_selection(context: AssetExecutionContext) -> list[str]:
    """Every model when the run builds every mart (all models feed one); else the selected marts
    and what they read (``+model``)."""
    selected = context.selected_asset_keys
    if selected >= set(_MART_KEYS.values()):
        return []
    return sorted(f"+{key.path[-1]}" for key in selected)


def _check_result(check: AssetCheckKey, result: Mapping[str, Any]) -> AssetCheckResult:
    """A dbt test's result as its asset check's: passed or not, a warning or an error."""
    status = result["status"]
    return AssetCheckResult(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=status == "pass",
        severity=AssetCheckSeverity.WARN if status == "warn" else AssetCheckSeverity.ERROR,
        metadata={
            "unique_id": result["unique_id"],
            "status": status,
            "failures": int(result.get("failures") or 0),
            **({"message": str(result["message"])} if result.get("message") else {}),
        },
    )
