"""`stax doctor`: what to look at when a sync "looks low"."""

from __future__ import annotations

from datetime import date

import duckdb

from stax_pipeline.cli.commands import check_openai_admin_key
from stax_pipeline.credentials import Connection, ConnectionStore
from stax_pipeline.errors import StaxError
from stax_pipeline.lib.endpoints import sync_endpoint
from stax_pipeline.lib.warehouse import read_warehouse
from stax_pipeline.settings import Settings


def diagnose(
    settings: Settings, store: ConnectionStore, connections: list[Connection], today: date
) -> bool:
    """Print diagnostics for each connection; True when nothing needs attention."""
    healthy = True
    for connection in connections:
        print(f"{connection.name} ({connection.provider})")
        print(f"  key            {connection.key_hint} (stored {connection.created_at:%Y-%m-%d})")
        try:  # against the connection's own API (lib/endpoints.py), never another
            endpoint = sync_endpoint(connection, settings.configured_openai_base_url)
            check_openai_admin_key(endpoint.base_url, store.api_key(connection.name),
                                   expect_simulator=endpoint.simulator)  # fmt: skip
            print(f"  key check      ok against {endpoint.base_url}")
        except StaxError as exc:
            healthy = False
            print(f"  key check      FAILED: {str(exc).replace(' Nothing was stored.', '')}")
        last = connection.last_synced_at
        print(f"  last sync      {last:%Y-%m-%d %H:%M UTC}" if last else "  last sync      never")
        try:
            facts = _warehouse_facts(settings, connection.name)
        except (StaxError, duckdb.Error) as exc:
            healthy = False
            print(f"  warehouse      unreadable: {exc}")
            continue
        if facts["latest_day"] is None:
            healthy = False
            print("  freshness      no days synced yet: run `stax sync`")
            continue
        behind = (today - facts["latest_day"]).days - 1
        print(f"  organization   {', '.join(facts['orgs']) or 'not reported by the API'}")
        print(f"  projects       {facts['active']} active, {facts['archived']} archived, "
              f"{facts['unknown']} seen in spend but not listed")  # fmt: skip
        print(f"  days synced    {facts['days']} ({facts['first_day']} .. {facts['latest_day']})")
        fresh = "up to date" if behind <= 0 else f"{behind} closed day(s) behind"
        print(f"  freshness      {fresh}")
        if facts["usage_no_cost"]:
            healthy = False
            days = ", ".join(str(d) for d in facts["usage_no_cost"][:10])
            print(f"  usage, no cost {len(facts['usage_no_cost'])} day(s): {days} — costs may "
                  "lag usage by a day, or the key cannot see every project")  # fmt: skip
        if facts["unknown_line_items"]:
            print(f"  line items     {facts['unknown_line_items']} of unknown shape (kept, model null)")
    return healthy


def _warehouse_facts(settings: Settings, name: str) -> dict:
    with read_warehouse(settings) as con:
        def one(sql: str):
            return con.execute(sql, [name]).fetchall()[0]

        first_day, latest_day, days = one(
            "select min(date), max(date), count(distinct date) from marts.fct_spend_daily "
            "where connection = ?"
        )
        active, archived, unknown = one(
            "select count(*) filter (status = 'active'), count(*) filter (status = 'archived'), "
            "count(*) filter (status = 'unknown') from marts.dim_projects where connection = ?"
        )
        orgs = [r[0] for r in con.execute(
            "select distinct organization_id from raw_openai.costs "
            "where connection = ? and organization_id is not null", [name]).fetchall()]  # fmt: skip
        usage_no_cost = [r[0] for r in con.execute(
            """
            select date from marts.fct_model_spend_daily where connection = ?
            group by date having sum(coalesce(num_model_requests, 0)) > 0
               and coalesce(sum(cost_usd), 0) = 0
            order by date
            """, [name]).fetchall()]  # fmt: skip
        unknown_items = one(
            "select count(distinct line_item) from intermediate.int_openai__cost_line_items "
            "where connection = ? and line_item_shape = 'unknown'"
        )[0]
    return {
        "first_day": first_day, "latest_day": latest_day, "days": days,
        "active": active, "archived": archived, "unknown": unknown, "orgs": orgs,
        "usage_no_cost": usage_no_cost, "unknown_line_items": unknown_items,
    }  # fmt: skip
