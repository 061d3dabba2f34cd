"""The marts hold OpenAI and Anthropic side by side, each equal to its own API's truth.

One OpenAI organization (acme) and one Anthropic organization (claude) are pulled from the same
simulator process over HTTP by their real sources (dlt into one DuckDB file) and built by dbt,
with every data test. Then the API restates claude's last day: it is re-pulled and rebuilt for
that window and connection alone, as the nightly sync does. Per day and per model, each
provider's dollars must equal its truth to 1e-6 USD (Anthropic's truth is in cents), the totals
per provider stay apart, tokens map onto the one vocabulary, and the default workspace is named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults, run_simulator
from tests.conftest import ADMIN_KEY, SIMULATOR_NOW, TODAY, load_from_api
from tests.dbt.test_dbt_project import dbt_build

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
ANTHROPIC_KEY = "sk-ant-admin01-test-marts-5e6f7a8b9c0d"
TOLERANCE = 1e-6
WINDOW = SyncWindow(TODAY - timedelta(days=6), TODAY)  # six closed days, one calendar month
RESTATED = SyncWindow(TODAY - timedelta(days=1), TODAY)


def _dbt_build(home: Path, window: SyncWindow | None = None, connections: list[str] | None = None) -> None:
    """`dbt build` as a sync runs it: for the window in STAX_DBT_WINDOW when one is given, else
    every day."""
    statuses = dbt_build(home, window=window, connections=connections, unit_tests=False)
    assert "test.stax.assert_spend_reconciles_with_costs" in statuses


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("providers") / "stax-home"
    with (
        pytest.MonkeyPatch.context() as env,
        run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0)) as simulator,
    ):
        env.setenv("STAX_HOME", str(home))
        env.delenv("STAX_LOOKBACK_DAYS", raising=False)
        settings = load_settings()
        load_from_api(settings, simulator.base_url, connection="acme", window=WINDOW)
        load_from_api(
            settings,
            simulator.base_url,
            connection="claude",
            window=WINDOW,
            api_key=ANTHROPIC_KEY,
            provider="anthropic",
        )
        _dbt_build(home)
        before = simulator.anthropic_org_for_key(ANTHROPIC_KEY).cost_usd_by_day(RESTATED.start, RESTATED.end)
        # acme is not re-pulled: its truth is what the API said when it was
        openai = simulator.org_for_key(ADMIN_KEY)
        openai_truth = (
            openai.cost_total_by_day(WINDOW.start, WINDOW.end),
            openai.cost_by_day_model(WINDOW.start, WINDOW.end),
        )
        simulator.faults = Faults(revision=1, revised_days=1, retry_after=0)  # the last day changes
        load_from_api(
            settings,
            simulator.base_url,
            connection="claude",
            window=RESTATED,
            api_key=ANTHROPIC_KEY,
            provider="anthropic",
        )
        _dbt_build(home, RESTATED, ["claude"])
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            yield {
                "con": con,
                "openai": openai,
                "openai_truth": openai_truth,
                "anthropic": simulator.anthropic_org_for_key(ANTHROPIC_KEY),
                "restated_before": before,
            }
        finally:
            con.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def _truth_by_day(built: dict[str, Any], provider: str) -> dict:
    if provider == "openai":
        return built["openai_truth"][0]
    return {d: float(v) for d, v in built["anthropic"].cost_usd_by_day(WINDOW.start, WINDOW.end).items()}


def _truth_by_day_model(built: dict[str, Any], provider: str) -> dict:
    if provider == "openai":
        return built["openai_truth"][1]
    return {
        k: float(v) for k, v in built["anthropic"].cost_usd_by_day_model(WINDOW.start, WINDOW.end).items()
    }


@pytest.mark.parametrize(("provider", "connection"), [("openai", "acme"), ("anthropic", "claude")])
def test_per_day_dollars_equal_each_providers_truth(built, provider, connection):
    truth = _truth_by_day(built, provider)
    assert sum(truth.values()) > 0
    for mart in (
        "fct_spend_daily",
        "fct_model_spend_daily",
        "fct_spend_daily_by_connection",
        "fct_spend_daily_by_project",
        "focus_cost_and_usage",
    ):
        money = "BilledCost" if mart.startswith("focus") else "cost_usd"
        day = "x_ChargeDate" if mart.startswith("focus") else "date"
        who = "x_Connection" if mart.startswith("focus") else "connection"
        got = dict(
            _rows(
                built["con"],
                f"select {day}, sum({money}) from marts.{mart} where {who} = ? group by 1",
                [connection],
            )
        )
        for d, dollars in truth.items():
            assert got.get(d, 0.0) == pytest.approx(dollars, abs=TOLERANCE), (mart, d)
        assert set(got) <= set(truth), mart


@pytest.mark.parametrize(("provider", "connection"), [("openai", "acme"), ("anthropic", "claude")])
def test_per_model_dollars_equal_each_providers_truth_under_its_own_model_ids(built, provider, connection):
    truth = _truth_by_day_model(built, provider)
    got = {
        (d, m): v
        for d, m, v in _rows(
            built["con"],
            "select date, model, sum(cost_usd) from marts.fct_model_spend_daily "
            "where connection = ? and provider = ? group by 1, 2",
            [connection, provider],
        )
    }
    for key in set(truth) | set(got):
        assert got.get(key, 0.0) == pytest.approx(truth.get(key, 0.0), abs=TOLERANCE), key
    models = {m for _, m in truth if m}
    assert models and all(m.startswith("claude-") for m in models) == (provider == "anthropic")


def test_totals_per_provider_are_kept_apart(built):
    totals = dict(_rows(built["con"], "select provider, sum(cost_usd) from marts.fct_spend_daily group by 1"))
    assert set(totals) == {"openai", "anthropic"}
    for provider in ("openai", "anthropic"):
        assert totals[provider] == pytest.approx(sum(_truth_by_day(built, provider).values()), abs=TOLERANCE)
    assert (
        _rows(
            built["con"],
            "select count(*) from marts.fct_spend_daily where (provider = 'openai') != (connection = 'acme')",
        )[0][0]
        == 0
    )
    # every synced day of every connection, $0 or not, under its provider
    days = _rows(
        built["con"],
        "select provider, connection, count(*) from marts.fct_spend_daily_by_connection "
        "group by 1, 2 order by 1",
    )
    assert days == [("anthropic", "claude", 6), ("openai", "acme", 6)]
    # monthly marts add up to the same per provider, month to date equals its month's row
    monthly = dict(
        _rows(built["con"], "select provider, sum(cost_usd) from marts.fct_spend_monthly_by_model group by 1")
    )
    by_project = dict(
        _rows(
            built["con"], "select provider, sum(cost_usd) from marts.fct_spend_monthly_by_project group by 1"
        )
    )
    for provider, total in totals.items():
        assert monthly[provider] == pytest.approx(total, abs=TOLERANCE)
        assert by_project[provider] == pytest.approx(total, abs=TOLERANCE)
    mtd = _rows(
        built["con"],
        """
        select m.provider, sum(m.cost_usd), (select sum(cost_usd) from marts.fct_spend_monthly_by_model x
                                            where x.is_month_to_date and x.provider = m.provider)
        from marts.rpt_spend_month_to_date_by_model m group by 1""",
    )
    for _, reported, month in mtd:
        assert reported == pytest.approx(month, abs=TOLERANCE)


def test_anthropic_tokens_map_onto_the_one_vocabulary(built):
    truth = built["anthropic"].tokens_by_day_model(WINDOW.start, WINDOW.end)
    columns = (
        "input_tokens",
        "input_cached_tokens",
        "input_cache_write_tokens",
        "output_tokens",
        "web_search_calls",
    )
    got = {
        (r[0], r[1]): dict(zip(columns, r[2:], strict=True))
        for r in _rows(
            built["con"],
            f"""
        select date, model, {", ".join(f"sum({c})" for c in columns)}
        from marts.fct_model_spend_daily where provider = 'anthropic' and model is not null group by 1, 2""",
        )
    }
    assert truth and {k: v for k, v in got.items() if any(v.values())} == truth
    # and OpenAI's usage keeps its meaning: cache writes are part of input tokens, as the API says
    (bad,) = _rows(
        built["con"],
        "select count(*) from marts.fct_model_spend_daily where input_cache_write_tokens > input_tokens",
    )[0]
    assert bad == 0


def test_dim_projects_holds_workspaces_with_the_default_one_named(built):
    org = built["anthropic"]
    projects = {
        pid: (name, status)
        for pid, name, status in _rows(
            built["con"],
            "select project_id, name, status from marts.dim_projects where provider = 'anthropic'",
        )
    }
    assert projects["default"] == ("Default workspace", "active")
    for workspace in org.workspaces:
        assert projects[workspace["id"]][0] == workspace["name"]
    # every project spend is attributed to has a row, for both providers
    (orphans,) = _rows(
        built["con"],
        """
        select count(*) from marts.fct_spend_daily s anti join marts.dim_projects p
        using (provider, connection, project_id) where s.project_id is not null""",
    )[0]
    assert orphans == 0
    (openai_projects,) = _rows(
        built["con"], "select count(*) from marts.dim_projects where provider = 'openai' and name is not null"
    )[0]
    assert openai_projects == len(built["openai"].projects)
    # API keys: usage names keys; every one has a dim_api_keys row under its provider
    (unnamed,) = _rows(
        built["con"],
        """
        select count(*) from marts.fct_model_spend_by_api_key_daily s anti join marts.dim_api_keys k
        using (provider, connection, api_key_id) where s.api_key_id is not null""",
    )[0]
    assert unnamed == 0


def test_a_restated_day_is_replaced_for_its_window_alone(built):
    org = built["anthropic"]
    after = org.cost_usd_by_day(RESTATED.start, RESTATED.end)
    assert after != built["restated_before"], "the revision should change the day"
    got = dict(
        _rows(
            built["con"],
            "select date, sum(cost_usd) from marts.fct_spend_daily where connection = 'claude' group by 1",
        )
    )
    for day, dollars in after.items():
        assert got[day] == pytest.approx(float(dollars), abs=TOLERANCE)
    by_day: dict = defaultdict(float)
    for (day, _), dollars in _truth_by_day_model(built, "anthropic").items():
        by_day[day] += dollars
    assert sum(got.values()) == pytest.approx(sum(by_day.values()), abs=TOLERANCE)
    # and fct_restatements says what moved, under its provider, to the cent
    (moved, rows) = _rows(
        built["con"],
        """
        select sum(new_cost_usd - previous_cost_usd), count(*) from marts.fct_restatements
        where provider = 'anthropic' and connection = 'claude' and date = ?""",
        [RESTATED.start],
    )[0]
    assert rows > 0
    assert moved == pytest.approx(
        float(after[RESTATED.start] - built["restated_before"][RESTATED.start]), abs=TOLERANCE
    )
    (models_named,) = _rows(
        built["con"],
        "select count(*) from marts.fct_restatements where provider = 'anthropic' and model like 'claude-%'",
    )[0]
    assert models_named > 0
