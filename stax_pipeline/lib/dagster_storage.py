"""Cheaper writes for the local Dagster instance's SQLite storage.

Dagster's SQLite event log opens a connection per event and commits it with a full fsync; with
the WAL journal, closing what is the only connection also checkpoints (more fsyncs). A range run
writes one event per asset per day, so these syncs were most of a small sync's time. For the
databases of Stax's own instance (``$STAX_HOME/dagster``) we set ``synchronous=OFF``: a crash
of the process loses nothing (SQLite has handed the data to the OS), only a crash of the OS
could lose recent run history — never money, which lives in the warehouse, nor keys, which live
in the app database; both keep SQLite's/DuckDB's defaults.
"""

from __future__ import annotations

from pathlib import Path

_installed: set[str] = set()


def install_fast_event_storage(dagster_home: Path) -> None:
    """Set ``PRAGMA synchronous=OFF`` on every SQLite connection SQLAlchemy opens to a file
    under ``dagster_home`` (idempotent; other databases are left alone)."""
    root = str(Path(dagster_home).resolve())
    if root in _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_connection, _record) -> None:
        if not type(dbapi_connection).__module__.startswith("sqlite3"):
            return
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list").fetchall()]
        if any(f and f.startswith(root) for f in files):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", on_connect)
    _installed.add(root)
