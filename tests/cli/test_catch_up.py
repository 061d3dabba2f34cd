"""Catch-up and backfill state as a person sees them: `connect --no-backfill` says how to
backfill, one plain `stax sync` makes a connection whole up to yesterday (each connection over
its own window), and `stax connections` shows each backfill's state and the last sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.lib.window import SyncWindow, backfill_window
from stax_pipeline.settings import load_settings
from stax_pipeline.usecases import plan_sync
from tests.cli.test_connect import stax
from tests.conftest import ADMIN_KEY, TODAY


def _real_today():
    return datetime.now(UTC).date()


def _spend_by_day(settings, connection: str) -> dict:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return dict(
            con.execute(
                "select date, sum(cost_usd) from marts.fct_spend_daily where connection = ? group by 1",
                [connection],
            ).fetchall()
        )
    finally:
        con.close()


def _assert_marts_equal_truth(settings, simulator, connection: str, key: str, window: SyncWindow):
    marts = _spend_by_day(settings, connection)
    truth = simulator.org_for_key(key).cost_total_by_day(window.start, window.end)
    assert any(truth.values())
    assert set(marts) == {day for day, usd in truth.items() if usd}
    for day, usd in truth.items():
        assert marts.get(day, 0.0) == pytest.approx(usd, abs=1e-6), (connection, day)


def test_one_plain_sync_fills_a_twelve_day_hole_up_to_yesterday(stax_home, simulator):
    assert stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY).returncode == 0
    # Two days synced, then 12 days missed (the simulator's clock stands at TODAY; the real
    # calendar only makes the empty tail after it longer).
    first, last = TODAY - timedelta(days=14), TODAY - timedelta(days=13)
    explicit = stax("sync", "--connection", "acme", "--start", str(first), "--end", str(last))
    assert explicit.returncode == 0, explicit.stderr

    before = _real_today()
    plain = stax("sync")
    assert plain.returncode == 0, plain.stderr
    today = _real_today()
    settings = load_settings()
    if before == today:  # (a run across UTC midnight moves "yesterday"; the data check still holds)
        window = SyncWindow(last + timedelta(days=1), today)
        assert f"acme: syncing {window} ({window.num_days} days)" in plain.stdout
    assert ConnectionStore(settings).synced_days("acme") == SyncWindow(first, today).days()
    _assert_marts_equal_truth(settings, simulator, "acme", ADMIN_KEY, SyncWindow(first, today))

    header, row = stax("connections").stdout.splitlines()
    assert header.split()[-3:] == ["LAST", "DAY", "BACKFILL"]
    # Its first 30 days still miss the days before `first`: the backfill is still to do.
    assert row.endswith(f"{today - timedelta(days=1)}  pending")
    assert "never" not in row


def test_each_connection_gets_its_own_window(stax_home):
    store = ConnectionStore(load_settings())
    for name in ("acme", "globex", "initech"):
        store.add(name, "openai", ADMIN_KEY)
    yesterday = TODAY - timedelta(days=1)
    at = datetime.now(UTC)
    store.mark_synced("acme", at, SyncWindow(TODAY - timedelta(days=40), TODAY))  # up to date
    store.mark_synced("globex", at, SyncWindow(TODAY - timedelta(days=40), TODAY - timedelta(days=12)))
    plan = plan_sync(store, ["acme", "globex", "initech"], None, None, 3, TODAY)
    assert plan == {
        "acme": SyncWindow(yesterday - timedelta(days=3), TODAY),
        "globex": SyncWindow(TODAY - timedelta(days=12), TODAY),
        "initech": backfill_window(TODAY),  # never synced
    }
    # Explicit days are the same for everyone, as before; one given bound keeps the other's default.
    first, last = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
    explicit = plan_sync(store, ["acme", "initech"], first, last, 3, TODAY)
    assert set(explicit.values()) == {SyncWindow.inclusive(first, last)}
    only_start = plan_sync(store, ["globex"], first, None, 3, TODAY)
    assert only_start == {"globex": SyncWindow(first, TODAY)}
    only_end = plan_sync(store, ["globex"], None, last, 3, TODAY)
    assert only_end == {"globex": SyncWindow.inclusive(TODAY - timedelta(days=12), last)}


def test_no_backfill_prints_the_command_that_backfills(stax_home, simulator):
    before = backfill_window(_real_today())
    result = stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY)
    after = backfill_window(_real_today())
    assert result.returncode == 0, result.stderr
    commands = {f"stax sync --connection acme --start {w.start} --end {w.last}" for w in (before, after)}
    assert any(command in result.stdout for command in commands), result.stdout
    assert "last 30 days" in result.stdout


def test_connections_show_backfill_state_and_last_sync(stax_home, simulator):
    assert stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY).returncode == 0
    store = ConnectionStore(load_settings())
    for name in ("done", "failing", "running"):
        store.add(name, "openai", ADMIN_KEY)
    at = datetime(2026, 11, 20, 2, 5, tzinfo=UTC)
    store.mark_synced("acme", at, SyncWindow.inclusive(TODAY - timedelta(days=4), TODAY - timedelta(days=1)))
    store.finish_backfill(store.claim_backfill("done", "cli"), at)
    store.fail_backfill(
        store.claim_backfill("failing", "sensor"),
        "GET /organization/costs failed with HTTP 503 (attempt 6 of 6)",
        at,
    )
    store.claim_backfill("running", "sensor")

    result = stax("connections")
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "PROVIDER",
        "ORGANIZATION",
        "KEY",
        "CREATED",
        "LAST",
        "SYNC",
        "LAST",
        "DAY",
        "BACKFILL",
    ]
    rows = {line.split()[0]: line for line in lines}
    assert rows["acme"].endswith("2026-11-20 02:05 UTC  2026-11-19  pending")
    assert rows["done"].endswith("never                 -           done")
    assert rows["running"].endswith("running (sensor)")
    assert rows["failing"].endswith(
        "failed: GET /organization/costs failed with HTTP 503 (attempt 6 of 6) "
        "(attempt 1, retry after 2026-11-20 02:06 UTC)"
    )
    assert ADMIN_KEY not in result.stdout
