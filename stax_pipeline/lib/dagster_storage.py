"""Cheaper writes for the local Dagster instance's SQLite storage.

A range run writes one event per ingest partition (connection, day), and Dagster's SQLite
event log pays a lot for each: it creates a SQLAlchemy engine, opens a connection, commits with
a full fsync and closes (with the WAL journal, closing the only connection also checkpoints) —
for the run's database and again for the index. That bookkeeping was most of a small sync's
time. For the databases of Stax's own instance (``$STAX_HOME/dagster``):

- ``PRAGMA synchronous=OFF``: a crash of the process loses nothing (SQLite has handed the data to
  the OS), only a crash of the OS could lose recent run history — never money, which lives in the
  warehouse, nor keys, which live in the app database; both keep SQLite's/DuckDB's defaults;
- one engine per database file, kept (the index and the last few runs' files), whose connection
  is reused per thread instead of opened and closed for every event;
- the kept engines are disposed when the process exits: closing a database's last connection
  checkpoints its WAL journal and deletes it (a run's WAL grows to ~4 MB and, left behind, would
  be Dagster storage that no one needs);
- a table known to exist is not looked up again: Dagster asks whether the index has its
  ``asset_event_tags`` table before storing each materialization's tags, with a new engine and
  connection every time (about 1 s of the events after a large 30-day build). Dagster's
  migrations only add tables, so a table found once stays found; a missing one is asked again.
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

_installed: set[str] = set()

# One ASSET_MATERIALIZATION_PLANNED event per asset of a range run, holding its partitions,
# instead of one per asset per (connection, day): a 30-day run wrote 450 of them (about 0.5 s
# before its first request). Dagster's own switch, for single-run backfills; what it costs: the
# partitions of a run that fails show as missing in the UI, not as failed (the run itself, and
# `stax status`, say it failed). Set in every process of the instance: the CLI's and `make ui`'s.
PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"

# Engines kept per event-log storage: the index shard and the runs being written.
KEEP_ENGINES = 4

# Every engine kept, with the process that opened it, to dispose at exit (weakly: a storage that
# is gone took its engines along).
_kept_engines: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@atexit.register
def _dispose_kept_engines() -> None:
    """Close the kept engines' connections (SQLite checkpoints and deletes each WAL). Only in the
    process that opened them: a forked child must not close its parent's connections. A process
    that leaves with ``os._exit`` (``lib/processes.exit_now``, a stopped sync) skips this, and
    its run's WAL stays until the next process opens that database."""
    for engine, pid in list(_kept_engines.items()):
        if pid != os.getpid():
            continue
        with suppress(Exception):  # leaving anyway: a failed close must not print a traceback
            engine.dispose()


def install_fast_event_storage(dagster_home: Path) -> None:
    """Set ``PRAGMA synchronous=OFF`` on every SQLite connection SQLAlchemy opens to a file
    under ``dagster_home``, and keep the event log's engines there (idempotent; other databases
    are left alone)."""
    root = str(Path(dagster_home).resolve())
    if root in _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_connection, _record) -> None:
        if not type(dbapi_connection).__module__.startswith("sqlite3"):
            return
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list").fetchall()]
        if any(f and Path(f).is_relative_to(root) for f in files):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", on_connect)
    _installed.add(root)
    _keep_event_log_engines()
    _remember_tables()


def _is_ours(storage: Any) -> bool:
    """Whether an event-log storage lives under an installed root (worked out once per storage:
    it is asked for every event)."""
    ours = vars(storage).get("_stax_ours")
    if ours is None:
        base = Path(storage._base_dir).resolve()
        ours = any(base.is_relative_to(root) for root in _installed)
        vars(storage)["_stax_ours"] = ours
    return ours


def _remember_tables() -> None:
    """Replace ``SqliteEventLogStorage.has_table`` (Dagster 1.13: a new engine and connection per
    call) for storages under an installed root with one that remembers the tables it found."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    original = SqliteEventLogStorage.has_table
    if getattr(original, "__stax__", False):
        return

    def has_table(self: SqliteEventLogStorage, table_name: str) -> bool:
        if not _is_ours(self):
            return original(self, table_name)
        found: set[str] = vars(self).setdefault("_stax_tables", set())
        if table_name not in found and original(self, table_name):
            found.add(table_name)
        return table_name in found

    has_table.__stax__ = True  # type: ignore[attr-defined]
    SqliteEventLogStorage.has_table = has_table  # type: ignore[method-assign]


def _keep_event_log_engines() -> None:
    """Replace ``SqliteEventLogStorage._connect`` (Dagster 1.13: a new engine, connection and
    dispose per call) for storages under an installed root with one that keeps each shard's
    engine (at most :data:`KEEP_ENGINES`, least recently used disposed first). Same lock, same
    lazy schema init, same one transaction per call."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster._core.storage.sql import create_engine
    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
    from sqlalchemy.pool import SingletonThreadPool

    original = SqliteEventLogStorage._connect
    if getattr(original, "__stax__", False):
        return

    @contextmanager
    def _connect(self: SqliteEventLogStorage, shard: str) -> Iterator[Any]:
        if not _is_ours(self):
            with original(self, shard) as conn:
                yield conn
            return
        with self._db_lock:
            engines: OrderedDict[str, Any] = vars(self).setdefault("_stax_engines", OrderedDict())
            engine = engines.get(shard)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=SingletonThreadPool,  # one connection per thread, kept
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                engines[shard] = engine
                _kept_engines[engine] = os.getpid()
                while len(engines) > KEEP_ENGINES:
                    engines.popitem(last=False)[1].dispose()
            engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    _connect.__stax__ = True  # type: ignore[attr-defined]
    SqliteEventLogStorage._connect = _connect  # type: ignore[method-assign]
