"""`stax report`: per-model spend for the last N closed days, read from the published marts
(so it never waits for, or blocks, a sync)."""

from __future__ import annotations

from datetime import date, timedelta

from stax_pipeline.cli.table import format_table
from stax_pipeline.lib.serving import read_marts
from stax_pipeline.restatements import report_note
from stax_pipeline.settings import Settings

NON_MODEL = "(not a model: tools, storage, …)"


def spend_report(settings: Settings, connection: str | None, days: int, today: date) -> str:
    """A readable table: model, cost, share, tokens, requests, cost per 1M tokens."""
    start, end = today - timedelta(days=days), today
    with read_marts(settings) as con:
        rows = con.execute(
            """
            select model,
                   sum(coalesce(cost_usd, 0)) as cost,
                   sum(coalesce(input_tokens, 0)) as input_tokens,
                   sum(coalesce(output_tokens, 0)) as output_tokens,
                   sum(coalesce(num_model_requests, 0)) as requests
            from marts.fct_model_spend_daily
            where date >= ? and date < ? and (? is null or connection = ?)
            group by model
            order by cost desc, model nulls last
            """,
            [start, end, connection, connection],
        ).fetchall()
    scope = f"connection {connection}" if connection else "all connections"
    title = f"Spend by model, {start} .. {end - timedelta(days=1)} ({days} days, {scope})"
    if not rows:
        return f"{title}\n\nNo spend in the warehouse for these days: run `stax sync` first."
    total = sum(r[1] for r in rows)
    table = [("MODEL", "COST (USD)", "SHARE", "INPUT TOK", "OUTPUT TOK", "REQUESTS", "$/1M TOK")]
    for model, cost, tin, tout, requests in rows:
        tokens = tin + tout
        table.append((
            model or NON_MODEL,
            f"{cost:,.2f}",
            f"{(cost / total * 100) if total else 0:.1f}%",
            f"{tin:,}",
            f"{tout:,}",
            f"{requests:,}",
            f"{cost / tokens * 1e6:,.2f}" if tokens and model else "",
        ))  # fmt: skip
    table.append(("TOTAL", f"{total:,.2f}", "100.0%", "", "", "", ""))
    numbers = range(1, len(table[0]))
    lines = [title, "", *format_table(table, right=numbers)]
    return "\n".join(lines + report_note(settings, connection, start, end))
