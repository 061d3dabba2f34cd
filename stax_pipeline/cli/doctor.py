"""`stax doctor`: what to look at when a sync "looks low", and whether anything is wrong.

For each live connection: the key and whether the API still accepts it, the organization behind
it, its projects by name, every day in its synced range without a commit marker (a gap), days
and models with usage but no cost, the last restated days, freshness, the last run's status and
error, and the period's total beside the advice for a total that looks low. Across connections:
two connections to one organization (every total counted twice) and disconnected connections
whose rows are kept. A problem makes the exit status 1; ``--json`` prints one object with the
same facts under stable keys.

The warehouse is opened read-only; while a sync writes it, the facts that need it are reported
as unavailable (one line, a problem) and the rest is still checked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from stax_pipeline.credentials import Connection, ConnectionStore
from stax_pipeline.errors import StaxError
from stax_pipeline.lib.endpoints import connection_endpoint
from stax_pipeline.lib.warehouse import read_warehouse
from stax_pipeline.lib.window import contiguous_windows
from stax_pipeline.providers import Provider, get_provider
from stax_pipeline.restatements import restated_days, restatement_summary, signed_usd
from stax_pipeline.settings import Settings

PERIOD_DAYS = 30
RESTATED_DAYS_SHOWN = 5
# The nightly sync runs at 02:00 UTC: until then yesterday is missing for good reason.
STALE_AFTER_CLOSED_DAYS = 2
LOW_TOTAL_ADVICE = (
    "if this looks low you may be on the wrong organization: compare with the organization "
    "selector on the {title} dashboard"
)
ORGANIZATION_NAME_UNKNOWN = "not reported by the {title} Admin API"


@dataclass
class Diagnosis:
    """Everything the doctor found about one connection; ``problems`` say what needs doing."""

    connection: Connection
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def diagnose(
    settings: Settings,
    store: ConnectionStore,
    connections: list[Connection],
    today: date,
    *,
    as_json: bool = False,
) -> bool:
    """Check ``connections`` and print the findings (text, or one JSON object); True when
    nothing needs attention."""
    period = (today - timedelta(days=PERIOD_DAYS), today)
    warehouse, warehouse_error = _read_warehouse_facts(settings, connections, period)
    runs = _last_runs(settings, [c.name for c in connections])
    diagnoses = [
        _diagnose_one(
            settings,
            store,
            connection,
            today,
            period,
            warehouse.get(connection.name),
            warehouse_error,
            runs.get(connection.name),
        )
        for connection in connections
    ]
    diagnosed = {c.name for c in connections}
    duplicates = {
        org: names
        for org, names in _duplicate_organizations(store.list(), diagnoses).items()
        if diagnosed & set(names)
    }
    for organization, names in duplicates.items():
        for diagnosis in diagnoses:
            if diagnosis.connection.name in names:
                others = ", ".join(n for n in names if n != diagnosis.connection.name)
                diagnosis.problems.append(
                    f"organization {organization} is also connected as {others}: every total "
                    f"counts it twice; `stax disconnect` one of them"
                )
    disconnected = store.list_disconnected()
    problems = [f"{d.connection.name}: {p}" for d in diagnoses for p in d.problems]
    if warehouse_error:
        problems.append(warehouse_error)
    if as_json:
        print(
            json.dumps(
                _as_json(diagnoses, duplicates, disconnected, warehouse_error, problems),
                indent=2,
                ensure_ascii=False,
                default=_json_value,
            )
        )
    else:
        _print_text(diagnoses, disconnected, warehouse_error, problems)
    return not problems


# --- one connection -----------------------------------------------------------------------------


def _diagnose_one(
    settings: Settings,
    store: ConnectionStore,
    connection: Connection,
    today: date,
    period: tuple[date, date],
    warehouse: dict[str, Any] | None,
    warehouse_error: str | None,
    run: dict[str, Any] | None,
) -> Diagnosis:
    diagnosis = Diagnosis(connection)
    facts, problems = diagnosis.facts, diagnosis.problems
    provider = get_provider(connection.provider)
    facts["key"] = {"hint": connection.key_hint, "stored_at": connection.created_at}
    facts["key_check"] = _check_key(settings, store, connection, problems)
    warehouse = warehouse or {}
    seen_organizations = warehouse.get("organizations", [])
    organization = connection.organization_id or (seen_organizations[0] if seen_organizations else None)
    facts["organization"] = {
        "id": organization,
        "name": connection.organization_name,
        "name_note": (
            None if connection.organization_name else ORGANIZATION_NAME_UNKNOWN.format(title=provider.title)
        ),
    }
    facts["known_gaps"] = list(provider.known_gaps)  # what its API cannot tell, whatever Stax does
    facts["projects"] = warehouse.get("projects", [])

    markers = warehouse.get("committed_days", set()) if not warehouse_error else set()
    synced = set(store.synced_days(connection.name)) | markers
    first, last = (min(synced), max(synced)) if synced else (None, None)
    gaps = (
        []
        if first is None or last is None or warehouse_error
        else [
            first + timedelta(days=i)
            for i in range((last - first).days + 1)
            if first + timedelta(days=i) not in markers
        ]
    )
    facts["synced_range"] = {"first_day": first, "last_day": last, "days_committed": len(markers)}
    facts["gaps"] = gaps
    if gaps:
        problems.append(
            f"{len(gaps)} day(s) in {first}..{last} were never synced (no commit "
            f"marker): {_day_ranges(gaps)}; run `stax sync --connection "
            f"{connection.name} --start {gaps[0]} --end {gaps[-1]}`"
        )

    usage_days = warehouse.get("usage_without_cost_days", [])
    usage_models = warehouse.get("usage_without_cost_models", [])
    facts["usage_without_cost"] = {"days": usage_days, "models": usage_models}
    if usage_days:
        problems.append(
            f"usage but no cost on {len(usage_days)} day(s): {_day_ranges(usage_days)} "
            "(costs can lag usage by a day; re-sync those days later)"
        )
    if usage_models:
        problems.append(
            f"usage but no cost in the last {PERIOD_DAYS} days for model(s): {', '.join(usage_models)}"
        )

    facts["restatements"] = warehouse.get(
        "restatements", {"days_in_period": 0, "net_change_usd": 0.0, "last": []}
    )

    yesterday = today - timedelta(days=1)
    behind = (yesterday - last).days if last else None
    facts["freshness"] = {
        "last_sync_at": connection.last_synced_at,
        "last_synced_day": last,
        "yesterday": yesterday,
        "closed_days_behind": behind,
    }
    if last is None:
        problems.append(f"never synced: run `stax sync --connection {connection.name}`")
    elif behind is not None and behind >= STALE_AFTER_CLOSED_DAYS:
        problems.append(
            f"{behind} closed day(s) behind (last synced day {last}): run `stax sync` "
            "or start the Dagster daemon (`make ui`) for the nightly sync"
        )

    facts["last_run"] = run
    if run is not None and run["status"] in ("FAILURE", "CANCELED"):
        problems.append(f"the last run ({run['run_id'][:8]}) ended {run['status']}: {run['error']}")
    if connection.backfill_state == "failed":
        problems.append(f"its backfill failed: {connection.backfill_error}")

    start, end = period
    facts["period"] = {
        "first_day": start,
        "last_day": end - timedelta(days=1),
        "cost_usd": warehouse.get("period_cost_usd"),
        "days_with_spend": warehouse.get("period_days_with_spend"),
        "advice": LOW_TOTAL_ADVICE.format(title=provider.title),
    }
    return diagnosis


def _check_key(
    settings: Settings, store: ConnectionStore, connection: Connection, problems: list[str]
) -> dict:
    """One read-only request with the stored key, against the connection's own API
    (lib/endpoints.py), never another; it also tells the organization behind the key."""
    base_url = connection.api_base_url
    try:
        endpoint = connection_endpoint(connection)
        base_url = endpoint.base_url
        organization = (
            get_provider(connection.provider)
            .validate_key(base_url, store.api_key(connection.name), expect_simulator=endpoint.simulator)
            .organization_id
        )
    except StaxError as exc:
        error = str(exc).replace(" Nothing was stored.", "")
        problems.append(f"the key check failed: {error}")
        return {"ok": False, "base_url": base_url, "error": error}
    if organization and connection.organization_id and organization != connection.organization_id:
        problems.append(
            f"the key now reports organization {organization}, but it was connected "
            f"to {connection.organization_id}"
        )
    return {"ok": True, "base_url": base_url, "error": None}


def _duplicate_organizations(live: list[Connection], diagnoses: list[Diagnosis]) -> dict[str, list[str]]:
    """Organizations with more than one live connection (by stored id, or by the id their
    synced costs carry for connections made before Stax stored it)."""
    by_organization: dict[str, set[str]] = defaultdict(set)
    for connection in live:
        if connection.organization_id:
            by_organization[connection.organization_id].add(connection.name)
    for diagnosis in diagnoses:
        if organization := diagnosis.facts["organization"]["id"]:
            by_organization[organization].add(diagnosis.connection.name)
    return {org: sorted(names) for org, names in sorted(by_organization.items()) if len(names) > 1}


# --- reading the warehouse and the Dagster instance ---------------------------------------------


def _read_warehouse_facts(
    settings: Settings, connections: list[Connection], period: tuple[date, date]
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Per connection: commit markers, organizations seen, projects, usage without cost,
    restatements and the period's total. The error line instead when the warehouse is busy."""
    if not settings.warehouse_path.exists():
        return {}, None
    facts: dict[str, dict[str, Any]] = {c.name: {} for c in connections}
    try:
        with read_warehouse(settings) as con:
            for connection in connections:
                facts[connection.name] = _connection_facts(
                    con, connection.name, get_provider(connection.provider), period
                )
    except (StaxError, duckdb.Error) as exc:
        return {}, f"the warehouse could not be read: {str(exc).splitlines()[0]}"
    return facts, None


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[tuple]:
    """The rows of ``sql``; none when a relation does not exist yet (nothing synced)."""
    try:
        return con.execute(sql, params).fetchall()
    except duckdb.CatalogException:
        return []


