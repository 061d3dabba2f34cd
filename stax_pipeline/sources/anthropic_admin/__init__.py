"""dlt source for the Anthropic Admin API: the cost report, the messages usage report, workspaces
and API keys.

The same guarantees as ``sources/openai_admin``, by the same means: the window is explicit (UTC
days [start, end), no cursor or state of its own); the report tables are append-only snapshots
tagged with the sync's ``sync_id``; only after they loaded does :func:`sync_windows` record one
row per (table, day) as the commit marker, and staging reads only the latest recorded sync of each
(connection, day). Rows go to dlt as Arrow batches (``lib/arrow.py``).

Money: the cost report's ``amount`` is a decimal string in cents. It lands as sent (``amount``)
and in dollars (``amount_usd``), converted with Decimal arithmetic and landed as a DECIMAL column,
so no float ever touches it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from stax_pipeline.lib.arrow import batches_as_arrow
from stax_pipeline.lib.http import HttpError
from stax_pipeline.lib.window import is_final
from stax_pipeline.sources.anthropic_admin.helpers import (
    AnthropicAdminClient,
    bucket_day,
    cents_to_dollars,
    unix_seconds,
)
from stax_pipeline.sources.anthropic_admin.settings import (
    API_KEYS_COLUMNS,
    COST_GROUP_BY,
    COST_REPORT_COLUMNS,
    COST_REPORT_PATH,
    COST_REPORT_TABLE,
    DATASET_NAME,
    MAX_BUCKETS_PER_PAGE,
    SYNC_WINDOWS_COLUMNS,
    SYNC_WINDOWS_TABLE,
    USAGE_FALLBACK_GROUP_BYS,
    USAGE_GROUP_BY,
    USAGE_MESSAGES_COLUMNS,
    USAGE_MESSAGES_PATH,
    USAGE_MESSAGES_TABLE,
    WORKSPACES_COLUMNS,
)

# The shared shapes of a load request and its statistics (the seam may move them to a shared
# module; they are the same classes the OpenAI source uses).
from stax_pipeline.sources.contract import LoadStats, SyncRequest

log = logging.getLogger(__name__)


@dlt.source(name="anthropic_admin", max_table_nesting=1)
def anthropic_admin_source(
    client: AnthropicAdminClient | None = None,
    request: SyncRequest | None = None,
    stats: LoadStats | None = None,
) -> list[DltResource]:
    """The Anthropic Admin API as dlt resources.

    Args:
        client: API client for the connection's admin key (None only to describe the resources).
        request: the connection and the window to pull.
        stats: filled with row counts and per-day dollar totals as rows are yielded.

    Returns:
        ``cost_report`` (one row per day × workspace × description), ``usage_messages`` (one row
        per day × model × workspace × API key × service tier × context window × inference geo),
        ``sync_windows`` (empty here: see :func:`sync_windows`), ``workspaces`` (merged on
        connection + id, archived and default included) and ``api_keys`` (merged on
        connection + id). Report rows carry ``connection``, ``date`` (UTC day),
        ``bucket_start_time``/``bucket_end_time`` (unix seconds), ``loaded_at`` and ``sync_id``.
    """
    stats = stats if stats is not None else LoadStats()
    return [
        dlt.resource(
            _cost_report(client, request, stats),
            name=COST_REPORT_TABLE,
            write_disposition="append",
            columns=COST_REPORT_COLUMNS,
            parallelized=True,
        ),
        dlt.resource(
            _usage_messages(client, request, stats),
            name=USAGE_MESSAGES_TABLE,
            write_disposition="append",
            columns=USAGE_MESSAGES_COLUMNS,
            parallelized=True,
        ),
        _sync_windows_resource([]),
        dlt.resource(
            _listing(client, request, stats, "workspaces"),
            name="workspaces",
            write_disposition="merge",
            primary_key=("connection", "id"),
            columns=WORKSPACES_COLUMNS,
        ),
        dlt.resource(
            _listing(client, request, stats, "api_keys"),
            name="api_keys",
            write_disposition="merge",
            primary_key=("connection", "id"),
            columns=API_KEYS_COLUMNS,
        ),
    ]


def _require(client: AnthropicAdminClient | None, request: SyncRequest | None):
    if client is None or request is None:
        raise ValueError("anthropic_admin_source needs a client and a request to extract data")
    return client, request


def _cost_report(client, request, stats: LoadStats) -> Iterator[Any]:
    client, request = _require(client, request)
    yield dlt.mark.materialize_table_schema()  # the table exists even if no day had costs
    buckets = client.iter_buckets(
        COST_REPORT_PATH,
        start=request.window.start,
        end=request.window.end,
        limit=MAX_BUCKETS_PER_PAGE,
        group_by=COST_GROUP_BY,
    )
    rows = _bucket_rows(buckets, request, COST_REPORT_TABLE, stats, _in_dollars(stats))
    yield from batches_as_arrow(rows, COST_REPORT_COLUMNS)


def _in_dollars(stats: LoadStats):
    """Adds ``amount_usd`` (exact dollars from the cents string) to a cost row and counts the row
    and its dollars in its day's totals (summed exactly; the float in ``stats`` is for display)."""
    exact: dict[Any, Decimal] = defaultdict(Decimal)

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        dollars = cents_to_dollars(row.get("amount"))
        row["amount_usd"] = dollars
        day = row["date"]
        stats.cost_rows_by_day[day] += 1
        if dollars is not None:
            exact[day] += dollars
            stats.cost_usd_by_day[day] = float(exact[day])
        return row

    return convert


