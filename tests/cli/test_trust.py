"""Trust, as a person meets it: one organization counted once, restated days kept as history and
noted by `stax report`, a doctor that finds every unsynced day and says when all is well, and a
disconnect whose rows leave every report (and, with `--purge`, the warehouse).

Real `stax` processes against a live simulator on the REAL clock: the doctor judges freshness
against the real yesterday, and the simulator restates the last closed days before its now.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.orchestration import dagster_instance
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults, Simulator, run_simulator
from tests.cli.test_connect import stax
from tests.conftest import ADMIN_KEY


@pytest.fixture
def live_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    with run_simulator(faults=Faults(retry_after=0)) as sim:
        monkeypatch.setenv("STAX_OPENAI_BASE_URL", sim.base_url)
        yield sim


def _rows_of(path, connection: str, *, published: bool = False, marts_only: bool = False) -> int:
    """Rows of ``connection`` in every relation of a DuckDB file that names its rows' connection
    (``connection``, or FOCUS's ``x_Connection``); in the warehouse's marts only with ``marts_only``."""
    if not path.exists():
        return 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where lower(column_name) in ('connection', 'x_connection') and (not ? or table_schema = 'marts')",
            [marts_only],
        ).fetchall()
        prefix = "" if published else "{schema}."
        return sum(
            con.execute(
                f'select count(*) from {prefix.format(schema=s)}"{t}" where "{c}" = ?', [connection]
            ).fetchall()[0][0]
            for s, t, c in tables
        )
    finally:
        con.close()


def _exported_rows(settings, connection: str) -> int:
    """Rows of ``connection`` in the Parquet exports (``exports/<relation>.parquet``)."""
    con = duckdb.connect()
    try:
        total = 0
        for parquet in settings.exports_dir.glob("*.parquet"):
            names = [row[0] for row in con.execute(f"describe select * from '{parquet}'").fetchall()]
            column = next((n for n in names if n.lower() in ("connection", "x_connection")), None)
            if column is not None:
                total += con.execute(
                    f"select count(*) from '{parquet}' where \"{column}\" = ?", [connection]
                ).fetchall()[0][0]
        return total
    finally:
        con.close()


def _focus_rows(settings, connection: str) -> int:
    """The published FOCUS rows of ``connection`` (what `stax export focus` writes)."""
    with duckdb.connect(str(settings.marts_path), read_only=True) as con:
        query = "select count(*) from focus_cost_and_usage where x_Connection = ?"
        return con.execute(query, [connection]).fetchall()[0][0]


def _doctor(*args: str) -> tuple[int, dict]:
    result = stax("doctor", "--json", *args)
    return result.returncode, json.loads(result.stdout)


def _day_totals(org, first: date, last: date) -> dict[str, float]:
    return {d.isoformat(): v for d, v in org.cost_total_by_day(first, last + timedelta(days=1)).items()}


def _report_total(*args: str) -> tuple[float, str]:
    report = stax("report", *args)
    assert report.returncode == 0, report.stderr
    total = [line for line in report.stdout.splitlines() if line.startswith("TOTAL")]
    return (float(total[0].split()[1].replace(",", "")) if total else 0.0), report.stdout


def test_one_organization_restatements_doctor_and_disconnect(stax_home, live_simulator):
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    org = live_simulator.org_for_key(ADMIN_KEY)
    settings = load_settings()

    # 1. The key check learns the organization; a second connection to it is refused.
    connected = stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY)
    assert connected.returncode == 0, connected.stderr
    assert org.org_id in connected.stdout
    twice = stax("connect", "openai", "--name", "acme-dup", "--no-backfill", key=ADMIN_KEY)
    assert twice.returncode == 2
    assert twice.stderr.count("\n") == 1 and "already connected as 'acme'" in twice.stderr
    listing = stax("connections")
    assert org.org_id in listing.stdout and "acme-dup" not in listing.stdout

    # 2. Synced up to yesterday and nothing wrong: the doctor says so, exit 0.
    late = (yesterday - timedelta(days=2), yesterday)
    synced = stax("sync", "--connection", "acme", "--start", str(late[0]), "--end", str(late[1]))
    assert synced.returncode == 0, synced.stderr
    healthy = stax("doctor")
    if datetime.now(UTC).date() == today:  # (a run across UTC midnight leaves yesterday unsynced)
        assert healthy.returncode == 0, healthy.stdout
        assert healthy.stdout.rstrip().endswith("No problems found.")
    assert "if this looks low you may be on the wrong organization" in healthy.stdout

    # 3. A connection made before its organization was known (an older Stax, or no spend yet)
    # learns it at its first sync, which refuses before loading anything.
    ConnectionStore(settings).add("beta", "openai", ADMIN_KEY)
    refused = stax("sync", "--connection", "beta", "--start", str(yesterday), "--end", str(yesterday))
    assert refused.returncode == 1
    assert "already connected as 'acme'" in refused.stderr and "Nothing was loaded" in refused.stderr
    assert _rows_of(settings.warehouse_path, "beta") == 0

    # 4. An earlier stretch leaves three days out; then the provider restates the last three
    # closed days and their re-pull keeps both figures.
    early = (yesterday - timedelta(days=7), yesterday - timedelta(days=6))
    synced = stax("sync", "--connection", "acme", "--start", str(early[0]), "--end", str(early[1]))
    assert synced.returncode == 0, synced.stderr
    truth = {**_day_totals(org, *early), **_day_totals(org, *late)}
    live_simulator.faults = Faults(revision=1, revised_days=3, retry_after=0)
    restated = stax("sync", "--connection", "acme", "--start", str(late[0]), "--end", str(late[1]))
    assert restated.returncode == 0, restated.stderr
    new_truth = _day_totals(org, *late)
    net = sum(new_truth.values()) - sum(truth[day] for day in new_truth)
    total, report = _report_total("--days", "8")  # all connections: the organization counted once
    assert total == pytest.approx(round(sum({**truth, **new_truth}.values()), 2), abs=0.005)
    assert "3 restated days in the last 8 days" in report
    assert f"net {'-' if net < 0 else '+'}${abs(net):,.2f}" in report

    # Two live connections with rows of one organization (both synced by an older Stax).
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "insert into staging.stg_openai__costs select * replace ('beta' as connection) "
            "from staging.stg_openai__costs where connection = 'acme' limit 1"
        )

    code, doctor = _doctor()
    assert code == 1 and not doctor["healthy"]
    acme, beta = doctor["connections"]
    assert acme["gaps"] == [str(yesterday - timedelta(days=n)) for n in (5, 4, 3)]
    assert any("never synced (no commit marker)" in p for p in acme["problems"])
    assert acme["organization"]["id"] == org.org_id and acme["organization"]["name"] is None
    assert {p["name"] for p in acme["projects"]} == {p["name"] for p in org.projects}
    assert acme["freshness"]["closed_days_behind"] == 0
    assert acme["last_run"]["status"] == "SUCCESS"
    assert acme["usage_without_cost"] == {"days": [], "models": []}
    assert acme["period"]["cost_usd"] == pytest.approx(sum({**truth, **new_truth}.values()), abs=1e-6)
    days = {d["date"]: d for d in acme["restatements"]["last"]}
    assert set(days) == set(new_truth)
    for day, after in new_truth.items():
        assert days[day]["previous_cost_usd"] == pytest.approx(truth[day], abs=1e-6)
        assert days[day]["new_cost_usd"] == pytest.approx(after, abs=1e-6)
        assert days[day]["line_items_changed"] + days[day]["line_items_appeared"] >= 1
    assert (
        beta["last_run"]["status"] == "FAILURE" and "already connected as 'acme'" in beta["last_run"]["error"]
    )
    assert doctor["duplicate_organizations"] == [
        {"organization_id": org.org_id, "connections": ["acme", "beta"]}
    ]
    truth.update(new_truth)

    # 5. A plain disconnect hides acme's rows from every reader but keeps them; reconnecting
    # the same organization under the same name brings them back.
    purged = stax("disconnect", "beta", "--purge")
    assert purged.returncode == 0 and "Purged 1 warehouse rows" in purged.stdout
    assert _focus_rows(settings, "acme") > 0 and _exported_rows(settings, "acme") > 0
    assert stax("disconnect", "acme").returncode == 0
    assert _rows_of(settings.warehouse_path, "acme") > 0
    assert _rows_of(settings.marts_path, "acme", published=True) == 0 == _focus_rows(settings, "acme")
    assert _exported_rows(settings, "acme") == 0
    assert _report_total("--days", "8")[0] == 0.0
    assert "hidden: acme" in stax("connections").stdout
    reconnected = stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY)
    assert reconnected.returncode == 0 and "Reconnected 'acme'" in reconnected.stdout
    assert _rows_of(settings.marts_path, "acme", published=True) == _rows_of(
        settings.warehouse_path, "acme", marts_only=True
    )

    # 6. --purge after a plain disconnect: rows gone from the warehouse, the published copy and
    # the Dagster partitions; the name is free again.
    assert stax("disconnect", "acme").returncode == 0
    purged = stax("disconnect", "acme", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert _rows_of(settings.warehouse_path, "acme") == 0
    assert _rows_of(settings.marts_path, "acme", published=True) == 0
    assert not dagster_instance(settings).has_dynamic_partition("connection", "acme")
    with sqlite3.connect(settings.app_db_path) as db:
        assert db.execute("select count(*) from connections").fetchall() == [(0,)]
    again = stax("disconnect", "acme", "--purge")
    assert again.returncode == 2 and "unknown connection 'acme'" in again.stderr
