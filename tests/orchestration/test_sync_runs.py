"""In-process range runs of the real definitions against the simulator: dlt → DuckDB → dbt.

The marts must equal the simulator's own ground truth per day and per model to 1e-6, whatever
is re-run, and a restated day must replace (never add to) what was there.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import timedelta

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARENT_BACKFILL_ID_TAG

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.definitions import defs
from stax_pipeline.defs.dbt.assets import stax_dbt_assets
from stax_pipeline.defs.dbt.project import DBT_PROJECT_DIR
from stax_pipeline.defs.jobs import SYNC_JOB_NAME
from stax_pipeline.lib.dbt import KEEP_DBT_RUNS
from stax_pipeline.lib.window import SyncWindow, range_run_tags
from stax_pipeline.orchestration import dagster_instance, register_connection, run_sync
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults
from tests.conftest import ADMIN_KEY, TODAY, files_containing

OTHER_KEY = "sk-admin-test-second-org-3f9a1c"  # another simulated organization

# Five closed days ending two days ago, the last two inside the simulator's revision window (3 days).
# They hold every usage unit, a fine-tune, a deleted API key, an empty day and every kind of SKU.
WINDOW = SyncWindow(TODAY - timedelta(days=6), TODAY - timedelta(days=1))


def _marts(settings):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        by_day = dict(
            con.execute(
                "select date, sum(cost_usd) from marts.fct_spend_daily where connection = 'acme' group by 1"
            ).fetchall()
        )
        by_model = {
            (d, m): (c, i, o, ic, r)
            for d, m, c, i, o, ic, r in con.execute(
                """select date, model, sum(cost_usd), sum(input_tokens), sum(output_tokens),
                      sum(input_cached_tokens), sum(num_model_requests)
               from marts.fct_model_spend_daily where connection = 'acme' group by 1, 2"""
            ).fetchall()
        }
        snapshot = con.execute(
            "select * exclude (loaded_at) from marts.fct_spend_daily order by all"
        ).fetchall()
        return by_day, by_model, snapshot
    finally:
        con.close()


_UNITS = (
    "input_tokens",
    "output_tokens",
    "input_cached_tokens",
    "images",
    "characters",
    "seconds",
    "web_search_calls",
    "num_model_requests",
)


def _model_spend(settings, mart: str, key_columns: str) -> dict[tuple, dict]:
    """A model spend mart keyed like the simulator's truth: (date, project_id[, api_key_id], model,
    sku as the line item names it)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute(f"""
            select date, {key_columns}, model,
                   case when spend_category = 'sku' then concat_ws(' | ', product, sku) end,
                   cost_usd, {", ".join(_UNITS)}, spend_category
            from marts.{mart} where connection = 'acme'""").fetchall()
    finally:
        con.close()
    width = 2 + len(key_columns.split(",")) + 1
    return {
        r[:width]: {
            "cost_usd": r[width],
            **dict(zip(_UNITS, r[width + 1 : -1], strict=True)),
            "spend_category": r[-1],
        }
        for r in rows
    }


def _assert_model_spend_equals_truth(settings, org) -> None:
    """One row per (day, project, model) holds the model's cost AND its usage in every unit, fine-tunes
    under their billed name; one row per non-model SKU; per API key too."""
    for mart, key_columns, by_api_key in (
        ("fct_model_spend_daily", "project_id", False),
        ("fct_model_spend_by_api_key_daily", "project_id, api_key_id", True),
    ):
        actual = _model_spend(settings, mart, key_columns)
        truth = org.model_spend_by_day(WINDOW.start, WINDOW.end, by_api_key=by_api_key)
        assert set(actual) == set(truth), (mart, set(actual) ^ set(truth))
        for key, want in truth.items():
            got = actual[key]
            assert got["cost_usd"] == pytest.approx(want["cost_usd"], abs=1e-6), (mart, key)
            assert {u: got[u] for u in _UNITS} == {u: want[u] for u in _UNITS}, (mart, key)
            assert got["spend_category"] == ("sku" if key[-1] else "model"), (mart, key)
    # every unit and the fine-tune really occur in the window, beside their cost
    rows = _model_spend(settings, "fct_model_spend_daily", "project_id")
    for unit in _UNITS:
        assert any(r[unit] and r["cost_usd"] for r in rows.values()), unit
    assert any(
        k[2] == "ft-gpt-4o-mini-2024-07-18" and r["input_tokens"] and r["cost_usd"] for k, r in rows.items()
    )
    assert {k[3] for k in rows if k[3]} == {
        "vector stores | storage",
        "assistants api | file search",
        "Image models",
        "assistants api | code interpreter",
        "web search tool calls",
    }