_BILLABLE_USAGE = "select * from marts.fct_usage_daily where connection = ? and endpoint != 'moderations'"


def _connection_facts(
    con: duckdb.DuckDBPyConnection, name: str, provider: Provider, period: tuple[date, date]
) -> dict[str, Any]:
    start, end = period
    committed = {
        day
        for (day,) in _rows(
            con,
            f"""
        select distinct date from {provider.dataset_name}.sync_windows where resource = ? and connection = ?
        """,
            [provider.cost_resource, name],
        )
    }
    organizations = [
        org
        for (org,) in _rows(
            con,
            """
        select distinct organization_id from staging.stg_openai__costs
        where connection = ? and organization_id is not null order by 1
        """,
            [name],
        )
    ]
    projects = [
        {"id": pid, "name": project_name, "status": status}
        for pid, project_name, status in _rows(
            con,
            """
            select project_id, name, status from marts.dim_projects where connection = ?
            order by status = 'active' desc, name nulls last, project_id
            """,
            [name],
        )
    ]
    # Usage of every endpoint but moderations (free, on the real API too) that no cost meets:
    # by day, and by model as costs bill it (a fine-tune's usage under its ft-<base> name).
    usage_days = [
        day
        for (day,) in _rows(
            con,
            f"""
        select date from ({_BILLABLE_USAGE}) group by date having sum(num_model_requests) > 0
        except
        select date from marts.fct_spend_daily where connection = ? group by date having sum(cost_usd) > 0
        order by date
        """,
            [name, name],
        )
    ]
    usage_models = [
        model
        for (model,) in _rows(
            con,
            f"""
        select billed_model from ({_BILLABLE_USAGE})
        where date >= ? and date < ? and billed_model is not null
        group by billed_model having sum(num_model_requests) > 0
        except
        select model from marts.fct_spend_daily
        where connection = ? and date >= ? and date < ? and model is not null
        group by model having sum(cost_usd) > 0
        order by 1
        """,
            [name, start, end, name, start, end],
        )
    ]
    spend = _rows(
        con,
        """
        select sum(cost_usd), count(distinct date) from marts.fct_spend_daily
        where connection = ? and date >= ? and date < ?
        """,
        [name, start, end],
    )
    days_restated, net = restatement_summary(con, name, start, end)
    return {
        "committed_days": committed,
        "organizations": organizations,
        "projects": projects,
        "usage_without_cost_days": usage_days,
        "usage_without_cost_models": usage_models,
        "restatements": {
            "days_in_period": days_restated,
            "net_change_usd": net,
            "last": [day.as_dict() for day in restated_days(con, name, RESTATED_DAYS_SHOWN)],
        },
        "period_cost_usd": (spend[0][0] or 0.0) if spend else None,
        "period_days_with_spend": spend[0][1] if spend else None,
    }


