"""The dlt source against the simulator, loading a real DuckDB file through real dlt."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from stax_pipeline.lib.warehouse import dlt_pipeline
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults
from stax_pipeline.sources.openai_admin import (
    LoadStats,
    OpenAIAdminClient,
    SyncRequest,
    openai_admin_source,
    sync_windows,
)
from stax_pipeline.sources.openai_admin.settings import USAGE_ENDPOINTS
from tests.conftest import ADMIN_KEY, TODAY, load_from_api

START, END = TODAY - timedelta(days=6), TODAY - timedelta(days=1)


def _load(sim, *, key: str = ADMIN_KEY, start: date = START, end: date = END):
    settings = load_settings()
    request = SyncRequest("acme", SyncWindow(start, end), 3, datetime.now(UTC), uuid.uuid4().hex)
    stats = LoadStats()
    client = OpenAIAdminClient(sim.base_url, key)  # stax_home: fast retries
    pipeline = dlt_pipeline(settings, "raw_openai")
    pipeline.run(openai_admin_source(client, request, stats))
    pipeline.run(sync_windows(request, ["costs", *(e.table for e in USAGE_ENDPOINTS)]))
    return settings.warehouse_path, stats, client


def _query(path: Path, sql: str, params=()):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _grouped_truth(org, endpoint, group_by, start, end) -> int:
    """Rows the API returns for an endpoint at a grouping: distinct dimension combinations."""
    keys = set()
    day = start
    while day < end:
        for fact in org.usage_facts(endpoint.name, day):
            keys.add((day, *(fact.get(dim) for dim in group_by)))
        day += timedelta(days=1)
    return len(keys)


def test_costs_land_to_the_cent_and_every_usage_endpoint_lands(stax_home, simulator):
    path, stats, _ = _load(simulator)
    org = simulator.org_for_key(ADMIN_KEY)
    truth = org.cost_total_by_day(START, END)
    landed = dict(_query(path, "select date, sum(amount__value) from raw_openai.costs group by 1"))
    assert set(landed) == {d for d, v in truth.items() if v}
    for day, value in truth.items():
        assert landed.get(day, 0.0) == pytest.approx(value, abs=1e-6)
    assert sum(stats.cost_usd_by_day.values()) == pytest.approx(sum(truth.values()), abs=1e-6)
    for endpoint in USAGE_ENDPOINTS:
        (count,) = _query(path, f"select count(*) from raw_openai.{endpoint.table}")[0]
        assert count == _grouped_truth(org, endpoint, endpoint.group_by, START, END), endpoint.name
        assert count > 0, f"the simulator should produce {endpoint.name} usage"
    # Every row carries its connection, UTC day, load time and sync id.
    assert (
        _query(
            path,
            "select count(*) from raw_openai.costs where connection <> 'acme' "
            "or sync_id is null or loaded_at is null or date is null",
        )[0][0]
        == 0
    )


def test_grouping_and_request_parameters(stax_home, simulator):
    _load(simulator)
    paths = defaultdict(list)
    for path, params in simulator.requests:
        paths[path].append(params)
    costs = paths["/v1/organization/costs"]
    assert len(costs) == 1  # 5 days: one request, 31 buckets a page (memory flat in the window)
    assert costs[0]["group_by"] == ["project_id", "line_item", "api_key_id"]
    assert costs[0]["limit"] == ["31"] and costs[0]["bucket_width"] == ["1d"]
    for endpoint in USAGE_ENDPOINTS:
        calls = paths[f"/v1{endpoint.path}"]
        assert len(calls) == 1, endpoint.name
        assert calls[0]["group_by"] == list(endpoint.group_by)
        assert calls[0]["limit"] == ["31"]


def test_a_long_window_pages_costs_by_31_days_to_the_cent(stax_home, simulator):
    """Costs pages hold at most 31 days (a page is parsed whole: memory stays that of one month
    whatever the window), and every page's dollars land."""
    start, end = TODAY - timedelta(days=41), TODAY - timedelta(days=1)  # 40 days: 31 + 9
    path, stats, _ = _load(simulator, start=start, end=end)
    costs = [params for p, params in simulator.requests if p == "/v1/organization/costs"]
    assert len(costs) == 2 and ["page" in params for params in costs] == [False, True]
    assert all(params["limit"] == ["31"] for params in costs)
    truth = simulator.org_for_key(ADMIN_KEY).cost_total_by_day(start, end)
    landed = dict(_query(path, "select date, sum(amount__value) from raw_openai.costs group by 1"))
    assert len(truth) == 40 and set(landed) == {d for d, v in truth.items() if v}
    for day, value in truth.items():
        assert landed.get(day, 0.0) == pytest.approx(value, abs=1e-6), day
    assert sum(stats.cost_rows_by_day.values()) == _query(path, "select count(*) from raw_openai.costs")[0][0]


def test_projects_include_archived(stax_home, simulator):
    path, _, _ = _load(simulator)
    org = simulator.org_for_key(ADMIN_KEY)
    rows = dict(_query(path, "select id, status from raw_openai.projects"))
    assert rows == {p["id"]: p["status"] for p in org.projects}
    assert "archived" in rows.values()


