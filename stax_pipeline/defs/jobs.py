"""The one job that syncs: every asset that writes the warehouse, for a range of days of one
connection. The CLI, the schedule, the sensor and the UI all run it; a run selects its
connection's provider's ingest asset and the marts (``defs/ingest.sync_selection``)."""

from dagster import AssetSelection, define_asset_job

from stax_pipeline.defs.dbt.assets import stax_dbt_assets
from stax_pipeline.defs.ingest import INGEST_ASSETS

SYNC_JOB_NAME = "stax_sync"

sync_job = define_asset_job(
    SYNC_JOB_NAME,
    selection=AssetSelection.assets(*INGEST_ASSETS.values(), stax_dbt_assets),
    description="Pull a window of days for a connection and rebuild the marts for exactly it.",
)
