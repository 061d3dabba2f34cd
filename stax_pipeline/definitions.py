"""The Dagster entry point: ``stax_pipeline.definitions:defs`` (loaded by workspace.yaml)."""

from dagster import Definitions
from dagster_dlt import DagsterDltResource

from stax_pipeline.defs.dbt.assets import stax_dbt_assets
from stax_pipeline.defs.dbt.project import stax_dbt_project
from stax_pipeline.defs.jobs import sync_job
from stax_pipeline.defs.maintenance import dead_run_recovery
from stax_pipeline.defs.openai.assets import openai_admin_assets
from stax_pipeline.defs.schedules import nightly_sync
from stax_pipeline.defs.sensors import new_connection_backfill
from stax_pipeline.lib.dbt import StaxDbtCliResource, dbt_executable

defs = Definitions(
    assets=[openai_admin_assets, stax_dbt_assets],
    jobs=[sync_job],
    schedules=[nightly_sync],
    sensors=[new_connection_backfill, dead_run_recovery],
    resources={
        "dlt": DagsterDltResource(),
        "dbt": StaxDbtCliResource(project_dir=stax_dbt_project, dbt_executable=dbt_executable()),
    },
)