def _assert_api_keys_and_daily_rollups_equal_truth(settings, org) -> None:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        keys = {
            r[0]: r[1:]
            for r in con.execute(
                """select api_key_id, name, project_id, owner_type, owner_name, redacted_value, is_listed
               from marts.dim_api_keys where connection = 'acme'"""
            ).fetchall()
        }
        daily = dict(
            con.execute(
                "select date, cost_usd from marts.fct_spend_daily_by_connection where connection = 'acme'"
            ).fetchall()
        )
        spent_by = {
            r[0]
            for r in con.execute(
                "select distinct api_key_id from marts.fct_spend_daily where api_key_id is not null"
            ).fetchall()
        }
    finally:
        con.close()
    listed = {
        k["id"]: (
            k["name"],
            p["id"],
            k["owner"]["type"],
            k["owner"][k["owner"]["type"]]["name"],
            k["redacted_value"],
            True,
        )
        for p in org.projects
        for k in org.api_keys(p["id"])
    }
    assert {k: v for k, v in keys.items() if v[-1]} == listed
    deleted = {k: v for k, v in keys.items() if not v[-1]}
    assert set(deleted) == org.deleted_api_keys & spent_by and deleted  # spent through, listed nowhere
    assert {v[0] for v in deleted.values()} == {"(deleted key)"}
    # every synced day has its row, $0 or not
    truth = org.cost_total_by_day(WINDOW.start, WINDOW.end)
    assert set(daily) == set(WINDOW.days())
    assert daily == pytest.approx(truth, abs=1e-6)


def _assert_marts_equal_truth(settings, org):
    _assert_model_spend_equals_truth(settings, org)
    _assert_api_keys_and_daily_rollups_equal_truth(settings, org)
    by_day, by_model, _ = _marts(settings)
    truth_day = org.cost_total_by_day(WINDOW.start, WINDOW.end)
    assert set(by_day) == {d for d, v in truth_day.items() if v}
    for day, value in truth_day.items():
        assert by_day.get(day, 0.0) == pytest.approx(value, abs=1e-6), day
    costs = defaultdict(float)
    for (day, model), value in org.cost_by_day_model(WINDOW.start, WINDOW.end).items():
        costs[(day, model)] += value
    for key, value in costs.items():
        assert by_model[key][0] == pytest.approx(value, abs=1e-6), key


def _cost_facts(org) -> dict[tuple, float]:
    """The simulator's cost facts of the window as the API shows them now, by (day, project,
    API key, line item)."""
    facts: dict[tuple, float] = defaultdict(float)
    for day in WINDOW.days():
        for fact in org.cost_facts(day):
            facts[(day, fact.project_id, fact.api_key_id, fact.line_item)] += fact.amount
    return facts


def _assert_restatements_equal_truth(settings, before: dict[tuple, float], after: dict[tuple, float]):
    """marts.fct_restatements holds exactly the facts whose cost differs between the two
    truths, with both amounts (0 on the side where the row is missing)."""
    expected = {
        key: (before.get(key, 0.0), after.get(key, 0.0))
        for key in before.keys() | after.keys()
        if abs(before.get(key, 0.0) - after.get(key, 0.0)) > 1e-9
    }
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute(
            """select date, project_id, api_key_id, line_item, previous_cost_usd, new_cost_usd,
                      change_type, previous_synced_at < new_synced_at
               from marts.fct_restatements where connection = 'acme'"""
        ).fetchall()
    finally:
        con.close()
    actual = {tuple(r[:4]): (r[4], r[5]) for r in rows}
    assert len(actual) == len(rows) and set(actual) == set(expected)
    for key, (previous, new) in expected.items():
        assert actual[key] == (pytest.approx(previous, abs=1e-9), pytest.approx(new, abs=1e-9)), key
    kinds = {"changed", "vanished", "appeared"} if expected else set()
    assert {r[6] for r in rows} == kinds and all(r[7] for r in rows)


