"""dlt source for the OpenAI Admin API: costs, every usage endpoint, projects and their API keys.

The window is explicit: the caller passes UTC days [start, end). The source keeps no cursor
or state of its own, so a backfill, a re-run or a retry can never skip or corrupt days.

Every costs/usage table is append-only: each sync is a full snapshot of the days it pulled,
its rows tagged with the sync's ``sync_id``. Only after those rows are loaded does
:func:`sync_windows` record one row per (resource, day) — even for a day the API returned nothing
for — as the commit marker. Staging reads, for each (connection, resource, day), only the rows of
the latest recorded sync: a row the API stopped returning disappears, nothing is counted twice,
a load that failed half-way stays invisible, and the history of restated days is kept.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.resource import DltResource

from stax_pipeline.lib.arrow import concat_batches, results_to_arrow
from stax_pipeline.lib.http import HttpError
from stax_pipeline.lib.window import is_final
from stax_pipeline.sources.contract import LoadStats, SyncRequest
from stax_pipeline.sources.openai_admin.helpers import OpenAIAdminClient, bucket_day
from stax_pipeline.sources.openai_admin.settings import (
    COSTS_COLUMNS,
    COSTS_FALLBACK_GROUP_BY,
    COSTS_GROUP_BY,
    COSTS_PAGE_LIMIT,
    COSTS_PATH,
    PROJECT_API_KEYS_COLUMNS,
    PROJECTS_COLUMNS,
    SYNC_WINDOWS_COLUMNS,
    SYNC_WINDOWS_TABLE,
    USAGE_ENDPOINTS,
    USAGE_MAX_LIMIT_1D,
    UsageEndpoint,
    usage_columns,
)

log = logging.getLogger(__name__)


@dlt.source(name="openai_admin", max_table_nesting=1)
def openai_admin_source(
    client: OpenAIAdminClient | None = None,
    request: SyncRequest | None = None,
    stats: LoadStats | None = None,
) -> list[DltResource]:
    """The OpenAI Admin API as dlt resources.

    Args:
        client: API client for the connection's admin key (None only to describe the resources).
        request: the connection and the window to pull.
        stats: filled with row counts and per-day cost totals as rows are yielded.

    Returns:
        ``costs`` (table ``costs``: one row per bucket × project × line item × API key),
        ``usage_<endpoint>`` for every usage endpoint (one row per bucket × grouped dimensions),
        ``sync_windows`` (empty here: see :func:`sync_windows`), ``projects`` (merged on
        connection + id, archived ones included) and ``project_api_keys`` (every listed key of
        each of those projects, merged on connection + project_id + id). Bucketed rows carry
        ``connection``, ``date`` (UTC day), ``loaded_at`` and ``sync_id``.

    The bucketed resources yield Arrow tables of at most :data:`ARROW_BATCH_ROWS` rows as pages
    arrive, so dlt writes them to Parquet without its row-by-row normalizer and a window's rows
    are never all in memory at once. They are ``parallelized``: dlt pulls the endpoints
    concurrently on its bounded extract thread pool, so a sync waits about as long as its slowest
    endpoint, not the sum of all of them.
    """
    stats = stats if stats is not None else LoadStats()
    # One per source, not per process: a load that fails or is abandoned half-way (its generator
    # never closed) can then never leave the turn held for the next connection's load.
    large_pages = threading.BoundedSemaphore(1)
    resources = [
        dlt.resource(
            _costs(client, request, stats, large_pages),
            name="costs",
            write_disposition="append",
            columns=COSTS_COLUMNS,
            parallelized=True,
        )
    ]
    for endpoint in USAGE_ENDPOINTS:
        resources.append(
            dlt.resource(
                _usage(client, request, stats, endpoint, large_pages),
                name=endpoint.table,
                write_disposition="append",
                columns=usage_columns(endpoint),
                parallelized=True,
            )
        )
    # Declared (empty) so it is an asset of the source; its rows come from sync_windows() in a
    # second load, after the data load succeeded.
    resources.append(_sync_windows_resource([]))
    projects = dlt.resource(
        _projects(client, request, stats),
        name="projects",
        write_disposition="merge",
        primary_key=("connection", "id"),
        columns=PROJECTS_COLUMNS,
    )
    resources.append(projects)
    resources.append(
        dlt.transformer(
            _project_api_keys(client, request, stats),
            data_from=projects,
            name="project_api_keys",
            write_disposition="merge",
            primary_key=("connection", "project_id", "id"),
            columns=PROJECT_API_KEYS_COLUMNS,
        )
    )
    return resources


def _require(client: OpenAIAdminClient | None, request: SyncRequest | None):
    if client is None or request is None:
        raise ValueError("openai_admin_source needs a client and a request to extract data")
    return client, request


# The endpoints whose pages are by far the largest (a large organization's 30 days are one
# page of ~300k cost rows, ~100k completions rows). A parsed page is all in memory at once, so
# these take turns (on the source's `large_pages` semaphore); the small endpoints still overlap.
_LARGE_PAGE_TABLES = ("costs", "usage_completions")


def _costs(client, request, stats: LoadStats, large_pages: threading.Semaphore) -> Iterator[Any]:
    client, request = _require(client, request)
    yield dlt.mark.materialize_table_schema()  # the table exists even if no day had costs
    with large_pages:
        buckets = _pull(
            client,
            request,
            stats,
            "costs",
            COSTS_PATH,
            COSTS_PAGE_LIMIT,
            (COSTS_GROUP_BY, COSTS_FALLBACK_GROUP_BY),
            required=True,
        )
        tables = _bucket_tables(buckets, request, "costs", stats, COSTS_COLUMNS, _AMOUNT)
        yield from concat_batches(_count_costs(stats, day, table) for day, table in tables)
    if stats.on_biggest_page_done is not None:  # costs: the biggest page by far
        stats.on_biggest_page_done()


# A costs result's ``amount`` object becomes ``amount__value``/``amount__currency`` (the names
# dlt's JSON normalizer gave them).
_AMOUNT = {"amount__value": ("amount", "value"), "amount__currency": ("amount", "currency")}


def _count_costs(stats: LoadStats, day: date, table: pa.Table) -> pa.Table:
    """Count a day's cost rows and dollars, and learn the organization they were billed to."""
    stats.cost_rows_by_day[day] += table.num_rows
    stats.cost_usd_by_day[day] += pc.call_function("sum", [table.column("amount__value")]).as_py() or 0.0
    for organization in table.column("organization_id").unique().to_pylist():
        if organization and organization not in stats.organization_ids:
            stats.organization_ids.add(organization)
            if stats.on_organization is not None:
                stats.on_organization(organization)
    return table