def test_project_api_keys_land_with_their_owners_archived_projects_included(stax_home, simulator):
    _, stats, _ = _load(simulator)
    path = load_settings().warehouse_path
    org = simulator.org_for_key(ADMIN_KEY)
    truth = {
        (p["id"], k["id"]): (
            k["name"],
            k["redacted_value"],
            k["owner"]["type"],
            k["owner"][k["owner"]["type"]]["name"],
            k["created_at"],
            k["last_used_at"],
        )
        for p in org.projects
        for k in org.api_keys(p["id"])
    }
    landed = {
        (r[0], r[1]): r[2:]
        for r in _query(
            path,
            """
        select project_id, id, name, redacted_value, owner__type,
               coalesce(owner__user__name, owner__service_account__name), created_at, last_used_at
        from raw_openai.project_api_keys where connection = 'acme'""",
        )
    }
    assert landed == truth and stats.rows["project_api_keys"] == len(truth)
    archived = {p["id"] for p in org.projects if p["status"] == "archived"}
    assert {f"/v1/organization/projects/{p}/api_keys" for p in archived} <= {p for p, _ in simulator.requests}
    # a key's owner is flattened; nothing else of the owner (e.g. a user's email) is kept
    columns = {r[0] for r in _query(path, "describe raw_openai.project_api_keys")}
    assert not any("email" in c for c in columns) and "owner" not in columns


def test_forced_pages_are_followed(stax_home, simulator):
    simulator.faults = Faults(page_size=2, retry_after=0)
    path, _, _client = _load(simulator)
    org = simulator.org_for_key(ADMIN_KEY)
    landed = _query(path, "select sum(amount__value) from raw_openai.costs")[0][0]
    assert landed == pytest.approx(sum(org.cost_total_by_day(START, END).values()), abs=1e-6)
    # 5 days at 2 buckets a page: 3 pages for costs and for each of the 10 usage endpoints.
    assert len([p for p, _ in simulator.requests if not p.startswith("/v1/organization/projects")]) == 33
    # The listings page too (at most 2 objects a page): every project's keys land.
    keys = {k["id"] for p in org.projects for k in org.api_keys(p["id"])}
    assert {r[0] for r in _query(path, "select id from raw_openai.project_api_keys")} == keys
    assert len([p for p, _ in simulator.requests if p.endswith("/api_keys")]) > len(org.projects)


def test_costs_without_api_key_grouping_fall_back_and_say_so(stax_home, simulator, caplog):
    simulator.faults = Faults(reject_costs_group_by_api_key_id=True, retry_after=0)
    path, stats, _ = _load(simulator)
    org = simulator.org_for_key(ADMIN_KEY)
    total, with_key = _query(path, "select sum(amount__value), count(api_key_id) from raw_openai.costs")[0]
    assert total == pytest.approx(sum(org.cost_total_by_day(START, END).values()), abs=1e-6)
    assert with_key == 0
    assert any("api_key_id" in note for note in stats.notes)
    assert "refused group_by=api_key_id" in caplog.text


def test_transient_faults_do_not_change_what_lands(stax_home, simulator):
    simulator.faults = Faults(rate_limit_burst=2, error_5xx_burst=2, truncated_body_burst=1, retry_after=0)
    path, _, _ = _load(simulator)
    org = simulator.org_for_key(ADMIN_KEY)
    landed = _query(path, "select sum(amount__value) from raw_openai.costs")[0][0]
    assert landed == pytest.approx(sum(org.cost_total_by_day(START, END).values()), abs=1e-6)


def test_a_usage_endpoint_the_api_lacks_is_skipped_not_fatal(stax_home, simulator):
    simulator.faults = Faults(missing_usage_endpoints=("web_search_calls",), retry_after=0)
    settings = load_settings()
    request = SyncRequest("acme", SyncWindow(START, END), 3, datetime.now(UTC), uuid.uuid4().hex)
    stats = LoadStats()
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY)  # stax_home: fast retries
    dlt_pipeline(settings, "raw_openai").run(openai_admin_source(client, request, stats))
    assert stats.skipped == {"usage_web_search_calls"}
    assert any("HTTP 404" in note for note in stats.notes)
    assert stats.rows["usage_completions"] > 0 and stats.rows["costs"] > 0


def test_a_table_first_created_empty_takes_later_arrow_loads(stax_home, simulator):
    """An endpoint with no rows in the first sync still gets its table (dlt's JSON path, with a
    NOT NULL ``_dlt_id``); the later Arrow loads of real rows must fit that table, each row with
    its own id (the sources make them: dlt's normalize no longer does)."""

    org = simulator.org_for_key(ADMIN_KEY)
    days = [TODAY - timedelta(days=n) for n in range(1, 60)]
    empty = next(d for d in days if not org.usage_facts("web_search_calls", d))
    busy = next(d for d in days if org.usage_facts("web_search_calls", d))
    settings = load_settings()
    for day in (empty, busy):
        load_from_api(
            settings,
            simulator.base_url,
            connection="acme",
            window=SyncWindow(day, day + timedelta(days=1)),
            run_id=f"run-{day}",
        )
    count = _query(
        settings.warehouse_path,
        "select count(*), count(_dlt_id), count(distinct _dlt_id) from raw_openai.usage_web_search_calls",
    )[0]
    web_search = next(e for e in USAGE_ENDPOINTS if e.name == "web_search_calls")
    grouped = _grouped_truth(org, web_search, web_search.group_by, busy, busy + timedelta(days=1))
    assert count[0] == count[1] == count[2] == grouped > 0
    # dlt deletes each package's job files once loaded: syncs leave no data under $STAX_HOME/dlt
    packages = list(settings.dlt_pipelines_dir.glob("*/load/loaded/*"))
    jobs = [f for package in packages for f in package.rglob("*") if f.is_file() and f.suffix != ".json"]
    assert packages and jobs == []  # only dlt's small JSON records of each package are kept
