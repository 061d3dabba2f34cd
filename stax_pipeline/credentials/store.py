"""The app database of provider connections, their admin keys encrypted at rest.

It lives at ``Settings.app_db_path`` (never the warehouse). Each operation opens its own short
SQLite connection, because the CLI and Dagster sensors use the database concurrently.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

from stax_pipeline.credentials.crypto import (
    MASTER_KEY_ENV,
    NEW_MASTER_KEY_ENV,
    MasterKey,
    decrypt,
    encrypt,
    fsync_dir,
    generate_master_key,
    load_master_key,
    master_key_from_env,
    read_key_file,
    write_key_file,
)
from stax_pipeline.errors import ConfigError, CredentialError, UsageError
from stax_pipeline.lib.endpoints import check_base_url, is_loopback_host
from stax_pipeline.lib.window import SyncWindow, backfill_window
from stax_pipeline.providers import get_provider
from stax_pipeline.settings import Settings, shown

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS connections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    key_ciphertext BLOB NOT NULL,
    key_nonce BLOB NOT NULL,
    key_version TEXT NOT NULL,
    key_hint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_synced_at TEXT,
    backfill_claimed_by TEXT,
    backfilled_at TEXT
)"""
# Schema version 2: which days each connection has synced, and the state of its backfill.
# Version 3: the API base URL each connection was made against, and whether that was the Stax
# simulator (lib/endpoints.py); connections stored before get their provider's default URL, as
# real ones.
# Version 4: the organization behind each key, and disconnected connections kept as tombstones
# (their key deleted) until their rows are purged. Older stores are migrated in place on first
# open (columns added, nothing rewritten).
_SCHEMA_VERSION = 4
_ADDED_COLUMNS = {
    # A token per claim: its run carries it, so a late outcome never settles a newer claim.
    "backfill_claim": "TEXT",
    "backfill_claimed_at": "TEXT",
    "backfill_attempts": "INTEGER NOT NULL DEFAULT 0",  # failed attempts so far
    "backfill_error": "TEXT",  # why the last attempt failed
    "backfill_retry_at": "TEXT",  # when the daemon may claim it again
    # Where its key is sent: the only API it is ever synced against (simulated: see below).
    "api_base_url": "TEXT NOT NULL DEFAULT ''",  # then its provider's default (see _migrate)
    "simulated": "INTEGER NOT NULL DEFAULT 0",  # 1: made against the Stax simulator
    "organization_id": "TEXT",  # learned at connect (or the first sync); one live connection each
    "organization_name": "TEXT",  # null while the provider's API exposes none
    "disconnected_at": "TEXT",  # set by a plain disconnect: key deleted, rows kept (hidden)
}
# Two live connections to one organization would count its spend twice.
_ONE_CONNECTION_PER_ORGANIZATION = (
    "CREATE UNIQUE INDEX IF NOT EXISTS connections_live_organization ON connections (organization_id)"
    " WHERE organization_id IS NOT NULL AND disconnected_at IS NULL"
)
_LIVE = "disconnected_at IS NULL"
_SYNCED_DAYS = """
CREATE TABLE IF NOT EXISTS synced_days (
    connection_id TEXT NOT NULL,
    day TEXT NOT NULL,
    synced_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, day)
) WITHOUT ROWID"""
_SECRET_COLUMNS = "id, name, provider, key_nonce, key_ciphertext, key_version"
_COLUMNS = (
    "id, name, provider, key_hint, key_version, created_at, last_synced_at, "
    "backfill_claimed_by, backfilled_at, backfill_claim, backfill_claimed_at, backfill_attempts, "
    "backfill_error, backfill_retry_at, "
    "(SELECT max(day) FROM synced_days WHERE connection_id = connections.id), "
    "api_base_url, simulated, organization_id, organization_name, disconnected_at"
)
_BACKFILL_DONE = (
    "backfilled_at = ?, backfill_claimed_by = NULL, backfill_claim = NULL, backfill_claimed_at = NULL,"
    " backfill_error = NULL, backfill_retry_at = NULL"
)
# A failed backfill is retried after 1 minute, then 2, 4, … up to an hour between attempts.
BACKFILL_RETRY_FIRST = timedelta(minutes=1)
BACKFILL_RETRY_MAX = timedelta(hours=1)