def _usage(
    client, request, stats: LoadStats, endpoint: UsageEndpoint, large_pages: threading.Semaphore
) -> Iterator[Any]:
    client, request = _require(client, request)
    yield dlt.mark.materialize_table_schema()
    with large_pages if endpoint.table in _LARGE_PAGE_TABLES else contextlib.nullcontext():
        buckets = _pull(
            client,
            request,
            stats,
            endpoint.table,
            endpoint.path,
            USAGE_MAX_LIMIT_1D,
            (endpoint.group_by, endpoint.fallback_group_by),
            required=False,
        )
        tables = _bucket_tables(buckets, request, endpoint.table, stats, usage_columns(endpoint))
        yield from concat_batches(table for _, table in tables)


def _pull(client, request, stats, table, path, limit, groupings, *, required) -> Iterator[dict]:
    """Every bucket of ``path`` for the window, grouped as finely as the API accepts, as pages
    arrive.

    The API refuses a grouping (HTTP 400) on the first page, before any bucket was yielded; only
    then is the next, coarser grouping tried, so a fallback can never duplicate rows. A refusal
    after rows were yielded fails the load (and its sync stays invisible: no commit marker).
    A usage endpoint the API does not have (404) is skipped — and recorded as skipped, so no
    commit marker claims its days are empty; costs are never skipped.
    """
    groupings = list(dict.fromkeys(groupings))  # the fallback may equal the full grouping
    for i, group_by in enumerate(groupings):
        yielded = False
        try:
            for bucket in client.iter_buckets(
                path,
                start=request.window.start,
                end=request.window.end,
                limit=limit,
                group_by=group_by,
            ):
                yielded = True
                yield bucket
            return
        except HttpError as exc:
            if yielded:
                raise
            if exc.status == 404 and not required:
                note = f"{table}: {path} is not available at this API (HTTP 404); skipped"
            elif exc.status == 400 and i + 1 < len(groupings):
                dropped = ", ".join(d for d in group_by if d not in groupings[i + 1])
                note = (
                    f"{table}: the API refused group_by={dropped} (HTTP 400: {exc.api_message}); "
                    f"pulled without it, so {dropped} is null"
                )
            else:
                raise
            log.warning(note)
            stats.notes.append(note)
            if exc.status == 404:
                stats.skipped.add(table)
                return


