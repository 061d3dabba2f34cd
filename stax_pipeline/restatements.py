"""Restatements as people read them: how days already synced changed (``marts.fct_restatements``).

Providers revise recent days; the nightly sync re-pulls them and the marts follow, so a figure
someone saw yesterday can differ today. These helpers summarize the restatement history for
``stax report`` (one line under the table) and ``stax doctor`` (the last restated days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from stax_pipeline.settings import Settings

RESTATEMENTS = "marts.fct_restatements"


@dataclass(frozen=True)
class RestatedDay:
    """One re-pull that changed a day: its totals before and after, and how many line items
    changed, appeared or vanished."""

    connection: str
    date: date
    previous_cost_usd: float
    new_cost_usd: float
    changed: int
    appeared: int
    vanished: int
    detected_at: datetime

    def as_dict(self) -> dict:
        return {
            "connection": self.connection,
            "date": self.date.isoformat(),
            "previous_cost_usd": self.previous_cost_usd,
            "new_cost_usd": self.new_cost_usd,
            "line_items_changed": self.changed,
            "line_items_appeared": self.appeared,
            "line_items_vanished": self.vanished,
            "detected_at": self.detected_at.isoformat(),
        }


def restated_days(con: duckdb.DuckDBPyConnection, connection: str | None, limit: int) -> list[RestatedDay]:
    """The last ``limit`` restated days (one per re-pull that changed a day), latest detection
    first; [] when the marts predate the restatement history."""
    sql = f"""
        select connection, date, any_value(previous_day_cost_usd), any_value(new_day_cost_usd),
               count(*) filter (change_type = 'changed'), count(*) filter (change_type = 'appeared'),
               count(*) filter (change_type = 'vanished'), any_value(detected_at)
        from {RESTATEMENTS}
        where (? is null or connection = ?)
        group by connection, date, new_sync_id
        order by any_value(detected_at) desc, date desc, connection
        limit ?
    """
    try:
        rows = con.execute(sql, [connection, connection, limit]).fetchall()
    except duckdb.CatalogException:
        return []
    return [RestatedDay(*row) for row in rows]


def restatement_summary(
    con: duckdb.DuckDBPyConnection, connection: str | None, start: date, end: date
) -> tuple[int, float]:
    """How many (connection, day)s of [start, end) were restated, and the net change of their
    cost since they were first synced; (0, 0.0) when the marts predate the history."""
    try:
        days, net = con.execute(
            f"""select count(distinct (connection, date)), coalesce(sum(cost_change_usd), 0)
                from {RESTATEMENTS}
                where date >= ? and date < ? and (? is null or connection = ?)""",
            [start, end, connection, connection],
        ).fetchall()[0]
    except duckdb.CatalogException:
        return 0, 0.0
    return days, net


def report_note(settings: Settings, connection: str | None, start: date, end: date) -> list[str]:
    """The line ``stax report`` prints under its table when days of its period [start, end)
    were restated after they were first synced: how many, and the net change; [] otherwise."""
    from stax_pipeline.lib.serving import read_marts

    with read_marts(settings) as con:
        days, net = restatement_summary(con, connection, start, end)
    if not days:
        return []
    plural = "s" if days != 1 else ""
    return [
        "",
        f"{days} restated day{plural} in the last {(end - start).days} days (revised by the "
        f"provider after they were synced), net {signed_usd(net)}; see `stax doctor`",
    ]


def signed_usd(amount: float) -> str:
    """``+$1,234.56`` or ``-$0.05``."""
    return f"{'-' if amount < 0 else '+'}${abs(amount):,.2f}"
