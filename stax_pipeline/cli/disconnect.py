"""`stax disconnect NAME [--purge]`: a connection's key deleted, and its rows hidden or deleted.

A plain disconnect deletes the stored key and keeps a tombstone in the app database (name,
organization, synced days). The connection's rows stay in the warehouse, but nothing a person
reads shows them: :func:`~stax_pipeline.lib.serving.publish_marts` publishes live connections'
rows only, and ``stax report`` and the BI tools read that published copy. Reconnecting the same
organization under the same name brings them back (e.g. after a key was revoked and replaced);
``--purge``, then or any time later, deletes them from the warehouse and the published copy and
removes the connection's Dagster partition.
"""

from __future__ import annotations

import duckdb

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.errors import StaxError, UsageError
from stax_pipeline.settings import Settings


def disconnect(settings: Settings, store: ConnectionStore, name: str) -> int:
    """Delete ``name``'s key and hide its rows (kept until ``--purge``)."""
    if store.disconnected(name) is not None:
        raise UsageError(
            f"{name!r} is already disconnected (its rows are kept, hidden); "
            f"`stax disconnect {name} --purge` deletes them"
        )
    store.remove(name)  # an unknown name: one line, nothing changed
    _remove_partition(settings, name)
    print(
        f"Disconnected {name!r}: its key is deleted. Its rows stay in the warehouse, hidden from "
        f"reports and the published marts; `stax disconnect {name} --purge` deletes them."
    )
    hidden = publish_live_rows(settings)
    if hidden is not None:
        print(f"The published marts will hide them after the next sync ({hidden}).")
    return 0


def purge(settings: Settings, store: ConnectionStore, name: str) -> int:
    """Delete every row of ``name`` (live, disconnected, or only left in the warehouse by an
    older Stax) from the warehouse and the published copy, then forget the connection."""
    from stax_pipeline.lib.warehouse import purge_connection

    known = store.exists(name) or store.disconnected(name) is not None
    purged = purge_connection(settings, name)  # a busy warehouse: one line, nothing changed
    if not known and not purged:
        raise UsageError(f"unknown connection {name!r}: no stored key and no rows in the warehouse")
    if settings.warehouse_path.exists():
        from stax_pipeline.lib.serving import publish_marts

        publish_marts(settings)  # the served copy must lose the purged rows too
    store.purge(name)
    _remove_partition(settings, name)
    print(f"Disconnected {name!r}: its key is deleted." if known else f"Purged {name!r}.")
    print(f"Purged {purged} warehouse rows of {name!r}.")
    return 0


def publish_live_rows(settings: Settings) -> str | None:
    """Publish again, so the served copy shows exactly the live connections' rows now (after a
    disconnect or a reconnect); the reason if that could not be done (the warehouse is busy:
    the next sync's publish does it)."""
    if not settings.warehouse_path.exists():
        return None
    from stax_pipeline.lib.serving import publish_marts

    try:
        publish_marts(settings)
    except (StaxError, duckdb.Error) as exc:
        return str(exc).splitlines()[0]
    return None


def _remove_partition(settings: Settings, name: str) -> None:
    """The connection leaves the Dagster partitions (the UI, the schedule, the sensor).

    The local instance cannot wipe one partition's event history (its SQLite event log does not
    support it), so past runs stay listed in the UI."""
    from stax_pipeline.orchestration import dagster_instance, unregister_connection

    unregister_connection(dagster_instance(settings), name)
