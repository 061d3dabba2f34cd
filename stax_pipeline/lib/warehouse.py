"""The DuckDB warehouse: how it is created, written by dlt, and read by the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dlt
import duckdb
from dlt.pipeline.pipeline import Pipeline

from stax_pipeline.errors import StaxError
from stax_pipeline.settings import Settings

# No network but the package registries: dlt must not try to send telemetry.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

# DuckDB 2.x files are unreadable by 1.x drivers (many BI tools) unless created compatible.
STORAGE_COMPATIBILITY = "v1.1.0"


def ensure_warehouse(settings: Settings) -> None:
    """Create the warehouse file, readable by DuckDB >= 1.1 clients, if it does not exist."""
    if settings.warehouse_path.exists():
        return
    con = duckdb.connect(
        str(settings.warehouse_path),
        config={"storage_compatibility_version": STORAGE_COMPATIBILITY},
    )
    con.close()


def dlt_pipeline(settings: Settings, dataset_name: str) -> Pipeline:
    """The dlt pipeline that loads one provider's raw tables into the warehouse.

    A sync killed mid-load leaves its load package pending, and dlt's ``run()`` would load that
    package *instead of* the new data. Each sync re-pulls its whole window and staging reads only
    syncs whose commit marker landed, so a leftover package is dropped, never finished.
    (dagster-dlt's ``run`` drops the local state too; a plain ``pipeline.run`` would not.)
    """
    ensure_warehouse(settings)
    pipeline = dlt.pipeline(
        pipeline_name=f"stax_{dataset_name}",
        destination=dlt.destinations.duckdb(str(settings.warehouse_path)),
        dataset_name=dataset_name,
        pipelines_dir=str(settings.dlt_pipelines_dir),
    )
    if pipeline.has_pending_data:
        pipeline.abort_packages()
    return pipeline


@contextmanager
def read_warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; a clear error if there is no warehouse yet or a sync holds it."""
    if not settings.warehouse_path.exists():
        raise StaxError(
            f"no warehouse at {settings.warehouse_path} yet; connect an organization "
            "(`stax connect openai --name NAME`) or run `stax sync`"
        )
    con = _connect(settings, read_only=True)
    try:
        yield con
    finally:
        con.close()


def purge_connection(settings: Settings, connection: str) -> int:
    """Delete every warehouse row of ``connection`` (raw and marts); returns the count."""
    if not settings.warehouse_path.exists():
        return 0
    con = _connect(settings, read_only=False)
    try:
        tables = con.execute(
            """
            select t.table_schema, t.table_name
            from information_schema.tables t
            join information_schema.columns c
              on c.table_schema = t.table_schema and c.table_name = t.table_name
            where t.table_type = 'BASE TABLE' and c.column_name = 'connection'
            """
        ).fetchall()
        deleted = 0
        con.execute("begin")
        for schema, table in tables:
            deleted += con.execute(
                f'delete from "{schema}"."{table}" where connection = ?', [connection]
            ).fetchall()[0][0]
        con.execute("commit")
        return deleted
    finally:
        con.close()


def _connect(settings: Settings, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection, or a clear error when another process holds DuckDB's file lock."""
    try:
        return duckdb.connect(str(settings.warehouse_path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StaxError(
                "the warehouse is busy: another process (a sync, or a client holding it open) "
                "is using it; try again when it has finished"
            ) from None
        raise
