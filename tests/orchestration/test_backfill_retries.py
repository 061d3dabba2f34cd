"""A daemon backfill always finishes: its run carries its claim; when the run ends, a run-status
sensor marks it done or releases the claim with the reason and a retry time, and the backfill
sensor retries it after the backoff. Real instance under STAX_HOME, real runs against the
simulator, sensors evaluated on real ticks."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterRunStatus, RunRequest, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.definitions import defs
from stax_pipeline.defs.jobs import SYNC_JOB_NAME
from stax_pipeline.defs.sensors import BACKFILL_CLAIM_TAG, BACKFILL_TAG
from stax_pipeline.lib.window import SyncWindow, range_run_tags
from stax_pipeline.orchestration import dagster_instance, register_connection
from stax_pipeline.settings import load_settings
from tests.conftest import ADMIN_KEY, TODAY

REVOKED_KEY = "sk-admin-test-revoked-5b0c2d7e"  # the simulator answers it 401


class Ticks:
    """Evaluates one sensor tick after another on the instance, carrying its cursor."""

    def __init__(self, instance, name: str) -> None:
        self.instance, self.sensor, self.cursor = instance, defs.get_sensor_def(name), None

    def __call__(self):
        result = self.sensor.evaluate_tick(build_sensor_context(instance=self.instance, cursor=self.cursor))
        self.cursor = result.cursor
        return result


def _execute(instance, request: RunRequest, tags: dict[str, str] | None = None) -> DagsterRunStatus:
    """Run the sync job in-process as the daemon runs a run request: its assets, its tags (or
    ``tags`` instead)."""
    result = defs.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
        instance=instance,
        asset_selection=request.asset_selection,
        tags=request.tags if tags is None else tags,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    return instance.get_run_by_id(result.run_id).status


def _as_if_later(settings, column: str, name: str, moved_back: timedelta) -> None:
    """Move a stored backfill time into the past: what waiting that long would do."""
    with sqlite3.connect(settings.app_db_path) as db:
        (value,) = db.execute(f"SELECT {column} FROM connections WHERE name = ?", (name,)).fetchone()
        earlier = datetime.fromisoformat(value) - moved_back
        db.execute(f"UPDATE connections SET {column} = ? WHERE name = ?", (earlier.isoformat(), name))


def _backfill_requests(ticks: Ticks) -> list[RunRequest]:
    return list(ticks().run_requests or [])


def test_failed_backfill_is_released_with_its_reason_and_retried_after_the_backoff(stax_home, simulator):
    settings = load_settings()
    store = ConnectionStore(settings)
    instance = dagster_instance(settings)
    connection = store.add("acme", "openai", REVOKED_KEY)
    backfill = Ticks(instance, "new_connection_backfill")
    on_failure = Ticks(instance, "backfill_run_failure")
    on_cancel = Ticks(instance, "backfill_run_canceled")
    assert on_failure().skip_message.startswith("Initiating") and on_cancel().cursor  # cursors set

    [request] = _backfill_requests(backfill)
    claim = request.tags[BACKFILL_CLAIM_TAG]
    assert request.tags[BACKFILL_TAG] == connection.id
    assert request.run_key == f"backfill:{connection.id}:{claim}"
    assert store.get("acme").backfill_state == "running"
    register_connection(instance, "acme")  # the tick's partition request, applied by the daemon
    assert _execute(instance, request) == DagsterRunStatus.FAILURE

    before = datetime.now(UTC)
    on_failure()
    failed = store.get("acme")
    assert failed.backfill_state == "failed"
    assert "HTTP 401" in failed.backfill_error and REVOKED_KEY not in failed.backfill_error
    assert failed.backfill_attempts == 1
    assert (
        before + timedelta(minutes=1) <= failed.backfill_retry_at <= datetime.now(UTC) + timedelta(minutes=1)
    )
    on_failure()
    assert store.get("acme").backfill_attempts == 1  # an outcome is applied once

    assert _backfill_requests(backfill) == []  # not before its retry time
    _as_if_later(settings, "backfill_retry_at", "acme", timedelta(minutes=1))
    [retry] = _backfill_requests(backfill)
    assert retry.tags[BACKFILL_CLAIM_TAG] != claim and retry.run_key != request.run_key
    assert store.get("acme").backfill_state == "running"

    # The retry is canceled before it runs: released again, and the next wait is twice as long.
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    queued = instance.create_run_for_job(job, tags=retry.tags)
    instance.report_run_canceled(queued)
    before = datetime.now(UTC)
    on_cancel()
    canceled = store.get("acme")
    assert (canceled.backfill_state, canceled.backfill_error, canceled.backfill_attempts) == (
        "failed",
        "the run was canceled",
        2,
    )
    assert canceled.backfill_retry_at >= before + timedelta(minutes=2)
    assert _backfill_requests(backfill) == []


def test_successful_backfill_run_marks_it_done(stax_home, simulator):
    settings = load_settings()
    store = ConnectionStore(settings)
    instance = dagster_instance(settings)
    store.add("acme", "openai", ADMIN_KEY)
    on_success = Ticks(instance, "backfill_run_success")
    on_success()
    [request] = _backfill_requests(Ticks(instance, "new_connection_backfill"))
    register_connection(instance, "acme")
    # Two days, not the sensor's 30: syncing a connection's first 30 days completes its backfill
    # by itself, and this checks that the run's end does.
    window = SyncWindow(TODAY - timedelta(days=3), TODAY - timedelta(days=1))
    tags = {**request.tags, **range_run_tags("acme", window)}
    assert tags[ASSET_PARTITION_RANGE_START_TAG] == f"acme|{window.start}"
    assert tags[ASSET_PARTITION_RANGE_END_TAG] == f"acme|{window.last}"
    assert _execute(instance, request, tags) == DagsterRunStatus.SUCCESS
    assert store.get("acme").backfill_state == "running"
    on_success()
    done = store.get("acme")
    assert done.backfill_state == "done" and done.backfilled_at is not None
    assert store.synced_days("acme") == window.days()
    assert _backfill_requests(Ticks(instance, "new_connection_backfill")) == []


@pytest.mark.parametrize("launched", [False, True])
def test_a_claim_no_sensor_settled_is_settled_by_the_backfill_sensor(stax_home, launched):
    settings = load_settings()
    store = ConnectionStore(settings)
    instance = dagster_instance(settings)
    store.add("acme", "openai", ADMIN_KEY)
    backfill = Ticks(instance, "new_connection_backfill")
    [request] = _backfill_requests(backfill)
    if launched:  # its worker died; the run was marked failed while the run-status sensors were off
        register_connection(instance, "acme")
        job = defs.resolve_job_def(SYNC_JOB_NAME)
        run = instance.create_run_for_job(job, tags=request.tags)
        instance.report_run_failed(run, message="Run worker process 4242 is gone\n(details)")
    assert _backfill_requests(backfill) == [] and store.get("acme").backfill_state == "running"
    _as_if_later(settings, "backfill_claimed_at", "acme", timedelta(minutes=11))
    assert _backfill_requests(backfill) == []  # released, with a retry time
    released = store.get("acme")
    assert released.backfill_state == "failed" and released.backfill_attempts == 1
    assert released.backfill_error == (
        "Run worker process 4242 is gone" if launched else "no run was launched for the backfill"
    )
