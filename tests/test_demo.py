"""`stax demo` end to end in a fresh STAX_HOME: simulator, one connection per provider, 30-day
backfills, report across providers."""

from __future__ import annotations

import re
from datetime import date, timedelta

import duckdb

from stax_pipeline.cli.demo import DEMO_CONNECTIONS
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Simulator
from tests.cli.test_connect import stax
from tests.conftest import files_containing

OPENAI_KEY, ANTHROPIC_KEY = ({p: k for _, p, k in DEMO_CONNECTIONS}[p] for p in ("openai", "anthropic"))


def _truth(first: date, end: date) -> dict[str, float]:
    """Each provider's dollars over [first, end) as its simulated organization bills them."""
    simulator = Simulator()
    openai = simulator.org_for_key(OPENAI_KEY).cost_total_by_day(first, end)
    anthropic = simulator.anthropic_org_for_key(ANTHROPIC_KEY).cost_usd_by_day(first, end)
    return {"openai": sum(openai.values()), "anthropic": float(sum(anthropic.values()))}


def test_demo_runs_end_to_end(stax_home):
    result = stax("demo")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Connected 'demo'" in result.stdout and "Connected 'demo-claude'" in result.stdout
    assert "make ui" in result.stdout
    # The report's total is the simulators' own total over the days the report says it covers
    # (read from its title, so a run that crosses UTC midnight still compares like with like).
    first, last = re.search(r"Spend by model, (\S+) \.\. (\S+) \(30 days", result.stdout).groups()
    truth = _truth(date.fromisoformat(first), date.fromisoformat(last) + timedelta(days=1))
    assert all(truth.values()), truth  # both providers bill something in 30 days
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("TOTAL"))
    assert f"{sum(truth.values()):,.2f}" in total_line
    con = duckdb.connect(str(load_settings().warehouse_path), read_only=True)
    try:
        for dataset in ("raw_openai", "raw_anthropic"):
            start, end, runs = con.execute(
                f"select min(date), max(date) + 1, count(distinct sync_id) from {dataset}.sync_windows"
            ).fetchall()[0]
            assert runs == 1, dataset  # the 30-day backfill was one sync, not 30
            assert (end - start).days == 30, dataset
        spend = dict(
            con.execute(
                "select provider, sum(cost_usd) from marts.fct_spend_daily where date >= ? and date < ? group by 1",
                [start, end],
            ).fetchall()
        )
    finally:
        con.close()
    for provider, dollars in _truth(start, end).items():  # each provider's total kept apart
        assert abs(spend[provider] - dollars) < 1e-6, provider
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        assert files_containing(stax_home, key.encode()) == []
    # The FOCUS export it suggests runs as printed and holds the same spend
    hint = next(line for line in result.stdout.splitlines() if "stax export focus" in line)
    args = hint.split("stax export focus", 1)[1].split()
    exported = stax("export", "focus", *args)
    assert exported.returncode == 0, exported.stderr
    start, end = (date.fromisoformat(args[args.index(flag) + 1]) for flag in ("--start", "--end"))
    spend_total = sum(_truth(start, end + timedelta(days=1)).values())
    assert f"BilledCost {spend_total:,.6f} USD" in exported.stdout
