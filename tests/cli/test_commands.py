"""`stax sync / report / doctor / disconnect --purge / rotate-master-key` as a person runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.settings import load_settings
from tests.cli.test_connect import stax
from tests.conftest import ADMIN_KEY, TODAY

FIRST, LAST = TODAY - timedelta(days=3), TODAY - timedelta(days=2)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", "2026-13-01"], "not a date"),
        (["--start", str(LAST), "--end", str(FIRST)], "is before --start"),
        (["--connection", "nope"], "unknown connection 'nope'"),
        (["--end", str(datetime.now(UTC).date() + timedelta(days=2))], "in the future"),
        (["--start", "2019-01-01", "--end", "2019-01-02"], "before the first supported day"),
    ],
)
def test_sync_argument_errors_are_one_line_exit_2_and_run_nothing(stax_home, simulator, args, says):
    ConnectionStore(load_settings()).add("acme", "openai", ADMIN_KEY)
    result = stax("sync", *args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert simulator.requests == []
    assert not (stax_home / "warehouse.duckdb").exists()


def test_sync_without_connections_says_what_to_do(stax_home):
    result = stax("sync")
    assert result.returncode == 2 and "stax connect" in result.stderr


def test_sync_report_doctor_purge_and_rotate(stax_home, simulator):
    assert stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY).returncode == 0
    synced = stax("sync", "--connection", "acme", "--start", str(FIRST), "--end", str(LAST))
    assert synced.returncode == 0, synced.stderr
    settings = load_settings()
    org = simulator.org_for_key(ADMIN_KEY)
    truth = sum(org.cost_total_by_day(FIRST, LAST + timedelta(days=1)).values())

    # The report counts back from the real today; reach back to the synced (fixed) days.
    days_back = (datetime.now(UTC).date() - FIRST).days
    report = stax("report", "--connection", "acme", "--days", str(days_back))
    assert report.returncode == 0, report.stderr
    assert "gpt-4o-2024-08-06" in report.stdout and "SHARE" in report.stdout
    total_line = [line for line in report.stdout.splitlines() if line.startswith("TOTAL")][0]
    assert f"{truth:,.2f}" in total_line

    listing = stax("connections")
    assert "never" not in listing.stdout.splitlines()[1]  # last successful sync is shown

    doctor = stax("doctor", "--connection", "acme")
    assert "check ok against" in doctor.stdout
    assert "projects" in doctor.stdout and org.org_id in doctor.stdout

    rotated = stax("rotate-master-key")
    assert rotated.returncode == 0 and "Re-encrypted 1" in rotated.stdout
    again = stax("sync", "--connection", "acme", "--start", str(LAST), "--end", str(LAST))
    assert again.returncode == 0, again.stderr  # the key still decrypts under the new master key

    purged = stax("disconnect", "acme", "--purge")
    assert purged.returncode == 0 and "Purged" in purged.stdout
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        for table in ("raw_openai.costs", "raw_openai.sync_windows", "marts.fct_spend_daily",
                      "marts.fct_model_spend_daily"):
            assert con.execute(f"select count(*) from {table} where connection = 'acme'").fetchall() == [(0,)]
    finally:
        con.close()
    # The published copy BI tools read loses them too.
    served = duckdb.connect(str(settings.marts_path), read_only=True)
    try:
        for table in ("fct_spend_daily", "fct_model_spend_daily", "dim_projects"):
            parquet = settings.exports_dir / f"{table}.parquet"
            for relation in (f"marts.{table}", f"'{parquet}'"):
                count = f"select count(*) from {relation} where connection = 'acme'"
                assert served.execute(count).fetchall() == [(0,)], relation
    finally:
        served.close()
