"""Rows to Arrow tables, typed by a table's dlt column hints.

Sources yield Arrow tables instead of dicts: dlt then writes them straight to Parquet (no
row-by-row normalizer, no type inference per value), which is what keeps a large backfill fast
and its memory bounded by one batch rather than by the window.

Every table leaves here with its row id, dlt's ``_dlt_id`` (:func:`with_row_ids`). dlt would add
it in its normalize step, by reading every Parquet file of the load back, drawing a random id
per row in Python and writing the file again: 0.5-0.7 s of a large backfill. With the column
already there, normalize imports the files as they are (``NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID``
is off, ``lib/warehouse.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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


# dlt's row id column, and the Arrow field dlt's schema gives it (text, never null).
ROW_ID = "_dlt_id"
_ROW_ID_FIELD = pa.field(ROW_ID, pa.string(), nullable=False)


class _RowIds:
    """This process's row ids, ``<random prefix>.<n>``, handed out a table at a time (endpoints
    are extracted on dlt's thread pool). The prefix is 64 random bits drawn per process, so no
    two rows this process writes share an id, and rows of two processes collide only if their
    prefixes do (1 in 2^64); a forked child draws its own."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(8) + "."
        self._next = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> tuple[str, int]:
        """The prefix and the first of ``count`` numbers no other call gets."""
        with self._lock:
            first, self._next = self._next, self._next + count
        return self.prefix, first


_row_ids = _RowIds()


def _after_fork() -> None:
    global _row_ids
    _row_ids = _RowIds()


os.register_at_fork(after_in_child=_after_fork)


def with_row_ids(table: pa.Table) -> pa.Table:
    """``table`` with dlt's ``_dlt_id`` appended: a fresh id per row, made in Arrow (a table
    that already has the column, e.g. a source that set its own, is returned as it is)."""
    if ROW_ID in table.column_names:
        return table
    rows = table.num_rows
    prefix, first = _row_ids.take(rows)
    numbers = pc.cast(pa.array(range(first, first + rows), type=pa.int64()), pa.string())
    ids = pc.call_function("binary_join_element_wise", [pa.scalar(prefix), numbers, pa.scalar("")])
    return table.append_column(_ROW_ID_FIELD, ids)


def batches_as_arrow(
    rows: Iterable[dict[str, Any]],
    columns: Mapping[str, Mapping[str, Any]],
    batch_rows: int = ARROW_BATCH_ROWS,
) -> Iterator[pa.Table]:
    """``rows`` as Arrow tables of at most ``batch_rows`` rows each, as they arrive, with their
    row ids."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_rows:
            yield with_row_ids(rows_to_arrow(batch, columns))
            batch = []
    if batch:
        yield with_row_ids(rows_to_arrow(batch, columns))


def results_to_arrow(
    results: list[dict[str, Any]],
    constants: Mapping[str, Any],
    columns: Mapping[str, Mapping[str, Any]],
    nested: Mapping[str, tuple[str, str]] | None = None,
) -> pa.Table:
    """One bucket's ``results`` (the API's dicts) as one Arrow table typed by ``columns``: the
    same table as :func:`rows_to_arrow` of the rows ``{**result, **constants}`` with each column
    of ``nested`` (e.g. ``amount__value``) taken from inside a result's object
    (``("amount", "value")``).

    Arrow reads the dicts itself (``Table.from_pylist``) and the bucket's constants (connection,
    day, bounds, load time, sync id) are repeated, not copied into every row: half the cost of
    building a row dict per result and a list per column. A value Arrow will not take as
    hinted (an amount sent as a string) takes the row-by-row way, which converts what it can.
    """
    nested = nested or {}
    parents: dict[str, list[tuple[str, str]]] = {}
    for column, (parent, child) in nested.items():
        parents.setdefault(parent, []).append((child, column))
    plain = [name for name in columns if name not in constants and name not in nested]
    known = set(columns) | set(parents)
    extra = set().union(*map(dict.keys, results)) - known
    fields = [pa.field(name, arrow_type(str(columns[name]["data_type"]), columns[name])) for name in plain]
    fields += [
        pa.field(
            parent,
            pa.struct(
                [
                    (child, arrow_type(str(columns[column]["data_type"]), columns[column]))
                    for child, column in children
                ]
            ),
        )
        for parent, children in parents.items()
    ]
    try:
        read = pa.Table.from_pylist(results, schema=pa.schema(fields))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return rows_to_arrow([_as_row(result, constants, nested, columns) for result in results], columns)
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {name: read.column(name) for name in plain}
    for parent, children in parents.items():
        struct = read.column(parent).combine_chunks()
        for (_, column), values in zip(children, struct.flatten(), strict=True):  # null object: null fields
            arrays[column] = values
    size = len(results)
    for name, value in constants.items():
        if name in columns:
            kind = arrow_type(str(columns[name]["data_type"]), columns[name])
            arrays[name] = pa.repeat(pa.scalar(value, type=kind), size)
    names = [name for name in columns if name in arrays]
    table = pa.Table.from_arrays(
        [arrays[name] for name in names],
        schema=pa.schema(
            [
                pa.field(name, arrays[name].type, nullable=columns[name].get("nullable", True) is not False)
                for name in names
            ]
        ),
    )
    if extra:  # fields the hints do not know: kept as rows_to_arrow keeps them
        unknown = rows_to_arrow([{name: result.get(name) for name in extra} for result in results], {})
        for name in unknown.column_names:
            table = table.append_column(unknown.schema.field(name), unknown.column(name))
    return table


def _as_row(
    result: dict[str, Any],
    constants: Mapping[str, Any],
    nested: Mapping[str, tuple[str, str]],
    columns: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """A result as the row of :func:`rows_to_arrow`: with the constants, the nested columns
    lifted out (a number sent as text, e.g. ``"0.12"``, made a number) and their objects dropped."""
    row = {**result, **constants}
    for column, (parent, child) in nested.items():
        value = (result.get(parent) or {}).get(child)
        if isinstance(value, str) and columns[column]["data_type"] == "double":
            value = float(value)
        row[column] = value
    for parent in {parent for parent, _ in nested.values()}:
        row.pop(parent, None)
    return row


def concat_batches(tables: Iterable[pa.Table], batch_rows: int = ARROW_BATCH_ROWS) -> Iterator[pa.Table]:
    """``tables`` (e.g. one per bucket) as tables of at least ``batch_rows`` rows, but the last,
    with their row ids: dlt computes and checks the table schema once per item it is given,
    which costs more than a small bucket's rows."""
    pending: list[pa.Table] = []
    rows = 0
    for table in tables:
        pending.append(table)
        rows += table.num_rows
        if rows >= batch_rows:
            yield with_row_ids(_concat(pending))
            pending, rows = [], 0
    if pending:
        yield with_row_ids(_concat(pending))


def _concat(tables: list[pa.Table]) -> pa.Table:
    # buckets may differ in the fields the hints do not know: missing ones are null
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