def _usage_messages(client, request, stats: LoadStats) -> Iterator[Any]:
    client, request = _require(client, request)
    yield dlt.mark.materialize_table_schema()
    buckets = _grouped_as_finely_as_accepted(
        client, request, stats, USAGE_MESSAGES_PATH, (USAGE_GROUP_BY, *USAGE_FALLBACK_GROUP_BYS)
    )
    rows = _bucket_rows(buckets, request, USAGE_MESSAGES_TABLE, stats, _flatten_usage)
    yield from batches_as_arrow(rows, USAGE_MESSAGES_COLUMNS)


def _grouped_as_finely_as_accepted(client, request, stats: LoadStats, path: str, groupings) -> Iterator[dict]:
    """Every bucket of ``path`` for the window, grouped by the first grouping the API accepts.

    The API refuses a grouping (HTTP 400) on the first page, before any bucket was yielded; only
    then is the next, coarser one tried, so a fallback can never duplicate rows. A refusal after
    rows were yielded fails the load (its sync stays invisible: no commit marker).
    """
    for i, group_by in enumerate(groupings):
        yielded = False
        try:
            for bucket in client.iter_buckets(
                path,
                start=request.window.start,
                end=request.window.end,
                limit=MAX_BUCKETS_PER_PAGE,
                group_by=group_by,
            ):
                yielded = True
                yield bucket
            return
        except HttpError as exc:
            if yielded or exc.status != 400 or i + 1 == len(groupings):
                raise
            dropped = ", ".join(d for d in group_by if d not in groupings[i + 1])
            note = (
                f"{USAGE_MESSAGES_TABLE}: the API refused group_by[]={dropped} (HTTP 400: "
                f"{exc.api_message}); pulled without it, so {dropped} is null"
            )
            log.warning(note)
            stats.notes.append(note)


def _flatten_usage(row: dict[str, Any]) -> dict[str, Any]:
    """``cache_creation`` and ``server_tool_use`` as flat ``<object>__<field>`` columns (the names
    dlt's normalizer would give them); a field the API adds to either is kept the same way."""
    for nested in ("cache_creation", "server_tool_use"):
        for name, value in (row.pop(nested, None) or {}).items():
            row[f"{nested}__{name}"] = value
    return row


def _listing(client, request, stats: LoadStats, table: str) -> Iterator[dict[str, Any]]:
    client, request = _require(client, request)
    listed = client.iter_workspaces() if table == "workspaces" else client.iter_api_keys()
    for item in listed:
        stats.rows[table] += 1
        row = dict(item)
        created_by = row.pop("created_by", None)
        if table == "api_keys":
            created_by = created_by or {}
            row["created_by__id"] = created_by.get("id")
            row["created_by__type"] = created_by.get("type")
        yield {**row, "connection": request.connection, "loaded_at": request.loaded_at}


def _bucket_rows(buckets, request: SyncRequest, table: str, stats: LoadStats, transform):
    """Flatten buckets into rows carrying the connection, the UTC day, the bucket bounds in unix
    seconds, the load time and the sync id."""
    for bucket in buckets:
        day = bucket_day(bucket["starting_at"])
        if not request.window.start <= day < request.window.end:
            log.warning("%s: ignoring a bucket outside the window (%s)", table, day)
            continue
        start_time, end_time = unix_seconds(bucket["starting_at"]), unix_seconds(bucket["ending_at"])
        for result in bucket.get("results") or []:
            stats.rows[table] += 1
            yield transform(
                {
                    **result,
                    "connection": request.connection,
                    "date": day,
                    "bucket_start_time": start_time,
                    "bucket_end_time": end_time,
                    "loaded_at": request.loaded_at,
                    "sync_id": request.sync_id,
                }
            )


def sync_windows(request: SyncRequest, tables: list[str]) -> DltResource:
    """The commit marker of a sync: one row per (table, day) of its window, in
    ``raw_anthropic.sync_windows``. Load it only after the data load succeeded."""
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
LISTING_RESOURCES = ("workspaces", "api_keys")
DATA_RESOURCES = (COST_REPORT_TABLE, USAGE_MESSAGES_TABLE, *LISTING_RESOURCES)


__all__ = [
    "DATASET_NAME",
    "DATA_RESOURCES",
    "LISTING_RESOURCES",
    "AnthropicAdminClient",
    "LoadStats",
    "SyncRequest",
    "anthropic_admin_source",
    "sync_windows",
]
