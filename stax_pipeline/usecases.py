"""What a person (or the demo) asks Stax to do: connect a provider's organization, backfill it,
sync it. The CLI parses arguments, calls these and turns their results and errors into exit
codes; ``stax demo`` calls the same functions.

Each checks everything it can before it changes anything. A backfill or a sync takes minutes, so
they say what they do as they go: one flushed line per step on stdout, and a failure's next step
on stderr. Dagster and dlt are imported inside the functions that run them, so a refusal answers
at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from stax_pipeline.credentials import Connection, ConnectionStore
from stax_pipeline.errors import UsageError
from stax_pipeline.lib.window import SyncWindow, backfill_window, catch_up_window, check_sync_days
from stax_pipeline.providers import connect_command, get_provider
from stax_pipeline.settings import load_settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from stax_pipeline.orchestration import RunOutcome


def today_utc() -> date:
    return datetime.now(UTC).date()


# --- connect --------------------------------------------------------------------------------------


def connect(provider_name: str, name: str, read_key: Callable[[str], str]) -> Connection:
    """Check, store and announce a new connection of ``provider_name`` named ``name``.

    The name is checked before the key is read (``read_key`` gets the prompt to show), the key's
    format before any request, and the key itself (one cheap request to the provider's API)
    before anything is stored or created. A name disconnected without ``--purge`` is reconnected
    when the key belongs to the same organization: its kept rows count again.
    """
    provider = get_provider(provider_name)
    settings = load_settings(create=False)  # nothing is created before the key passed
    settings.validate()  # …nor read, nor sent, while a setting is malformed
    store = ConnectionStore(settings)
    store.check_new_name(name)
    api_key = read_key(f"{provider.title} admin key ({provider.key_prefix}…, input hidden): ")
    provider.check_key_format(api_key)
    base_url = provider.new_connection_base_url()
    checked = provider.validate_key(base_url, api_key)
    settings = load_settings()  # now STAX_HOME may be created
    reconnecting = store.disconnected(name) is not None  # same organization: its rows come back
    connection = store.add(
        name,
        provider.name,
        api_key,
        base_url=base_url,
        simulated=checked.simulator,
        organization_id=checked.organization_id,
    )
    where = "the Stax simulator at " if checked.simulator else ""
    print(
        f"{'Reconnected' if reconnecting else 'Connected'} {name!r} ({provider.name}, key "
        f"{connection.key_hint}, {where}{base_url}, {organization_text(connection)})."
    )
    if reconnecting:
        from stax_pipeline.cli.disconnect import publish_live_rows

        publish_live_rows(settings)
    return connection


def organization_text(connection: Connection) -> str:
    """``organization org-…``, or why it is not known yet (the first sync with spend learns it)."""
    if connection.organization_id:
        return f"organization {connection.organization_id}"
    return "organization not reported yet: the first sync with spend checks it"


# --- backfill -------------------------------------------------------------------------------------


def run_backfill(instance: DagsterInstance, store: ConnectionStore, name: str) -> bool:
    """The 30-day backfill of a connection, claimed first so the sensor never runs it too; True
    unless it ran and failed.

    A failure (or an interruption) releases the claim with its reason, so the daemon retries it
    after a backoff; the run carries the claim, so a run that dies with this process is settled
    by the backfill sensor once it is marked failed.
    """
    from stax_pipeline.defs.sensors import backfill_run_tags

    claim = store.claim_backfill(name, "cli")
    if claim is None:
        print("Its backfill is already done or being run by the Dagster daemon.")
        return True
    window = backfill_window(today_utc())
    tags = backfill_run_tags(store.get(name).id, claim)
    try:
        outcome = sync_one(instance, store, name, window, verb="backfilling", tags=tags)
    except BaseException:
        store.fail_backfill(claim, "interrupted", datetime.now(UTC))
        raise
    if outcome.success:
        store.finish_backfill(claim, datetime.now(UTC))
        return True
    store.fail_backfill(claim, outcome.error or "the run failed", datetime.now(UTC))
    print(
        f"stax: the connection is saved but its backfill failed; retry with "
        f"`stax sync --connection {name} --start {window.start} --end {window.last}`",
        file=sys.stderr,
    )
    return False


# --- sync -----------------------------------------------------------------------------------------


def resolve_sync_window(
    start: date | None, end: date | None, lookback_days: int, synced_days: list[date], today: date
) -> SyncWindow:
    """The days a sync covers for a connection that has synced ``synced_days``: its catch-up
    window (from the first day it is missing to yesterday) unless told otherwise."""
    default = catch_up_window(today, synced_days, lookback_days)
    if start is None and end is None:
        return default
    check_sync_days(start, end, today)  # order, future, too early
    # One day given: the other comes from the catch-up window, on its right side by construction.
    first = start or min(default.start, end or default.start)
    last = end or max(default.last, first)
    return SyncWindow.inclusive(first, last)


def plan_sync(
    store: ConnectionStore,
    names: list[str],
    start: date | None,
    end: date | None,
    lookback_days: int,
    today: date,
) -> dict[str, SyncWindow]:
    """Each connection's own window (its catch-up window unless told otherwise), all resolved —
    and every argument error raised — before anything runs."""
    return {
        name: resolve_sync_window(start, end, lookback_days, store.synced_days(name), today) for name in names
    }


def sync_one(
    instance: DagsterInstance,
    store: ConnectionStore,
    name: str,
    window: SyncWindow,
    verb: str,
    tags: dict[str, str] | None = None,
) -> RunOutcome:
    """One connection's window as one Dagster range run, with a line before and after."""
    from stax_pipeline.orchestration import run_sync

    print(f"{name}: {verb} {window} ({window.num_days} days)…", flush=True)
    outcome = run_sync(instance, name, window, tags)
    if outcome.success:
        print(f"{name}: done ({window.num_days} days, run {outcome.run_id[:8]}).", flush=True)
    else:
        print(f"stax: {name}: sync of {window} failed: {outcome.error}", file=sys.stderr)
    return outcome


def sync(connection: str | None, start: date | None, end: date | None) -> bool:
    """`stax sync`: each connection (or the one named) over its own window; True if every run
    succeeded. Every connection's window and API are checked before the first run starts."""
    from stax_pipeline.lib.endpoints import connection_endpoint

    settings = load_settings(create=False)  # nothing is created before every argument is checked
    settings.validate()
    store = ConnectionStore(settings)
    if connection:
        connections = [store.get(connection)]
    else:
        connections = store.list()
        if not connections:
            raise UsageError(f"no connections to sync; run `{connect_command()}` first")
    names = [c.name for c in connections]
    windows = plan_sync(store, names, start, end, settings.lookback_days, today_utc())
    for stored in connections:  # a connection that may not be synced here: say so now
        connection_endpoint(stored)
    from stax_pipeline.orchestration import dagster_instance  # Dagster: seconds to import

    instance = dagster_instance(load_settings())
    results = [sync_one(instance, store, name, window, verb="syncing") for name, window in windows.items()]
    return all(outcome.success for outcome in results)


__all__ = ["connect", "plan_sync", "resolve_sync_window", "run_backfill", "sync", "sync_one"]
