"""The Dagster definitions: loadable, one lineage graph, partitions, schedule and sensor."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dagster import AssetCheckKey, AssetKey, Definitions, build_schedule_context, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.definitions import defs
from stax_pipeline.defs.ingest import sync_selection
from stax_pipeline.defs.partitions import WAREHOUSE_POOL, sync_partitions
from stax_pipeline.lib.window import SyncWindow, contiguous_windows, dbt_vars, is_final, nightly_window
from stax_pipeline.orchestration import dagster_instance, register_connection
from stax_pipeline.providers import PROVIDERS
from stax_pipeline.settings import load_settings
from stax_pipeline.sources.anthropic_admin.settings import RAW_TABLES as ANTHROPIC_RAW_TABLES
from stax_pipeline.sources.openai_admin.settings import USAGE_ENDPOINTS
from tests.conftest import ADMIN_KEY

RAW_TABLES = {"costs", "projects", "project_api_keys", "sync_windows", *(e.table for e in USAGE_ENDPOINTS)}


def test_definitions_load_and_dlt_feeds_dbt_as_one_graph():
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    raw = AssetKey(["raw_openai"])  # one ingest asset for every raw table of the provider
    raw_anthropic = AssetKey(["raw_anthropic"])
    ingest = {AssetKey([p.dataset_name]) for p in PROVIDERS}  # one per registered provider
    assert ingest == {raw, raw_anthropic}
    materializable = set(graph.materializable_asset_keys)
    assert ingest <= materializable and {graph.get(k).group_name for k in ingest} == {"ingest"}
    assert set(graph.get(raw).metadata["raw_tables"].split(", ")) == RAW_TABLES
    assert set(graph.get(raw_anthropic).metadata["raw_tables"].split(", ")) == set(ANTHROPIC_RAW_TABLES)
    # dbt reads exactly what dlt writes: no external stand-ins for raw tables, and only the marts
    # are assets (staging and intermediate models are built inside the marts' dbt build).
    assert all(not k.path[0].startswith("openai_admin") for k in graph.get_all_asset_keys())
    assert set(graph.external_asset_keys) == set()
    assert materializable - ingest == {k for k in materializable if k.path[0] == "marts"}
    for mart in (
        "fct_spend_daily",
        "fct_model_spend_daily",
        "fct_model_spend_by_api_key_daily",
        "dim_projects",
        "dim_api_keys",
        "fct_spend_daily_by_connection",
        "fct_spend_daily_by_project",
    ):
        assert AssetKey(["marts", mart]) in materializable
    # Lineage goes through the models in between: raw -> marts (both providers feed the marts
    # that union them), and marts -> the marts they read.
    for mart in ("fct_spend_daily", "dim_api_keys", "dim_projects", "fct_usage_daily"):
        assert graph.get(AssetKey(["marts", mart])).parent_keys == ingest, mart
    assert graph.get(AssetKey(["marts", "fct_spend_daily_by_connection"])).parent_keys == {
        *ingest,
        AssetKey(["marts", "fct_spend_daily"]),
    }
    assert graph.get(AssetKey(["marts", "rpt_spend_month_to_date_by_model"])).parent_keys == {
        AssetKey(["marts", "fct_spend_monthly_by_model"])
    }
    groups = {graph.get(k).group_name for k in materializable}
    assert groups == {"ingest", "marts"}


def test_a_run_selects_its_connections_provider_and_the_marts():
    marts = {k for k in defs.resolve_asset_graph().materializable_asset_keys if k.path[0] == "marts"}
    for provider in PROVIDERS:
        assert set(sync_selection(provider.name)) == {AssetKey([provider.dataset_name]), *marts}


def test_another_providers_ingest_asset_refuses_the_connection_before_any_request(stax_home):
    """Launched by hand in the UI with the wrong provider's asset: one clear line, no request
    (the OpenAI API never receives an Anthropic key)."""
    from stax_pipeline.defs.jobs import SYNC_JOB_NAME
    from stax_pipeline.lib.window import range_run_tags
    from stax_pipeline.orchestration import run_failure_reason

    store = ConnectionStore(load_settings())
    instance = _connect(store, "claude", anthropic=("claude",))
    result = defs.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
        instance=instance,
        tags=range_run_tags("claude", SyncWindow.inclusive(date(2026, 11, 1), date(2026, 11, 2))),
        asset_selection=[AssetKey(["raw_openai"])],
        raise_on_error=False,
    )
    assert not result.success
    assert run_failure_reason(result.all_events) == (
        "'claude' is a connection to Anthropic: materialize raw_anthropic for it, not raw_openai"
    )


def test_ingest_is_partitioned_day_by_connection_the_marts_are_not_and_all_share_one_pool():
    graph = defs.resolve_asset_graph()
    ingest = {AssetKey([p.dataset_name]) for p in PROVIDERS}
    marts = set(graph.materializable_asset_keys) - ingest
    assert marts and all(key.path[0] == "marts" for key in marts)
    for key in ingest:
        node = graph.get(key)
        assert node.partitions_def == sync_partitions, key
        assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None
    # one materialization per mart per run, not one per mart per day
    assert all(graph.get(key).partitions_def is None for key in marts)
    for assets_def in defs.assets:
        assert assets_def.op.pool == WAREHOUSE_POOL
    dims = {d.name for d in sync_partitions.partitions_defs}
    assert dims == {"connection", "date"}


def test_dbt_tests_are_asset_checks():
    checks = defs.resolve_asset_graph().asset_check_keys
    names = {k.name for k in checks}
    # each mart's contract (not-null columns, grain, accepted values) is one check
    assert AssetCheckKey(AssetKey(["marts", "fct_spend_daily"]), "contract_fct_spend_daily") in checks
    assert {f"contract_{m}" for m in ("dim_projects", "fct_model_spend_daily", "fct_usage_daily")} <= names
    # a test over several models is the check of the one its meta.dagster.ref names
    assert (
        AssetCheckKey(AssetKey(["marts", "fct_spend_daily"]), "assert_spend_reconciles_with_costs") in checks
    )
    assert all(k.asset_key.path[0] == "marts" for k in checks)


def test_window_helpers():
    window = nightly_window(date(2026, 11, 25), 3)
    assert (window.start, window.last) == (date(2026, 11, 21), date(2026, 11, 24))
    assert dbt_vars(window, ["b", "a"]) == {
        "start_date": "2026-11-21",
        "end_date": "2026-11-25",
        "connections": ["a", "b"],
    }
    # A day is final when that night's sync pulls it for the last time (or never again).
    pulled = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert is_final(date(2026, 11, 21), pulled, 3)
    assert is_final(date(2026, 10, 1), pulled, 3)
    assert not is_final(date(2026, 11, 22), pulled, 3)
    assert not is_final(date(2026, 11, 25), pulled, 3)  # today, partial
    # The days a UI backfill picked, as the fewest windows of consecutive days (marked synced).
    picked = [date(2026, 11, 5), date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 5), date(2026, 11, 3)]
    assert contiguous_windows(picked) == [
        SyncWindow.inclusive(date(2026, 11, 1), date(2026, 11, 3)),
        SyncWindow.inclusive(date(2026, 11, 5), date(2026, 11, 5)),
    ]
    assert contiguous_windows([]) == []


ANTHROPIC_KEY = "sk-ant-admin01-test-6d1e9a0c7b3f2854"


def _connect(store: ConnectionStore, *names: str, anthropic: tuple[str, ...] = ()):
    instance = dagster_instance(load_settings())
    for name in names:
        provider, key = ("anthropic", ANTHROPIC_KEY) if name in anthropic else ("openai", ADMIN_KEY)
        store.add(name, provider, key)
        register_connection(instance, name)
    return instance


def test_nightly_schedule_runs_each_connection_over_its_own_catch_up_window(stax_home, monkeypatch):
    monkeypatch.setenv("STAX_LOOKBACK_DAYS", "3")
    store = ConnectionStore(load_settings())
    instance = _connect(store, "acme", "globex", "initech", anthropic=("initech",))
    synced_at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    # acme is up to date, globex stopped syncing on 2026-11-10, initech never synced.
    store.mark_synced("acme", synced_at, SyncWindow.inclusive(date(2026, 11, 1), date(2026, 11, 24)))
    store.mark_synced("globex", synced_at, SyncWindow.inclusive(date(2026, 11, 1), date(2026, 11, 10)))
    tick = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    schedule = defs.get_schedule_def("nightly_sync")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
    requests = list(schedule.evaluate_tick(context).run_requests)
    by_connection = {r.tags["stax/connection"]: r for r in requests}
    assert len(requests) == 3
    windows = {
        name: (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
        for name, r in by_connection.items()
    }
    assert windows == {
        "acme": ("acme|2026-11-21", "acme|2026-11-24"),  # yesterday and the 3 lookback days
        "globex": ("globex|2026-11-11", "globex|2026-11-24"),  # the missed nights too
        "initech": ("initech|2026-10-26", "initech|2026-11-24"),  # its first 30 days
    }
    assert {r.run_key for r in requests} == {f"nightly:{n}:2026-11-25" for n in windows}
    # each run pulls its connection's provider only (and rebuilds the marts)
    ingest = {
        name: {k for k in r.asset_selection if k.path[0].startswith("raw_")}
        for name, r in by_connection.items()
    }
    assert ingest == {
        "acme": {AssetKey(["raw_openai"])},
        "globex": {AssetKey(["raw_openai"])},
        "initech": {AssetKey(["raw_anthropic"])},
    }


def test_sensor_backfills_a_new_connection_once(stax_home):
    settings = load_settings()
    store = ConnectionStore(settings)
    instance = dagster_instance(settings)
    store.add("acme", "openai", ADMIN_KEY)  # connected, not yet a partition, never backfilled
    sensor = defs.get_sensor_def("new_connection_backfill")
    before = datetime.now(UTC).date()  # the sensor reads the real clock: allow a midnight between
    first = sensor.evaluate_tick(build_sensor_context(instance=instance))
    after = datetime.now(UTC).date()
    assert [r.tags["stax/connection"] for r in first.run_requests] == ["acme"]
    tags = first.run_requests[0].tags
    windows = [SyncWindow(today - timedelta(days=30), today) for today in {before, after}]
    assert (tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]) in [
        (f"acme|{w.start}", f"acme|{w.last}") for w in windows
    ]
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [["acme"]]
    second = sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert second.run_requests == []
    # A connection the CLI already claimed is not backfilled again by the sensor.
    store.add("globex", "openai", ADMIN_KEY)
    assert store.claim_backfill("globex", "cli")
    third = sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert third.run_requests == []


def test_instance_under_stax_home_limits_the_warehouse_pool_to_one(stax_home):
    instance = dagster_instance(load_settings())
    assert str(instance.root_directory).startswith(str(stax_home))
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
