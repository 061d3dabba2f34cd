"""Loading one connection's window into the warehouse: the data, then the commit marker.

This is the whole ingest use-case as a plain function, the same for every provider (its client,
source and raw schema come from the registry, ``providers.py``), so the Dagster asset stays a
thin edge (it turns a :class:`WindowLoad` into metadata) and tests can call it directly.
"""

from __future__ import annotations

import ctypes
import gc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial

import pyarrow as pa

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.lib.endpoints import connection_endpoint
from stax_pipeline.lib.timings import record_phase, timed
from stax_pipeline.lib.warehouse import dlt_pipeline, wait_for_warehouse
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.providers import Provider, get_provider
from stax_pipeline.settings import Settings
from stax_pipeline.sources.contract import LoadStats, SyncRequest


def _release_memory() -> None:
    """Hand the extract's freed memory back to the OS before dbt runs beside this process
    (CPython keeps freed blocks for reuse; glibc's ``malloc_trim`` returns them)."""
    gc.collect()
    pa.default_memory_pool().release_unused()  # Arrow's own allocator keeps what it freed too
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


@dataclass
class WindowLoad:
    """What loading one connection's window did: rows per table, spend and cost rows per day, the
    tables whose days were committed, notes for the user, and where the time went."""

    connection: str
    window: SyncWindow
    sync_id: str
    rows: dict[str, int]
    cost_usd_by_day: dict[date, float]
    committed_tables: list[str]
    notes: list[str]
    cost_rows_by_day: dict[date, int] = field(default_factory=dict)
    requests_by_path: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def cost_usd(self) -> float:
        return sum(self.cost_usd_by_day.values())


def load_connection_window(
    settings: Settings,
    *,
    connection: str,
    window: SyncWindow,
    run_id: str,
    on_pages_freed: Callable[[], None] | None = None,
) -> WindowLoad:
    """:func:`load_window` for a stored connection: its provider, its key, and its own API
    (``lib/endpoints.py``: never another, and the simulator only for a simulated connection)."""
    store = ConnectionStore(settings)
    stored = store.get(connection)
    endpoint = connection_endpoint(stored)
    return load_window(
        settings,
        get_provider(stored.provider),
        connection=connection,
        window=window,
        api_key=store.api_key(connection),
        base_url=endpoint.base_url,
        expect_simulator=endpoint.simulator,
        run_id=run_id,
        on_pages_freed=on_pages_freed,
    )


def load_window(
    settings: Settings,
    provider: Provider,
    *,
    connection: str,
    window: SyncWindow,
    api_key: str,
    base_url: str,
    run_id: str,
    expect_simulator: bool | None = None,
    on_pages_freed: Callable[[], None] | None = None,
) -> WindowLoad:
    """Pull ``window`` of ``connection`` from ``provider``'s API at ``base_url`` into its raw
    schema (``raw_<provider>``), then commit it.

    The data load appends a snapshot tagged with a new ``sync_id``; only once it succeeded is the
    commit marker (``sync_windows``) loaded, so a failure at any point leaves the previous
    snapshot of every day in force. Extract, normalize and load run as dlt's three steps so
    each can be timed (``$STAX_HOME/logs/timings.jsonl``). ``expect_simulator`` says whether
    the connection was made against the Stax simulator (``lib/endpoints.py``). ``on_pages_freed``
    is called (more than once, maybe) as soon as the source let go of its biggest page, and
    again once every page is extracted and their memory handed back: the sync starts its dbt
    there (``lib/dbt.start_dbt_early``, which starts it once).
    """
    request = SyncRequest(
        connection=connection,
        window=window,
        lookback_days=settings.lookback_days,
        loaded_at=datetime.now(UTC),
        sync_id=uuid.uuid4().hex,
    )
    # The API names the organization only in costs results: a stored connection made before it
    # was known learns it from the first one, and a second connection to an organization already
    # connected fails the extract there, so nothing of this sync is loaded. A name that is not
    # stored (tests, scripts loading raw data) has nothing to record it on.
    store = ConnectionStore(settings)
    record = partial(store.set_organization, connection) if store.exists(connection) else None
    stats = LoadStats(on_organization=record, on_biggest_page_done=on_pages_freed)
    pipeline = dlt_pipeline(settings, provider.dataset_name)
    client = provider.client(base_url, api_key, expect_simulator=expect_simulator)
    data_resources, listings = provider.data_resources, provider.listing_resources
    seconds: dict[str, float] = {}
    try:
        source = provider.source(client, request, stats).with_resources(*data_resources)
        with timed() as extract:
            pipeline.extract(source)
        # Endpoints are pulled concurrently: the fetch floor is the slowest endpoint's wait.
        seconds["fetch"] = max(client.api.seconds_by_path.values(), default=0.0)
        seconds["extract"] = max(extract[0] - seconds["fetch"], 0.0)
        requests = dict(client.api.requests_by_path)
    finally:
        client.close()
    if on_pages_freed is not None:
        _release_memory()
        on_pages_freed()
    # A BI tool may have opened the warehouse while the API was being read: wait for it (or
    # fail with the one clear line) before dlt tries to write.
    wait_for_warehouse(settings)
    with timed() as normalize:
        pipeline.normalize()
    seconds["normalize"] = normalize[0]
    committed = [t for t in data_resources if t not in listings and t not in stats.skipped]
    with timed() as load:
        pipeline.load()
        # The commit marker, written only once the data load succeeded.
        pipeline.run(provider.sync_windows(request, committed))
    seconds["load"] = load[0]
    _release_memory()
    rows = dict(stats.rows)
    for phase, value in seconds.items():
        record_phase(
            settings,
            run_id=run_id,
            connection=connection,
            phase=phase,
            seconds=value,
            **({"rows": sum(rows.values())} if phase == "extract" else {}),
        )
    return WindowLoad(
        connection=connection,
        window=window,
        sync_id=request.sync_id,
        rows=rows,
        cost_usd_by_day=dict(stats.cost_usd_by_day),
        committed_tables=committed,
        notes=list(stats.notes),
        cost_rows_by_day=dict(stats.cost_rows_by_day),
        requests_by_path=requests,
        seconds=seconds,
    )
