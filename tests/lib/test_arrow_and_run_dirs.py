"""Rows to Arrow batches (the ingest's streaming unit) and the pruning of dbt run folders."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from stax_pipeline.lib.arrow import ROW_ID, batches_as_arrow, concat_batches, results_to_arrow, with_row_ids
from stax_pipeline.lib.dbt import KEEP_DBT_RUNS, PARTIAL_PARSE_FILE, dbt_run_dir
from stax_pipeline.settings import load_settings
from stax_pipeline.sources.openai_admin.settings import COSTS_COLUMNS

_CONSTANTS = {
    "connection": "acme",
    "date": date(2026, 11, 1),
    "bucket_start_time": 1,
    "bucket_end_time": 2,
    "loaded_at": datetime(2026, 11, 2, tzinfo=UTC),
    "sync_id": "s",
}


def _row(i: int) -> dict:
    return {
        **_CONSTANTS,
        "amount__value": i / 3,
        "line_item": None if i % 2 else "gpt-4o, input",
        "new_api_field": {"nested": i},
    }


def test_batches_are_bounded_typed_as_hinted_and_keep_unknown_fields():
    batches = list(batches_as_arrow((_row(i) for i in range(25)), COSTS_COLUMNS, batch_rows=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    table = pa.concat_tables(batches)
    assert table.schema.field("amount__value").type == pa.float64()
    assert table.schema.field("date").type == pa.date32()
    # A hinted column the rows never had is there, typed, all null (dbt sources stay stable).
    assert table.schema.field("quantity").type == pa.float64()
    assert table.column("quantity").null_count == 25
    # Money is carried bit for bit; a field the hints don't know is kept (nested as JSON text).
    assert table.column("amount__value").to_pylist() == [i / 3 for i in range(25)]
    assert table.column("new_api_field").to_pylist()[3] == '{"nested": 3}'


_AMOUNT = {"amount__value": ("amount", "value"), "amount__currency": ("amount", "currency")}


def _result(i: int) -> dict:
    result: dict = {
        "object": "organization.costs.result",
        "amount": {"value": i / 3, "currency": "usd"},
        "line_item": None if i % 2 else "gpt-4o, input",
        "project_id": f"proj_{i}",
        "quantity": i,  # an integer JSON number in a double column
        "connection": "from the API",  # a field named like a constant: the constant wins
        "new_api_field": {"nested": i},
    }
    if i == 3:
        result["amount"] = None  # a null object: its columns are null
    if i == 4:
        del result["amount"]
    return result


def _old_row(result: dict) -> dict:
    """The row the costs source built before Arrow read the dicts: the result with the bucket's
    constants over it, its amount flattened (a number, whatever the API sent)."""
    row = {**result, **_CONSTANTS}
    amount = row.pop("amount", None) or {}
    row["amount__value"] = float(amount["value"]) if amount.get("value") is not None else None
    row["amount__currency"] = amount.get("currency")
    return row


@pytest.mark.parametrize("text_amount", [False, True], ids=["numbers", "an amount sent as text"])
def test_a_bucket_read_by_arrow_equals_the_row_by_row_table(text_amount):
    """The costs page's fast path (Arrow reads the API's dicts; the bucket's constants are
    repeated) makes exactly the table the row-by-row path makes, money bit for bit; a value
    Arrow will not take as hinted falls back to the row-by-row path, which converts it."""
    results = [_result(i) for i in range(12)]
    if text_amount:
        results[5]["amount"]["value"] = "1.6666666666666667"
    batches = list(batches_as_arrow(map(_old_row, results), COSTS_COLUMNS))
    expected = pa.concat_tables(batches).drop_columns([ROW_ID])  # the funnels add row ids, not the reader
    table = results_to_arrow(results, _CONSTANTS, COSTS_COLUMNS, _AMOUNT)
    assert table.schema == expected.schema
    assert table.to_pylist() == expected.to_pylist()
    values = table.column("amount__value").to_pylist()
    assert values[3] is None and values[4] is None
    assert values[5] == (1.6666666666666667 if text_amount else 5 / 3)
    assert values[6] == 6 / 3
    assert set(table.column("connection").to_pylist()) == {"acme"}
    assert table.column("new_api_field").to_pylist()[7] == '{"nested": 7}'
    assert "amount" not in table.column_names


def test_bucket_tables_reach_dlt_in_batches_and_keep_every_field():
    """dlt checks the schema once per item: buckets are concatenated up to the batch size, and a
    field only some buckets have is null in the others."""
    buckets = [
        results_to_arrow([_result(i) for i in range(n)], _CONSTANTS, COSTS_COLUMNS, _AMOUNT)
        for n in (4, 4, 4, 3)
    ]
    buckets[1] = buckets[1].drop_columns(["new_api_field"])
    batches = list(concat_batches(buckets, batch_rows=8))
    assert [b.num_rows for b in batches] == [8, 7]
    assert batches[0].column("new_api_field").to_pylist()[4:] == [None] * 4
    assert sum(pa.concat_tables(batches).column("amount__value").drop_null().to_pylist()) == sum(
        sum(t.column("amount__value").drop_null().to_pylist()) for t in buckets
    )


def test_every_table_leaves_with_a_row_id_no_other_row_has():
    """dlt's normalize no longer adds ``_dlt_id`` (it rewrote every file to do it): both funnels
    to dlt add it, never null, and no two rows get the same one, across tables and threads."""
    import threading

    tables = list(batches_as_arrow((_row(i) for i in range(25)), COSTS_COLUMNS, batch_rows=10))
    tables += list(
        concat_batches(
            [
                results_to_arrow([_result(i) for i in range(n)], _CONSTANTS, COSTS_COLUMNS, _AMOUNT)
                for n in (5, 6)
            ],
            batch_rows=8,
        )
    )
    found: list[pa.Table] = []
    workers = [
        threading.Thread(target=lambda n=n: found.extend(with_row_ids(_plain(n)) for _ in range(50)))
        for n in (1, 7, 300)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ids: list[str] = []
    for table in tables + found:
        field = table.schema.field(ROW_ID)
        assert field.type == pa.string() and not field.nullable
        assert table.column(ROW_ID).null_count == 0
        ids += table.column(ROW_ID).to_pylist()
    assert len(ids) == 25 + 11 + 50 * (1 + 7 + 300)
    assert len(set(ids)) == len(ids)
    # a table that has its own ids keeps them
    assert with_row_ids(tables[0]).column(ROW_ID).equals(tables[0].column(ROW_ID))


def test_a_forked_process_draws_its_own_row_ids():
    """A child forked from a process that already made ids (a forking executor) does not make
    the same ones: it draws its own prefix."""
    import os

    parent_ids = with_row_ids(_plain(3)).column(ROW_ID).to_pylist()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its ids to the pipe, then leave at once
        os.write(write, "\n".join(with_row_ids(_plain(3)).column(ROW_ID).to_pylist()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split("\n")
    os.waitpid(child, 0)
    assert len(child_ids) == 3
    assert {i.split(".")[0] for i in child_ids}.isdisjoint({i.split(".")[0] for i in parent_ids})


def test_dlt_never_adds_a_second_row_id_whatever_the_environment_says():
    """The sources bring ``_dlt_id``: dlt's own row-id step stays off even if the environment
    turns it on (it would append a second column and every load would fail)."""
    import os
    import subprocess
    import sys

    name = "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"
    shown = subprocess.run(
        [sys.executable, "-c", f"import os, stax_pipeline.lib.warehouse; print(os.environ[{name!r}])"],
        env={**os.environ, name: "true"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == "false"


def _plain(rows: int) -> pa.Table:
    return pa.table({"n": list(range(rows))})


def test_dbt_run_folders_live_under_stax_home_and_are_pruned(stax_home):
    settings = load_settings()
    for i in range(KEEP_DBT_RUNS + 3):
        with dbt_run_dir(settings, f"run{i:04d}abcdef") as target:
            assert target.is_relative_to(stax_home)
            (target / PARTIAL_PARSE_FILE).write_text(f"parse state {i}")
    runs = sorted((stax_home / "dbt" / "runs").iterdir())
    assert len(runs) == KEEP_DBT_RUNS
    assert runs[-1].name.endswith("run0007a")
    # The newest parse state is what the next run starts from.
    assert (stax_home / "dbt" / PARTIAL_PARSE_FILE).read_text() == f"parse state {KEEP_DBT_RUNS + 2}"
    with dbt_run_dir(settings, "next0000run") as target:
        assert (target / PARTIAL_PARSE_FILE).read_text() == f"parse state {KEEP_DBT_RUNS + 2}"
