"""The ``stax`` subcommands. Each validates everything before it changes anything."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from stax_pipeline.cli.table import format_table
from stax_pipeline.cli.validation import check_day_arguments, read_admin_key
from stax_pipeline.credentials import (
    Connection,
    ConnectionStore,
    validate_connection_name,
)
from stax_pipeline.credentials.key_format import ADMIN_KEYS_PAGE, NOT_AN_ADMIN_KEY, check_admin_key_format
from stax_pipeline.errors import CredentialError, ProviderError, StaxError, UsageError
from stax_pipeline.settings import load_settings

if TYPE_CHECKING:
    from stax_pipeline.lib.window import SyncWindow
    from stax_pipeline.orchestration import RunOutcome

# Heavy modules (dlt, Dagster) are imported inside the commands that need them, so
# `stax connections` and argument errors answer at once.


WRONG_KEY_TYPE = (
    "wrong key type: paste an admin key (sk-admin-…), not a regular API key "
    "(the API answered 401: the key is not a valid admin key, or it was revoked). Nothing was stored."
)
NON_OWNER_KEY = (
    "this admin key was created by a non-owner; have an organization owner create it "
    f"at {ADMIN_KEYS_PAGE} (the API answered 403). Nothing was stored."
)


@dataclass(frozen=True)
class KeyCheck:
    """What the key check learned: whether the Stax simulator answered it, and the organization
    behind the key (its id; None if the API did not say)."""

    simulated: bool
    organization_id: str | None


def _today() -> date:
    return datetime.now(UTC).date()


# --- connect / connections / disconnect -------------------------------------------------------


def _read_key() -> str:
    return read_admin_key(prompt="OpenAI admin key (sk-admin-…, input hidden): ")


def check_openai_admin_key(
    base_url: str, api_key: str, *, expect_simulator: bool | None = None
) -> KeyCheck:
    """Refuse a key before anything is stored: what it is made of first (nothing is sent for a
    key no API could accept), then one cheap request to ``base_url``, which also tells whether
    the Stax simulator answered (``expect_simulator``, if not None, refuses the other kind of
    API) and the organization behind the key."""
    if not api_key:
        raise UsageError(f"no key given: {NOT_AN_ADMIN_KEY}")
    check_admin_key_format(api_key)
    from stax_pipeline.lib.http import HttpError, RetryPolicy
    from stax_pipeline.sources.openai_admin.helpers import OpenAIAdminClient

    # a person is waiting: a few seconds of retries, not the sync's minutes
    client = OpenAIAdminClient(
        base_url, api_key, retry=RetryPolicy.from_env().at_most(10), expect_simulator=expect_simulator
    )
    try:
        organization = client.check_admin_key()
        return KeyCheck(bool(client.api.answered_by_simulator), organization)
    except HttpError as exc:
        if exc.status == 401:
            raise CredentialError(WRONG_KEY_TYPE) from None
        if exc.status == 403:
            raise CredentialError(NON_OWNER_KEY) from None
        raise ProviderError(
            f"the key check at {base_url} failed with HTTP {exc.status}: {exc.api_message}. "
            "Nothing was stored."
        ) from None
    except ProviderError:
        raise ProviderError(
            f"could not reach the OpenAI Admin API at {base_url} to check the key; check the "
            "network (or STAX_OPENAI_BASE_URL) and try again. Nothing was stored."
        ) from None
    finally:
        client.close()


def connect(name: str, read_key: Callable[[], str], *, backfill: bool) -> int:
    """Check, store and (unless told not to) backfill a new OpenAI connection.

    The name is checked before the key is read, the key before anything is stored.
    """
    settings = load_settings(create=False)  # nothing is created before the key passed
    settings.validate()  # …nor read, nor sent, while a setting is malformed
    validate_connection_name(name)
    store = ConnectionStore(settings)
    if store.exists(name):
        raise UsageError(
            f"a connection named {name!r} already exists; pick another name or run "
            f"`stax disconnect {name}` first"
        )
    api_key = read_key()
    base_url = settings.openai_base_url
    checked = check_openai_admin_key(base_url, api_key)
    from stax_pipeline.orchestration import dagster_instance, register_connection

    settings = load_settings()  # now STAX_HOME may be created
    reconnecting = store.disconnected(name) is not None  # same organization: its rows come back
    connection = store.add(name, "openai", api_key, base_url=base_url, simulated=checked.simulated,
                           organization_id=checked.organization_id)  # fmt: skip
    instance = dagster_instance(settings)
    register_connection(instance, name)
    where = "the Stax simulator at " if checked.simulated else ""
    print(f"{'Reconnected' if reconnecting else 'Connected'} {name!r} (openai, key "
          f"{connection.key_hint}, {where}{base_url}, {_organization_text(connection)}).")  # fmt: skip
    if reconnecting:
        from stax_pipeline.cli.disconnect import publish_live_rows

        publish_live_rows(settings)
    if not backfill:
        from stax_pipeline.lib.window import backfill_window

        window = backfill_window(_today())
        print(f"No backfill now. To backfill its last {window.num_days} days, run (or let the "
              "Dagster daemon do it):")  # fmt: skip
        print(f"  stax sync --connection {name} --start {window.start} --end {window.last}")
        return 0
    return run_backfill(instance, store, name)


def run_backfill(instance, store: ConnectionStore, name: str) -> int:
    """The 30-day backfill of a connection, claimed first so the sensor never runs it too.

    A failure (or an interruption) releases the claim with its reason, so the daemon retries it
    after a backoff; the run carries the claim, so a run that dies with this process is settled
    by the backfill sensor once it is marked failed.
    """
    from stax_pipeline.defs.sensors import backfill_run_tags
    from stax_pipeline.lib.window import backfill_window

    claim = store.claim_backfill(name, "cli")
    if claim is None:
        print("Its backfill is already done or being run by the Dagster daemon.")
        return 0
    window = backfill_window(_today())
    tags = backfill_run_tags(store.get(name).id, claim)
    try:
        outcome = _sync_one(instance, store, name, window, verb="backfilling", tags=tags)
    except BaseException:
        store.fail_backfill(claim, "interrupted", datetime.now(UTC))
        raise
    if outcome.success:
        store.finish_backfill(claim, datetime.now(UTC))
        return 0
    store.fail_backfill(claim, outcome.error or "the run failed", datetime.now(UTC))
    print(
        f"stax: the connection is saved but its backfill failed; retry with "
        f"`stax sync --connection {name} --start {window.start} --end {window.last}`",
        file=sys.stderr,
    )
    return 1


def cmd_connect(args) -> int:
    return connect(args.name, _read_key, backfill=not args.no_backfill)


def _fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _backfill_text(connection: Connection) -> str:
    """``pending``, ``running (cli|sensor)``, ``done`` or ``failed: <reason> (retry …)``."""
    state = connection.backfill_state
    if state == "running":
        return f"running ({connection.backfill_claimed_by})"
    if state == "failed":
        reason = (connection.backfill_error or "").strip().splitlines()[0][:120]
        retry = connection.backfill_retry_at
        retry_text = f", retry after {retry:%Y-%m-%d %H:%M UTC}" if retry else ""
        return f"failed: {reason} (attempt {connection.backfill_attempts}{retry_text})"
    return state


def _organization_text(connection: Connection) -> str:
    """``organization org-…``, or why it is not known yet (the first sync with spend learns it)."""
    if connection.organization_id:
        return f"organization {connection.organization_id}"
    return "organization not reported yet: the first sync with spend checks it"


def cmd_connections(args) -> int:
    store = ConnectionStore(load_settings(create=False))
    connections = store.list()
    if not connections:
        print("No connections yet: run `stax connect openai --name NAME`.")
    else:
        _print_connections(connections)
    if hidden := store.list_disconnected():
        names = ", ".join(c.name for c in hidden)
        print(f"Disconnected, rows kept but hidden: {names} (`stax disconnect NAME --purge` deletes them).")
    return 0


def _print_connections(connections: list[Connection]) -> None:
    rows = [("NAME", "PROVIDER", "ORGANIZATION", "KEY", "CREATED", "LAST SYNC", "LAST DAY", "BACKFILL")]
    rows += [
        (c.name, c.provider + (" (simulator)" if c.simulated else ""),
         c.organization_id or "(not yet known)", c.key_hint, _fmt_time(c.created_at),
         _fmt_time(c.last_synced_at), str(c.last_synced_day or "-"), _backfill_text(c))
        for c in connections
    ]  # fmt: skip
    print("\n".join(format_table(rows)))


def cmd_disconnect(args) -> int:
    from stax_pipeline.cli.disconnect import disconnect, purge

    settings = load_settings(create=False)  # an unknown name changes (or creates) nothing
    settings.validate()  # it writes: every setting is checked before anything changes
    return (purge if args.purge else disconnect)(settings, ConnectionStore(settings), args.name)


# --- sync ---------------------------------------------------------------------------------------


def resolve_sync_window(
    start: date | None, end: date | None, lookback_days: int, synced_days: list[date], today: date
) -> SyncWindow:
    """The days `stax sync` covers for a connection that has synced ``synced_days``: its
    catch-up window (from the first day it is missing to yesterday) unless told otherwise."""
    from stax_pipeline.lib.window import FIRST_DAY, SyncWindow, catch_up_window

    default = catch_up_window(today, synced_days, lookback_days)
    if start is None and end is None:
        return default
    check_day_arguments(start, end, today, date.fromisoformat(FIRST_DAY))  # order, future, too early
    # One day given: the other comes from the catch-up window, on its right side by construction.
    first = start or min(default.start, end)
    last = end or max(default.last, first)
    return SyncWindow.inclusive(first, last)


def plan_sync(
    store: ConnectionStore, names: list[str], start: date | None, end: date | None,
    lookback_days: int, today: date,
) -> dict[str, SyncWindow]:  # fmt: skip
    """Each connection's own window (its catch-up window unless told otherwise), all resolved —
    and every argument error raised — before anything runs."""
    return {
        name: resolve_sync_window(start, end, lookback_days, store.synced_days(name), today)
        for name in names
    }


def _sync_one(
    instance, store: ConnectionStore, name: str, window: SyncWindow, verb: str,
    tags: dict[str, str] | None = None,
) -> RunOutcome:  # fmt: skip
    from stax_pipeline.orchestration import run_sync

    print(f"{name}: {verb} {window} ({window.num_days} days)…", flush=True)
    outcome = run_sync(instance, name, window, tags)
    if outcome.success:
        print(f"{name}: done ({window.num_days} days, run {outcome.run_id[:8]}).", flush=True)
    else:
        print(f"stax: {name}: sync of {window} failed: {outcome.error}", file=sys.stderr)
    return outcome


def cmd_sync(args) -> int:
    from stax_pipeline.lib.endpoints import sync_endpoint

    settings = load_settings(create=False)  # nothing is created before every argument is checked
    settings.validate()
    store = ConnectionStore(settings)
    if args.connection:
        connections = [store.get(args.connection)]
    else:
        connections = store.list()
        if not connections:
            raise UsageError("no connections to sync; run `stax connect openai --name NAME` first")
    names = [c.name for c in connections]
    windows = plan_sync(store, names, args.start, args.end, settings.lookback_days, _today())
    for connection in connections:  # a connection that may not be synced here: say so now
        sync_endpoint(connection, settings.configured_openai_base_url)
    from stax_pipeline.orchestration import dagster_instance  # Dagster: seconds to import

    settings = load_settings()
    instance = dagster_instance(settings)
    results = [_sync_one(instance, store, name, window, verb="syncing").success
               for name, window in windows.items()]  # fmt: skip
    return 0 if all(results) else 1


# --- report / doctor ----------------------------------------------------------------------------


def cmd_report(args) -> int:
    from stax_pipeline.cli.report import spend_report

    settings = load_settings(create=False)
    if args.connection:
        ConnectionStore(settings).get(args.connection)
    print(spend_report(settings, args.connection, args.days, _today(), by=args.by,
                       output_format=args.output_format))
    return 0


def cmd_doctor(args) -> int:
    from stax_pipeline.cli.doctor import diagnose

    settings = load_settings(create=False)
    store = ConnectionStore(settings)
    connections = [store.get(args.connection)] if args.connection else store.list()
    if not connections:
        raise UsageError("no connections yet; run `stax connect openai --name NAME` first")
    healthy = diagnose(settings, store, connections, _today(), as_json=args.json)
    return 0 if healthy else 1


def cmd_export(args) -> int:
    from stax_pipeline.cli.export import export_focus

    print(export_focus(
        load_settings(), connection=args.connection, first=args.start, last=args.end,
        out_dir=args.out, file_format=args.format,
    ).summary())  # fmt: skip
    return 0


# --- keys, simulator, demo ----------------------------------------------------------------------


def cmd_rotate_master_key(args) -> int:
    import os

    settings = load_settings()
    count = ConnectionStore(settings).rotate_master_key()
    print(f"Re-encrypted {count} stored key(s) under a new master key.")
    if os.environ.get("STAX_MASTER_KEY"):
        print("Now replace STAX_MASTER_KEY with the value of STAX_NEW_MASTER_KEY.")
    return 0


def cmd_simulator(args) -> int:
    from stax_pipeline.simulator import Faults, serve

    faults = Faults(
        page_size=args.page_size,
        error_5xx_rate=args.error_rate,
        rate_limit_burst=args.rate_limit_burst,
        latency_ms=args.latency_ms,
        revision=args.revision,
        retry_after=args.retry_after,
        retry_after_form=args.retry_after_form,
        rate_limit_per_path=args.rate_limit_per_endpoint,
        rate_limit_every=args.rate_limit_every,
        outage_at_request=args.outage_at,
        outage_seconds=args.outage_seconds,
        outage_mode=args.outage_mode,
        drop_mid_response_every=args.drop_mid_response_every,
        redirect_burst=args.redirect,
        endless_pages=args.endless_pages,
    )
    serve(host=args.host, port=args.port, faults=faults, profile=args.profile)
    return 0


def cmd_demo(args) -> int:
    from stax_pipeline.cli.demo import run_demo

    return run_demo()


__all__ = ["StaxError", "check_openai_admin_key", "connect", "resolve_sync_window"]