def _projects(client, request, stats: LoadStats) -> Iterator[dict[str, Any]]:
    client, request = _require(client, request)
    for project in client.iter_projects():
        stats.rows["projects"] += 1
        yield {**project, "connection": request.connection, "loaded_at": request.loaded_at}


def _project_api_keys(client, request, stats: LoadStats):
    """The keys of each project the ``projects`` resource yields, as a dlt transformer function.

    A project whose key listing is gone (HTTP 404: deleted while the sync ran) is skipped with a
    note; its keys that still appear in costs stay in the marts as deleted keys.
    """

    def keys_of(project: dict[str, Any]) -> Iterator[dict[str, Any]]:
        client_, request_ = _require(client, request)
        try:
            for key in client_.iter_project_api_keys(project["id"]):
                stats.rows["project_api_keys"] += 1
                yield {
                    **_flatten_owner(key),
                    "project_id": project["id"],
                    "connection": request_.connection,
                    "loaded_at": request_.loaded_at,
                }
        except HttpError as exc:
            if exc.status != 404:
                raise
            note = f"project_api_keys: project {project['id']} has no key listing (HTTP 404); skipped"
            log.warning(note)
            stats.notes.append(note)

    return keys_of


def _flatten_owner(key: dict[str, Any]) -> dict[str, Any]:
    """``owner`` as flat ``owner__*`` columns: its ``type`` and the id and name of the object
    that type names (``user`` or ``service_account``). Other owner fields (e.g. a user's email)
    are not kept."""
    row = dict(key)
    owner = row.pop("owner", None) or {}
    row["owner__type"] = owner.get("type")
    for kind in ("user", "service_account"):
        who = owner.get(kind) or {}
        row[f"owner__{kind}__id"] = who.get("id")
        row[f"owner__{kind}__name"] = who.get("name")
    return row


def _bucket_tables(
    buckets, request: SyncRequest, table: str, stats: LoadStats, columns, nested=None
) -> Iterator[tuple[date, pa.Table]]:
    """Each bucket's results as one Arrow table (with its UTC day), its rows carrying the
    connection, the day, the bucket's bounds, the load time and the sync id."""
    for bucket in buckets:
        start_time = int(bucket["start_time"])
        day = bucket_day(start_time)
        if not request.window.start <= day < request.window.end:
            log.warning("%s: ignoring a bucket outside the window (%s)", table, day)
            continue
        results = bucket.get("results") or []
        if not results:
            continue
        stats.rows[table] += len(results)
        constants = {
            "connection": request.connection,
            "date": day,
            "bucket_start_time": start_time,
            "bucket_end_time": int(bucket["end_time"]),
            "loaded_at": request.loaded_at,
            "sync_id": request.sync_id,
        }
        yield day, results_to_arrow(results, constants, columns, nested)


def sync_windows(request: SyncRequest, tables: list[str]) -> DltResource:
    """The commit marker of a sync: one row per (table, day) of its window.

    Load it only after the data load succeeded; staging ignores rows of a sync without it.
    """
    rows = [
        {
            "connection": request.connection,
            "resource": table,
            "date": day,
            "is_final": is_final(day, request.loaded_at, request.lookback_days),
            "loaded_at": request.loaded_at,
            "sync_id": request.sync_id,
        }
        for table in tables
        for day in request.window.days()
    ]
    return _sync_windows_resource(rows)


def _sync_windows_resource(rows: list[dict[str, Any]]) -> DltResource:
    return dlt.resource(
        rows, name=SYNC_WINDOWS_TABLE, write_disposition="append", columns=SYNC_WINDOWS_COLUMNS
    )


# Listings (no days, merged): synced with every window, never in its commit marker.
LISTING_RESOURCES = ("projects", "project_api_keys")
DATA_RESOURCES = ("costs", *(e.table for e in USAGE_ENDPOINTS), *LISTING_RESOURCES)


__all__ = [
    "DATA_RESOURCES",
    "LISTING_RESOURCES",
    "LoadStats",
    "OpenAIAdminClient",
    "SyncRequest",
    "openai_admin_source",
    "sync_windows",
]
