"""Rows and dollars of the marts a dbt build rebuilt, per partition, for the Dagster UI.

A range run materializes every (connection, day) partition of its window at once. Dagster gives
each partition its own materialization event; the metadata set here per partition
(``context.add_asset_metadata(..., partition_key=...)``) overrides the run-wide metadata on that
partition's event. So each day of a mart carries that day's ``rows`` and ``cost_usd`` (0 on a day
without any), the asset's plot by partition is the daily curve, and the window's totals ride
along as ``window_rows`` and ``window_cost_usd``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetExecutionContext, AssetKey

from stax_pipeline.defs.partitions import add_metadata_by_partition
from stax_pipeline.lib.warehouse import read_warehouse
from stax_pipeline.lib.window import SyncWindow, partition_key
from stax_pipeline.settings import Settings

MARTS_SCHEMA = "marts"


@dataclass
class MartFigures:
    """Per mart (asset key): metadata per partition key, and the window's totals."""

    by_partition: dict[AssetKey, dict[str, dict[str, Any]]] = field(default_factory=dict)
    window: dict[AssetKey, dict[str, Any]] = field(default_factory=dict)

    def __contains__(self, key: object) -> bool:
        return key in self.window

    def attach(self, context: AssetExecutionContext, key: AssetKey) -> dict[str, Any]:
        """Give each partition of ``key`` its own figures; the window's, for the whole event."""
        add_metadata_by_partition(context, key, self.by_partition[key])
        return dict(self.window[key])


def mart_figures(settings: Settings, window: SyncWindow, connections: Iterable[str]) -> MartFigures:
    """Rows (and ``cost_usd`` where the mart has it) of every mart with a ``connection`` and a
    ``date`` column, per (connection, day) of the window, read after the build."""
    connections = sorted(connections)
    figures = MartFigures()
    with read_warehouse(settings) as con:
        columns: dict[str, set[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = ?",
            [MARTS_SCHEMA],
        ).fetchall():
            columns.setdefault(table, set()).add(column)
        for table, names in sorted(columns.items()):
            if not {"connection", "date"} <= names:
                continue  # dimensions and monthly views: no day partitions to plot
            has_cost = "cost_usd" in names
            rows = con.execute(
                f"""
                select connection, date, count(*), {"coalesce(sum(cost_usd), 0)" if has_cost else "0"}
                from {MARTS_SCHEMA}.{table}
                where date >= ? and date < ? and list_contains(?, connection)
                group by connection, date
                """,
                [window.start, window.end, connections],
            ).fetchall()
            found = {(c, d): (int(n), float(usd)) for c, d, n, usd in rows}
            key = AssetKey([MARTS_SCHEMA, table])
            per_partition: dict[str, dict[str, Any]] = {}
            for connection in connections:
                for day in window.days():
                    count, usd = found.get((connection, day), (0, 0.0))
                    per_partition[partition_key(connection, day)] = (
                        {"rows": count, "cost_usd": usd} if has_cost else {"rows": count}
                    )
            figures.by_partition[key] = per_partition
            totals: dict[str, Any] = {"window_rows": sum(n for n, _ in found.values())}
            if has_cost:
                totals["window_cost_usd"] = sum(usd for _, usd in found.values())
            figures.window[key] = totals
    return figures
