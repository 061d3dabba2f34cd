"""`stax export focus`: the FOCUS 1.3 cost and usage dataset of some days, as one file.

It reads ``marts.focus_cost_and_usage``: from the published ``$STAX_HOME/marts.duckdb`` when it
has the relation (a reader there never waits for a sync), else from the warehouse, read-only.
Every argument is checked before anything is read or written, and the file appears under its
name only once it is complete (written beside it, then renamed), so a crash or a bad argument
never leaves a half-written export where a FinOps tool would pick it up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from stax_pipeline.credentials import ConnectionStore, unknown_connection
from stax_pipeline.errors import StaxError, UsageError
from stax_pipeline.lib.warehouse import read_warehouse
from stax_pipeline.settings import Settings

FOCUS_RELATION = "focus_cost_and_usage"
FOCUS_VERSION = "1.3"
FORMATS = ("parquet", "csv")
# One row per charge, in the grain's order: the same data always gives the same file.
_ORDER = "x_Provider, x_Connection, x_ChargeDate, SubAccountId, ResourceId, ChargeDescription"


@dataclass(frozen=True)
class FocusExport:
    """What one export wrote."""

    path: Path
    rows: int
    billed_cost: float
    currencies: tuple[str, ...]

    def summary(self) -> str:
        currency = "/".join(self.currencies) or "USD"
        return (
            f"Wrote {self.rows:,} FOCUS {FOCUS_VERSION} rows, BilledCost {self.billed_cost:,.6f} "
            f"{currency}, to {self.path}"
        )


def export_focus(
    settings: Settings,
    *,
    connection: str | None,
    first: date,
    last: date,
    out_dir: Path,
    file_format: str = "parquet",
) -> FocusExport:
    """Write the FOCUS rows of the days ``first``..``last`` (inclusive, UTC) of one connection
    (or all) into ``out_dir`` as Parquet or CSV; returns what was written."""
    if last < first:
        raise UsageError(f"--end {last} is before --start {first}")
    if file_format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {file_format!r}")
    _check_out_dir(out_dir)
    # A connection no longer stored (disconnected without --purge) is still known by its rows.
    unstored = connection if connection and not ConnectionStore(settings).exists(connection) else None
    if unstored is not None and not _has_data(settings):
        raise unknown_connection(unstored)
    name = f"focus_cost_and_usage_{connection or 'all'}_{first}_{last}.{file_format}"
    with _read_focus(settings) as con:
        if unstored is not None:
            _check_connection_has_rows(con, unstored)
        query, params = _select(connection, first, last)
        rows, billed_cost, currencies = con.execute(
            f"select count(*), coalesce(sum(BilledCost), 0), list_sort(list_distinct("
            f"list(BillingCurrency))) from ({query})",
            params,
        ).fetchall()[0]
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        _write_atomically(con, query, params, path, file_format)
    return FocusExport(path, int(rows), float(billed_cost), tuple(currencies or ()))


def _check_out_dir(out_dir: Path) -> None:
    """``out_dir`` is a directory, or can become one (its nearest existing parent is one)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError(f"--out {out_dir} is a file; give a directory to write the export into")
        return
    parent = out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out_dir} cannot be created: {parent} is a file")


def _has_data(settings: Settings) -> bool:
    return settings.warehouse_path.exists() or (settings.home / "marts.duckdb").exists()


def _check_connection_has_rows(con: duckdb.DuckDBPyConnection, name: str) -> None:
    seen = con.execute(
        f"select count(*) from (select 1 from marts.{FOCUS_RELATION} where x_Connection = ? limit 1)",
        [name],
    ).fetchall()[0][0]
    if not seen:
        raise unknown_connection(name)


def _select(connection: str | None, first: date, last: date) -> tuple[str, list]:
    query = f"select * from marts.{FOCUS_RELATION} where x_ChargeDate between ? and ?"
    params: list = [first, last]
    if connection is not None:
        query += " and x_Connection = ?"
        params.append(connection)
    return f"{query} order by {_ORDER}", params


@contextmanager
def _read_focus(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection where ``marts.focus_cost_and_usage`` resolves: the published
    copy if it holds the relation (it is the table BI tools read and never waits for a sync),
    else the warehouse."""
    published = settings.home / "marts.duckdb"  # written by the publish step after each build
    if published.exists():
        try:
            con = duckdb.connect(str(published), read_only=True)
        except duckdb.Error:
            con = None  # being replaced or held for writing: the warehouse has the same rows
        if con is not None:
            try:
                if _has_focus(con):
                    yield con
                    return
            finally:
                con.close()
    with read_warehouse(settings) as con:
        if not _has_focus(con):
            raise StaxError(
                f"no marts.{FOCUS_RELATION} in {settings.warehouse_path} yet; run `stax sync` "
                "(its dbt build creates it)"
            )
        yield con


def _has_focus(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute(f"select 1 from marts.{FOCUS_RELATION} limit 0").fetchall()
    except duckdb.CatalogException:
        return False
    return True


def _write_atomically(
    con: duckdb.DuckDBPyConnection, query: str, params: list, path: Path, file_format: str
) -> None:
    """COPY into a hidden file beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    if file_format == "csv":
        query = f"select {_csv_columns(con, query, params)} from ({query})"
        options = "format csv, header true"
    else:
        options = "format parquet"  # snappy: the compression every Parquet reader has
    try:
        con.execute(f"copy ({query}) to '{_quoted(temporary)}' ({options})", params).fetchall()
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _csv_columns(con: duckdb.DuckDBPyConnection, query: str, params: list) -> str:
    """Each column as FOCUS writes it in text: date/times as 'YYYY-MM-DDTHH:mm:ssZ' in UTC and
    numbers without a '+' or lowercase exponent ('1.5E-5', not '1.5e-05'), per its DateTimeFormat
    and NumericFormat attributes; JSON as its text."""
    described = con.execute(f"describe ({query})", params).fetchall()
    columns = []
    for name, column_type, *_ in described:
        quoted = '"' + name.replace('"', '""') + '"'
        if column_type == "TIMESTAMP WITH TIME ZONE":
            columns.append(f"strftime({quoted} at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ') as {quoted}")
        elif column_type in ("DOUBLE", "FLOAT"):
            columns.append(
                f"regexp_replace(cast({quoted} as varchar), 'e\\+?(-?)0*([0-9])', 'E\\1\\2') as {quoted}"
            )
        else:
            columns.append(quoted)
    return ", ".join(columns)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
