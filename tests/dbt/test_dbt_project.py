"""End-to-end checks of the dbt project against a small hand-built `raw_openai` schema.

The raw tables follow the dlt contract: append-only snapshots per sync tagged with its `sync_id`,
and `sync_windows` rows for every (connection, resource, date) a sync covered, written only once
its data loaded (the commit marker). dbt runs
in-process through `dbtRunner`, the way Dagster's `dbt build --vars` would run it.

Story:
1. Loads L1 (acme, days 1-3), G1 (globex, days 1-2), L2 (acme day 3 re-pulled with zero rows) and
   an unfinished L3 (acme day 1, bogus amounts) exist; a full `dbt build` runs.
2. L4 re-pulls acme days 1-2 (day 2: one amount changed, one row gone; day 1: one amount changed)
   and G2 re-pulls globex day 2. A one-day window build for acme day 2 runs: only that day and
   connection change, so acme day 1 and globex day 2 keep their old (now stale) values.
3. The same window build again changes nothing.
4. A build without vars brings every day to the latest loads.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from stax_pipeline.lib.dbt import window_in_environment
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.lib.window import dbt_vars as dbt_window_vars

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
TOLERANCE = 1e-6

D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)
RESOURCES = [
    "costs",
    "usage_completions",
    "usage_embeddings",
    "usage_moderations",
    "usage_images",
    "usage_audio_speeches",
    "usage_audio_transcriptions",
    "usage_vector_stores",
    "usage_code_interpreter_sessions",
    "usage_file_search_calls",
    "usage_web_search_calls",
]
# The marts of facts per (connection, date), refreshed for exactly the run's window.
MARTS = [
    "fct_spend_daily",
    "fct_model_spend_daily",
    "fct_usage_daily",
    "fct_model_spend_by_api_key_daily",
    "fct_spend_daily_by_connection",
    "fct_spend_daily_by_project",
]
SPEND_MARTS = [
    "marts.fct_spend_daily",
    "marts.fct_model_spend_daily",
    "marts.fct_model_spend_by_api_key_daily",
    "marts.fct_spend_daily_by_connection",
    "marts.fct_spend_daily_by_project",
]

COMMON_COLUMNS = """
    connection varchar, date date, bucket_start_time bigint, bucket_end_time bigint,
    loaded_at timestamptz, sync_id varchar, _dlt_load_id varchar, _dlt_id varchar"""
# usage_code_interpreter_sessions is deliberately never created and usage_completions lacks two
# optional columns: dlt creates neither before it has seen data, and staging must cope.
RAW_DDL = {
    "costs": """object varchar, amount__value double, amount__currency varchar, line_item varchar,
        project_id varchar, api_key_id varchar, quantity double, quantity_unit varchar,
        organization_id varchar""",
    "usage_completions": """object varchar, input_tokens bigint, output_tokens bigint,
        num_model_requests bigint, input_cached_tokens bigint, input_uncached_tokens bigint,
        input_text_tokens bigint, output_text_tokens bigint, input_cached_text_tokens bigint,
        input_audio_tokens bigint, input_cached_audio_tokens bigint, output_audio_tokens bigint,
        input_image_tokens bigint, input_cached_image_tokens bigint, project_id varchar,
        user_id varchar, api_key_id varchar, model varchar, service_tier varchar, batch boolean""",
    "usage_embeddings": """object varchar, input_tokens bigint, num_model_requests bigint,
        project_id varchar, user_id varchar, api_key_id varchar, model varchar""",
    "usage_moderations": """object varchar, input_tokens bigint, num_model_requests bigint,
        project_id varchar, user_id varchar, api_key_id varchar, model varchar""",
    "usage_images": """object varchar, images bigint, num_model_requests bigint, source varchar,
        size varchar, project_id varchar, user_id varchar, api_key_id varchar, model varchar""",
    "usage_audio_speeches": """object varchar, characters bigint, num_model_requests bigint,
        project_id varchar, user_id varchar, api_key_id varchar, model varchar""",
    "usage_audio_transcriptions": """object varchar, seconds bigint, num_model_requests bigint,
        project_id varchar, user_id varchar, api_key_id varchar, model varchar""",
    "usage_vector_stores": "object varchar, usage_bytes bigint, project_id varchar",
    "usage_file_search_calls": """object varchar, num_requests bigint, project_id varchar,
        user_id varchar, api_key_id varchar, vector_store_id varchar""",
    "usage_web_search_calls": """object varchar, num_model_requests bigint, num_requests bigint,
        project_id varchar, user_id varchar, api_key_id varchar, model varchar,
        context_level varchar""",
}


def cost(line_item: str | None, project_id: str | None, api_key_id: str | None, amount: float) -> dict:
    return {
        "object": "organization.costs.result",
        "amount__value": amount,
        "amount__currency": "usd",
        "line_item": line_item,
        "project_id": project_id,
        "api_key_id": api_key_id,
        "quantity": 1000.0,
        "quantity_unit": "tokens",
        "organization_id": None,
    }


def completion(project_id: str, model: str, inp: int, out: int, requests: int, batch: bool = False) -> dict:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": inp,
        "output_tokens": out,
        "num_model_requests": requests,
        "input_cached_tokens": inp // 10,
        "project_id": project_id,
        "user_id": None,
        "api_key_id": None,
        "model": model,
        "service_tier": "default",
        "batch": batch,
    }


ACME_D1 = [
    cost("gpt-4o-2024-08-06, input", "proj_a", "key_1", 1.25),
    cost("gpt-4o-2024-08-06, output", "proj_a", "key_1", 2.5),
    cost("assistants api | file search", "proj_a", None, 0.1),  # no model, null api key
    cost("evals | gpt-4o-mini-2024-07-18, input", "proj_a", "key_1", 0.3),
    cost("evals | gpt-4o-mini-2024-07-18, input", "proj_a", "key_1", 0.2),  # repeated: summed
    cost("weird || thing", "proj_b", "key_2", 0.05),  # unknown shape: kept
    cost("ft-gpt-4o-mini-2024-07-18, input", "proj_a", "key_1", 0.4),  # billed name of a fine-tune
    cost("text-embedding-3-small, input", "proj_a", "key_1", 0.1),
]
FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme::Ab12Cd34"  # as usage names it
ACME_D1_USAGE = [
    completion("proj_a", "gpt-4o-2024-08-06", 1000, 500, 10),
    completion("proj_a", "gpt-4o-2024-08-06", 200, 100, 2, batch=True),
    completion("proj_c", "gpt-4o-mini-2024-07-18", 50, 20, 1),  # usage without cost, unlisted project
    completion("proj_a", FINE_TUNE, 400, 100, 3),
]
EMBEDDINGS_D1 = [
    {
        "object": "organization.usage.embeddings.result",
        "input_tokens": 300,
        "num_model_requests": 3,
        "project_id": "proj_a",
        "user_id": None,
        "api_key_id": "key_1",
        "model": "text-embedding-3-small",
    }
]

# load id -> (connection, loaded_at, completed, {date: {resource: rows}})
LOADS_BEFORE_FIRST_BUILD = {
    "1001.1": (
        "acme",
        datetime(2026, 10, 4, 2, tzinfo=UTC),
        True,
        {
            D1: {"costs": ACME_D1, "usage_completions": ACME_D1_USAGE, "usage_embeddings": EMBEDDINGS_D1},
            D2: {
                "costs": [
                    cost("gpt-4o-2024-08-06, input", "proj_a", "key_1", 3.0),
                    cost("o1, output", "proj_b", "key_2", 4.0),  # vanishes in L4
                    cost("web search tool calls", None, None, 0.05),
                ],
                "usage_completions": [completion("proj_b", "o1", 100, 900, 4)],
            },
            D3: {
                "costs": [cost("gpt-4o-mini-2024-07-18, input", "proj_a", "key_1", 0.7)],
                "usage_completions": [completion("proj_a", "gpt-4o-mini-2024-07-18", 300, 100, 3)],
            },
        },
    ),
    "1001.2": (
        "globex",
        datetime(2026, 10, 4, 2, 5, tzinfo=UTC),
        True,
        {
            D1: {"costs": [cost("text-embedding-3-small", "proj_g", "key_g", 5.0)]},
            D2: {"costs": [cost("gpt-4o-2024-08-06, output", "proj_g", "key_g", 1.5)]},
        },
    ),
    # acme day 3 re-pulled: the API returns nothing now, so the day must become empty
    "1001.3": ("acme", datetime(2026, 10, 5, 2, tzinfo=UTC), True, {D3: {}}),
    # failed half-way (data landed, no sync_windows marker): ignored although it is the newest
    "1001.4": (
        "acme",
        datetime(2026, 10, 5, 3, tzinfo=UTC),
        False,
        {
            D1: {"costs": [cost("gpt-4o-2024-08-06, input", "proj_a", "key_1", 999.0)]},
        },
    ),
}
LOADS_BEFORE_WINDOW_BUILD = {
    "1001.5": (
        "acme",
        datetime(2026, 10, 6, 2, tzinfo=UTC),
        True,
        {
            D1: {
                "costs": [cost("gpt-4o-2024-08-06, input", "proj_a", "key_1", 1.5), *ACME_D1[1:]],
                "usage_completions": ACME_D1_USAGE,
                "usage_embeddings": EMBEDDINGS_D1,
            },
            D2: {
                "costs": [
                    cost("gpt-4o-2024-08-06, input", "proj_a", "key_1", 3.5),
                    cost("web search tool calls", None, None, 0.05),
                ],
            },
        },
    ),
    "1001.6": (
        "globex",
        datetime(2026, 10, 6, 2, 5, tzinfo=UTC),
        True,
        {
            D2: {"costs": [cost("gpt-4o-2024-08-06, output", "proj_g", "key_g", 2.0)]},
        },
    ),
}
WINDOW_VARS = {"start_date": "2026-10-02", "end_date": "2026-10-03", "connections": ["acme"]}


def expected_daily_costs(loads: dict) -> dict[tuple[str, date], float]:
    """The latest-load rule in plain Python: per (connection, day) the latest completed load."""
    latest: dict[tuple[str, date], tuple[datetime, str]] = {}
    for load_id, (connection, loaded_at, completed, days) in loads.items():
        for day in days:
            key = (connection, day)
            if completed and (key not in latest or (loaded_at, load_id) > latest[key]):
                latest[key] = (loaded_at, load_id)
    totals = {}
    for (connection, day), (_, load_id) in latest.items():
        rows = loads[load_id][3][day].get("costs", [])
        totals[(connection, day)] = sum(row["amount__value"] for row in rows)
    return totals


def create_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema raw_openai")
    for table, columns in RAW_DDL.items():
        con.execute(f"create table raw_openai.{table} ({columns}, {COMMON_COLUMNS})")
    con.execute("""create table raw_openai.sync_windows (connection varchar, resource varchar,
        date date, is_final boolean, loaded_at timestamptz, sync_id varchar, _dlt_load_id varchar,
        _dlt_id varchar)""")
    con.execute("""create table raw_openai.projects (connection varchar, id varchar, object varchar,
        name varchar, created_at bigint, archived_at bigint, status varchar,
        external_key_id varchar, residency varchar, loaded_at timestamptz,
        _dlt_load_id varchar, _dlt_id varchar)""")
    con.execute("""create table raw_openai.project_api_keys (connection varchar, project_id varchar,
        id varchar, object varchar, name varchar, redacted_value varchar, created_at bigint,
        last_used_at bigint, owner__type varchar, owner__user__id varchar, owner__user__name varchar,
        owner__service_account__id varchar, owner__service_account__name varchar,
        loaded_at timestamptz, _dlt_load_id varchar, _dlt_id varchar)""")
    loaded = datetime(2026, 10, 4, 2, tzinfo=UTC)
    for pid, kid, name, owner_type, owner, listed_at in [
        ("proj_a", "key_1", "backend prod", "user", "Ada Lovelace", loaded),
        ("proj_a", "key_svc", "ci", "service_account", "ci-bot", loaded),
        (
            "proj_b",
            "key_old",
            "old key",
            "user",
            "Alan Turing",
            datetime(2026, 10, 1, tzinfo=UTC),
        ),  # not listed since
    ]:
        con.execute(
            "insert into raw_openai.project_api_keys values ('acme', ?, ?, 'organization.project.api_key', ?, "
            "'sk-proj-ab***...wxyz', 1700000000, 1759500000, ?, ?, ?, ?, ?, ?, '1001.1', ?)",
            [
                pid,
                kid,
                name,
                owner_type,
                *(("u1", owner) if owner_type == "user" else (None, None)),
                *(("sa1", owner) if owner_type == "service_account" else (None, None)),
                listed_at,
                f"k-{kid}",
            ],
        )
    for pid, name, status, archived in [
        ("proj_a", "Alpha", "active", None),
        ("proj_b", "Beta", "archived", 1759000000),
    ]:
        con.execute(
            "insert into raw_openai.projects values ('acme', ?, 'organization.project', ?, 1700000000, ?, ?, null, null, ?, '1001.1', ?)",
            [pid, name, archived, status, loaded, f"p-{pid}"],
        )


def append_loads(con: duckdb.DuckDBPyConnection, loads: dict) -> None:
    row_number = 0
    for load_id, (connection, loaded_at, completed, days) in loads.items():
        for day, tables in days.items():
            start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
            for resource in RESOURCES:
                for row in tables.get(resource, []):
                    row_number += 1
                    values = {
                        **row,
                        "connection": connection,
                        "date": day,
                        "bucket_start_time": start,
                        "bucket_end_time": start + 86400,
                        "loaded_at": loaded_at,
                        "sync_id": load_id,
                        "_dlt_load_id": load_id,
                        "_dlt_id": f"{load_id}-{row_number}",
                    }
                    columns = ", ".join(values)
                    marks = ", ".join("?" for _ in values)
                    con.execute(
                        f"insert into raw_openai.{resource} ({columns}) values ({marks})",
                        list(values.values()),
                    )
                if completed:  # the commit marker: only a sync whose data loaded writes it
                    con.execute(
                        "insert into raw_openai.sync_windows values (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            connection,
                            resource,
                            day,
                            day == D1,
                            loaded_at,
                            load_id,
                            load_id,
                            f"w-{load_id}-{resource}-{day}",
                        ],
                    )


class Warehouse:
    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        # one writer per file: never keep a connection open while dbt runs
        with duckdb.connect(str(self.path)) as con:
            return con.execute(sql, params or []).fetchall()

    def table(self, relation: str) -> list[tuple]:
        return sorted(self.rows(f"select * from {relation}"), key=repr)

    def daily_cost(self, relation: str) -> dict[tuple[str, date], float]:
        sql = f"select connection, date, sum(cost_usd) from {relation} group by all"
        return {(c, d): v for c, d, v in self.rows(sql)}


def restatements(warehouse: Warehouse) -> list[tuple]:
    """(connection, date, line_item, change_type, previous, new, previous day, new day), sorted."""
    rows = warehouse.rows(
        """select connection, date, line_item, change_type, round(previous_cost_usd, 9),
        round(new_cost_usd, 9), round(previous_day_cost_usd, 9), round(new_day_cost_usd, 9)
        from marts.fct_restatements"""
    )
    return sorted(rows, key=repr)


def assert_costs_match(actual: dict, expected: dict) -> None:
    keys = {k for k, v in expected.items() if v != 0} | set(actual)
    for key in keys:
        assert math.isclose(actual.get(key, 0.0), expected.get(key, 0.0), abs_tol=TOLERANCE), key
    assert math.isclose(sum(actual.values()), sum(expected.values()), abs_tol=TOLERANCE)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("stax_home")
    previous = os.environ.get("STAX_HOME")
    os.environ["STAX_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("STAX_HOME", None)
    else:
        os.environ["STAX_HOME"] = previous


def dbt_build(
    home: Path,
    dbt_vars: dict | None = None,
    *,
    window: SyncWindow | None = None,
    connections: list[str] | None = None,
    select: str | None = None,
    unit_tests: bool = True,
) -> dict[str, str]:
    """Runs `dbt build`; returns {node unique_id: status} and asserts it succeeded.

    ``dbt_vars`` go in ``--vars`` (as a person runs dbt by hand); ``window`` goes in
    STAX_DBT_WINDOW, as a sync runs it (a sync also leaves out ``unit_tests``). ``select``: that
    model and everything it is made of (with their tests)."""
    args = _dbt_args(home, "build")
    if dbt_vars is not None:
        args += ["--vars", json.dumps(dbt_vars)]
    if select is not None:
        args += ["--select", f"+{select}", "--indirect-selection", "cautious"]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    with window_in_environment(dbt_window_vars(window, connections) if window else {}):
        result = dbtRunner().invoke(args)
    statuses = {r.node.unique_id: str(r.status) for r in (result.result or [])}
    failed = {k: v for k, v in statuses.items() if v not in ("success", "pass", "warn")}
    assert result.success and not failed, (result.exception, failed)
    return statuses


def _dbt_args(home: Path, command: str, *args: str) -> list[str]:
    """``dbt <command> <args>`` of the project, its artifacts and logs kept out of the project's
    own target/ (Dagster's manifest)."""
    return [
        command,
        *args,
        *("--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)),
        *("--target-path", str(home / "dbt_target"), "--log-path", str(home / "dbt_logs"), "--quiet"),
    ]


def data_test_failures(
    home: Path, test: str = "assert_spend_reconciles_with_costs", *, store_failures: bool = False
) -> int:
    """Runs only one data test (the money reconciliation by default); returns its failing row
    count (its failing rows stored in the warehouse too with ``store_failures``)."""
    result = dbtRunner().invoke(
        _dbt_args(home, "test", "--select", test, *(["--store-failures"] if store_failures else []))
    )
    assert result.result is not None, result.exception
    [test_result] = result.result
    return test_result.failures or 0


def test_dbt_project_end_to_end(home: Path) -> None:
    warehouse = Warehouse(home / "warehouse.duckdb")
    with duckdb.connect(str(warehouse.path)) as con:
        create_raw_schema(con)
        append_loads(con, LOADS_BEFORE_FIRST_BUILD)

    # 1. full build
    statuses = dbt_build(home)
    unit_tests = {k: v for k, v in statuses.items() if k.startswith("unit_test.")}
    assert len(unit_tests) >= 5 and set(unit_tests.values()) == {"pass"}, unit_tests
    warned = {k for k, v in statuses.items() if v == "warn"}
    assert warned == {"test.stax.warn_unknown_line_item_shapes"}, warned  # 'weird || thing'
    data_tests = [k for k in statuses if k.startswith("test.")]
    assert "test.stax.assert_spend_reconciles_with_costs" in data_tests
    # every mart with a day grain has its contract, and it passed
    contracts = {k.split(".")[2]: v for k, v in statuses.items() if k.startswith("test.stax.contract_")}
    assert all(contracts[f"contract_{mart}"] == "pass" for mart in MARTS)

    expected = expected_daily_costs(LOADS_BEFORE_FIRST_BUILD)
    assert expected[("acme", D3)] == 0 and math.isclose(expected[("acme", D1)], 4.9)
    for mart in [*SPEND_MARTS, "staging.stg_openai__costs"]:
        assert_costs_match(warehouse.daily_cost(mart), expected)

    # restatements: day 3 re-pulled empty lost its row; the unfinished load is no sync at all
    assert restatements(warehouse) == [
        ("acme", D3, "gpt-4o-mini-2024-07-18, input", "vanished", 0.7, 0.0, 0.7, 0.0),
    ]
    [(model, synced, _detected)] = warehouse.rows(
        "select model, (previous_synced_at, new_synced_at), detected_at from marts.fct_restatements"
    )
    assert model == "gpt-4o-mini-2024-07-18"
    assert synced == (datetime(2026, 10, 4, 2, tzinfo=UTC), datetime(2026, 10, 5, 2, tzinfo=UTC))

    # the zero-row re-pull empties day 3 (costs and usage); the unfinished load is ignored
    for mart in [
        "fct_spend_daily",
        "fct_model_spend_daily",
        "fct_usage_daily",
        "fct_model_spend_by_api_key_daily",
    ]:
        assert warehouse.rows(f"select count(*) from marts.{mart} where date = ?", [D3]) == [(0,)]
    # ... but the daily rollups keep the synced day, at $0: no missing days
    assert warehouse.rows(
        "select connection, date, cost_usd, is_final from marts.fct_spend_daily_by_connection order by all"
    ) == [
        ("acme", D1, pytest.approx(4.9), True),
        ("acme", D2, pytest.approx(7.05), False),
        ("acme", D3, 0.0, False),
        ("globex", D1, 5.0, True),
        ("globex", D2, 1.5, False),
    ]
    assert warehouse.rows(
        "select project_id, cost_usd from marts.fct_spend_daily_by_project where date = ? order by all", [D3]
    ) == [("proj_a", 0.0), ("proj_c", 0.0)]  # alive that day (proj_b archived in 2025; proj_c unlisted)
    assert warehouse.rows("select count(*) from marts.fct_spend_daily where cost_usd >= 999") == [(0,)]

    # parsing, aggregation and the null api key
    evals = warehouse.rows(
        """select product, model, charge_type, cost_usd, source_row_count from marts.fct_spend_daily
        where connection = 'acme' and date = ? and line_item like 'evals |%'""",
        [D1],
    )
    assert len(evals) == 1 and evals[0][:3] == ("evals", "gpt-4o-mini-2024-07-18", "input")
    assert math.isclose(evals[0][3], 0.5) and evals[0][4] == 2
    assert warehouse.rows(
        """select product, sku, model, api_key_id, line_item_shape from marts.fct_spend_daily
        where line_item = 'assistants api | file search'"""
    ) == [("assistants api", "file search", None, None, "sku")]
    assert warehouse.rows(
        "select model, line_item_shape, cost_usd from marts.fct_spend_daily where line_item = 'weird || thing'"
    ) == [(None, "unknown", 0.05)]

    # model spend: cost and usage joined, neither side dropped
    model_rows = {
        (r[0], r[1]): r[2:]
        for r in warehouse.rows(
            """select project_id, model, cost_usd, input_tokens, output_tokens, num_model_requests
            from marts.fct_model_spend_daily where connection = 'acme' and date = ?""",
            [D1],
        )
    }
    assert model_rows[("proj_a", "gpt-4o-2024-08-06")] == (3.75, 1200, 600, 12)
    assert model_rows[("proj_c", "gpt-4o-mini-2024-07-18")] == (0.0, 50, 20, 1)  # usage only
    assert model_rows[("proj_a", None)] == (0.1, 0, 0, 0)  # non-model spend kept
    assert math.isclose(model_rows[("proj_a", "gpt-4o-mini-2024-07-18")][0], 0.5)
    # the fine-tune's usage meets its billed name (cost key_1, usage no key: they meet per project)
    assert model_rows[("proj_a", "ft-gpt-4o-mini-2024-07-18")] == (0.4, 400, 100, 3)
    assert warehouse.rows("select count(*) from marts.fct_model_spend_daily where model like 'ft:%'") == [
        (0,)
    ]
    assert warehouse.rows("select model, billed_model from marts.fct_usage_daily where model like 'ft%'") == [
        (FINE_TUNE, "ft-gpt-4o-mini-2024-07-18")
    ]
    # embeddings tokens beside the embeddings cost; non-model spend by product and SKU
    assert warehouse.rows(
        """select cost_usd, input_tokens, num_model_requests, has_usage_data from marts.fct_model_spend_daily
        where connection = 'acme' and date = ? and model = 'text-embedding-3-small'""",
        [D1],
    ) == [(0.1, 300, 3, True)]
    assert warehouse.rows(
        """select connection, spend_category, product, sku, cost_usd from marts.fct_model_spend_daily
        where model is null and date = ? order by all""",
        [D1],
    ) == [("acme", "sku", "assistants api", "file search", 0.1), ("acme", "unknown", None, None, 0.05)]
    # API keys by name: listed, listed once and deleted since, never listed
    assert warehouse.rows(
        """select connection, api_key_id, name, project_id, owner_type, owner_name, is_listed, last_listed_name
        from marts.dim_api_keys order by all"""
    ) == [
        ("acme", "key_1", "backend prod", "proj_a", "user", "Ada Lovelace", True, "backend prod"),
        ("acme", "key_2", "(deleted key)", "proj_b", None, None, False, None),
        ("acme", "key_old", "(deleted key)", "proj_b", "user", "Alan Turing", False, "old key"),
        ("acme", "key_svc", "ci", "proj_a", "service_account", "ci-bot", True, "ci"),
        ("globex", "key_g", "(deleted key)", "proj_g", None, None, False, None),
    ]

    # projects: listed ones plus those only seen in costs/usage
    assert sorted(warehouse.rows("select connection, project_id, name, status from marts.dim_projects")) == [
        ("acme", "proj_a", "Alpha", "active"),
        ("acme", "proj_b", "Beta", "archived"),
        ("acme", "proj_c", None, "unknown"),
        ("globex", "proj_g", None, "unknown"),
    ]
    usage = warehouse.rows(
        "select endpoint, model, input_tokens, num_model_requests, output_tokens from marts.fct_usage_daily "
        "where connection = 'acme' and date = ? and endpoint = 'embeddings'",
        [D1],
    )
    assert usage == [("embeddings", "text-embedding-3-small", 300, 3, None)]
    assert warehouse.rows("select count(*) from marts.fct_spend_monthly_by_model") != [(0,)]
    assert sorted(
        warehouse.rows("select connection, project_id, project_name from marts.fct_spend_monthly_by_project"),
        key=repr,
    ) == sorted(
        [
            ("acme", "proj_a", "Alpha"),
            ("acme", "proj_b", "Beta"),
            ("acme", None, None),
            ("globex", "proj_g", None),
        ],
        key=repr,
    )

    # 2. new loads, then a one-day window build for acme only
    with duckdb.connect(str(warehouse.path)) as con:
        append_loads(con, LOADS_BEFORE_WINDOW_BUILD)
    outside = "not (connection = 'acme' and date = DATE '2026-10-02')"
    before = {m: warehouse.table(f"(select * from marts.{m} where {outside})") for m in MARTS}

    dbt_build(home, WINDOW_VARS)
    all_loads = {**LOADS_BEFORE_FIRST_BUILD, **LOADS_BEFORE_WINDOW_BUILD}
    latest = expected_daily_costs(all_loads)
    stale = {**expected, ("acme", D2): latest[("acme", D2)]}  # only the window moved
    for mart in SPEND_MARTS:
        assert_costs_match(warehouse.daily_cost(mart), stale)
    assert math.isclose(latest[("acme", D2)], 3.55)
    # the vanished o1 row is gone, from both spend marts
    assert warehouse.rows("select count(*) from marts.fct_spend_daily where line_item = 'o1, output'") == [
        (0,)
    ]
    assert warehouse.rows(
        "select count(*) from marts.fct_model_spend_daily where model = 'o1' and cost_usd > 0"
    ) == [(0,)]
    # acme day 2 restated (one amount changed, one row vanished, one unchanged: no row); the days
    # outside the window wait for their own build
    assert restatements(warehouse) == sorted(
        [
            ("acme", D3, "gpt-4o-mini-2024-07-18, input", "vanished", 0.7, 0.0, 0.7, 0.0),
            ("acme", D2, "gpt-4o-2024-08-06, input", "changed", 3.0, 3.5, 7.05, 3.55),
            ("acme", D2, "o1, output", "vanished", 4.0, 0.0, 7.05, 3.55),
        ],
        key=repr,
    )
    # other days and connections untouched, although their raw data changed
    for mart in MARTS:
        assert warehouse.table(f"(select * from marts.{mart} where {outside})") == before[mart], mart

    # 3. the same window again changes nothing
    snapshot = {m: warehouse.table(f"marts.{m}") for m in MARTS}
    dbt_build(home, WINDOW_VARS)
    for mart in MARTS:
        assert warehouse.table(f"marts.{mart}") == snapshot[mart], mart

    # 4. no vars: every day and connection to the latest completed loads
    dbt_build(home)
    for mart in [*SPEND_MARTS, "staging.stg_openai__costs"]:
        assert_costs_match(warehouse.daily_cost(mart), latest)
    assert warehouse.rows("select count(*) from marts.fct_spend_daily where date = ?", [D3]) == [(0,)]
    total = warehouse.rows("select sum(cost_usd) from marts.fct_spend_daily")[0][0]
    assert math.isclose(total, 5.15 + 3.55 + 5.0 + 2.0, abs_tol=TOLERANCE)
    restated = restatements(warehouse)
    assert ("acme", D1, "gpt-4o-2024-08-06, input", "changed", 1.25, 1.5, 4.9, 5.15) in restated
    assert ("globex", D2, "gpt-4o-2024-08-06, output", "changed", 1.5, 2.0, 1.5, 2.0) in restated
    assert len(restated) == 5  # nothing else: repeated and unchanged rows are no restatement

    # 5. the reconciliation test catches a doubled and a dropped row
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute("create table main.spend_backup as select * from marts.fct_spend_daily")
        con.execute(
            "insert into marts.fct_spend_daily select * from marts.fct_spend_daily where line_item = 'web search tool calls'"
        )
        con.execute(
            "delete from marts.fct_model_spend_daily where model = 'gpt-4o-2024-08-06' and connection = 'globex'"
        )
    assert data_test_failures(home) > 0
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute("delete from marts.fct_spend_daily")
        con.execute("insert into marts.fct_spend_daily select * from main.spend_backup")
    assert data_test_failures(home) > 0  # the dropped model-spend row alone

    # 6. the usage and no-missing-days checks catch what they promise
    usage_check, days_check = (
        "assert_model_spend_holds_all_model_usage",
        "assert_daily_rollups_cover_every_synced_day",
    )
    assert data_test_failures(home, usage_check) == 0 and data_test_failures(home, days_check) == 0
    with duckdb.connect(str(warehouse.path)) as con:  # fine-tuned tokens on a row of their own
        con.execute(f"""update marts.fct_model_spend_daily set model = '{FINE_TUNE}'
            where model = 'ft-gpt-4o-mini-2024-07-18'""")
        con.execute("delete from marts.fct_spend_daily_by_connection where cost_usd = 0")  # the $0 day
    assert data_test_failures(home, usage_check) == 1
    assert data_test_failures(home, days_check) == 1
    with duckdb.connect(str(warehouse.path)) as con:  # embeddings tokens dropped from one key's row
        con.execute(
            "update marts.fct_model_spend_by_api_key_daily set input_tokens = 0 "
            "where model = 'text-embedding-3-small'"
        )
    assert data_test_failures(home, usage_check) == 2


def test_a_models_contract_fails_once_per_broken_rule_and_says_which(home: Path) -> None:
    """One ``contract`` test per model holds what separate not-null, unique-grain and
    accepted-values tests held: each broken rule is a failing row naming the rule and where."""
    warehouse = home / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        built = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts' "
            "and table_name = 'fct_spend_daily'"
        ).fetchall() == [(1,)]
        if not built:  # run alone, without the end-to-end story before it
            create_raw_schema(con)
            append_loads(con, LOADS_BEFORE_FIRST_BUILD)
    if not built:
        dbt_build(home, select="fct_spend_daily", unit_tests=False)
    contract = "contract_fct_spend_daily"
    assert data_test_failures(home, contract) == 0
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create or replace table main.contract_backup as select * from marts.fct_spend_daily")
        rows = con.execute(
            "select distinct line_item from marts.fct_spend_daily order by all limit 3"
        ).fetchall()
        first, second, third = (line_item for (line_item,) in rows)
        con.execute(
            "insert into marts.fct_spend_daily select * from marts.fct_spend_daily where line_item = ?",
            [first],
        )
        con.execute("update marts.fct_spend_daily set is_final = null where line_item = ?", [second])
        con.execute("update marts.fct_spend_daily set line_item_shape = 'guess' where line_item = ?", [third])
    try:
        failing = _stored_failures(home, contract)
    finally:
        with duckdb.connect(str(warehouse)) as con:
            con.execute("delete from marts.fct_spend_daily")
            con.execute("insert into marts.fct_spend_daily select * from main.contract_backup")
    rules = {rule for rule, _ in failing}
    assert rules == {"grain", "not_null", "accepted_values"}, failing
    assert ("not_null", "null in is_final") in failing
    assert ("accepted_values", "line_item_shape = guess") in failing
    assert any(rule == "grain" and failure.startswith("2 rows share (") for rule, failure in failing)
    assert data_test_failures(home, contract) == 0


def _stored_failures(home: Path, test: str) -> list[tuple[str, str]]:
    """Runs one data test storing its failing rows; returns them as (rule, failure)."""
    data_test_failures(home, test, store_failures=True)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        [(schema,)] = con.execute(
            "select table_schema from information_schema.tables where table_name = ?", [test]
        ).fetchall()
        return con.execute(f'select rule, failure from "{schema}"."{test}" order by all').fetchall()
