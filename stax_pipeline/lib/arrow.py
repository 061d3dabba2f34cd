"""Rows to Arrow tables, typed by a table's dlt column hints.

Sources yield Arrow tables instead of dicts: dlt then writes them straight to Parquet (no
row-by-row normalizer, no type inference per value), which is what keeps a large backfill fast
and its memory bounded by one batch rather than by the window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

# Rows per Arrow table: big enough that per-table overhead in dlt is negligible, small enough
# that a batch's Python dicts stay a few tens of MB.
ARROW_BATCH_ROWS = 20_000

_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_type(data_type: str, hint: Mapping[str, Any] | None = None) -> pa.DataType:
    """The Arrow type of a dlt ``data_type`` hint (``decimal`` with the hint's precision and scale,
    so exact amounts — Python ``Decimal`` values — never pass through a float)."""
    if data_type == "decimal":
        hint = hint or {}
        return pa.decimal128(int(hint.get("precision", 38)), int(hint.get("scale", 9)))
    return _ARROW_TYPES[data_type]


def rows_to_arrow(rows: list[dict[str, Any]], columns: Mapping[str, Mapping[str, Any]]) -> pa.Table:
    """One Arrow table of ``rows``, with every hinted column typed as hinted (nulls included).

    A field the hints do not know (the API added one) is kept too, typed by Arrow's inference,
    nested objects as JSON text — as dlt's normalizer would have kept it — so nothing the API
    returns is silently dropped.
    """
    fields, arrays = [], []
    for name, hint in columns.items():
        kind = arrow_type(str(hint["data_type"]), hint)
        # nullability as hinted, so dlt finds the Arrow schema equal to its own
        fields.append(pa.field(name, kind, nullable=hint.get("nullable", True) is not False))
        arrays.append(pa.array([row.get(name) for row in rows], type=kind))
    extra = sorted({key for row in rows for key in row} - columns.keys())
    for name in extra:
        values = [row.get(name) for row in rows]
        if any(isinstance(v, dict | list) for v in values):
            values = [json.dumps(v) if v is not None else None for v in values]
        array = pa.array(values)
        fields.append(pa.field(name, array.type))
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def batches_as_arrow(
    rows: Iterable[dict[str, Any]],
    columns: Mapping[str, Mapping[str, Any]],
    batch_rows: int = ARROW_BATCH_ROWS,
) -> Iterator[pa.Table]:
    """``rows`` as Arrow tables of at most ``batch_rows`` rows each, as they arrive."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_rows:
            yield rows_to_arrow(batch, columns)
            batch = []
    if batch:
        yield rows_to_arrow(batch, columns)
