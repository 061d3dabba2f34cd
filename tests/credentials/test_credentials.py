"""Tests of the master key, encryption at rest and the connection store."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from stax_pipeline.credentials import (
    ConnectionStore,
    MasterKey,
    backfill_retry_delay,
    decrypt,
    encode_master_key,
    encrypt,
    generate_master_key,
    load_master_key,
    validate_connection_name,
)
from stax_pipeline.credentials.crypto import read_key_file, write_key_file
from stax_pipeline.errors import ConfigError, CredentialError, UsageError
from stax_pipeline.lib.window import SyncWindow, backfill_window
from stax_pipeline.settings import Settings, load_settings

KEY_A = "sk-admin-" + "Qx7vLr2NpW9sKd4TmYb8HcZf3JgE6uRa"
KEY_B = "sk-admin-" + "Vn5tBw1XcM8qPz0LkSd7FjHy2GrU4eTo"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STAX_HOME", str(tmp_path))
    monkeypatch.delenv("STAX_MASTER_KEY", raising=False)
    monkeypatch.delenv("STAX_NEW_MASTER_KEY", raising=False)
    return load_settings()


@pytest.fixture
def store(settings: Settings) -> ConnectionStore:
    return ConnectionStore(settings)


def raw_rows(settings: Settings) -> list[tuple]:
    with sqlite3.connect(settings.app_db_path) as db:
        return db.execute(
            "SELECT id, name, provider, key_ciphertext, key_nonce, key_version FROM connections ORDER BY name"
        ).fetchall()


def execute(settings: Settings, sql: str, params: tuple = ()) -> None:
    db = sqlite3.connect(settings.app_db_path)
    with db:
        db.execute(sql, params)
    db.close()


def secret_forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        raw.hex().encode(),
        secret.encode("utf-16-le"),
    ]


def assert_no_secret(message: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message
        assert secret.removeprefix("sk-admin-") not in message


def test_round_trip(store: ConnectionStore) -> None:
    conn = store.add("prod", "openai", KEY_A)
    assert conn.key_hint == "sk-admin-…" + KEY_A[-4:] == "sk-admin-…6uRa"
    assert conn.created_at.tzinfo is not None
    assert store.api_key("prod") == KEY_A
    assert store.get("prod") == conn
    assert store.exists("prod") and not store.exists("other")
    assert KEY_A not in repr(conn) and KEY_A not in repr(store.list())


def test_fresh_nonce_each_encryption() -> None:
    master = MasterKey(generate_master_key())
    first, second = encrypt(master, KEY_A, b"aad"), encrypt(master, KEY_A, b"aad")
    assert first[0] != second[0] and first[1] != second[1]
    assert len(first[0]) == 12
    assert decrypt(master, *first, b"aad") == decrypt(master, *second, b"aad") == KEY_A


def test_master_key_repr_hides_key() -> None:
    master = MasterKey(generate_master_key())
    assert encode_master_key(master.key) not in repr(master) and str(master.key) not in repr(master)
    assert len(master.key_id) == 16 and master.key_id in repr(master)


def test_ciphertext_swapped_between_rows_fails(store: ConnectionStore, settings: Settings) -> None:
    store.add("alpha", "openai", KEY_A)
    store.add("beta", "openai", KEY_B)
    (_, _, _, _ct_a, _nonce_a, _), (_, _, _, ct_b, nonce_b, _) = raw_rows(settings)
    execute(
        settings, "UPDATE connections SET key_ciphertext=?, key_nonce=? WHERE name='alpha'", (ct_b, nonce_b)
    )
    with pytest.raises(CredentialError) as err:
        store.api_key("alpha")
    assert_no_secret(str(err.value), KEY_A, KEY_B)
    assert store.api_key("beta") == KEY_B


def test_ciphertext_bound_to_provider(store: ConnectionStore, settings: Settings) -> None:
    store.add("alpha", "openai", KEY_A)
    execute(settings, "UPDATE connections SET provider='other' WHERE name='alpha'")
    with pytest.raises(CredentialError):
        store.api_key("alpha")


def test_tampered_ciphertext_fails_cleanly(store: ConnectionStore, settings: Settings) -> None:
    store.add("prod", "openai", KEY_A)
    ciphertext = bytearray(raw_rows(settings)[0][3])
    ciphertext[5] ^= 0x01
    execute(settings, "UPDATE connections SET key_ciphertext=? WHERE name='prod'", (bytes(ciphertext),))
    with pytest.raises(CredentialError) as err:
        store.api_key("prod")
    message = str(err.value)
    assert "failed authentication" in message and "'prod'" in message
    assert_no_secret(message, KEY_A)
    assert bytes(ciphertext).hex() not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_wrong_master_key_is_reported(store: ConnectionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.add("prod", "openai", KEY_A)
    monkeypatch.setenv("STAX_MASTER_KEY", encode_master_key(generate_master_key()))
    with pytest.raises(CredentialError, match="different master key") as err:
        store.api_key("prod")
    assert "STAX_MASTER_KEY" in str(err.value)
    with pytest.raises(CredentialError, match="different master key"):
        store.add("second", "openai", KEY_B)  # never mixes master keys in one store


@pytest.mark.parametrize("value", ["not base64!!", base64.b64encode(b"x" * 16).decode(), "QUJD"])
def test_invalid_env_master_key(settings: Settings, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STAX_MASTER_KEY", value)
    with pytest.raises(ConfigError, match="base64 of exactly 32 bytes") as err:
        load_master_key(settings)
    assert value not in str(err.value)
    with pytest.raises(ConfigError):
        ConnectionStore(settings).add("prod", "openai", KEY_A)


def test_key_file_created_private_and_reused(store: ConnectionStore, settings: Settings) -> None:
    path = settings.master_key_path
    assert not path.exists()
    store.add("prod", "openai", KEY_A)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.app_db_path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert len(base64.b64decode(content)) == 32
    assert ConnectionStore(settings).api_key("prod") == KEY_A
    assert load_master_key(settings).key_id == store.get("prod").key_version
    assert path.read_bytes() == content
    assert [p.name for p in settings.home.iterdir() if p.name.startswith(".master")] == []


def test_loose_key_file_permissions_refused(store: ConnectionStore, settings: Settings) -> None:
    store.add("prod", "openai", KEY_A)
    settings.master_key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        store.api_key("prod")


def test_missing_key_file_with_stored_keys_refused(store: ConnectionStore, settings: Settings) -> None:
    store.add("prod", "openai", KEY_A)
    settings.master_key_path.unlink()
    with pytest.raises(ConfigError, match="missing"):
        store.api_key("prod")
    assert not settings.master_key_path.exists()


def test_rotation_with_key_file(
    store: ConnectionStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add("alpha", "openai", KEY_A)
    store.add("beta", "openai", KEY_B)
    old_content = settings.master_key_path.read_bytes()
    old_rows = raw_rows(settings)
    assert store.rotate_master_key() == 2
    assert store.api_key("alpha") == KEY_A and store.api_key("beta") == KEY_B
    new_rows = raw_rows(settings)
    assert (
        {r[5] for r in new_rows}
        == {read_key_file(settings.master_key_path).key_id}
        != {r[5] for r in old_rows}
    )
    assert all(new[3] != old[3] and new[4] != old[4] for new, old in zip(new_rows, old_rows, strict=False))
    assert settings.master_key_path.read_bytes() != old_content
    assert stat.S_IMODE(settings.master_key_path.stat().st_mode) == 0o600
    assert not settings.master_key_path.with_name("master.key.new").exists()
    monkeypatch.setenv("STAX_MASTER_KEY", old_content.decode().strip())
    with pytest.raises(CredentialError, match="different master key"):
        store.api_key("alpha")


def test_rotation_with_env_key_needs_new_key(
    store: ConnectionStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = encode_master_key(generate_master_key()), encode_master_key(generate_master_key())
    monkeypatch.setenv("STAX_MASTER_KEY", old)
    store.add("prod", "openai", KEY_A)
    before = raw_rows(settings)
    with pytest.raises(UsageError, match="STAX_NEW_MASTER_KEY"):
        store.rotate_master_key()
    assert raw_rows(settings) == before
    monkeypatch.setenv("STAX_NEW_MASTER_KEY", new)
    assert store.rotate_master_key() == 1
    assert not settings.master_key_path.exists()
    with pytest.raises(CredentialError, match="different master key"):
        store.api_key("prod")
    monkeypatch.setenv("STAX_MASTER_KEY", new)
    assert store.api_key("prod") == KEY_A


def test_failed_rotation_changes_nothing(store: ConnectionStore, settings: Settings) -> None:
    store.add("alpha", "openai", KEY_A)
    store.add("beta", "openai", KEY_B)
    execute(settings, "UPDATE connections SET key_nonce=? WHERE name='beta'", (b"\0" * 12,))
    before, key_before = raw_rows(settings), settings.master_key_path.read_bytes()
    with pytest.raises(CredentialError):
        store.rotate_master_key()
    assert raw_rows(settings) == before
    assert settings.master_key_path.read_bytes() == key_before
    assert not settings.master_key_path.with_name("master.key.new").exists()
    assert store.api_key("alpha") == KEY_A


def _interrupt_rotation(settings: Settings, *, rows_rotated: bool) -> MasterKey:
    """Leave master.key.new behind, as a crash mid-rotation would, optionally after the commit."""
    new = MasterKey(generate_master_key())
    write_key_file(settings.master_key_path.with_name("master.key.new"), new.key)
    if rows_rotated:
        old = read_key_file(settings.master_key_path)
        for conn_id, _, provider, ciphertext, nonce, _ in raw_rows(settings):
            aad = f"stax:v1:{conn_id}:{provider}".encode()
            new_nonce, new_ct = encrypt(new, decrypt(old, nonce, ciphertext, aad), aad)
            execute(
                settings,
                "UPDATE connections SET key_ciphertext=?, key_nonce=?, key_version=? WHERE id=?",
                (new_ct, new_nonce, new.key_id, conn_id),
            )
    return new


@pytest.mark.parametrize("rows_rotated", [True, False])
def test_interrupted_rotation_recovers(
    store: ConnectionStore, settings: Settings, rows_rotated: bool
) -> None:
    store.add("alpha", "openai", KEY_A)
    old_id = read_key_file(settings.master_key_path).key_id
    new = _interrupt_rotation(settings, rows_rotated=rows_rotated)
    assert ConnectionStore(settings).api_key("alpha") == KEY_A
    assert read_key_file(settings.master_key_path).key_id == (new.key_id if rows_rotated else old_id)
    assert not settings.master_key_path.with_name("master.key.new").exists()


@pytest.mark.parametrize("name", ["prod", "a", "x" * 40, "team_1-b", "0day"])
def test_valid_names(name: str) -> None:
    assert validate_connection_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Prod", "has space", "a|b", "a,b", "-lead", "_lead", "x" * 41, "a\n", "é", "sk-admin-abcdefgh1234"],
)
def test_invalid_names(store: ConnectionStore, name: str) -> None:
    with pytest.raises(UsageError, match="connection name"):
        validate_connection_name(name)
    with pytest.raises(UsageError):
        store.add(name, "openai", KEY_A)
    assert store.list() == []


def test_invalid_key_and_provider_refused(store: ConnectionStore) -> None:
    with pytest.raises(UsageError, match="start with sk-admin-") as err:
        store.add("prod", "openai", "sk-proj-abcdefghijklmnop")
    assert "abcdefgh" not in str(err.value)
    with pytest.raises(UsageError, match="unsupported provider 'nosuch'; supported: openai"):
        store.add("prod", "nosuch", KEY_A)
    assert store.list() == []


def test_duplicate_name(store: ConnectionStore) -> None:
    store.add("prod", "openai", KEY_A)
    with pytest.raises(UsageError, match=r"already exists.*stax disconnect prod"):
        store.add("prod", "openai", KEY_B)
    assert store.api_key("prod") == KEY_A


def test_get_list_remove_and_sync_times(store: ConnectionStore) -> None:
    store.add("beta", "openai", KEY_B)
    store.add("alpha", "openai", KEY_A)
    assert [c.name for c in store.list()] == ["beta", "alpha"]
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    store.mark_synced("alpha", at)
    assert store.get("alpha").last_synced_at == at
    assert store.remove("beta").name == "beta"
    assert [c.name for c in store.list()] == ["alpha"]
    for call in (lambda: store.get("beta"), lambda: store.remove("beta"), lambda: store.api_key("beta")):
        with pytest.raises(UsageError, match=r"unknown connection 'beta'.*stax connections"):
            call()


def test_claim_backfill_is_once_only_and_settled_by_its_token(store: ConnectionStore) -> None:
    now = datetime.now(UTC)
    store.add("prod", "openai", KEY_A)
    assert store.get("prod").backfill_state == "pending"
    assert [c.name for c in store.due_backfills(now)] == ["prod"]
    claim = store.claim_backfill("prod", "cli")
    assert claim
    assert store.claim_backfill("prod", "sensor") is None
    claimed = store.get("prod")
    assert (claimed.backfill_state, claimed.backfill_claimed_by, claimed.backfill_claim) == (
        "running",
        "cli",
        claim,
    )
    assert store.due_backfills(now) == []
    assert [c.name for c in store.claimed_backfills()] == ["prod"]

    assert store.fail_backfill(claim, "GET /organization/costs failed with HTTP 503", now)
    assert not store.fail_backfill(claim, "reported twice", now)  # a settled claim stays settled
    failed = store.get("prod")
    assert failed.backfill_state == "failed"
    assert failed.backfill_error == "GET /organization/costs failed with HTTP 503"
    assert (failed.backfill_attempts, failed.backfill_retry_at) == (1, now + timedelta(minutes=1))
    # The daemon waits for the retry time; a person at the CLI may retry at once.
    assert store.due_backfills(now) == []
    assert store.claim_backfill("prod", "sensor", now=now) is None
    assert [c.name for c in store.due_backfills(now + timedelta(minutes=1))] == ["prod"]
    retry = store.claim_backfill("prod", "sensor", now=now + timedelta(minutes=1))
    assert retry and retry != claim
    assert not store.finish_backfill(claim, now)  # the old claim's outcome changes nothing
    assert store.fail_backfill(retry, "the run was canceled", now)
    assert store.get("prod").backfill_retry_at == now + timedelta(minutes=2)

    again = store.claim_backfill("prod", "cli")
    done = datetime(2024, 5, 2, tzinfo=UTC)
    assert store.finish_backfill(again, done)
    finished = store.get("prod")
    assert (finished.backfill_state, finished.backfilled_at, finished.backfill_error) == ("done", done, None)
    assert store.claim_backfill("prod", "cli") is None
    assert store.due_backfills(now + timedelta(days=1)) == []
    with pytest.raises(UsageError):
        store.claim_backfill("nope", "cli")


def test_backfill_retries_back_off_exponentially_up_to_an_hour() -> None:
    delays = [backfill_retry_delay(n) for n in range(1, 10)]
    assert [d.total_seconds() / 60 for d in delays] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backfill_retry_delay(10_000) == timedelta(hours=1)


def test_synced_days_are_recorded_per_connection(store: ConnectionStore) -> None:
    store.add("prod", "openai", KEY_A)
    store.add("dev", "openai", KEY_B)
    at = datetime(2026, 10, 21, 2, 0, tzinfo=UTC)
    store.mark_synced("prod", at, SyncWindow.inclusive(date(2026, 10, 1), date(2026, 10, 20)))
    store.mark_synced("prod", at, SyncWindow.inclusive(date(2026, 10, 18), date(2026, 10, 20)))
    assert store.synced_days("prod") == SyncWindow.inclusive(date(2026, 10, 1), date(2026, 10, 20)).days()
    assert store.synced_days("dev") == []
    prod = store.get("prod")
    assert (prod.last_synced_at, prod.last_synced_day) == (at, date(2026, 10, 20))
    assert store.get("dev").last_synced_day is None
    # Days outside its first 30 days do not complete a backfill.
    assert prod.backfill_state == "pending"
    store.remove("prod")
    with pytest.raises(UsageError, match="disconnected connection named 'prod' still has its rows"):
        store.add("prod", "openai", KEY_A)  # its kept rows would haunt a new connection
    store.purge("prod")
    store.add("prod", "openai", KEY_A)  # a new connection of the same name starts empty
    assert store.synced_days("prod") == []


def test_syncing_a_connections_first_days_completes_its_backfill(store: ConnectionStore) -> None:
    created = store.add("prod", "openai", KEY_A).created_at
    claim = store.claim_backfill("prod", "sensor")
    first = backfill_window(created.date())
    store.mark_synced("prod", created, SyncWindow(first.start, first.end - timedelta(days=1)))
    assert store.get("prod").backfill_state == "running"  # one day short
    store.mark_synced("prod", created, first)
    done = store.get("prod")
    assert (done.backfill_state, done.backfilled_at, done.backfill_claim) == ("done", created, None)
    # The daemon's run, finishing after the CLI synced the same days, changes nothing.
    assert not store.fail_backfill(claim, "late failure", created)
    assert store.get("prod").backfill_state == "done"


def test_a_version_1_store_is_migrated_in_place(settings: Settings) -> None:
    old = ConnectionStore(settings)
    old.add("prod", "openai", KEY_A)
    old.add("dev", "openai", KEY_B)
    # Rebuild the version 1 layout: no synced days, no backfill state, a claim without a token.
    db = sqlite3.connect(settings.app_db_path)
    with db:
        db.execute("DROP TABLE synced_days")
        db.execute("DROP INDEX connections_live_organization")
        for column in (
            "backfill_claim",
            "backfill_claimed_at",
            "backfill_attempts",
            "backfill_error",
            "backfill_retry_at",
            "api_base_url",
            "simulated",
            "organization_id",
            "organization_name",
            "disconnected_at",
        ):
            db.execute(f"ALTER TABLE connections DROP COLUMN {column}")
        db.execute("UPDATE connections SET backfill_claimed_by = 'sensor' WHERE name = 'dev'")
        db.execute("PRAGMA user_version = 0")
    db.close()

    store = ConnectionStore(settings)
    by_name = {c.name: c for c in store.list()}
    assert store.api_key("prod") == KEY_A
    assert by_name["prod"].backfill_state == "pending" and by_name["prod"].backfill_attempts == 0
    # Connections stored before the API URL was: the default one, as real (never the simulator).
    assert (by_name["prod"].api_base_url, by_name["prod"].simulated) == ("https://api.openai.com/v1", False)
    # The old claim now has a token, so the backfill sensor can release it if no run carries it.
    assert by_name["dev"].backfill_state == "running" and by_name["dev"].backfill_claim
    store.mark_synced("prod", datetime.now(UTC), SyncWindow.inclusive(date(2026, 10, 1), date(2026, 10, 1)))
    assert store.synced_days("prod") == [date(2026, 10, 1)]
    # Version 3: organizations unknown until the next sync learns them, nothing disconnected.
    assert (by_name["prod"].organization_id, by_name["prod"].disconnected_at) == (None, None)
    store.set_organization("prod", "org-1")
    with pytest.raises(ConfigError, match="org-1 is already connected as 'prod'"):
        store.set_organization("dev", "org-1")
    ConnectionStore(settings).list()  # opening a migrated store again changes nothing
    with sqlite3.connect(settings.app_db_path) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (4,)


def test_reading_an_absent_store_creates_nothing(store: ConnectionStore, settings: Settings) -> None:
    assert store.list() == []
    assert not store.exists("alpha")
    with pytest.raises(UsageError, match="unknown connection"):
        store.get("alpha")
    assert not settings.app_db_path.exists()


def test_plaintext_key_never_written_to_disk(store: ConnectionStore, settings: Settings) -> None:
    assert store.due_backfills(datetime.now(UTC)) == []  # creates the database and schema
    # Keep a reader open so SQLite leaves its -wal/-shm files in place to be inspected.
    reader = sqlite3.connect(settings.app_db_path)
    reader.execute("SELECT count(*) FROM connections").fetchone()
    try:
        store.add("alpha", "openai", KEY_A)
        store.add("beta", "openai", KEY_B)
        store.rotate_master_key()
        assert store.api_key("alpha") == KEY_A
        store.remove("beta")
        files = [p for p in settings.home.rglob("*") if p.is_file()]
        assert {"stax.db", "stax.db-wal", "stax.db-shm", "master.key"} <= {p.name for p in files}
        for path in files:
            content = path.read_bytes()
            for form in secret_forms(KEY_A) + secret_forms(KEY_B):
                assert form not in content, f"secret found in {path.name}"
    finally:
        reader.close()


def test_existing_key_file_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_key_file(path, generate_master_key())
    with pytest.raises(FileExistsError):
        write_key_file(path, generate_master_key())
    assert os.listdir(tmp_path) == ["k"]


def test_one_live_connection_per_organization(store: ConnectionStore) -> None:
    store.add("acme", "openai", KEY_A, organization_id="org-acme")
    with pytest.raises(UsageError, match="organization org-acme is already connected as 'acme'"):
        store.add("acme-dup", "openai", KEY_B, organization_id="org-acme")
    assert [c.name for c in store.list()] == ["acme"]
    # Learned at a sync instead: the same refusal, and a key that changed organization.
    store.add("later", "openai", KEY_B)
    with pytest.raises(ConfigError, match=r"org-acme is already connected as 'acme'.*Nothing was loaded"):
        store.set_organization("later", "org-acme")
    store.set_organization("later", "org-later")
    store.set_organization("later", "org-later")  # the same again: nothing to do
    with pytest.raises(ConfigError, match="now reports organization org-other"):
        store.set_organization("later", "org-other")
    assert {c.name: c.organization_id for c in store.list()} == {"acme": "org-acme", "later": "org-later"}


def test_disconnect_keeps_a_tombstone_until_purged(store: ConnectionStore, settings: Settings) -> None:
    store.add("acme", "openai", KEY_A, organization_id="org-acme")
    store.mark_synced("acme", datetime.now(UTC), SyncWindow.inclusive(date(2026, 10, 1), date(2026, 10, 2)))
    store.remove("acme")
    assert store.list() == [] and not store.exists("acme")
    [tombstone] = store.list_disconnected()
    assert (tombstone.name, tombstone.organization_id) == ("acme", "org-acme")
    assert tombstone.disconnected_at is not None
    with sqlite3.connect(settings.app_db_path) as db:  # the key itself is gone
        assert db.execute("SELECT length(key_ciphertext) FROM connections").fetchall() == [(0,)]
    for call in (lambda: store.get("acme"), lambda: store.api_key("acme"), lambda: store.remove("acme")):
        with pytest.raises(UsageError, match="unknown connection 'acme'"):
            call()
    # The organization is free for a new connection; the name is not (its rows are kept) ...
    store.add("acme2", "openai", KEY_B, organization_id="org-acme")
    store.purge("acme2")
    with pytest.raises(UsageError, match="disconnected connection named 'acme' still has its rows"):
        store.add("acme", "openai", KEY_B, organization_id="org-other")
    # ... except for a key of the same organization: reconnected, its synced days count again.
    revived = store.add("acme", "openai", KEY_B, organization_id="org-acme")
    assert (revived.id, revived.disconnected_at) == (tombstone.id, None)
    assert store.api_key("acme") == KEY_B and len(store.synced_days("acme")) == 2
    store.remove("acme")
    assert store.purge("acme") is not None and store.purge("acme") is None
    assert store.list_disconnected() == [] and store.list() == []