def _last_runs(settings: Settings, names: list[str]) -> dict[str, dict[str, Any]]:
    """The last run of each connection: status, times, and why it failed."""
    if not settings.dagster_home.exists():
        return {}
    from stax_pipeline.orchestration import dagster_instance, finished_run_failure, last_run

    instance = dagster_instance(settings)
    runs = {}
    for name in names:
        record = last_run(instance, name)
        if record is None:
            continue
        run = record.dagster_run
        failed = run.is_finished and not run.is_success
        runs[name] = {
            "run_id": run.run_id,
            "status": run.status.value,
            "window": run.tags.get("stax/window"),
            "started_at": _timestamp(record.start_time),
            "ended_at": _timestamp(record.end_time),
            "error": finished_run_failure(instance, run) if failed else None,
        }
    return runs


def _timestamp(unix: float | None) -> datetime | None:
    return datetime.fromtimestamp(unix, tz=UTC) if unix else None


# --- output -------------------------------------------------------------------------------------


def _day_ranges(days: list[date]) -> str:
    """``2026-11-04..2026-11-21, 2026-11-25``: consecutive days as one range."""
    return ", ".join(str(w.start) if w.num_days == 1 else str(w) for w in contiguous_windows(days))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _print_text(
    diagnoses: list[Diagnosis],
    disconnected: list[Connection],
    warehouse_error: str | None,
    problems: list[str],
) -> None:
    for diagnosis in diagnoses:
        connection, facts = diagnosis.connection, diagnosis.facts
        line = _line
        print(f"{connection.name} ({connection.provider})")
        check = facts["key_check"]
        line(
            "key",
            f"{connection.key_hint} (stored {connection.created_at:%Y-%m-%d}); check "
            + (f"ok against {check['base_url']}" if check["ok"] else f"FAILED: {check['error']}"),
        )
        organization = facts["organization"]
        line(
            "organization",
            f"{organization['id'] or 'not reported by the API yet'} (name: "
            f"{organization['name'] or organization['name_note']})",
        )
        if facts["known_gaps"]:
            line("known gaps", "; ".join(facts["known_gaps"]))
        projects = facts["projects"]
        shown = [p["name"] or p["id"] for p in projects if p["status"] == "active"][:8]
        others = len(projects) - len(shown)
        line(
            "projects",
            (", ".join(shown) or "none") + (f" (+{others} archived or unlisted)" if others else ""),
        )
        synced = facts["synced_range"]
        if synced["first_day"] is None:
            line("synced days", "none yet")
        else:
            line(
                "synced days",
                f"{synced['first_day']}..{synced['last_day']}: "
                f"{synced['days_committed']} committed, {len(facts['gaps'])} missing"
                + (f" ({_day_ranges(facts['gaps'])})" if facts["gaps"] else ""),
            )
        usage = facts["usage_without_cost"]
        line(
            "usage, no cost",
            "none"
            if not (usage["days"] or usage["models"])
            else "; ".join(filter(None, [_day_ranges(usage["days"]), ", ".join(usage["models"])])),
        )
        restated = facts["restatements"]
        line(
            "restatements",
            f"{restated['days_in_period']} restated day(s) in the last {PERIOD_DAYS} "
            f"days, net {signed_usd(restated['net_change_usd'])}",
        )
        for day in restated["last"]:
            changes = ", ".join(
                f"{day[f'line_items_{k}']} {k}"
                for k in ("changed", "appeared", "vanished")
                if day[f"line_items_{k}"]
            )
            line(
                "",
                f"  {day['date']}: ${day['previous_cost_usd']:,.2f} -> ${day['new_cost_usd']:,.2f} "
                f"({changes}; detected {day['detected_at'][:16].replace('T', ' ')} UTC)",
            )
        fresh = facts["freshness"]
        behind = fresh["closed_days_behind"]
        state = (
            "never synced"
            if behind is None
            else "up to date"
            if behind <= 0
            else f"{behind} closed day(s) behind"
        )
        line(
            "freshness",
            f"last sync {_when(fresh['last_sync_at'])}, last synced day "
            f"{fresh['last_synced_day'] or '-'}: {state}",
        )
        run = facts["last_run"]
        line(
            "last run",
            "none"
            if run is None
            else f"{run['status']} {_when(run['started_at'])} ({run['window'] or 'no window'}, run "
            f"{run['run_id'][:8]})" + (f": {run['error']}" if run["error"] else ""),
        )
        period = facts["period"]
        total = period["cost_usd"]
        line(
            "total",
            (f"${total:,.2f}" if total is not None else "unknown")
            + f" over {period['first_day']}..{period['last_day']} — {period['advice']}",
        )
        print()
    if disconnected:
        print(
            "disconnected, rows kept but hidden: "
            + ", ".join(c.name for c in disconnected)
            + " (`stax disconnect NAME --purge` deletes them)"
        )
    if warehouse_error:
        print(warehouse_error)
    if problems:
        print(f"{len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
    else:
        print("No problems found.")


def _json_value(value: Any) -> str:
    """Dates and times as ISO 8601 (``2026-11-20``, ``2026-11-20T02:01:00+00:00``)."""
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


def _line(label: str, text: str) -> None:
    print(f"  {label:<15}{text}")


def _as_json(
    diagnoses: list[Diagnosis],
    duplicates: dict[str, list[str]],
    disconnected: list[Connection],
    warehouse_error: str | None,
    problems: list[str],
) -> dict[str, Any]:
    return {
        "healthy": not problems,
        "problems": problems,
        "connections": [
            {"name": d.connection.name, "provider": d.connection.provider, **d.facts, "problems": d.problems}
            for d in diagnoses
        ],
        "duplicate_organizations": [
            {"organization_id": org, "connections": names} for org, names in duplicates.items()
        ],
        "disconnected": [
            {"name": c.name, "organization_id": c.organization_id, "disconnected_at": c.disconnected_at}
            for c in disconnected
        ],
        "warehouse": {"readable": warehouse_error is None, "error": warehouse_error},
    }
