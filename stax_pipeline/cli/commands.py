"""The ``stax`` subcommands. Each validates everything before it changes anything."""

from __future__ import annotations

from datetime import datetime

from stax_pipeline.cli.table import format_table
from stax_pipeline.cli.validation import read_admin_key
from stax_pipeline.credentials import Connection, ConnectionStore
from stax_pipeline.errors import StaxError, UsageError
from stax_pipeline.providers import connect_command
from stax_pipeline.settings import load_settings
from stax_pipeline.usecases import connect, run_backfill, sync, today_utc

# Heavy modules (dlt, Dagster) are imported inside the commands that need them, so
# `stax connections` and argument errors answer at once.


# --- connect / connections / disconnect -------------------------------------------------------


def cmd_connect(args) -> int:
    connect(args.provider, args.name, lambda prompt: read_admin_key(prompt=prompt))
    if args.no_backfill:
        from stax_pipeline.lib.window import backfill_window

        window = backfill_window(today_utc())
        print(
            f"No backfill now. To backfill its last {window.num_days} days, run (or let the "
            "Dagster daemon do it):"
        )
        print(f"  stax sync --connection {args.name} --start {window.start} --end {window.last}")
        return 0
    from stax_pipeline.orchestration import dagster_instance

    settings = load_settings()
    return 0 if run_backfill(dagster_instance(settings), ConnectionStore(settings), args.name) else 1


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


def cmd_connections(args) -> int:
    store = ConnectionStore(load_settings(create=False))
    connections = store.list()
    if not connections:
        print(f"No connections yet: run `{connect_command()}`.")
    else:
        _print_connections(connections)
    if hidden := store.list_disconnected():
        names = ", ".join(c.name for c in hidden)
        print(f"Disconnected, rows kept but hidden: {names} (`stax disconnect NAME --purge` deletes them).")
    return 0


def _print_connections(connections: list[Connection]) -> None:
    rows = [("NAME", "PROVIDER", "ORGANIZATION", "KEY", "CREATED", "LAST SYNC", "LAST DAY", "BACKFILL")]
    rows += [
        (
            c.name,
            c.provider + (" (simulator)" if c.simulated else ""),
            c.organization_id or "(not yet known)",
            c.key_hint,
            _fmt_time(c.created_at),
            _fmt_time(c.last_synced_at),
            str(c.last_synced_day or "-"),
            _backfill_text(c),
        )
        for c in connections
    ]
    print("\n".join(format_table(rows)))


def cmd_disconnect(args) -> int:
    from stax_pipeline.cli.disconnect import disconnect, purge

    settings = load_settings(create=False)  # an unknown name changes (or creates) nothing
    settings.validate()  # it writes: every setting is checked before anything changes
    return (purge if args.purge else disconnect)(settings, ConnectionStore(settings), args.name)


# --- sync ---------------------------------------------------------------------------------------


def cmd_sync(args) -> int:
    return 0 if sync(args.connection, args.start, args.end) else 1


# --- report / doctor ----------------------------------------------------------------------------


def cmd_report(args) -> int:
    from stax_pipeline.cli.report import spend_report

    settings = load_settings(create=False)
    if args.connection:
        ConnectionStore(settings).get(args.connection)
    print(
        spend_report(
            settings, args.connection, args.days, today_utc(), by=args.by, output_format=args.output_format
        )
    )
    return 0


def cmd_doctor(args) -> int:
    from stax_pipeline.cli.doctor import diagnose

    settings = load_settings(create=False)
    store = ConnectionStore(settings)
    connections = [store.get(args.connection)] if args.connection else store.list()
    if not connections:
        raise UsageError(f"no connections yet; run `{connect_command()}` first")
    healthy = diagnose(settings, store, connections, today_utc(), as_json=args.json)
    return 0 if healthy else 1


def cmd_export(args) -> int:
    from stax_pipeline.cli.export import export_focus

    print(
        export_focus(
            load_settings(),
            connection=args.connection,
            first=args.start,
            last=args.end,
            out_dir=args.out,
            file_format=args.format,
        ).summary()
    )
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


__all__ = ["StaxError"]
