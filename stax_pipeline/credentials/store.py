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
from dataclasses import dataclass
from datetime import UTC, datetime

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
from stax_pipeline.settings import Settings

PROVIDERS = ("openai",)
ADMIN_KEY_PREFIX = "sk-admin-"
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
_SECRET_COLUMNS = "id, name, provider, key_nonce, key_ciphertext, key_version"
_COLUMNS = (
    "id, name, provider, key_hint, key_version, created_at, last_synced_at, "
    "backfill_claimed_by, backfilled_at"
)


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


def validate_connection_name(name: str) -> str:
    """Return ``name`` if usable as a connection name (it becomes a Dagster partition key and dbt var)."""
    if isinstance(name, str) and name.startswith("sk-"):
        # Someone pasted a key where the name goes: refuse without echoing it.
        raise UsageError("connection name looks like an API key; pass the key on stdin, not as --name")
    if not isinstance(name, str) or not 1 <= len(name) <= 40 or not _NAME_RE.fullmatch(name):
        raise UsageError(
            "connection name must be 1-40 characters of lowercase letters, digits, '_' or '-', "
            f"starting with a letter or digit, got {name!r}"
        )
    return name


def key_hint(api_key: str) -> str:
    """Return the displayable hint of an admin key, e.g. ``sk-admin-…abcd``."""
    return f"{ADMIN_KEY_PREFIX}…{api_key[-4:]}"


def _check_api_key(api_key: str) -> None:
    if not api_key.startswith(ADMIN_KEY_PREFIX) or len(api_key) <= len(ADMIN_KEY_PREFIX) or any(
        c.isspace() for c in api_key
    ):
        raise UsageError(
            f"an OpenAI admin key starts with {ADMIN_KEY_PREFIX!r} followed by the secret, without "
            "spaces; create one under Organization settings → Admin keys (nothing was stored)"
        )


def _aad(conn_id: str, provider: str) -> bytes:
    return f"stax:v1:{conn_id}:{provider}".encode()


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _unknown(name: str) -> UsageError:
    return UsageError(f"unknown connection {name!r}; run `stax connections` to list them")


def _other_master_key(name: str) -> CredentialError:
    return CredentialError(
        f"the stored key for connection {name!r} was encrypted under a different master key; "
        f"set {MASTER_KEY_ENV} (or restore master.key) to the key that was used"
    )


def _to_connection(row: tuple) -> Connection:
    conn_id, name, provider, hint, version, created, synced, claimed_by, backfilled = row
    return Connection(
        conn_id, name, provider, hint, version,
        _parse(created), _parse(synced), claimed_by, _parse(backfilled),
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
                (count,) = db.execute("SELECT count(*) FROM connections").fetchone()
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
            versions = {v for (v,) in db.execute("SELECT DISTINCT key_version FROM connections")}
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

    def add(self, name: str, provider: str, api_key: str) -> Connection:
        """Encrypt and store a new connection's admin key; raise UsageError if the name is taken."""
        validate_connection_name(name)
        if provider not in PROVIDERS:
            raise UsageError(f"unsupported provider {provider!r}; supported: {', '.join(PROVIDERS)}")
        _check_api_key(api_key)
        master = self._master()
        conn = Connection(
            uuid.uuid4().hex, name, provider, key_hint(api_key), master.key_id,
            datetime.now(UTC), None, None, None,
        )
        nonce, ciphertext = encrypt(master, api_key, _aad(conn.id, provider))
        try:
            with self._transaction() as db:
                # Never mix master keys in one store (also catches a rotation committed meanwhile).
                other = db.execute(
                    "SELECT name FROM connections WHERE key_version != ? LIMIT 1", (master.key_id,)
                ).fetchone()
                if other:
                    raise _other_master_key(other[0])
                db.execute(
                    "INSERT INTO connections (id, name, provider, key_ciphertext, key_nonce, key_version,"
                    " key_hint, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (conn.id, name, provider, ciphertext, nonce, master.key_id, conn.key_hint,
                     _iso(conn.created_at)),
                )
        except sqlite3.IntegrityError:
            raise UsageError(
                f"a connection named {name!r} already exists; pick another name or run "
                f"`stax disconnect {name}` first"
            ) from None
        return conn

    def get(self, name: str) -> Connection:
        """Return the named connection; raise UsageError if there is none."""
        if not self._path.exists():  # reading never creates the store
            raise _unknown(name)
        with self._db() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM connections WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _unknown(name)
        return _to_connection(row)

    def list(self) -> list[Connection]:
        """Return every connection, oldest first."""
        if not self._path.exists():
            return []
        with self._db() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM connections ORDER BY created_at, name").fetchall()
        return [_to_connection(row) for row in rows]

    def exists(self, name: str) -> bool:
        """Return whether a connection with this name is stored."""
        if not self._path.exists():
            return False
        with self._db() as db:
            return db.execute("SELECT 1 FROM connections WHERE name = ?", (name,)).fetchone() is not None

    def api_key(self, name: str) -> str:
        """Return the decrypted admin key of a connection."""
        query = f"SELECT {_SECRET_COLUMNS} FROM connections WHERE name = ?"
        for attempt in range(2):
            master = self._master()
            with self._db() as db:
                row = db.execute(query, (name,)).fetchone()
            if row is None:
                raise _unknown(name)
            # A mismatch may be a rotation that committed between reading the key file and the row.
            if row[5] == master.key_id:
                break
        return self._decrypt_row(master, row)

    def remove(self, name: str) -> Connection:
        """Delete a connection and its stored key; return what was removed."""
        conn = self.get(name)
        with self._db() as db:
            if db.execute("DELETE FROM connections WHERE id = ?", (conn.id,)).rowcount == 0:
                raise _unknown(name)
        return conn

    def _update(self, name: str, assignments: str, params: tuple) -> None:
        with self._db() as db:
            cursor = db.execute(f"UPDATE connections SET {assignments} WHERE name = ?", (*params, name))
            if cursor.rowcount == 0:
                raise _unknown(name)

    def mark_synced(self, name: str, at: datetime) -> None:
        """Record the time of the last successful sync."""
        self._update(name, "last_synced_at = ?", (_iso(at),))

    def claim_backfill(self, name: str, by: str) -> bool:
        """Claim the initial backfill for ``by`` (e.g. 'cli', 'sensor'); True iff this call won it."""
        with self._db() as db:
            claimed = db.execute(
                "UPDATE connections SET backfill_claimed_by = ? WHERE name = ?"
                " AND backfill_claimed_by IS NULL AND backfilled_at IS NULL",
                (by, name),
            ).rowcount
        if not claimed and not self.exists(name):
            raise _unknown(name)
        return bool(claimed)

    def release_backfill(self, name: str) -> None:
        """Give up a backfill claim (the backfill failed) so it can be claimed again."""
        self._update(name, "backfill_claimed_by = NULL", ())

    def mark_backfilled(self, name: str, at: datetime) -> None:
        """Record that the initial backfill finished."""
        self._update(name, "backfilled_at = ?", (_iso(at),))

    def pending_backfills(self) -> list[Connection]:
        """Return the connections whose backfill is neither claimed nor done, oldest first."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM connections WHERE backfill_claimed_by IS NULL"
                " AND backfilled_at IS NULL ORDER BY created_at, name"
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
                rows = db.execute(f"SELECT {_SECRET_COLUMNS} FROM connections").fetchall()
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
