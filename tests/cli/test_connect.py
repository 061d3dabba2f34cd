"""`stax connect / connections / disconnect` as a person runs them: a real process, the key on
stdin, the simulator over HTTP. Rejections store nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, files_containing

STAX = str(Path(sys.executable).parent / "stax")


def stax(*args: str, key: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STAX, *args],
        input=(key + "\n") if key is not None else "",
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def assert_nothing_stored(home: Path, key: str) -> None:
    listing = stax("connections")
    assert listing.returncode == 0
    assert "No connections" in listing.stdout
    assert not home.exists(), sorted(home.rglob("*"))  # not even an empty store or master key


def test_connect_stores_the_key_encrypted_and_lists_it(stax_home, simulator):
    result = stax("connect", "openai", "--name", "acme", "--no-backfill", key=f"  {ADMIN_KEY}  ")
    assert result.returncode == 0, result.stderr
    hint = f"sk-admin-…{ADMIN_KEY[-4:]}"
    assert hint in result.stdout
    assert ADMIN_KEY not in result.stdout + result.stderr
    listing = stax("connections")
    assert listing.returncode == 0
    assert "acme" in listing.stdout and "openai" in listing.stdout and hint in listing.stdout
    assert ADMIN_KEY not in listing.stdout
    # The key only ever reached the simulator as a bearer token; on disk it is ciphertext.
    assert files_containing(stax_home, ADMIN_KEY.encode()) == []
    assert files_containing(stax_home, ADMIN_KEY[9:].encode()) == []
    assert [p for p, _ in simulator.requests] == ["/v1/organization/costs"]


@pytest.mark.parametrize(
    ("key", "code", "says"),
    [
        ("sk-proj-abc123def456ghi789", 2, "start with sk-admin-"),
        ("", 2, "no key given"),
        (
            "sk-admin-test-revoked-11112222",
            1,
            "wrong key type: paste an admin key (sk-admin-…), not a regular API key",
        ),
        (
            "sk-admin-test-nonowner-33334444",
            1,
            "this admin key was created by a non-owner; have an organization owner create it",
        ),
    ],
)
def test_rejected_keys_exit_non_zero_with_guidance_and_store_nothing(stax_home, simulator, key, code, says):
    result = stax("connect", "openai", "--name", "acme", key=key)
    assert result.returncode == code
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    if key:
        assert key not in result.stderr + result.stdout
        assert_nothing_stored(stax_home, key)
    if code == 2:
        assert simulator.requests == []  # refused before any request


ANTHROPIC_KEY = "sk-ant-admin01-test-6d1e9a0c7b3f2854"


def test_connect_anthropic_stores_the_key_encrypted_and_lists_it(stax_home, simulator):
    result = stax("connect", "anthropic", "--name", "claude", "--no-backfill", key=ANTHROPIC_KEY)
    assert result.returncode == 0, result.stderr
    hint = f"sk-ant-admin01-…{ANTHROPIC_KEY[-4:]}"
    assert hint in result.stdout and ANTHROPIC_KEY not in result.stdout + result.stderr
    listing = stax("connections")
    assert "claude" in listing.stdout and "anthropic" in listing.stdout and hint in listing.stdout
    assert files_containing(stax_home, ANTHROPIC_KEY.encode()) == []
    assert files_containing(stax_home, ANTHROPIC_KEY[len("sk-ant-admin01-") :].encode()) == []
    # one cheap check of the key, then the organization behind it (for the one-organization rule)
    assert [p for p, _ in simulator.requests] == ["/v1/organizations/cost_report", "/v1/organizations/me"]
    # the same organization under another name is refused, naming the first connection
    again = stax("connect", "anthropic", "--name", "claude-dup", "--no-backfill", key=ANTHROPIC_KEY)
    assert again.returncode == 2 and "'claude'" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("key", "code", "says"),
    [
        ("sk-ant-api03-abc123def456ghi789", 2, "admin key"),
        ("sk-admin-abc123def456ghi789", 2, "sk-ant-admin01-"),
        ("sk-ant-admin01-test-revoked-1111", 1, "not an admin key, or it was revoked"),
        ("sk-ant-admin01-test-nopermission-2222", 1, "lacks permission"),
    ],
)
def test_rejected_anthropic_keys_exit_non_zero_with_guidance_and_store_nothing(
    stax_home, simulator, key, code, says
):
    result = stax("connect", "anthropic", "--name", "claude", key=key)
    assert result.returncode == code, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert says in line and "Nothing was stored" in line
    assert key not in result.stderr + result.stdout
    assert_nothing_stored(stax_home, key)
    if code == 2:
        assert simulator.requests == []  # refused before any request


def test_connect_accepts_exactly_the_registered_providers(stax_home, simulator):
    from stax_pipeline.providers import provider_names

    result = stax("connect", "nosuch", "--name", "acme", key=ADMIN_KEY)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "invalid choice: 'nosuch'" in line
    assert all(repr(name) in line for name in provider_names())  # the choices are the registry's
    assert ADMIN_KEY not in result.stderr + result.stdout
    assert simulator.requests == []
    assert_nothing_stored(stax_home, ADMIN_KEY)


def test_unreachable_api_says_so_and_stores_nothing(stax_home, monkeypatch):
    monkeypatch.setenv("STAX_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    result = stax("connect", "openai", "--name", "acme", key=ADMIN_KEY)
    assert result.returncode == 1
    assert "could not reach" in result.stderr and "Nothing was stored" in result.stderr
    assert_nothing_stored(stax_home, ADMIN_KEY)


def test_bad_name_and_duplicate_name_are_refused(stax_home, simulator):
    bad = stax("connect", "openai", "--name", "Bad Name", key=ADMIN_KEY)
    assert bad.returncode == 2 and "connection name" in bad.stderr
    assert stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY).returncode == 0
    again = stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_disconnect_removes_the_key(stax_home, simulator):
    assert stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY).returncode == 0
    result = stax("disconnect", "acme")
    assert result.returncode == 0
    assert "No connections" in stax("connections").stdout
    again = stax("disconnect", "acme")  # its (here: no) rows are kept until --purge
    assert again.returncode == 2 and "already disconnected" in again.stderr and "--purge" in again.stderr
    assert stax("disconnect", "acme", "--purge").returncode == 0
    unknown = stax("disconnect", "acme")
    assert unknown.returncode == 2 and "unknown connection" in unknown.stderr
