"""Rows and dollars of the marts a dbt build rebuilt, for their materializations in the UI.

The marts are not day-partitioned assets (see ``defs/dbt/assets.py``): each run materializes each
mart once, with the figures of what it rebuilt, the run's window of days and connections
(``window_rows``, and ``window_cost_usd`` where the mart holds money). The asset's plot over its
events is then one point per sync; the daily curve is the ingest asset's, by partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dagster import AssetKey

from stax_pipeline.lib.warehouse import read_warehouse
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import Settings

MARTS_SCHEMA = "marts"

# Per mart (asset key): the figures of the rows the build rebuilt.
MartFigures = dict[AssetKey, dict[str, Any]]


def mart_figures(settings: Settings, window: SyncWindow | None, connections: Iterable[str]) -> MartFigures:
    """Rows (and ``cost_usd`` where the mart has it) of every mart with a ``connection`` and a
    ``date`` column, within the window's days and connections, read after the build; with no
    window (a run of the marts alone rebuilds every day), of the whole mart."""
    connections = sorted(connections)
    figures: MartFigures = {}
    with read_warehouse(settings) as con:
        columns: dict[str, set[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = ?",
            [MARTS_SCHEMA],
        ).fetchall():
            columns.setdefault(table, set()).add(column)
        for table, names in sorted(columns.items()):
            if not {"connection", "date"} <= names:
                continue  # dimensions and monthly views: no days to count
            has_cost = "cost_usd" in names
            where, params = "true", []
            if window is not None:
                where = "date >= ? and date < ? and list_contains(?, connection)"
                params = [window.start, window.end, connections]
            dollars = "coalesce(sum(cost_usd), 0)" if has_cost else "0"
            ((count, usd),) = con.execute(
                f"select count(*), {dollars} from {MARTS_SCHEMA}.{table} where {where}", params
            ).fetchall()
            totals: dict[str, Any] = {"window_rows": int(count)}
            if has_cost:
                totals["window_cost_usd"] = float(usd)
            figures[AssetKey([MARTS_SCHEMA, table])] = totals
    return figures
