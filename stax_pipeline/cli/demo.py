"""`stax demo`: a realistic organization end to end, with no account and no network."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.errors import UsageError
from stax_pipeline.settings import load_settings

DEMO_CONNECTION = "demo"
DEMO_KEY = "sk-admin-demo-5f2c9a7e41b84d0c"  # the simulator's demo organization, not a secret


def run_demo() -> int:
    """Simulator on a free loopback port → demo connection → 30-day backfill → report."""
    from stax_pipeline.cli.report import spend_report
    from stax_pipeline.lib.window import backfill_window
    from stax_pipeline.orchestration import dagster_instance
    from stax_pipeline.simulator import run_simulator
    from stax_pipeline.usecases import connect, run_backfill, sync_one

    with run_simulator() as sim:
        os.environ["STAX_OPENAI_BASE_URL"] = sim.base_url
        settings = load_settings()
        store = ConnectionStore(settings)
        print(f"Simulated OpenAI Admin API at {sim.base_url}")
        if store.exists(DEMO_CONNECTION) and not store.get(DEMO_CONNECTION).simulated:
            # Made before connections kept their API: it counts as real, so it is never sent here.
            raise UsageError(
                f"the connection {DEMO_CONNECTION!r} in {settings.home} was not made against the "
                f"simulator; run `stax disconnect {DEMO_CONNECTION} --purge`, then `stax demo` again"
            )
        if not store.exists(DEMO_CONNECTION):
            connect("openai", DEMO_CONNECTION, lambda prompt: DEMO_KEY)
        if store.get(DEMO_CONNECTION).backfilled_at is None:
            if not run_backfill(dagster_instance(settings), store, DEMO_CONNECTION):
                return 1
        else:  # a demo that already ran: refresh its last 30 days
            window = backfill_window(datetime.now(UTC).date())
            instance = dagster_instance(settings)
            if not sync_one(instance, store, DEMO_CONNECTION, window, "re-syncing").success:
                return 1
        print()
        print(spend_report(settings, DEMO_CONNECTION, 30, datetime.now(UTC).date()))
    print()
    print(f"Warehouse: {settings.warehouse_path}")
    print("Open the Dagster UI on it:  make ui   (then http://127.0.0.1:3000)")
    print(f"Query it (BI tools too):    duckdb -readonly {settings.marts_path} "
          "\"select * from marts.fct_model_spend_daily limit 10\"")  # fmt: skip
    window = backfill_window(datetime.now(UTC).date())
    print(f"Export it as FOCUS 1.3:     stax export focus --start {window.start} --end {window.last} "
          f"--out {settings.home / 'focus'}")  # fmt: skip
    print("To sync the demo connection again, run `stax simulator` and set "
          "STAX_OPENAI_BASE_URL=http://127.0.0.1:8765/v1.")  # fmt: skip
    return 0
