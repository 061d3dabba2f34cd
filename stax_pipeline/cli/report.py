"""`stax report`: spend for the last N closed days by model, project, API key or line item, read
from the published marts (so it never waits for, or blocks, a sync), as a table for people or
CSV/JSON for scripts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from stax_pipeline.cli.table import format_table
from stax_pipeline.lib.serving import read_marts
from stax_pipeline.restatements import report_note
from stax_pipeline.settings import Settings

UNPARSED = "(unparsed line items)"
NO_PROJECT = "(no project)"
NO_API_KEY = "(no API key: project-level charges)"

# Usage units of fct_model_spend_daily, and how the table names them.
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


@dataclass(frozen=True)
class _Dimension:
    """One ``--by``: its query (spend in the window, one row per item) and its table."""

    title: str
    sql: str
    columns: tuple[str, ...]  # the query's columns, as CSV and JSON name them
    headers: tuple[str, ...]  # the table's columns, from the left; COST and SHARE follow
    cells: Callable[[dict[str, Any]], tuple[str, ...]]  # a row's cells under ``headers``
    tail_headers: tuple[str, ...] = ()  # columns after SHARE
    tail_cells: Callable[[dict[str, Any]], tuple[str, ...]] = lambda row: ()


_WINDOW = "date >= ? and date < ? and (? is null or connection = ?)"

_BY_MODEL = _Dimension(
    title="Spend by model",
    sql=f"""
        select provider, spend_category, model,
               case when spend_category = 'sku' then concat_ws(' | ', product, sku) end as sku,
               sum(cost_usd) as cost_usd,
               {", ".join(f"sum({u}) as {u}" for u in _UNITS)},
               bool_or(has_cost_data) as has_cost_data
        from marts.fct_model_spend_daily
        where {_WINDOW}
        group by provider, spend_category, model, product, sku
        order by cost_usd desc, provider, spend_category, model nulls last, sku nulls last
    """,
    columns=("provider", "spend_category", "model", "sku", "cost_usd", *_UNITS, "has_cost_data"),
    headers=("PROVIDER", "MODEL / SKU"),
    cells=lambda r: (r["provider"], r["model"] or r["sku"] or UNPARSED),
    tail_headers=("USAGE", "REQUESTS", "$/1M TOK"),
    tail_cells=lambda r: (
        _usage_in_own_units(r),
        f"{r['num_model_requests']:,}" if r["num_model_requests"] else "",
        _per_million_tokens(r),
    ),
)

_BY_PROJECT = _Dimension(
    title="Spend by project",
    sql=f"""
        select spend.provider, spend.project_id, projects.name as project_name,
               projects.status as project_status, spend.cost_usd
        from (
            select provider, connection, project_id, sum(cost_usd) as cost_usd
            from marts.fct_spend_daily where {_WINDOW}
            group by provider, connection, project_id
        ) as spend
        left join marts.dim_projects as projects
            on spend.provider = projects.provider and spend.connection = projects.connection
            and spend.project_id = projects.project_id
        order by spend.cost_usd desc, projects.name nulls last, spend.project_id nulls last
    """,
    columns=("provider", "project_id", "project_name", "project_status", "cost_usd"),
    headers=("PROVIDER", "PROJECT", "PROJECT ID", "STATUS"),
    cells=lambda r: (
        r["provider"],
        r["project_name"] or ("" if r["project_id"] else NO_PROJECT),
        r["project_id"] or "",
        r["project_status"] or "",
    ),
)

_BY_API_KEY = _Dimension(
    title="Spend by API key",
    sql=f"""
        select spend.provider, spend.api_key_id, api_keys.name as api_key_name, api_keys.owner_type,
               api_keys.owner_name, coalesce(api_keys.project_id, spend.project_id) as project_id,
               projects.name as project_name, spend.cost_usd, spend.num_model_requests
        from (
            select provider, connection, api_key_id, min(project_id) as project_id,
                   sum(cost_usd) as cost_usd, sum(num_model_requests) as num_model_requests
            from marts.fct_model_spend_by_api_key_daily where {_WINDOW}
            group by provider, connection, api_key_id
        ) as spend
        left join marts.dim_api_keys as api_keys
            on spend.provider = api_keys.provider and spend.connection = api_keys.connection
            and spend.api_key_id = api_keys.api_key_id
        left join marts.dim_projects as projects
            on spend.provider = projects.provider and spend.connection = projects.connection
            and coalesce(api_keys.project_id, spend.project_id) = projects.project_id
        order by spend.cost_usd desc, api_keys.name nulls last, spend.api_key_id nulls last
    """,
    columns=(
        "provider",
        "api_key_id",
        "api_key_name",
        "owner_type",
        "owner_name",
        "project_id",
        "project_name",
        "cost_usd",
        "num_model_requests",
    ),
    headers=("PROVIDER", "API KEY", "OWNER", "PROJECT", "KEY ID"),
    cells=lambda r: (
        r["provider"],
        r["api_key_name"] or ("" if r["api_key_id"] else NO_API_KEY),
        f"{r['owner_name']} ({r['owner_type'].replace('_', ' ')})" if r["owner_name"] else "",
        (r["project_name"] or r["project_id"] or "") if r["api_key_id"] else "",
        r["api_key_id"] or "",
    ),
    tail_headers=("REQUESTS",),
    tail_cells=lambda r: (f"{r['num_model_requests']:,}" if r["num_model_requests"] else "",),
)

_BY_LINE_ITEM = _Dimension(
    title="Spend by line item",
    sql=f"""
        select provider, line_item, sum(cost_usd) as cost_usd, sum(quantity) as quantity,
               min(quantity_unit) as quantity_unit
        from marts.fct_spend_daily where {_WINDOW}
        group by provider, line_item
        order by cost_usd desc, provider, line_item nulls last
    """,
    columns=("provider", "line_item", "cost_usd", "quantity", "quantity_unit"),
    headers=("PROVIDER", "LINE ITEM"),
    cells=lambda r: (r["provider"], r["line_item"] if r["line_item"] is not None else "(none)"),
    tail_headers=("QUANTITY", "UNIT"),
    tail_cells=lambda r: (
        f"{r['quantity']:,.0f}" if r["quantity"] is not None else "",
        (r["quantity_unit"] or "").replace("_", " "),
    ),
)

# the keys are `--by`'s choices (stax_pipeline.cli.REPORT_DIMENSIONS)
_DIMENSIONS = {"model": _BY_MODEL, "project": _BY_PROJECT, "api-key": _BY_API_KEY, "line-item": _BY_LINE_ITEM}


def spend_report(
    settings: Settings,
    connection: str | None,
    days: int,
    today: date,
    *,
    by: str = "model",
    output_format: str = "table",
) -> str:
    """Spend over the ``days`` closed UTC days before ``today``, one row per ``by`` item, as a
    readable table (with share and total), CSV or JSON (every figure at full precision)."""
    dimension = _DIMENSIONS[by]
    start, end = today - timedelta(days=days), today
    with read_marts(settings) as con:
        result = con.execute(dimension.sql, [start, end, connection, connection]).fetchall()
    rows = [dict(zip(dimension.columns, values, strict=True)) for values in result]
    total = sum(r["cost_usd"] or 0.0 for r in rows)
    for row in rows:
        row["share"] = (row["cost_usd"] / total) if total else None
    if by == "model":
        for row in rows:
            row["cost_per_1m_tokens"] = _cost_per_million_tokens(row)
    if output_format == "csv":
        return _csv(rows, [*dimension.columns, "share", *(["cost_per_1m_tokens"] if by == "model" else [])])
    if output_format == "json":
        return _json(rows, by=by, connection=connection, start=start, end=end, days=days, total=total)
    scope = f"connection {connection}" if connection else "all connections"
    title = (
        f"{dimension.title}, {start} .. {end - timedelta(days=1)} "
        f"({days} day{'' if days == 1 else 's'}, {scope})"
    )
    if not rows:
        return f"{title}\n\nNo spend in the warehouse for these days: run `stax sync` first."
    table = [(*dimension.headers, "COST (USD)", "SHARE", *dimension.tail_headers)]
    for row in rows:
        share = f"{row['share'] * 100:.1f}%" if row["share"] is not None else ""
        table.append((*dimension.cells(row), f"{row['cost_usd']:,.2f}", share, *dimension.tail_cells(row)))
    blanks = ("",) * (len(dimension.headers) - 1)
    table.append(
        ("TOTAL", *blanks, f"{total:,.2f}", "100.0%" if total else "", *("",) * len(dimension.tail_headers))
    )
    first_number = len(dimension.headers)
    right = [i for i in range(first_number, len(table[0])) if table[0][i] not in ("USAGE", "UNIT")]
    return "\n".join(
        [title, "", *format_table(table, right=right), *report_note(settings, connection, start, end)]
    )


def _usage_in_own_units(row: dict[str, Any]) -> str:
    """A model's usage in the units it is billed in: tokens, images, characters, audio seconds,
    web search calls."""
    parts = []
    tokens_in, tokens_out = row["input_tokens"] or 0, row["output_tokens"] or 0
    if tokens_out:
        parts.append(f"{tokens_in:,} in + {tokens_out:,} out tokens")
    elif tokens_in:
        parts.append(f"{tokens_in:,} input tokens")
    for unit, singular, plural in (
        ("images", "image", "images"),
        ("characters", "character", "characters"),
        ("web_search_calls", "web search", "web searches"),
    ):
        count = row[unit] or 0
        if count:
            parts.append(f"{count:,} {singular if count == 1 else plural}")
    if row["seconds"]:
        parts.append(f"{row['seconds']:,.0f} audio seconds")
    return ", ".join(parts)


def _cost_per_million_tokens(row: dict[str, Any]) -> float | None:
    """USD per 1M input+output tokens; None where the model has no tokens or no cost rows (a
    missing figure, not a free model)."""
    tokens = (row["input_tokens"] or 0) + (row["output_tokens"] or 0)
    if not tokens or not row["has_cost_data"] or row["model"] is None:
        return None
    return row["cost_usd"] / tokens * 1e6


def _per_million_tokens(row: dict[str, Any]) -> str:
    value = _cost_per_million_tokens(row)
    return "" if value is None else f"{value:,.2f}"


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """One header line, then one line per row, numbers at full precision, empty for null."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def _json(
    rows: Sequence[dict[str, Any]],
    *,
    by: str,
    connection: str | None,
    start: date,
    end: date,
    days: int,
    total: float,
) -> str:
    return json.dumps(
        {
            "by": by,
            "connection": connection,
            "start": start.isoformat(),
            "end": (end - timedelta(days=1)).isoformat(),  # inclusive, like `stax sync --end`
            "days": days,
            "total_cost_usd": total,
            "rows": list(rows),
        },
        indent=2,
        default=str,
    )
