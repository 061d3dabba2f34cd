"""The Anthropic dlt source against the simulator, over real HTTP, loading a real DuckDB file
through real dlt: paging, grouping, cents -> dollars exactly, the shared retry policy on 429 and
529, Anthropic's error bodies, and the raw-table catalogue the dbt sources must match."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from stax_pipeline.lib.http import HttpError
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults
from stax_pipeline.sources.anthropic_admin import AnthropicAdminClient
from stax_pipeline.sources.anthropic_admin.helpers import cents_to_dollars
from stax_pipeline.sources.anthropic_admin.settings import (
    COST_GROUP_BY,
    COST_REPORT_PATH,
    MAX_BUCKETS_PER_PAGE,
    USAGE_FALLBACK_GROUP_BYS,
    USAGE_GROUP_BY,
    USAGE_MESSAGES_PATH,
)
from tests.conftest import TODAY, load_from_api

ANTHROPIC_KEY = "sk-ant-admin01-test-4f0c2d9e81b7a3c5"
SOURCES_YML = (
    Path(__file__).resolve().parents[2] / "dbt_project/models/staging/anthropic/_anthropic__sources.yml"
)
WINDOW = SyncWindow(TODAY - timedelta(days=5), TODAY)  # five closed days


def _load(sim, window: SyncWindow = WINDOW, key: str = ANTHROPIC_KEY, connection: str = "claude"):
    settings = load_settings()
    loaded = load_from_api(
        settings, sim.base_url, connection=connection, window=window, api_key=key, provider="anthropic"
    )
    return settings.warehouse_path, loaded, loaded.committed_tables


def _query(path: Path, sql: str, params=()):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _requests_to(sim, path: str) -> list[dict[str, list[str]]]:
    return [params for p, params in sim.requests if p == "/v1" + path]


def test_cost_report_lands_in_dollars_exactly_equal_to_the_truth(stax_home, simulator):
    path, stats, committed = _load(simulator)
    org = simulator.anthropic_org_for_key(ANTHROPIC_KEY)
    truth = org.cost_usd_by_day(WINDOW.start, WINDOW.end)
    assert any(truth.values()), "the simulator should bill something in five days"
    landed = dict(_query(path, "select date, sum(amount_usd) from raw_anthropic.cost_report group by 1"))
    for day, dollars in truth.items():
        # DECIMAL end to end: equal exactly, not just to 1e-6
        assert landed.get(day, Decimal(0)) == dollars, day
        assert stats.cost_usd_by_day.get(day, 0.0) == pytest.approx(float(dollars), abs=1e-6)
    # every row: dollars are its cents string / 100, exactly
    rows = _query(path, "select amount, amount_usd from raw_anthropic.cost_report")
    assert rows and all(Decimal(cents) / 100 == usd for cents, usd in rows)
    assert committed == ["cost_report", "usage_messages"]
    marker = _query(path, "select resource, count(*) from raw_anthropic.sync_windows group by 1")
    assert dict(marker) == {"cost_report": 5, "usage_messages": 5}  # empty days committed too


def test_cents_to_dollars_never_goes_through_a_float():
    assert cents_to_dollars("123.45") == Decimal("1.2345")
    assert cents_to_dollars("0.000001") == Decimal("0.00000001")
    assert cents_to_dollars("10000000000000.01") == Decimal("100000000000.0001")
    # finer than the landed DECIMAL(38, 18) holds: rounded half-even at 1e-18 dollars, not refused
    assert cents_to_dollars("1.23456789012345678951") == Decimal("0.012345678901234568")
    assert cents_to_dollars(None) is None
    with pytest.raises(Exception, match="not a decimal number"):
        cents_to_dollars("NaN")


def test_reports_are_grouped_as_asked_and_usage_equals_the_truth(stax_home, simulator):
    path, _, _ = _load(simulator)
    cost_requests = _requests_to(simulator, COST_REPORT_PATH)
    usage_requests = _requests_to(simulator, USAGE_MESSAGES_PATH)
    assert cost_requests and usage_requests
    for params in cost_requests:
        assert sorted(params["group_by[]"]) == sorted(COST_GROUP_BY)
        assert params["bucket_width"] == ["1d"] and params["limit"] == [str(MAX_BUCKETS_PER_PAGE)]
        assert params["starting_at"] == [f"{WINDOW.start.isoformat()}T00:00:00Z"]
    for params in usage_requests:
        assert sorted(params["group_by[]"]) == sorted(USAGE_GROUP_BY)
    org = simulator.anthropic_org_for_key(ANTHROPIC_KEY)
    facts = [(d, f) for d in WINDOW.days() for f in org.usage_facts(d)]
    # grouped by every dimension the simulator generates: one row per fact
    (rows,) = _query(path, "select count(*) from raw_anthropic.usage_messages")[0]
    assert rows == len(facts) > 0
    landed = _query(
        path,
        """
        select sum(uncached_input_tokens), sum(cache_read_input_tokens),
               sum(cache_creation__ephemeral_1h_input_tokens), sum(cache_creation__ephemeral_5m_input_tokens),
               sum(output_tokens), sum(server_tool_use__web_search_requests)
        from raw_anthropic.usage_messages""",
    )[0]
    metrics = (
        "uncached_input_tokens",
        "cache_read_input_tokens",
        "cache_creation_1h",
        "cache_creation_5m",
        "output_tokens",
        "web_search_requests",
    )
    assert tuple(landed) == tuple(sum(f[m] for _, f in facts) for m in metrics)
    # the cost report carries what grouping by description fills; the default workspace is null
    kinds = dict(_query(path, "select cost_type, count(*) from raw_anthropic.cost_report group by 1"))
    assert kinds.get("tokens", 0) > 0
    assert (
        _query(
            path,
            "select count(*) from raw_anthropic.cost_report where cost_type = 'tokens' and "
            "(model is null or token_type is null or description is null)",
        )[0][0]
        == 0
    )
    assert _query(path, "select count(*) from raw_anthropic.cost_report where workspace_id is null")[0][0] > 0


def test_pages_are_followed_across_a_long_window_and_small_pages(stax_home, simulator):
    window = SyncWindow(TODAY - timedelta(days=40), TODAY)  # 40 days: two pages of <= 31 buckets
    path, _, _ = _load(simulator, window)
    assert len(_requests_to(simulator, COST_REPORT_PATH)) == 2
    assert [r.get("page") is not None for r in _requests_to(simulator, COST_REPORT_PATH)] == [False, True]
    truth = simulator.anthropic_org_for_key(ANTHROPIC_KEY).cost_usd_by_day(window.start, window.end)
    (total,) = _query(path, "select sum(amount_usd) from raw_anthropic.cost_report")[0]
    assert total == sum(truth.values())
    # tiny pages everywhere: reports 3 buckets a page, listings 2 objects a page
    simulator.faults = Faults(retry_after=0, page_size=2)
    simulator.reset_requests()
    path, stats, _ = _load(simulator, WINDOW, connection="claude-small-pages")
    assert len(_requests_to(simulator, COST_REPORT_PATH)) == 3  # 5 days, 2 a page
    org = simulator.anthropic_org_for_key(ANTHROPIC_KEY)
    assert len(_requests_to(simulator, "/organizations/api_keys")) > 1
    assert stats.rows["api_keys"] == len(org.api_keys())
    assert stats.rows["workspaces"] == len(org.workspaces) + 1  # archived and default included
    (small,) = _query(
        path, "select sum(amount_usd) from raw_anthropic.cost_report where connection = 'claude-small-pages'"
    )[0]
    assert small == sum(org.cost_usd_by_day(WINDOW.start, WINDOW.end).values())


def test_429_and_529_are_retried_by_the_shared_policy_and_change_nothing(stax_home, simulator):
    _clean_path, _, _ = _load(simulator, connection="clean")
    simulator.faults = Faults(retry_after=0, rate_limit_burst=3, error_5xx_burst=4, truncated_body_burst=2)
    simulator.reset_requests()
    path, _, _ = _load(simulator, connection="faulty")
    # 4 requests (2 listings, 2 reports) + each of the 9 faulty answers retried once
    assert len(simulator.requests) == 4 + 9
    by_connection = dict(
        _query(path, "select connection, sum(amount_usd) from raw_anthropic.cost_report group by 1")
    )
    assert by_connection["faulty"] == by_connection["clean"]
    assert simulator.faults.rate_limit_burst == simulator.faults.error_5xx_burst == 0


def test_error_bodies_reach_the_user_in_anthropic_words(stax_home, simulator):
    client = AnthropicAdminClient(simulator.base_url, ANTHROPIC_KEY)
    try:
        with pytest.raises(HttpError) as bad:
            client.api.get_json(COST_REPORT_PATH, [("starting_at", "yesterday")])
        assert bad.value.status == 400
        assert bad.value.api_message.startswith("invalid_request_error: starting_at")
        simulator.faults = Faults(retry_after=0, error_5xx_rate=1.0)  # overloaded for good
        with pytest.raises(HttpError) as overloaded:
            client.api.get_json(COST_REPORT_PATH, [("starting_at", "2026-11-01T00:00:00Z")])
        assert overloaded.value.status in (500, 502, 529) and overloaded.value.retryable
        answered = [
            s
            for s in ("overloaded_error: Overloaded", "api_error", "Bad Gateway")
            if s in str(overloaded.value)
        ]
        assert answered, str(overloaded.value)
        assert "STAX_HTTP_MAX_RETRY_SECONDS" in str(overloaded.value)
        assert len(simulator.requests) > 3  # retried, not failed at once
    finally:
        client.close()
    # the key itself never appears in what the client says
    assert ANTHROPIC_KEY not in str(bad.value) + str(overloaded.value)


def test_a_different_key_sees_a_different_organization(stax_home, simulator):
    one = simulator.anthropic_org_for_key(ANTHROPIC_KEY)
    other = simulator.anthropic_org_for_key("sk-ant-admin01-test-other-90ab12cd34ef")
    assert {w["id"] for w in one.workspaces}.isdisjoint({w["id"] for w in other.workspaces})


def test_a_server_reading_ending_at_strictly_still_gives_the_last_day(stax_home, simulator):
    """ "Buckets that end before ending_at", read strictly, leaves out the window's last bucket;
    the source then asks for that day alone, so the day is not committed as empty."""
    org = simulator.anthropic_org_for_key(ANTHROPIC_KEY)
    last = max(d for d, dollars in org.cost_usd_by_day(WINDOW.start, WINDOW.end).items() if dollars)
    window = SyncWindow(last - timedelta(days=3), last + timedelta(days=1))  # ends on a day with spend
    simulator.faults = Faults(retry_after=0, ending_at_strict=True)
    path, _, _ = _load(simulator, window)
    truth = org.cost_usd_by_day(window.start, window.end)
    landed = dict(_query(path, "select date, sum(amount_usd) from raw_anthropic.cost_report group by 1"))
    assert {d: landed.get(d, Decimal(0)) for d in truth} == truth
    cost_requests = _requests_to(simulator, COST_REPORT_PATH)
    assert len(cost_requests) == 2
    assert cost_requests[1]["starting_at"] == [f"{last.isoformat()}T00:00:00Z"]
    assert len(_requests_to(simulator, USAGE_MESSAGES_PATH)) == 2


def test_an_api_without_the_newer_usage_dimensions_is_pulled_coarser_and_says_so(stax_home, simulator):
    simulator.faults = Faults(retry_after=0, anthropic_unknown_group_by=("inference_geo", "context_window"))
    path, stats, _ = _load(simulator)
    groupings = [sorted(p["group_by[]"]) for p in _requests_to(simulator, USAGE_MESSAGES_PATH)]
    assert groupings == [
        sorted(USAGE_GROUP_BY),
        sorted(USAGE_FALLBACK_GROUP_BYS[0]),
        sorted(USAGE_FALLBACK_GROUP_BYS[1]),
    ]
    assert any("group_by[]=service_tier, context_window" in n for n in stats.notes)
    org = simulator.anthropic_org_for_key(ANTHROPIC_KEY)
    (output, geos) = _query(
        path, "select sum(output_tokens), count(inference_geo) from raw_anthropic.usage_messages"
    )[0]
    assert output == sum(f["output_tokens"] for d in WINDOW.days() for f in org.usage_facts(d))
    assert geos == 0
