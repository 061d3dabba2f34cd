"""`stax demo` end to end in a fresh STAX_HOME: simulator, connection, 30-day backfill, report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from stax_pipeline.cli.demo import DEMO_KEY
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Simulator
from tests.cli.test_connect import stax
from tests.conftest import files_containing


def test_demo_runs_end_to_end(stax_home):
    result = stax("demo")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Connected 'demo'" in result.stdout
    assert "make ui" in result.stdout
    today = datetime.now(UTC).date()
    start = today - timedelta(days=30)
    # The report's total is the simulator's own 30-day total for the demo organization.
    truth = sum(Simulator().org_for_key(DEMO_KEY).cost_total_by_day(start, today).values())
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("TOTAL"))
    assert f"{truth:,.2f}" in total_line
    con = duckdb.connect(str(load_settings().warehouse_path), read_only=True)
    try:
        days = con.execute("select count(distinct date) from marts.fct_spend_daily").fetchall()[0][0]
        runs = con.execute("select count(distinct sync_id) from raw_openai.sync_windows").fetchall()[0][0]
    finally:
        con.close()
    assert days == len([v for v in Simulator().org_for_key(DEMO_KEY).cost_total_by_day(start, today).values() if v])
    assert runs == 1  # the 30-day backfill was one sync, not 30
    assert files_containing(stax_home, DEMO_KEY.encode()) == []