def _assert_ui_metadata(instance, run_id, org):
    """The ingest asset's day partitions carry each day's spend and rows, so its plot by
    partition is the daily curve; the last day also carries the run's figures. Each mart is
    materialized once per run, with the window's rows and dollars."""
    truth = {f"acme|{d}": v for d, v in org.cost_total_by_day(WINDOW.start, WINDOW.end).items()}
    records = instance.get_records_for_run(run_id).records
    events = [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event]
    assert not [e for e in events if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    # One planned event per asset, holding the ingest's partitions, not one per asset per day.
    planned = [e for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    assert planned and len(planned) == len({e.asset_key for e in planned})
    raw_planned = [e for e in planned if e.asset_key == AssetKey(["raw_openai"])]
    assert len(raw_planned[0].event_specific_data.partitions_subset) == WINDOW.num_days

    def materializations(*path: str) -> list:
        return [
            e.event_specific_data.materialization
            for e in events
            if e.event_type == DagsterEventType.ASSET_MATERIALIZATION and e.asset_key == AssetKey(list(path))
        ]

    raw = materializations("raw_openai")  # the ingest asset: every raw table of the provider
    costs = {m.partition: {k: v.value for k, v in m.metadata.items()} for m in raw}
    assert len(raw) == len(costs) == len(truth) and set(costs) == set(truth)  # one per day
    assert {p: m["cost_usd"] for p, m in costs.items()} == pytest.approx(truth, abs=1e-6)
    # the run's figures ride on its last day only
    last = costs[f"acme|{WINDOW.last}"]
    assert [p for p, m in costs.items() if "window_cost_usd" in m] == [f"acme|{WINDOW.last}"]
    assert set(costs[f"acme|{WINDOW.start}"]) == {"cost_usd", "cost_rows"}
    assert last["window_cost_usd"] == pytest.approx(sum(truth.values()), abs=1e-6)
    assert sum(m["cost_rows"] for m in costs.values()) == last["rows"]["costs"] > 0
    assert last["requests"]["/organization/costs"] == 1
    assert (last["window_start"], last["window_end"]) == (str(WINDOW.start), str(WINDOW.end))
    rows = {
        mart: _sql(
            load_settings(),
            f"select count(*) from marts.{mart} where date >= ? and date < ?",
            [WINDOW.start, WINDOW.end],
        )[0][0]
        for mart in (
            "fct_spend_daily",
            "fct_model_spend_daily",
            "fct_spend_daily_by_connection",
            "fct_usage_daily",
        )
    }
    for mart in ("fct_spend_daily", "fct_model_spend_daily", "fct_spend_daily_by_connection"):
        (only,) = materializations("marts", mart)  # one per run, not per day
        assert only.partition is None
        assert only.metadata["window_cost_usd"].value == pytest.approx(sum(truth.values()), abs=1e-6), mart
        assert only.metadata["window_rows"].value == rows[mart] > 0, mart
    (usage,) = materializations("marts", "fct_usage_daily")
    assert "window_cost_usd" not in usage.metadata
    assert usage.metadata["window_rows"].value == rows["fct_usage_daily"] > 0
    # Each ingest materialization's partition is indexed by dimension (Dagster's
    # asset_event_tags, which Stax's storage no longer looks up before every event): the UI finds
    # a connection's days.
    tags = instance.event_log_storage.get_event_tags_for_asset(
        AssetKey(["raw_openai"]), filter_tags={"dagster/partition/connection": "acme"}
    )
    assert {t["dagster/partition/date"] for t in tags} >= {str(d) for d in WINDOW.days()}


def _sql(settings, query: str, params=(), *, write: bool = False) -> list[tuple]:
    """``query``'s rows from the warehouse (opened read-only unless ``write``)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=not write)
    try:
        return con.execute(query, list(params)).fetchall()
    finally:
        con.close()


def _run_job(instance, selection: list[AssetKey], tags=None):
    """The sync job run in-process for ``selection`` (``tags``: a range, a backfill); it succeeds."""
    result = defs.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
        instance=instance, asset_selection=selection, tags=tags or {}
    )
    assert result.success
    return result


def _materialization(result, *path: str):
    """The one materialization of the asset ``path`` in a run's result."""
    (only,) = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey(list(path))
    ]
    return only


def _ui_backfill(instance, backfill_id: str, partitions: list[str], tags=None) -> PartitionBackfill:
    """A backfill as the UI launches it: days of the ingest asset, with the marts."""
    return PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=partitions,
        asset_selection=[AssetKey(["raw_openai"]), *stax_dbt_assets.keys],
        backfill_timestamp=time.time(),
        tags=tags or {},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )


