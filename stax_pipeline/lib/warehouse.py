"""The DuckDB warehouse: how it is created, written by dlt, and read by the CLI."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb

from stax_pipeline.errors import StaxError
from stax_pipeline.lib.private_files import make_private
from stax_pipeline.settings import Settings

if TYPE_CHECKING:
    from dlt.pipeline.pipeline import Pipeline

# dlt is imported where a pipeline is built, not here: the reading commands (`stax report`,
# `stax doctor`) use this module and should answer in well under a second.

log = logging.getLogger(__name__)

# No network but the package registries: dlt must not try to send telemetry.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
# Sources yield Arrow tables; their rows carry the dlt load (added by dlt's extract) and a row id
# like JSON rows do. The row id is not optional: a table first created while its endpoint had no
# rows gets dlt's default NOT NULL `_dlt_id`, which every later Arrow load must fill. The sources
# add it themselves (lib/arrow.with_row_ids), so dlt's normalize does not rewrite their files.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
# Set whatever the environment says: dlt would append a second `_dlt_id` and the load would fail.
os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"] = "false"
# A load package's files are deleted once loaded: dlt keeps them by default, so every sync left
# its Parquet files under $STAX_HOME/dlt for good (16 MB per large 30-day backfill).
os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
# At most this many endpoints are pulled at once (dlt's extract pool for parallelized
# resources): enough to overlap the network waits, few enough that 429s stay rare.
os.environ.setdefault("EXTRACT__WORKERS", "4")

# DuckDB 2.x files are unreadable by 1.x drivers (many BI tools) unless created compatible.
STORAGE_COMPATIBILITY = "v1.1.0"

# DuckDB's default memory limit is 80% of RAM, and it uses it. A load is a bulk append of
# Parquet files, which streams; a cap keeps the sync's footprint what a container can give.
LOAD_MEMORY_LIMIT = "512MB"


def ensure_warehouse(settings: Settings) -> None:
    """Create the warehouse file, readable by DuckDB >= 1.1 clients, if it does not exist."""
    if settings.warehouse_path.exists():
        return
    con = duckdb.connect(
        str(settings.warehouse_path),
        config={"storage_compatibility_version": STORAGE_COMPATIBILITY},
    )
    con.close()
    make_private(settings.warehouse_path)  # DuckDB creates it with the umask's mode


def dlt_pipeline(settings: Settings, dataset_name: str) -> Pipeline:
    """The dlt pipeline that loads one provider's raw tables into the warehouse.

    A sync killed mid-load leaves its load package pending, and dlt's ``run()`` would load that
    package *instead of* the new data. Each sync re-pulls its whole window and staging reads only
    syncs whose commit marker landed, so a leftover package is dropped, never finished.
    (dagster-dlt's ``run`` drops the local state too; a plain ``pipeline.run`` would not.)
    """
    ensure_warehouse(settings)
    import dlt
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(
        str(settings.warehouse_path),
        global_config={"memory_limit": LOAD_MEMORY_LIMIT, "threads": 2},
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"stax_{dataset_name}",
        destination=dlt.destinations.duckdb(credentials),
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
        from stax_pipeline.providers import connect_command

        raise StaxError(
            f"no warehouse at {settings.warehouse_path} yet; connect an organization "
            f"(`{connect_command()}`) or run `stax sync`"
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


class WarehouseBusyError(StaxError):
    """Another process holds the warehouse file, so DuckDB will not let this one write it."""


# DuckDB: 'Could not set lock on file "…": Conflicting lock is held in /usr/bin/python3 (PID 1234)'
_LOCK_ERROR = re.compile(r"Could not set lock on file|Conflicting lock is held", re.IGNORECASE)
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_LOCK_POLL_S = 0.25


def wait_for_warehouse(settings: Settings) -> None:
    """Return once this process could write the warehouse; wait at most
    ``settings.warehouse_lock_timeout_s`` (``STAX_WAREHOUSE_LOCK_TIMEOUT``) for another process
    (a BI tool, a shell) to let go of it, then raise :class:`WarehouseBusyError`.

    Called before dlt and dbt open the file, so the user gets this one line instead of dlt's
    "check your credentials" text after its own retries. Waiting is bounded because a client
    that keeps the file open (dashboards do) never lets go: the run must fail, saying who holds
    it and that readers belong on the published ``marts.duckdb``.
    """
    if not settings.warehouse_path.exists():
        return  # nothing to wait for: the pipeline creates it
    timeout = settings.warehouse_lock_timeout_s
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            duckdb.connect(str(settings.warehouse_path)).close()
            return
        except duckdb.IOException as exc:
            if not _LOCK_ERROR.search(str(exc)):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    warehouse_busy_message(settings, str(exc), waited_s=timeout)
                ) from None
            if not announced:
                log.warning(
                    "%s is held by %s; waiting up to %g s for it",
                    settings.warehouse_path,
                    _holder(str(exc)),
                    timeout,
                )
                announced = True
        time.sleep(min(_LOCK_POLL_S, max(0.0, deadline - time.monotonic())))


def warehouse_busy_message(settings: Settings, lock_error: str, *, waited_s: float | None = None) -> str:
    """The one line for "another process holds the warehouse", from DuckDB's lock error."""
    waited = f" (waited {waited_s:g} s, STAX_WAREHOUSE_LOCK_TIMEOUT)" if waited_s is not None else ""
    return (
        f"the warehouse is busy: {_holder(lock_error)} has {settings.warehouse_path} open{waited}. "
        f"BI tools and SQL clients belong on {settings.marts_path} (or the Parquet files in "
        f"{settings.exports_dir}/), which every sync replaces without waiting for its readers; "
        "close that client and try again."
    )


def warehouse_lock_failure(settings: Settings, error: Any) -> str | None:
    """The busy line if ``error`` (Dagster's ``SerializableErrorInfo`` of a failed step) or any
    error in its chain is DuckDB's lock error on the warehouse, as dlt (inside its "check your
    credentials" text) or dbt (inside its summary) raise it when a client grabbed the file
    after :func:`wait_for_warehouse` returned; None otherwise."""
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        text = current.message or ""
        if _LOCK_ERROR.search(text) and settings.warehouse_path.name in text:
            return warehouse_busy_message(settings, text)
        pending += [current.cause, current.context]
    return None


def _holder(lock_error: str) -> str:
    match = _LOCK_HOLDER.search(lock_error)
    if match is None:
        return "another process"
    return f"another process (PID {match['pid']}, {match['program']})"


def _connect(settings: Settings, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection, or a clear error when another process holds DuckDB's file lock."""
    try:
        return duckdb.connect(str(settings.warehouse_path), read_only=read_only)
    except duckdb.IOException as exc:
        if _LOCK_ERROR.search(str(exc)):
            raise WarehouseBusyError(warehouse_busy_message(settings, str(exc))) from None
        raise