@dataclass(frozen=True)
class Connection:
    """A stored provider connection, without its secret (safe to print)."""

    id: str
    name: str
    provider: str
    key_hint: str
    key_version: str
    created_at: datetime
    last_synced_at: datetime | None
    backfill_claimed_by: str | None
    backfilled_at: datetime | None
    backfill_claim: str | None = None
    backfill_claimed_at: datetime | None = None
    backfill_attempts: int = 0
    backfill_error: str | None = None
    backfill_retry_at: datetime | None = None
    last_synced_day: date | None = None
    api_base_url: str = ""  # the API it was made against; its key goes nowhere else
    simulated: bool = False  # made against the Stax simulator: only ever synced against one
    organization_id: str | None = None
    organization_name: str | None = None
    disconnected_at: datetime | None = None

    @property
    def backfill_state(self) -> str:
        """``done``, ``running`` (claimed by the CLI or the daemon), ``failed`` (waiting for its
        retry) or ``pending`` (the daemon's sensor takes it on its next tick)."""
        if self.backfilled_at is not None:
            return "done"
        if self.backfill_claim is not None:
            return "running"
        if self.backfill_error is not None:
            return "failed"
        return "pending"


def validate_connection_name(name: str) -> str:
    """Return ``name`` if usable as a connection name (it becomes a Dagster partition key and dbt var)."""
    if isinstance(name, str) and name.startswith("sk-"):
        # Someone pasted a key where the name goes: refuse without echoing it.
        raise UsageError("connection name looks like an API key; pass the key on stdin, not as --name")
    if not isinstance(name, str) or not 1 <= len(name) <= 40 or not _NAME_RE.fullmatch(name):
        raise UsageError(
            "connection name must be 1-40 characters of lowercase letters, digits, '_' or '-', "
            f"starting with a letter or digit, got {shown(name) if isinstance(name, str) else repr(name)}"
        )
    return name


def _aad(conn_id: str, provider: str) -> bytes:
    return f"stax:v1:{conn_id}:{provider}".encode()


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _parse_stored(text: str) -> datetime:
    """A timestamp column that is never null (``created_at``)."""
    return datetime.fromisoformat(text).astimezone(UTC)


def unknown_connection(name: str) -> UsageError:
    """The one wording for a connection name that is not stored."""
    return UsageError(f"unknown connection {name!r}; run `stax connections` to list them")


def name_taken(name: str) -> UsageError:
    """The one wording for a new connection whose name is taken."""
    return UsageError(
        f"a connection named {name!r} already exists; pick another name or run `stax disconnect {name}` first"
    )


def _other_master_key(name: str) -> CredentialError:
    return CredentialError(
        f"the stored key for connection {name!r} was encrypted under a different master key; "
        f"set {MASTER_KEY_ENV} (or restore master.key) to the key that was used"
    )


def backfill_retry_delay(failed_attempts: int) -> timedelta:
    """How long the daemon waits before retrying a backfill that failed ``failed_attempts`` times."""
    doublings = min(max(failed_attempts - 1, 0), 32)
    return min(BACKFILL_RETRY_FIRST * 2**doublings, BACKFILL_RETRY_MAX)