def _assert_run_state_under_stax_home(settings, runs: int) -> None:
    """dbt's artifacts live under STAX_HOME (never the checkout), its partial parse carries over
    from run to run, and every run's phases are timed."""
    run_dirs = sorted((settings.home / "dbt" / "runs").iterdir())
    assert len(run_dirs) == min(runs, KEEP_DBT_RUNS)
    assert (settings.home / "dbt" / "partial_parse.msgpack").exists()
    # dbt re-parses nothing, not even in a new home's first run: that starts from the parse
    # `make install` prepared, and the window is not a var.
    for run_dir in run_dirs:
        assert "skipping partial parsing" in (run_dir / "dbt.log").read_text(), run_dir.name
    phases = [json.loads(line) for line in (settings.logs_dir / "timings.jsonl").read_text().splitlines()]
    assert {p["phase"] for p in phases} >= {"fetch", "extract", "normalize", "load", "dbt"}
    assert len({p["run_id"] for p in phases}) == runs


def test_range_run_equals_ground_truth_and_reruns_change_nothing(stax_home, simulator):
    checkout_target = sorted(p.name for p in (DBT_PROJECT_DIR / "target").iterdir())
    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    instance = dagster_instance(settings)
    org = simulator.org_for_key(ADMIN_KEY)

    outcome = run_sync(instance, "acme", WINDOW)
    assert outcome.success, outcome.error
    # One run for the whole window, with its partitions and one request per endpoint.
    run = instance.get_run_by_id(outcome.run_id)
    assert run.tags["dagster/asset_partition_range_start"] == f"acme|{WINDOW.start}"
    assert len([p for p, _ in simulator.requests if p == "/v1/organization/costs"]) == 1
    _assert_marts_equal_truth(settings, org)
    first = _marts(settings)[2]
    _assert_ui_metadata(instance, outcome.run_id, org)

    again = run_sync(instance, "acme", WINDOW)
    assert again.success, again.error
    assert _marts(settings)[2] == first  # nothing doubled, nothing lost
    _assert_restatements_equal_truth(settings, {}, {})  # a re-pull of the same figures is none

    # The provider restates the recent days: rows change, vanish and appear. The re-pull
    # replaces them exactly, and the restatement history keeps both figures.
    before = _cost_facts(org)
    simulator.faults = Faults(revision=1, revised_days=3, retry_after=0)
    restated = run_sync(instance, "acme", WINDOW)
    assert restated.success, restated.error
    assert _marts(settings)[2] != first
    _assert_marts_equal_truth(settings, org)
    _assert_restatements_equal_truth(settings, before, _cost_facts(org))

    assert ConnectionStore(settings).get("acme").last_synced_at is not None
    _assert_run_state_under_stax_home(settings, runs=3)
    assert sorted(p.name for p in (DBT_PROJECT_DIR / "target").iterdir()) == checkout_target
    # The admin key is nowhere in plaintext under STAX_HOME: dlt state, Dagster logs, warehouse.
    assert files_containing(stax_home, ADMIN_KEY.encode()) == []
    assert files_containing(stax_home, ADMIN_KEY[9:].encode()) == []


def test_failed_run_reports_one_clear_error_and_changes_nothing(stax_home, simulator):
    settings = load_settings()
    store = ConnectionStore(settings)
    store.add("acme", "openai", ADMIN_KEY)
    instance = dagster_instance(settings)
    assert run_sync(instance, "acme", WINDOW).success
    before = _marts(settings)[2]
    simulator.revoke(ADMIN_KEY)
    outcome = run_sync(instance, "acme", WINDOW)
    assert not outcome.success
    assert "HTTP 401" in outcome.error and "/organization/" in outcome.error
    assert ADMIN_KEY not in outcome.error
    assert _marts(settings)[2] == before


