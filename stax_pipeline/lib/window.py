"""The one place that knows the sync window: UTC days [start, end), and how it reaches Dagster
tags, the dlt source and dbt vars."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from stax_pipeline.errors import UsageError
from stax_pipeline.settings import BACKFILL_DAYS

# Dagster is imported inside the helpers that speak to it, so the dlt source (and the CLI's
# quick commands) can use the window without loading Dagster.

CONNECTION_DIM = "connection"
DATE_DIM = "date"
# The first day partitions exist for (and `stax sync --start` accepts): no provider reports before.
FIRST_DAY = "2023-01-01"


@dataclass(frozen=True)
class SyncWindow:
    """UTC days [start, end): ``start`` inclusive, ``end`` exclusive."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start} .. {self.end}")

    @classmethod
    def inclusive(cls, first: date, last: date) -> SyncWindow:
        """The window of the days ``first`` to ``last``, both included."""
        return cls(first, last + timedelta(days=1))

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def num_days(self) -> int:
        return (self.end - self.start).days

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.num_days)]

    def __str__(self) -> str:
        return f"{self.start}..{self.last}"


def nightly_window(today: date, lookback_days: int) -> SyncWindow:
    """Yesterday plus the ``lookback_days`` closed days before it (providers revise them)."""
    return SyncWindow(today - timedelta(days=1 + lookback_days), today)


def is_final(day: date, pulled_at: datetime, lookback_days: int) -> bool:
    """Whether ``day``, pulled at ``pulled_at``, will not be pulled again by the nightly sync:
    it is no later than the first day of that night's window (its last pull), or older."""
    return day <= nightly_window(pulled_at.date(), lookback_days).start


def backfill_window(today: date, days: int = BACKFILL_DAYS) -> SyncWindow:
    """The ``days`` closed days before ``today``: what a new connection gets first."""
    return SyncWindow(today - timedelta(days=days), today)


def catch_up_window(today: date, synced_days: Iterable[date], lookback_days: int) -> SyncWindow:
    """The days a plain sync of one connection covers: from the earliest day it is missing to
    yesterday, so nights the daemon or the laptop was off are filled by the next run.

    A connection that never synced a closed day gets its first days (:func:`backfill_window`).
    Otherwise the window starts at the first day missing since its first synced day — the day
    after its last synced day when its history has no hole — or at the nightly window's start
    (yesterday minus the lookback: providers revise recent days), whichever is earlier.
    """
    nightly = nightly_window(today, lookback_days)
    synced = {day for day in synced_days if day < today}  # today is still open: never "synced"
    if not synced:
        return backfill_window(today)
    first_missing = next(
        (day for day in SyncWindow(min(synced), today).days() if day not in synced), nightly.start
    )
    return SyncWindow(min(first_missing, nightly.start), today)


def check_sync_days(start: date | None, end: date | None, today: date) -> None:
    """Refuse ``--start``/``--end`` out of the days a sync can cover (UTC), or in the wrong order."""
    first_day = date.fromisoformat(FIRST_DAY)
    for flag, day in (("--start", start), ("--end", end)):
        if day is not None and day > today:
            raise UsageError(f"{flag} {day} is in the future (today is {today}, UTC)")
        if day is not None and day < first_day:
            raise UsageError(
                f"{flag} {day} is before the first supported day {first_day} (no provider reports "
                "usage before it)"
            )
    if start is not None and end is not None and end < start:
        raise UsageError(f"--end {end} is before --start {start}")


# --- adapters: the window as Dagster partitions and as dbt vars -----------------------------------


def partition_key(connection: str, day: date) -> str:
    """The multi-partition key of one connection's day, e.g. ``acme|2026-10-01``."""
    from dagster import MultiPartitionKey

    return str(MultiPartitionKey({CONNECTION_DIM: connection, DATE_DIM: day.isoformat()}))


