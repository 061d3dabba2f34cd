"""The ``stax`` subcommands. Each validates everything before it changes anything."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from stax_pipeline.cli.table import format_table
from stax_pipeline.credentials import ADMIN_KEY_PREFIX, ConnectionStore, validate_connection_name
from stax_pipeline.errors import CredentialError, ProviderError, StaxError, UsageError
from stax_pipeline.settings import load_settings

if TYPE_CHECKING:
    from stax_pipeline.lib.window import SyncWindow

# Heavy modules (dlt, Dagster) are imported inside the commands that need them, so
# `stax connections` and argument errors answer at once.
ADMIN_KEYS_PAGE = "https://platform.openai.com/settings/organization/admin-keys"


NOT_AN_ADMIN_KEY = (
    f"that is not an admin key: OpenAI admin keys start with {ADMIN_KEY_PREFIX} and are created "
    f"by an organization owner at {ADMIN_KEYS_PAGE} (read-only scope is enough). Nothing was stored."
)
WRONG_KEY_TYPE = (
    "wrong key type: paste an admin key (sk-admin-…), not a regular API key "
    "(the API answered 401: the key is not a valid admin key, or it was revoked). Nothing was stored."
)
NON_OWNER_KEY = (
    "this admin key was created by a non-owner; have an organization owner create it "
    f"at {ADMIN_KEYS_PAGE} (the API answered 403). Nothing was stored."
)


def _today() -> date:
    return datetime.now(UTC).date()


# --- connect / connections / disconnect -------------------------------------------------------


def _read_key() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        key = getpass.getpass("OpenAI admin key (sk-admin-…, input hidden): ")
    else:
        key = sys.stdin.readline() if sys.stdin is not None else ""
    return key.strip()


def check_openai_admin_key(base_url: str, api_key: str) -> None:
    """Refuse a key before anything is stored: its prefix first, then one cheap request."""
    if not api_key:
        raise UsageError(f"no key given: {NOT_AN_ADMIN_KEY}")
    if not api_key.startswith(ADMIN_KEY_PREFIX) or len(api_key) == len(ADMIN_KEY_PREFIX):
        raise UsageError(NOT_AN_ADMIN_KEY)
    if any(c.isspace() for c in api_key):
        raise UsageError("the key contains spaces or line breaks: paste it as one piece. Nothing was stored.")
    from stax_pipeline.lib.http import HttpError, RetryPolicy
    from stax_pipeline.sources.openai_admin.helpers import OpenAIAdminClient

    client = OpenAIAdminClient(base_url, api_key, retry=RetryPolicy(max_attempts=3))
    try:
        client.check_admin_key()
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
    validate_connection_name(name)
    store = ConnectionStore(settings)
    if store.exists(name):
        raise UsageError(
            f"a connection named {name!r} already exists; pick another name or run "
            f"`stax disconnect {name}` first"
        )
    api_key = read_key()
    check_openai_admin_key(settings.openai_base_url, api_key)
    from stax_pipeline.orchestration import dagster_instance, register_connection

    settings = load_settings()  # now STAX_HOME may be created
    connection = store.add(name, "openai", api_key)
    instance = dagster_instance(settings)
    register_connection(instance, name)
    print(f"Connected {name!r} (openai, key {connection.key_hint}).")
    if not backfill:
        print(f"No backfill now; run `stax sync --connection {name}` (or let the daemon do it).")
        return 0
    return run_backfill(instance, store, name)


def run_backfill(instance, store: ConnectionStore, name: str) -> int:
    """The 30-day backfill of a connection, claimed first so the sensor never runs it too."""
    from stax_pipeline.lib.window import backfill_window

    if not store.claim_backfill(name, "cli"):
        print("Its backfill is already done or being run by the Dagster daemon.")
        return 0
    window = backfill_window(_today())
    try:
        synced = _sync_one(instance, store, name, window, verb="backfilling")
    except KeyboardInterrupt:
        store.release_backfill(name)  # stopped, not failed: the next try runs it
        raise
    if synced:
        store.mark_backfilled(name, datetime.now(UTC))
        return 0
    store.release_backfill(name)
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


def cmd_connections(args) -> int:
    connections = ConnectionStore(load_settings(create=False)).list()
    if not connections:
        print("No connections yet: run `stax connect openai --name NAME`.")
        return 0
    rows = [("NAME", "PROVIDER", "KEY", "CREATED", "LAST SYNC")]
    rows += [
        (c.name, c.provider, c.key_hint, _fmt_time(c.created_at), _fmt_time(c.last_synced_at))
        for c in connections
    ]
    print("\n".join(format_table(rows)))
    return 0


def cmd_disconnect(args) -> int:
    from stax_pipeline.lib.warehouse import purge_connection
    from stax_pipeline.orchestration import dagster_instance, unregister_connection

    settings = load_settings()
    store = ConnectionStore(settings)
    store.get(args.name)  # unknown → one-line error before anything changes
    purged = purge_connection(settings, args.name) if args.purge else None
    store.remove(args.name)
    unregister_connection(dagster_instance(settings), args.name)
    print(f"Disconnected {args.name!r}: its key is deleted.")
    if purged is not None:
        print(f"Purged {purged} warehouse rows of {args.name!r}.")
    return 0


# --- sync ---------------------------------------------------------------------------------------


def resolve_sync_window(start: date | None, end: date | None, lookback_days: int) -> SyncWindow:
    """The days `stax sync` covers: the nightly window unless told otherwise."""
    from stax_pipeline.defs.partitions import FIRST_DAY
    from stax_pipeline.lib.window import SyncWindow, nightly_window

    today = _today()
    default = nightly_window(today, lookback_days)
    first = start or (default.start if end is None else min(default.start, end))
    last = end or max(default.last, first)
    if last < first:
        raise UsageError(f"--end {last} is before --start {first}")
    if last > today:
        raise UsageError(f"--end {last} is in the future (today is {today}, UTC)")
    if first < date.fromisoformat(FIRST_DAY):
        raise UsageError(f"--start {first} is before the first supported day {FIRST_DAY}")
    return SyncWindow.inclusive(first, last)


def _sync_one(instance, store: ConnectionStore, name: str, window: SyncWindow, verb: str) -> bool:
    from stax_pipeline.orchestration import run_sync

    print(f"{name}: {verb} {window} ({window.num_days} days)…", flush=True)
    outcome = run_sync(instance, name, window)
    if outcome.success:
        print(f"{name}: done ({window.num_days} days, run {outcome.run_id[:8]}).", flush=True)
    else:
        print(f"stax: {name}: sync of {window} failed: {outcome.error}", file=sys.stderr)
    return outcome.success


def cmd_sync(args) -> int:
    from stax_pipeline.orchestration import dagster_instance

    settings = load_settings()
    store = ConnectionStore(settings)
    if args.connection:
        names = [store.get(args.connection).name]
    else:
        names = [c.name for c in store.list()]
        if not names:
            raise UsageError("no connections to sync; run `stax connect openai --name NAME` first")
    window = resolve_sync_window(args.start, args.end, settings.lookback_days)
    instance = dagster_instance(settings)
    results = [_sync_one(instance, store, name, window, verb="syncing") for name in names]
    return 0 if all(results) else 1


# --- report / doctor ----------------------------------------------------------------------------


def cmd_report(args) -> int:
    from stax_pipeline.cli.report import spend_report

    settings = load_settings()
    if args.connection:
        ConnectionStore(settings).get(args.connection)
    print(spend_report(settings, args.connection, args.days, _today()))
    return 0


def cmd_doctor(args) -> int:
    from stax_pipeline.cli.doctor import diagnose

    settings = load_settings()
    store = ConnectionStore(settings)
    connections = [store.get(args.connection)] if args.connection else store.list()
    if not connections:
        raise UsageError("no connections yet; run `stax connect openai --name NAME` first")
    healthy = diagnose(settings, store, connections, _today())
    return 0 if healthy else 1


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
    )
    serve(host=args.host, port=args.port, faults=faults)
    return 0


def cmd_demo(args) -> int:
    from stax_pipeline.cli.demo import run_demo

    return run_demo()


__all__ = ["StaxError", "check_openai_admin_key", "connect", "resolve_sync_window"]