def _to_connection(row: tuple) -> Connection:
    (
        conn_id,
        name,
        provider,
        hint,
        version,
        created,
        synced,
        claimed_by,
        backfilled,
        claim,
        claimed_at,
        attempts,
        error,
        retry_at,
        last_day,
        base_url,
        simulated,
        org_id,
        org_name,
        disconnected,
    ) = row
    return Connection(
        conn_id,
        name,
        provider,
        hint,
        version,
        _parse_stored(created),
        _parse(synced),
        claimed_by,
        _parse(backfilled),
        claim,
        _parse(claimed_at),
        attempts,
        error,
        _parse(retry_at),
        date.fromisoformat(last_day) if last_day else None,
        base_url,
        bool(simulated),
        org_id,
        org_name,
        _parse(disconnected),
    )


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store of an older version to :data:`_SCHEMA_VERSION` (idempotent, concurrent-safe)."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")  # another process may be migrating: take turns
    try:
        present = {row[1] for row in db.execute("PRAGMA table_info(connections)")}
        for column, decl in _ADDED_COLUMNS.items():
            if column not in present:
                db.execute(f"ALTER TABLE connections ADD COLUMN {column} {decl}")
        # Connections stored before their API URL was: their provider's own API.
        unset = db.execute("SELECT DISTINCT provider FROM connections WHERE api_base_url = ''").fetchall()
        for (provider,) in unset:
            db.execute(
                "UPDATE connections SET api_base_url = ? WHERE api_base_url = '' AND provider = ?",
                (get_provider(provider).default_base_url, provider),
            )
        db.execute(_SYNCED_DAYS)
        db.execute(_ONE_CONNECTION_PER_ORGANIZATION)
        # A claim from version 1 has no token and may have been left by a run that died: give it
        # one, so the backfill sensor releases it if no run carries it.
        db.execute(
            "UPDATE connections SET backfill_claim = lower(hex(randomblob(16))), backfill_claimed_at = ?"
            " WHERE backfill_claimed_by IS NOT NULL AND backfill_claim IS NULL AND backfilled_at IS NULL",
            (_iso(datetime.now(UTC)),),
        )
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


def _refuse_connected_organization(
    db: sqlite3.Connection, organization_id: str | None, *, config_error: bool = False
) -> None:
    """Raise if a live connection already has ``organization_id``: a second connection to one
    organization would count its spend twice."""
    if organization_id is None:
        return
    row = db.execute(
        f"SELECT name FROM connections WHERE organization_id = ? AND {_LIVE}", (organization_id,)
    ).fetchone()
    if row is None:
        return
    error = ConfigError if config_error else UsageError
    raise error(
        f"organization {organization_id} is already connected as {row[0]!r}; a second connection "
        "would count its spend twice. Use that connection (or `stax disconnect "
        f"{row[0]}` first). Nothing was {'loaded' if config_error else 'stored'}."
    )


