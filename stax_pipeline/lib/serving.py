"""Serving: the marts published apart from the warehouse, so readers never block the pipeline.

DuckDB lets one process write a file, and while any other process has it open (a dashboard,
even read-only) nobody can write it. So BI tools never open the warehouse: after every
successful dbt build, :func:`publish_marts` copies every relation of the warehouse's ``marts``
schema into a NEW file and renames it over ``$STAX_HOME/marts.duckdb``, and writes the same
relations as Parquet into a new directory that the ``$STAX_HOME/exports`` symlink is then
repointed at. A rename is atomic: a reader that holds the old file keeps reading its snapshot
(the old inode lives until it closes it), a new connection sees the new data, and nobody ever
sees a half-written copy.

Only the ``marts`` schema is published: never ``raw_*`` tables, and never anything about
credentials (those live in the app database, ``stax.db``, of which this module reads only the
names of the live connections). Only live connections' rows are published: a connection
disconnected without ``--purge`` keeps its rows in the warehouse, hidden from every reader.

Inside ``marts.duckdb`` the relations are in the file's default schema, so the catalog name
DuckDB gives the file (``marts``) makes the warehouse's SQL work unchanged:
``select … from marts.fct_spend_daily``. (A schema named ``marts`` inside a catalog named
``marts`` would make that name ambiguous.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from stax_pipeline.errors import StaxError
from stax_pipeline.lib.private_files import make_private
from stax_pipeline.lib.warehouse import STORAGE_COMPATIBILITY, read_warehouse
from stax_pipeline.settings import Settings

log = logging.getLogger(__name__)

PUBLISHED_SCHEMA = "marts"
# DuckDB's buffer memory while copying: without a limit it takes what the copy of the biggest
# relation would like (the FOCUS view of a large organization: ~650 MB for 30 days), on top of
# the sync's own process; with one, it streams (30 large days: same time, 360 MB instead of 680 MB
# peak RSS with 256 MB; 512 MB leaves room for longer histories without spilling).
PUBLISH_MEMORY_LIMIT = "512MB"

_STAGING_PREFIX = ".marts-"  # new copies of marts.duckdb before they are renamed into place
_EXPORTS_PREFIX = ".exports-"  # export directories; `exports` points at the current one
_LINK_PREFIX = ".exports-link-"  # a symlink about to be renamed over `exports`


@dataclass(frozen=True)
class PublishResult:
    """What one publish wrote: relation names, their total rows, and how long it took."""

    path: Path
    exports_dir: Path
    relations: tuple[str, ...]
    rows: int
    seconds: float

    def metadata(self) -> dict[str, int | float | str]:
        """Figures for the Dagster materialization that triggered the publish."""
        return {
            "published_relations": len(self.relations),
            "published_rows": self.rows,
            "publish_seconds": round(self.seconds, 3),
            "published_to": str(self.path),
        }

    def summary(self) -> str:
        return (
            f"published {len(self.relations)} relations ({self.rows:,} rows) to {self.path} "
            f"and {self.exports_dir}/ in {self.seconds:.2f} s"
        )


def publish_marts(settings: Settings) -> PublishResult:
    """Replace ``marts.duckdb`` and ``exports/`` with the warehouse's current marts.

    Call it with no process writing the warehouse (after dbt exited, inside the warehouse
    pool, or after a purge): it attaches the warehouse read-only. Publishes are serialized by
    a file lock, so the last one to read the warehouse is the last one renamed into place.
    """
    started = time.monotonic()
    with _publish_lock(settings):
        _remove_leftovers(settings)  # of a publish that failed or was killed half-way
        token = uuid.uuid4().hex
        new_database = settings.home / f"{_STAGING_PREFIX}{token}.duckdb"
        new_exports = settings.home / f"{_EXPORTS_PREFIX}{token}"
        relations = _write_copies(settings, new_database, new_exports, _live_connections(settings))
        _replace_database(settings, new_database)
        _point_exports_at(settings, new_exports)
        _remove_leftovers(settings)  # the previous export directories
    result = PublishResult(
        path=settings.marts_path,
        exports_dir=settings.exports_dir,
        relations=tuple(relations),
        rows=sum(relations.values()),
        seconds=time.monotonic() - started,
    )
    log.info(result.summary())
    return result


@contextmanager
def read_marts(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection on the published marts, where ``marts.<relation>`` resolves as in
    the warehouse. It never waits for a sync. Before the first publish (a warehouse built by
    an older Stax) it falls back to the warehouse itself."""
    if not settings.marts_path.exists():
        with read_warehouse(settings) as con:
            yield con
        return
    try:
        con = duckdb.connect(str(settings.marts_path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise StaxError(
            f"{settings.marts_path} is open for writing in another process; BI tools must open it "
            "read-only (it is replaced after every sync, and written only by Stax)"
        ) from None
    try:
        yield con
    finally:
        con.close()


def _live_connections(settings: Settings) -> list[str] | None:
    """The names of the connections whose rows are published; None (all rows) without an app
    database, i.e. a warehouse built without connections (tests, a copied warehouse)."""
    if not settings.app_db_path.exists():
        return None
    from stax_pipeline.credentials import ConnectionStore

    return [connection.name for connection in ConnectionStore(settings).list()]


def _write_copies(
    settings: Settings, database: Path, exports: Path, connections: list[str] | None
) -> dict[str, int]:
    """Every relation of the warehouse's marts schema (views too, as tables) into ``database``
    (readable by DuckDB >= 1.1) and as ``exports/<relation>.parquet``, with only the rows of
    ``connections`` where a relation names its rows' connection (all rows if None); returns
    rows per name.

    The copies and the Parquet files are written at the same time, on two cursors of one
    DuckDB. The warehouse is attached read-only, so no process can change it while they read.
    A table's Parquet is written from the warehouse; a view's (the FOCUS dataset: computed, the
    costliest) from its copy, which is made first, so no view is computed twice. Together they
    take ~25% less time than one after the other. A failure on either side stops the other at
    its next relation.
    """
    exports.mkdir(mode=0o700)
    con = duckdb.connect(
        str(database),
        config={"storage_compatibility_version": STORAGE_COMPATIBILITY, "memory_limit": PUBLISH_MEMORY_LIMIT},
    )
    try:
        con.execute(f"attach {_literal(settings.warehouse_path)} as warehouse (read_only)")
        relations = con.execute(
            "select table_name, table_type = 'VIEW' from information_schema.tables "
            "where table_catalog = 'warehouse' and table_schema = ? order by table_name",
            [PUBLISHED_SCHEMA],
        ).fetchall()
        views = [name for name, is_view in relations if is_view]
        tables = [name for name, is_view in relations if not is_view]
        # The column naming a row's connection: `connection`, or FOCUS's extension `x_Connection`.
        connection_column = dict(
            con.execute(
                "select table_name, min(column_name) from information_schema.columns "
                "where table_catalog = 'warehouse' and table_schema = ? "
                "and lower(column_name) in ('connection', 'x_connection') group by table_name",
                [PUBLISHED_SCHEMA],
            ).fetchall()
        )

        def published(name: str) -> tuple[str, list[Any]]:
            """The query of what is published of ``name``, and its parameters."""
            select = f"select * from warehouse.{PUBLISHED_SCHEMA}.{_identifier(name)}"
            if connections is not None and name in connection_column:
                return f"{select} where list_contains(?, {_identifier(connection_column[name])})", [
                    connections
                ]
            return select, []

        rows: dict[str, int] = {}
        copied = {name: threading.Event() for name in views}
        failed = threading.Event()  # either side failed: the other stops at its next relation

        def write_exports(cursor: duckdb.DuckDBPyConnection) -> None:
            try:
                for name in [*reversed(tables), *views]:
                    if name in copied:
                        copied[name].wait()
                    if failed.is_set():
                        return  # the copying thread raises why
                    if name in copied:
                        query, parameters = f"select * from main.{_identifier(name)}", []
                    else:
                        query, parameters = published(name)
                    cursor.execute(
                        f"copy ({query}) to {_literal(exports / f'{name}.parquet')} (format parquet)",
                        parameters,
                    )
            except BaseException:
                failed.set()
                raise

        exports_cursor, copies = con.cursor(), con.cursor()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stax-exports") as pool:
            exporting = pool.submit(write_exports, exports_cursor)
            try:
                for name in [*views, *tables]:
                    if failed.is_set():
                        break  # the exports failed: `exporting.result()` raises why
                    query, parameters = published(name)
                    # (DuckDB answers a `create table … as` with the rows it wrote)
                    [(rows[name],)] = copies.execute(
                        f"create table main.{_identifier(name)} as {query}", parameters
                    ).fetchall()
                    if name in copied:
                        copied[name].set()
            except BaseException:
                failed.set()
                raise
            finally:
                for event in copied.values():  # never leave the exports waiting
                    event.set()
            exporting.result()
        rows = dict(sorted(rows.items()))
        con.execute("detach warehouse")
        con.execute("checkpoint")  # everything in the file itself, no WAL beside it
    finally:
        con.close()
    for path in (*exports.iterdir(), exports, database):
        make_private(path)  # DuckDB creates files with the umask's mode; readers are the owner's
        _fsync(path)
    return rows


def _replace_database(settings: Settings, database: Path) -> None:
    """Rename the new copy over ``marts.duckdb``: readers of the old one keep their snapshot."""
    # A WAL beside marts.duckdb belongs to the old file (a client that wrote to it): DuckDB
    # would replay it into the new one.
    _remove_quietly(settings.marts_path.with_name(settings.marts_path.name + ".wal"))
    os.replace(database, settings.marts_path)
    _fsync(settings.home)


def _point_exports_at(settings: Settings, directory: Path) -> None:
    """Repoint the ``exports`` symlink at ``directory`` with one rename (relative, so moving
    STAX_HOME keeps it valid). An ``exports`` that is a real directory is moved aside first
    (once: a home written before exports were swapped) and removed with the old versions."""
    link = settings.exports_dir
    if link.exists() and not link.is_symlink():
        link.rename(settings.home / f"{_EXPORTS_PREFIX}{uuid.uuid4().hex}")
    new_link = settings.home / f"{_LINK_PREFIX}{uuid.uuid4().hex}"
    os.symlink(directory.name, new_link)
    os.replace(new_link, link)
    _fsync(settings.home)


def _remove_leftovers(settings: Settings) -> None:
    """Export directories other than the current one, and what a crashed publish left behind.
    Only called under the publish lock, so nothing here is another publish's work."""
    current = os.readlink(settings.exports_dir) if settings.exports_dir.is_symlink() else None
    for path in settings.home.iterdir():
        if path.name.startswith(_LINK_PREFIX) or path.name.startswith(_STAGING_PREFIX):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)  # DuckDB's spill directory
            else:
                _remove_quietly(path)
        elif path.name.startswith(_EXPORTS_PREFIX) and path.name != current:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _publish_lock(settings: Settings) -> Iterator[None]:
    """One publish at a time per STAX_HOME (a sync's and a purge's could otherwise interleave)."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(settings.home / ".publish.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's (its entries') data to disk before we rely on it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
