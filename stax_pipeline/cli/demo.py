"""`stax demo`: realistic organizations of every provider end to end, with no account and no network."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.errors import UsageError
from stax_pipeline.settings import load_settings

# One demo organization per provider: (connection name, provider, the simulator's key for it).
DEMO_CONNECTIONS = (
    ("demo", "openai", "sk-admin-demo-5f2c9a7e41b84d0c"),
    ("demo-claude", "anthropic", "sk-ant-admin01-demo-8c41e0b7d29a6f35"),
)  # the simulator's demo organizations, not secrets


def run_demo() -> int:
    """Simulator on a free loopback port → one demo connection per provider → 30-day backfills
    → report across providers."""
    from stax_pipeline.cli.report import spend_report
    from stax_pipeline.lib.window import backfill_window
    from stax_pipeline.orchestration import dagster_instance
    from stax_pipeline.providers import get_provider
    from stax_pipeline.simulator import run_simulator
    from stax_pipeline.usecases import connect, run_backfill, sync_one

    with run_simulator() as sim:
        assert sim.base_url is not None  # set once it serves
        for _, provider_name, _ in DEMO_CONNECTIONS:  # the simulator answers every provider's API
            os.environ[get_provider(provider_name).base_url_variable] = sim.base_url
        settings = load_settings()
        store = ConnectionStore(settings)
        print(f"Simulated Admin APIs (OpenAI, Anthropic) at {sim.base_url}")
        for name, provider_name, key in DEMO_CONNECTIONS:
            if store.exists(name) and not store.get(name).simulated:
                # Made before connections kept their API: it counts as real, so it is never sent here.
                raise UsageError(
                    f"the connection {name!r} in {settings.home} was not made against the "
                    f"simulator; run `stax disconnect {name} --purge`, then `stax demo` again"
                )
            if not store.exists(name):
                connect(provider_name, name, lambda prompt, key=key: key)
            if store.get(name).backfilled_at is None:
                if not run_backfill(dagster_instance(settings), store, name):
                    return 1
            else:  # a demo that already ran: refresh its last 30 days
                window = backfill_window(datetime.now(UTC).date())
                if not sync_one(dagster_instance(settings), store, name, window, "re-syncing").success:
                    return 1
        print()
        print(spend_report(settings, None, 30, datetime.now(UTC).date()))
    print()
    print(f"Warehouse: {settings.warehouse_path}")
    print("Open the Dagster UI on it:  make ui   (then http://127.0.0.1:3000)")
    print(
        f"Query it (BI tools too):    duckdb -readonly {settings.marts_path} "
        '"select * from marts.fct_model_spend_daily limit 10"'
    )
    window = backfill_window(datetime.now(UTC).date())
    print(
        f"Export it as FOCUS 1.3:     stax export focus --start {window.start} --end {window.last} "
        f"--out {settings.home / 'focus'}"
    )
    print("To sync the demo connections again, run `stax demo` again (it starts the simulator).")
    return 0