class ConnectionStore:
    """Connections and their encrypted admin keys in the app database."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = settings.app_db_path
        self._new_key_path = settings.master_key_path.with_name(settings.master_key_path.name + ".new")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """Open a short-lived autocommit connection; the schema is created on first use."""
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._path.exists():
            # Create it ourselves so it is never world readable; SQLite gives -wal/-shm the same mode.
            os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA secure_delete=ON")  # don't leave old ciphertexts in free pages
            db.execute(_SCHEMA)
            _migrate(db)
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Open a connection holding the write lock (BEGIN IMMEDIATE); commit on success."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")

    def _master(self) -> MasterKey:
        """Return the current master key, finishing an interrupted rotation first."""
        from_env = master_key_from_env()
        if from_env is not None:
            return from_env
        self._finish_interrupted_rotation()
        path = self._settings.master_key_path
        if not path.exists():
            with self._db() as db:
                (count,) = db.execute(f"SELECT count(*) FROM connections WHERE {_LIVE}").fetchone()
            if count:
                # Creating a fresh key here would orphan every stored key.
                raise ConfigError(
                    f"the master key file {path} is missing but {count} stored key(s) were encrypted "
                    f"with it; restore it, or set {MASTER_KEY_ENV} to the key that was used"
                )
        return load_master_key(self._settings)

    def _finish_interrupted_rotation(self) -> None:
        """Keep whichever of master.key / master.key.new the stored rows were encrypted with."""
        new_path, path = self._new_key_path, self._settings.master_key_path
        if not new_path.exists():
            return
        # The write lock waits out a rotation still in flight in another process.
        with self._transaction() as db:
            if not new_path.exists():
                return
            versions = {
                v for (v,) in db.execute(f"SELECT DISTINCT key_version FROM connections WHERE {_LIVE}")
            }
            try:
                if read_key_file(new_path).key_id in versions or not path.exists():
                    os.replace(new_path, path)
                    fsync_dir(path.parent)
                elif not versions or read_key_file(path).key_id in versions:
                    new_path.unlink()
            except FileNotFoundError:
                return  # the rotating process moved master.key.new into place after its commit
            # Otherwise neither key matches the rows: keep both files for a person to sort out.

    def _decrypt_row(self, master: MasterKey, row: tuple) -> str:
        conn_id, name, provider, nonce, ciphertext, version = row
        if version != master.key_id:
            raise _other_master_key(name)
        try:
            return decrypt(master, nonce, ciphertext, _aad(conn_id, provider))
        except CredentialError:
            raise CredentialError(
                f"the stored key for connection {name!r} failed authentication (tampered with, or "
                f"encrypted under a different master key); run `stax disconnect {name}` and connect again"
            ) from None

    def add(
        self,
        name: str,
        provider: str,
        api_key: str,
        *,
        base_url: str | None = None,
        simulated: bool | None = None,
        organization_id: str | None = None,
    ) -> Connection:
        """Encrypt and store a new connection's admin key, with the organization it belongs to
        when known; raise UsageError if the name is taken or the organization already connected.

        ``base_url`` is the API the key was checked against (default: the configured one); it is
        the only API the connection is ever synced against. ``simulated`` says whether the Stax
        simulator answered that check; without a check (tests, scripts) a URL on this machine
        counts as the simulator.

        A name whose connection was disconnected without ``--purge`` is taken by its kept rows,
        unless the key belongs to the same organization: then the connection is reconnected with
        the new key (its rows and synced days count again), e.g. after the old key was revoked.
        """
        validate_connection_name(name)
        registered = get_provider(provider)
        registered.check_key_format(api_key)
        base_url = check_base_url(base_url or registered.new_connection_base_url(), source="the API base URL")
        if simulated is None:
            simulated = is_loopback_host(urlsplit(base_url).hostname or "")
        master = self._master()
        tombstone = self.disconnected(name)
        revive = tombstone is not None
        if tombstone is not None and (
            organization_id is None or tombstone.organization_id != organization_id
        ):
            raise UsageError(
                f"a disconnected connection named {name!r} still has its rows in the warehouse "
                f"(hidden from reports); run `stax disconnect {name} --purge` to delete them, or "
                "pick another name"
            )
        conn = Connection(
            uuid.uuid4().hex,
            name,
            provider,
            registered.key_hint(api_key),
            master.key_id,
            datetime.now(UTC),
            None,
            None,
            None,
            api_base_url=base_url,
            simulated=simulated,
            organization_id=organization_id,
        )
        if tombstone is not None:  # the same organization: the same connection, a new key
            conn = replace(conn, id=tombstone.id, created_at=tombstone.created_at)
        nonce, ciphertext = encrypt(master, api_key, _aad(conn.id, provider))
        try:
            with self._transaction() as db:
                # Never mix master keys in one store (also catches a rotation committed meanwhile).
                other = db.execute(
                    f"SELECT name FROM connections WHERE key_version != ? AND {_LIVE} LIMIT 1",
                    (master.key_id,),
                ).fetchone()
                if other:
                    raise _other_master_key(other[0])
                _refuse_connected_organization(db, organization_id)
                if revive:
                    db.execute(
                        "UPDATE connections SET key_ciphertext = ?, key_nonce = ?, key_version = ?,"
                        " key_hint = ?, api_base_url = ?, simulated = ?, disconnected_at = NULL"
                        " WHERE id = ? AND disconnected_at IS NOT NULL",
                        (ciphertext, nonce, master.key_id, conn.key_hint, base_url, int(simulated), conn.id),
                    )
                    return self._get_in(db, name)
                db.execute(
                    "INSERT INTO connections (id, name, provider, key_ciphertext, key_nonce, key_version,"
                    " key_hint, created_at, api_base_url, simulated, organization_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conn.id,
                        name,
                        provider,
                        ciphertext,
                        nonce,
                        master.key_id,
                        conn.key_hint,
                        _iso(conn.created_at),
                        base_url,
                        int(simulated),
                        organization_id,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "organization_id" in str(exc):  # connected meanwhile by another process
                raise UsageError(
                    f"organization {organization_id} is already connected; nothing was stored"
                ) from None
            raise name_taken(name) from None
        return conn

    def check_new_name(self, name: str) -> None:
        """Raise a one-line UsageError unless ``name`` is a valid name no live connection has: what
        connecting checks before it reads a key (``add`` checks it again, atomically)."""
        validate_connection_name(name)
        if self.exists(name):
            raise name_taken(name)

    def set_organization(self, name: str, organization_id: str) -> None:
        """Record the organization a sync found behind ``name``'s key (for connections made when
        the API did not report it yet). Raise :class:`ConfigError` if another live connection
        has that organization, or ``name`` was connected to a different one."""
        with self._transaction() as db:
            row = db.execute(
                f"SELECT organization_id FROM connections WHERE name = ? AND {_LIVE}", (name,)
            ).fetchone()
            if row is None:
                raise unknown_connection(name)
            if row[0] == organization_id:
                return
            if row[0] is not None:
                raise ConfigError(
                    f"the key of {name!r} now reports organization {organization_id}, but it was "
                    f"connected to {row[0]}; nothing was loaded. Check the key (`stax connections`)"
                )
            _refuse_connected_organization(db, organization_id, config_error=True)
            db.execute("UPDATE connections SET organization_id = ? WHERE name = ?", (organization_id, name))

    def _get_in(self, db: sqlite3.Connection, name: str) -> Connection:
        row = db.execute(f"SELECT {_COLUMNS} FROM connections WHERE name = ? AND {_LIVE}", (name,)).fetchone()
        if row is None:
            raise unknown_connection(name)
        return _to_connection(row)

    def get(self, name: str) -> Connection:
        """Return the named connection; raise UsageError if there is none."""
        if not self._path.exists():  # reading never creates the store
            raise unknown_connection(name)
        with self._db() as db:
            return self._get_in(db, name)

    def list(self) -> list[Connection]:
        """Return every live connection (not disconnected), oldest first."""
        if not self._path.exists():
            return []
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM connections WHERE {_LIVE} ORDER BY created_at, name"
            ).fetchall()
        return [_to_connection(row) for row in rows]

    def list_disconnected(self) -> list[Connection]:
        """The connections disconnected without ``--purge``: their rows are kept, hidden from the
        published marts and reports, until ``stax disconnect NAME --purge``."""
        if not self._path.exists():
            return []
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM connections WHERE NOT {_LIVE} ORDER BY disconnected_at, name"
            ).fetchall()
        return [_to_connection(row) for row in rows]

    def disconnected(self, name: str) -> Connection | None:
        """The disconnected (tombstoned) connection named ``name``, if there is one."""
        return next((c for c in self.list_disconnected() if c.name == name), None)

    def exists(self, name: str) -> bool:
        """Return whether a live connection with this name is stored."""
        if not self._path.exists():
            return False
        with self._db() as db:
            query = f"SELECT 1 FROM connections WHERE name = ? AND {_LIVE}"
            return db.execute(query, (name,)).fetchone() is not None

    def api_key(self, name: str) -> str:
        """Return the decrypted admin key of a connection."""
        query = f"SELECT {_SECRET_COLUMNS} FROM connections WHERE name = ? AND {_LIVE}"
        master, row = self._master(), self._secret_row(query, name)
        # A mismatch may be a rotation that committed between reading the key file and the row:
        # read both once more.
        if row[5] != master.key_id:
            master, row = self._master(), self._secret_row(query, name)
        return self._decrypt_row(master, row)

    def _secret_row(self, query: str, name: str) -> tuple:
        with self._db() as db:
            row = db.execute(query, (name,)).fetchone()
        if row is None:
            raise unknown_connection(name)
        return row

    def remove(self, name: str) -> Connection:
        """Disconnect a live connection: delete its stored key, keep a tombstone (name,
        organization, synced days) so its kept rows stay hidden and ``purge`` can delete them
        later; return what was disconnected."""
        conn = self.get(name)
        with self._transaction() as db:
            gone = db.execute(
                "UPDATE connections SET key_ciphertext = X'', key_nonce = X'', key_version = '',"
                " backfill_claimed_by = NULL, backfill_claim = NULL, backfill_claimed_at = NULL,"
                f" disconnected_at = ? WHERE id = ? AND {_LIVE}",
                (_iso(datetime.now(UTC)), conn.id),
            ).rowcount
            if not gone:
                raise unknown_connection(name)
        return conn

    def purge(self, name: str) -> Connection | None:
        """Forget ``name`` entirely, live or disconnected: its row and its synced days. Returns
        what was forgotten, None if the store had no such name."""
        if not self._path.exists():
            return None
        with self._transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM connections WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            conn = _to_connection(row)
            db.execute("DELETE FROM connections WHERE id = ?", (conn.id,))
            db.execute("DELETE FROM synced_days WHERE connection_id = ?", (conn.id,))
        return conn

    def mark_synced(self, name: str, at: datetime, window: SyncWindow | None = None) -> None:
        """Record a successful sync at ``at`` of the days of ``window``.

        Once a connection's first days (the backfill window of the day it was connected) are all
        synced, by whichever path, its backfill is done: the daemon will not pull them again.
        """
        with self._transaction() as db:
            row = db.execute(
                f"SELECT id, created_at FROM connections WHERE name = ? AND {_LIVE}", (name,)
            ).fetchone()
            if row is None:
                raise unknown_connection(name)
            conn_id, created = row
            db.execute("UPDATE connections SET last_synced_at = ? WHERE id = ?", (_iso(at), conn_id))
            if window is None:
                return
            db.executemany(
                "INSERT OR REPLACE INTO synced_days (connection_id, day, synced_at) VALUES (?, ?, ?)",
                [(conn_id, day.isoformat(), _iso(at)) for day in window.days()],
            )
            first = backfill_window(_parse_stored(created).date())
            (synced,) = db.execute(
                "SELECT count(*) FROM synced_days WHERE connection_id = ? AND day >= ? AND day < ?",
                (conn_id, first.start.isoformat(), first.end.isoformat()),
            ).fetchone()
            if synced == first.num_days:
                db.execute(
                    f"UPDATE connections SET {_BACKFILL_DONE} WHERE id = ? AND backfilled_at IS NULL",
                    (_iso(at), conn_id),
                )

    def synced_days(self, name: str) -> list[date]:
        """The days ``name`` has synced successfully, in order (what its catch-up window needs)."""
        conn = self.get(name)
        with self._db() as db:
            rows = db.execute(
                "SELECT day FROM synced_days WHERE connection_id = ? ORDER BY day", (conn.id,)
            ).fetchall()
        return [date.fromisoformat(day) for (day,) in rows]

    def claim_backfill(self, name: str, by: str, *, now: datetime | None = None) -> str | None:
        """Claim the initial backfill for ``by`` ('cli' or 'sensor'); the claim's token iff this
        call won it. With ``now`` (the daemon) a failed backfill is claimed only once its retry
        time has come; a person at the CLI may retry at once."""
        token = uuid.uuid4().hex
        due = "" if now is None else " AND (backfill_retry_at IS NULL OR backfill_retry_at <= ?)"
        with self._db() as db:
            claimed = db.execute(
                "UPDATE connections SET backfill_claimed_by = ?, backfill_claim = ?,"
                f" backfill_claimed_at = ? WHERE name = ? AND {_LIVE} AND backfill_claim IS NULL"
                f" AND backfilled_at IS NULL{due}",
                (by, token, _iso(datetime.now(UTC)), name, *(() if now is None else (_iso(now),))),
            ).rowcount
        if not claimed and not self.exists(name):
            raise unknown_connection(name)
        return token if claimed else None

    def finish_backfill(self, claim: str, at: datetime) -> bool:
        """Mark done the backfill of this claim; False if the claim is no longer current."""
        with self._db() as db:
            return bool(
                db.execute(
                    f"UPDATE connections SET {_BACKFILL_DONE} WHERE backfill_claim = ?", (_iso(at), claim)
                ).rowcount
            )

    def fail_backfill(self, claim: str, reason: str, at: datetime) -> bool:
        """Release this claim after a failed (or canceled, or lost) attempt, keeping ``reason``
        and when the daemon may retry (:func:`backfill_retry_delay`); False if the claim is no
        longer current (already settled), so reporting one outcome twice changes nothing."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT backfill_attempts FROM connections WHERE backfill_claim = ?", (claim,)
            ).fetchone()
            if row is None:
                return False
            attempts = row[0] + 1
            db.execute(
                "UPDATE connections SET backfill_claimed_by = NULL, backfill_claim = NULL,"
                " backfill_claimed_at = NULL, backfill_attempts = ?, backfill_error = ?,"
                " backfill_retry_at = ? WHERE backfill_claim = ?",
                (attempts, reason, _iso(at + backfill_retry_delay(attempts)), claim),
            )
            return True

    def due_backfills(self, now: datetime) -> list[Connection]:
        """The connections whose backfill is neither done nor claimed and whose retry time (if
        an attempt failed) has come, oldest first."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM connections WHERE {_LIVE} AND backfill_claim IS NULL"
                " AND backfilled_at IS NULL AND (backfill_retry_at IS NULL OR backfill_retry_at <= ?)"
                " ORDER BY created_at, name",
                (_iso(now),),
            ).fetchall()
        return [_to_connection(row) for row in rows]

    def claimed_backfills(self) -> list[Connection]:
        """The connections whose backfill is claimed (running), oldest claim first."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM connections WHERE {_LIVE} AND backfill_claim IS NOT NULL"
                " AND backfilled_at IS NULL ORDER BY backfill_claimed_at, name"
            ).fetchall()
        return [_to_connection(row) for row in rows]

    def rotate_master_key(self, new_key: bytes | None = None) -> int:
        """Re-encrypt every stored key under a new master key; return how many were re-encrypted.

        With ``STAX_MASTER_KEY`` set, the new key must be in ``STAX_NEW_MASTER_KEY`` and the caller
        must tell the user to replace ``STAX_MASTER_KEY`` with it. With the key file, the new key
        goes to ``master.key.new`` before any row changes and replaces ``master.key`` after the
        commit, so a crash at any point leaves a key that matches the rows. On any failure
        nothing is changed.
        """
        old = self._master()
        env_mode = master_key_from_env() is not None
        if env_mode:
            new = master_key_from_env(NEW_MASTER_KEY_ENV)
            if new is None or (new_key is not None and new_key != new.key):
                raise UsageError(
                    f"{MASTER_KEY_ENV} is set, so the new master key must come from {NEW_MASTER_KEY_ENV}: "
                    f"set it to base64 of 32 random bytes, rerun, then replace {MASTER_KEY_ENV} with it "
                    "(nothing was changed)"
                )
        else:
            new = MasterKey(generate_master_key() if new_key is None else new_key)
        if new.key_id == old.key_id:
            raise UsageError("the new master key is the same as the current one (nothing was changed)")
        wrote_new_file = committing = False
        try:
            with self._transaction() as db:
                rows = db.execute(f"SELECT {_SECRET_COLUMNS} FROM connections WHERE {_LIVE}").fetchall()
                plaintexts = [self._decrypt_row(old, row) for row in rows]
                if not env_mode:
                    write_key_file(self._new_key_path, new.key)
                    wrote_new_file = True
                for row, plaintext in zip(rows, plaintexts, strict=True):
                    nonce, ciphertext = encrypt(new, plaintext, _aad(row[0], row[2]))
                    db.execute(
                        "UPDATE connections SET key_nonce = ?, key_ciphertext = ?, key_version = ?"
                        " WHERE id = ?",
                        (nonce, ciphertext, new.key_id, row[0]),
                    )
                committing = True
        except BaseException:
            # After COMMIT was attempted, leave master.key.new for the next load to sort out.
            if wrote_new_file and not committing:
                self._new_key_path.unlink(missing_ok=True)
            raise
        if not env_mode:
            try:
                os.replace(self._new_key_path, self._settings.master_key_path)
            except FileNotFoundError:
                pass  # another process's load already finished this rotation
            fsync_dir(self._settings.master_key_path.parent)
        return len(rows)