def range_run_tags(connection: str, window: SyncWindow) -> dict[str, str]:
    """Tags that make one Dagster run materialize the whole window for one connection."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    return {
        ASSET_PARTITION_RANGE_START_TAG: partition_key(connection, window.start),
        ASSET_PARTITION_RANGE_END_TAG: partition_key(connection, window.last),
        "stax/connection": connection,
        "stax/window": str(window),
    }


def window_from_context(context: Any) -> tuple[SyncWindow, list[str]]:
    """The window and the connections of a (possibly ranged) partitioned asset run.

    The days come from ``partition_time_window`` (never ``partition_key``, which a range run
    does not have); the connections from the run's partition keys.
    """
    time_window = context.partition_time_window
    window = SyncWindow(time_window.start.date(), time_window.end.date())
    connections = sorted({_dimension(key, CONNECTION_DIM) for key in context.partition_keys})
    return window, connections


@dataclass(frozen=True)
class RunDays:
    """What a run of the (unpartitioned) marts rebuilds, and which days of which connections it
    may then mark synced."""

    window: SyncWindow  # the days dbt rebuilds, for ``connections``
    synced: dict[str, list[SyncWindow]]  # per connection: exactly the days the run's data covers

    @property
    def connections(self) -> list[str]:
        return sorted(self.synced)


def run_days(context: Any) -> RunDays | None:
    """What a step of an asset that is not partitioned itself (the marts) rebuilds.

    - A sync run: its range, for its connections.
    - A run without partitions that a Dagster backfill launched (the UI's "Materialize" of days
      of the ingest asset with the marts: the backfill runs the marts after those days, in a run
      of their own): the days and connections the backfill targets of the partitioned assets.
      dbt rebuilds from their first to their last day (a superset if the UI picked days with
      gaps, or other days for another connection: rebuilding a day is idempotent), but only the
      days targeted are synced.
    - ``None`` for any other run without partitions (the marts materialized on their own): dbt
      rebuilds every day, and no day is newly synced.
    """
    if context.has_partition_key or context.has_partition_key_range:
        window, connections = window_from_context(context)
        return RunDays(window, {connection: [window] for connection in connections})
    return _backfill_days(context)


def _backfill_days(context: Any) -> RunDays | None:
    """The days of a backfill's marts run: the days the backfill targets, and — for a backfill
    the UI re-executed from failure, which targets only what did not materialize — the days its
    earlier attempts did land (their marts never ran: Dagster runs them after every day)."""
    from dagster._core.errors import DagsterDefinitionChangedDeserializationError
    from dagster._core.storage.tags import BACKFILL_ID_TAG, PARENT_BACKFILL_ID_TAG

    graph = context.job_def.asset_layer.asset_graph
    days: dict[str, set[date]] = {}
    backfill_id, attempt = context.run.tags.get(BACKFILL_ID_TAG), "target"
    while backfill_id:
        backfill = context.instance.get_backfill(backfill_id)
        if backfill is None or not backfill.is_asset_backfill:
            break
        try:
            data = backfill.get_asset_backfill_data(graph)
        except DagsterDefinitionChangedDeserializationError:
            return None  # the definitions changed since it was launched: rebuild every day
        subset = data.target_subset if attempt == "target" else data.materialized_subset
        for key, partitions in subset.partitions_subsets_by_asset_key.items():
            if graph.has(key) and _is_sync_partitioned(graph.get(key).partitions_def):
                for partition in partitions.get_partition_keys():
                    day = date.fromisoformat(_dimension(partition, DATE_DIM))
                    days.setdefault(_dimension(partition, CONNECTION_DIM), set()).add(day)
        backfill_id, attempt = backfill.tags.get(PARENT_BACKFILL_ID_TAG), "materialized"
    if not days:
        return None
    every_day = set().union(*days.values())
    window = SyncWindow.inclusive(min(every_day), max(every_day))
    return RunDays(window, {connection: contiguous_windows(d) for connection, d in days.items()})


def _is_sync_partitioned(partitions_def: Any) -> bool:
    """Partitioned by connection and day (the ingest assets), whatever else may come."""
    dimensions = getattr(partitions_def, "partitions_defs", None) or []
    return {d.name for d in dimensions} == {CONNECTION_DIM, DATE_DIM}


def contiguous_windows(days: Iterable[date]) -> list[SyncWindow]:
    """``days`` as the fewest windows of consecutive days, in order."""
    windows: list[SyncWindow] = []
    for day in sorted(set(days)):
        if windows and windows[-1].end == day:
            windows[-1] = SyncWindow(windows[-1].start, day + timedelta(days=1))
        else:
            windows.append(SyncWindow.inclusive(day, day))
    return windows


def _dimension(key: Any, dimension: str) -> str:
    """One dimension of a multi-partition key (a ``MultiPartitionKey`` or its string)."""
    by_dimension = getattr(key, "keys_by_dimension", None)
    if by_dimension:
        return by_dimension[dimension]
    # Multi-partition keys are "<connection>|<date>": dimensions sort by name.
    return str(key).split("|", 1)[sorted([CONNECTION_DIM, DATE_DIM]).index(dimension)]


def dbt_vars(window: SyncWindow, connections: Iterable[str]) -> dict[str, Any]:
    """The vars the incremental dbt models read to rebuild exactly this window."""
    return {
        "start_date": window.start.isoformat(),
        "end_date": window.end.isoformat(),
        "connections": sorted(connections),
    }
