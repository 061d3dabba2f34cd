"""`stax demo` end to end in a fresh STAX_HOME: simulator, connection, 30-day backfill, report."""

from __future__ import annotations

import re
from datetime import date, timedelta

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
    # The report's total is the simulator's own total over the days the report says it covers
    # (read from its title, so a run that crosses UTC midnight still compares like with like).
    first, last = re.search(r"Spend by model, (\S+) \.\. (\S+) \(30 days", result.stdout).groups()
    org = Simulator().org_for_key(DEMO_KEY)
    truth = org.cost_total_by_day(date.fromisoformat(first), date.fromisoformat(last) + timedelta(days=1))
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("TOTAL"))
    assert f"{sum(truth.values()):,.2f}" in total_line
    con = duckdb.connect(str(load_settings().warehouse_path), read_only=True)
    try:
        start, end, runs = con.execute(
            "select min(date), max(date) + 1, count(distinct sync_id) from raw_openai.sync_windows"
        ).fetchall()[0]
        days = con.execute("select count(distinct date) from marts.fct_spend_daily").fetchall()[0][0]
    finally:
        con.close()
    assert runs == 1  # the 30-day backfill was one sync, not 30
    assert (end - start).days == 30
    assert days == len([v for v in org.cost_total_by_day(start, end).values() if v])
    assert files_containing(stax_home, DEMO_KEY.encode()) == []
    # The FOCUS export it suggests runs as printed and holds the same spend
    hint = next(line for line in result.stdout.splitlines() if "stax export focus" in line)
    args = hint.split("stax export focus", 1)[1].split()
    exported = stax("export", "focus", *args)
    assert exported.returncode == 0, exported.stderr
    start, end = (date.fromisoformat(args[args.index(flag) + 1]) for flag in ("--start", "--end"))
    spend = sum(org.cost_total_by_day(start, end + timedelta(days=1)).values())
    assert f"BilledCost {spend:,.6f} USD" in exported.stdout
