"""The Dagster entry point: ``stax_pipeline.definitions:defs`` (loaded by workspace.yaml)."""

import os
from pathlib import Path

from dagster import Definitions

from stax_pipeline.defs.dbt.assets import stax_dbt_assets
from stax_pipeline.defs.ingest import INGEST_ASSETS
from stax_pipeline.defs.jobs import sync_job
from stax_pipeline.defs.maintenance import dead_run_recovery
from stax_pipeline.defs.schedules import nightly_sync
from stax_pipeline.defs.sensors import backfill_run_sensors, new_connection_backfill
from stax_pipeline.lib.dagster_storage import install_fast_event_storage

# Run workers and code servers of `make ui` / the daemon write the same instance's storage.
if os.environ.get("DAGSTER_HOME"):
    install_fast_event_storage(Path(os.environ["DAGSTER_HOME"]))

defs = Definitions(
    assets=[*INGEST_ASSETS.values(), stax_dbt_assets],
    jobs=[sync_job],
    schedules=[nightly_sync],
    sensors=[new_connection_backfill, *backfill_run_sensors, dead_run_recovery],
)