def test_long_windows_run_in_parts_and_runs_of_the_marts_alone_rebuild_their_days(
    stax_home, simulator, monkeypatch
):
    """A window longer than MAX_DAYS_PER_RUN runs as consecutive runs (a run holds its events in
    memory): each part one range run, the marts right, one costs page per part. Then the
    (unpartitioned) marts in runs of their own: alone, they rebuild every day; launched by a UI
    backfill of the ingest's days, they rebuild those days."""
    from stax_pipeline import orchestration

    monkeypatch.setattr(orchestration, "MAX_DAYS_PER_RUN", 3)
    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    instance = dagster_instance(settings)
    outcome = run_sync(instance, "acme", WINDOW)  # 5 days: 3 + 2
    assert outcome.success, outcome.error
    assert outcome.window == WINDOW
    runs = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    assert [
        (
            r.dagster_run.tags["dagster/asset_partition_range_start"],
            r.dagster_run.tags["dagster/asset_partition_range_end"],
        )
        for r in runs
    ] == [
        (f"acme|{WINDOW.start}", f"acme|{WINDOW.start + timedelta(days=2)}"),
        (f"acme|{WINDOW.start + timedelta(days=3)}", f"acme|{WINDOW.last}"),
    ]
    assert runs[-1].dagster_run.run_id == outcome.run_id
    assert len([p for p, _ in simulator.requests if p == "/v1/organization/costs"]) == 2
    _assert_marts_equal_truth(settings, simulator.org_for_key(ADMIN_KEY))
    assert ConnectionStore(settings).get("acme").last_synced_at is not None

    # The marts materialized on their own (the UI, no partitions): they rebuild every day of every
    # connection from the raw data, and mark no day synced (nothing was pulled).
    synced = ConnectionStore(settings).synced_days("acme")
    _sql(settings, "update marts.fct_spend_daily set cost_usd = cost_usd + 1", write=True)  # a stale build
    result = _run_job(instance, list(stax_dbt_assets.keys))
    _assert_marts_equal_truth(settings, simulator.org_for_key(ADMIN_KEY))
    assert ConnectionStore(settings).synced_days("acme") == synced
    spend = _materialization(result, "marts", "fct_spend_daily")
    [(rows,)] = _sql(settings, "select count(*) from marts.fct_spend_daily")
    assert spend.partition is None
    assert spend.metadata["window_rows"].value == rows > 0

    # A backfill launched from the UI: the last day of acme and two days of a new connection with
    # a gap between them. Its first attempt lands acme's day and beta's first, then fails on
    # beta's last: its marts never run. The UI re-executes it from failure: a new backfill of
    # beta's last day and the marts, whose marts run (without partitions) rebuilds from the first
    # day either attempt landed to the last, and marks exactly those days synced.
    store = ConnectionStore(settings)
    store.add("beta", "openai", OTHER_KEY)
    register_connection(instance, "beta")
    last = WINDOW.last
    beta_days = [last - timedelta(days=2), last]
    for day in beta_days:  # the attempts' ingest runs
        _run_job(instance, [AssetKey(["raw_openai"])], range_run_tags("beta", SyncWindow.inclusive(day, day)))
    assert store.synced_days("beta") == []  # the ingest alone marks nothing
    _sql(settings, "update marts.fct_spend_daily set cost_usd = cost_usd + 1", write=True)  # stale again
    first_attempt = _ui_backfill(instance, "first", [f"acme|{last}", *(f"beta|{day}" for day in beta_days)])
    landed = _ui_backfill(instance, "landed", [f"acme|{last}", f"beta|{beta_days[0]}"]).asset_backfill_data
    first_attempt = first_attempt._replace(
        asset_backfill_data=first_attempt.asset_backfill_data._replace(
            materialized_subset=landed.target_subset
        )
    )
    instance.add_backfill(first_attempt)
    retry = _ui_backfill(instance, "retry", [f"beta|{last}"], tags={PARENT_BACKFILL_ID_TAG: "first"})
    instance.add_backfill(retry)
    before = store.get("acme").last_synced_at
    result = _run_job(instance, list(stax_dbt_assets.keys), {BACKFILL_ID_TAG: "retry"})
    assert sorted(store.synced_days("beta")) == beta_days  # not the day between them
    assert store.synced_days("acme") == synced and store.get("acme").last_synced_at > before
    truth = simulator.org_for_key(ADMIN_KEY).cost_total_by_day(WINDOW.start, WINDOW.end)
    by_day = {
        day: (usd, n)
        for day, usd, n in _sql(
            settings,
            "select date, sum(cost_usd), count(*) from marts.fct_spend_daily where connection = 'acme' group by 1",
        )
    }
    [(rebuilt,)] = _sql(
        settings,
        "select count(*) from marts.fct_spend_daily where date between ? and ?",
        [beta_days[0], last],
    )
    beta = dict(
        _sql(
            settings,
            "select date, sum(cost_usd) from marts.fct_spend_daily where connection = 'beta' group by 1",
        )
    )
    for day, (usd, n) in by_day.items():
        stale = n if day < beta_days[0] else 0  # outside the backfill's days: not rebuilt
        assert usd == pytest.approx(truth[day] + stale, abs=1e-6), day
    assert any(day < beta_days[0] for day in by_day)
    beta_truth = simulator.org_for_key(OTHER_KEY).cost_total_by_day(beta_days[0], last + timedelta(days=1))
    assert beta == pytest.approx({day: beta_truth[day] for day in beta_days}, abs=1e-6)  # none between
    spend = _materialization(result, "marts", "fct_spend_daily")
    assert spend.metadata["window_rows"].value == rebuilt > 0
