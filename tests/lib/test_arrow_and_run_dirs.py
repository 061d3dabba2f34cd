"""Rows to Arrow batches (the ingest's streaming unit) and the pruning of dbt run folders."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa

from stax_pipeline.lib.arrow import batches_as_arrow
from stax_pipeline.lib.dbt import KEEP_DBT_RUNS, PARTIAL_PARSE_FILE, dbt_run_dir
from stax_pipeline.settings import load_settings
from stax_pipeline.sources.openai_admin.settings import COSTS_COLUMNS


def _row(i: int) -> dict:
    return {
        "connection": "acme",
        "date": date(2026, 11, 1),
        "bucket_start_time": 1,
        "bucket_end_time": 2,
        "loaded_at": datetime(2026, 11, 2, tzinfo=UTC),
        "sync_id": "s",
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
