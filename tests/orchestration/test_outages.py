"""A flaky API ridden out by a real sync: rate limits, 5xx, an outage, dropped connections.

Real parts throughout: the simulator over HTTP with its fault switches, dlt into a DuckDB file,
dbt, and Dagster (in-process, as `stax sync` runs it; the first test is `stax sync` itself). Every
scenario must end in success with marts equal to the simulator's ground truth to 1e-6 USD.
Backoffs are shrunk through the environment (conftest's ``stax_home``), never slept for real.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import pytest
from dagster import DagsterEventType

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.orchestration import dagster_instance, run_sync
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults, Simulator
from tests.cli.test_connect import STAX, stax
from tests.conftest import ADMIN_KEY, TODAY

# Ten closed days in 2-day pages: 5 pages an endpoint, 56 requests with projects.
WINDOW = SyncWindow(TODAY - timedelta(days=11), TODAY - timedelta(days=1))
PAGE_SIZE = 2


def assert_marts_equal_truth(settings, org, window: SyncWindow) -> None:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        by_day = dict(
            con.execute(
                "select date, sum(cost_usd) from marts.fct_spend_daily where connection = 'acme' group by 1"
            ).fetchall()
        )
        by_model = {
            (d, m): (c, i, o, r)
            for d, m, c, i, o, r in con.execute(
                """select date, model, sum(cost_usd), sum(input_tokens), sum(output_tokens),
                      sum(num_model_requests)
               from marts.fct_model_spend_daily where connection = 'acme' group by 1, 2"""
            ).fetchall()
        }
    finally:
        con.close()
    truth = org.cost_total_by_day(window.start, window.end)
    assert sum(truth.values()) > 0
    assert set(by_day) == {day for day, usd in truth.items() if usd}
    for day in window.days():
        assert by_day.get(day, 0.0) == pytest.approx(truth.get(day, 0.0), abs=1e-6), day
    costs: dict[tuple, float] = defaultdict(float)
    for key, usd in org.cost_by_day_model(window.start, window.end).items():
        costs[key] += usd
    for key, usd in costs.items():
        assert by_model[key][0] == pytest.approx(usd, abs=1e-6), key
    usage: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (day, _, model, _), row in org.model_spend_by_day(window.start, window.end).items():
        if model is not None:  # every endpoint's usage of the model, fine-tunes under their billed name
            for i, unit in enumerate(("input_tokens", "output_tokens", "num_model_requests")):
                usage[(day, model)][i] += row[unit]
    for key, units in usage.items():
        assert by_model[key][1:] == tuple(units), key


def _step_events(instance, run_id: str, event_type: DagsterEventType) -> list[str]:
    records = instance.get_records_for_run(run_id).records
    return [
        r.event_log_entry.dagster_event.step_key
        for r in records
        if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.event_type == event_type
    ]


def _sync(simulator, faults: Faults):
    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    instance = dagster_instance(settings)
    simulator.faults = faults
    outcome = run_sync(instance, "acme", WINDOW)
    assert outcome.success, outcome.error
    assert_marts_equal_truth(settings, simulator.org_for_key(ADMIN_KEY), WINDOW)
    return instance, outcome


def test_an_outage_and_dropped_connections_mid_backfill_are_ridden_out(stax_home, simulator, monkeypatch):
    monkeypatch.setenv("STAX_HTTP_MAX_RETRY_SECONDS", "20")  # longer than the outage
    monkeypatch.setenv("STAX_HTTP_BACKOFF_FLOOR_SECONDS", "0.05")
    faults = Faults(page_size=PAGE_SIZE, outage_at_request=20, outage_seconds=3, drop_mid_response_every=9)
    began = time.monotonic()
    instance, outcome = _sync(simulator, faults)
    assert time.monotonic() - began > 3  # the outage happened, and was waited out
    served = len(simulator.requests)
    assert served > 20 + 3  # the outage's failed requests came on top of the pages
    # Ridden out inside the HTTP client: Dagster did not need to retry the step.
    assert _step_events(instance, outcome.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == []


def test_an_outage_longer_than_the_retry_limit_is_retried_by_dagster_and_repulls_cleanly(
    stax_home, simulator, monkeypatch
):
    # 1 s of retries per request cannot outlast a 1.6 s outage: the ingest step fails, Dagster
    # retries it (after about 1 s) and the retry re-pulls the whole window from scratch.
    monkeypatch.setenv("STAX_HTTP_MAX_RETRY_SECONDS", "1")
    monkeypatch.setenv("STAX_HTTP_BACKOFF_FLOOR_SECONDS", "0.05")
    faults = Faults(page_size=PAGE_SIZE, outage_at_request=10, outage_seconds=1.6)
    instance, outcome = _sync(simulator, faults)
    retried = _step_events(instance, outcome.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert retried == ["raw_openai"]  # the ingest step, once; never the dbt step
    costs_pages = [p for p, _ in simulator.requests if p == "/v1/organization/costs"]
    assert len(costs_pages) >= 2 * 5  # the window's 5 pages were pulled again by the retry
    # The failed attempt's rows (if any reached raw) were never committed, so nothing doubled:
    # assert_marts_equal_truth in _sync.


@pytest.mark.parametrize(
    ("scenario", "step_retries", "says"),
    [
        ("revoked key", 0, r"failed with HTTP 401: .* reconnect with a valid admin key"),
        (
            "endless outage",
            2,
            r"failed with HTTP 503: The server is overloaded or not ready yet\. "
            r"\(still failing after [\d.]+s of retries, the limit per request "
            r"\(STAX_HTTP_MAX_RETRY_SECONDS=0\.2\); .* run the sync again later\)$",
        ),
    ],
)
def test_what_retries_cannot_fix_fails_with_one_clear_line(
    stax_home, simulator, monkeypatch, scenario, step_retries, says
):
    monkeypatch.setenv("STAX_HTTP_MAX_RETRY_SECONDS", "0.2")
    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    instance = dagster_instance(settings)
    if scenario == "revoked key":
        simulator.revoke(ADMIN_KEY)
    else:
        simulator.faults = Faults(outage_at_request=1, outage_seconds=3600)
    outcome = run_sync(instance, "acme", WINDOW)
    assert not outcome.success
    assert re.match(r"GET /organization/\S+ " + says, outcome.error), outcome.error
    assert "\n" not in outcome.error and ADMIN_KEY not in outcome.error
    retried = _step_events(instance, outcome.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert retried == ["raw_openai"] * step_retries


# -- the scenario through the command line, as a person (or the harness) runs it ----------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stax_sync_rides_out_429_bursts_5xx_and_small_pages(stax_home, monkeypatch):
    """Two 429s at the start of each endpoint, a 429 every 7th request, 20% 5xx, 5-bucket pages,
    30 days: exit 0 and marts equal to the simulator's truth."""
    port = _free_port()
    simulator = subprocess.Popen(
        [
            STAX,
            "simulator",
            "--port",
            str(port),
            "--rate-limit-per-endpoint",
            "2",
            "--rate-limit-every",
            "7",
            "--error-rate",
            "0.2",
            "--page-size",
            "5",
            "--retry-after",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 30
        while True:  # poll until it listens (it answers 401 without a key)
            try:
                httpx.get(f"{base_url}/organization/projects", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and simulator.poll() is None, "simulator down"
                time.sleep(0.05)
        monkeypatch.setenv("STAX_OPENAI_BASE_URL", base_url)
        connected = stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY)
        assert connected.returncode == 0, connected.stderr
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        window = SyncWindow(yesterday - timedelta(days=29), yesterday + timedelta(days=1))
        synced = stax("sync", "--connection", "acme", "--start", str(window.start), "--end", str(window.last))
        assert synced.returncode == 0, synced.stderr
        assert "HTTP 429" in synced.stderr and "HTTP 50" in synced.stderr  # faults were served
    finally:
        simulator.send_signal(signal.SIGINT)
        simulator.wait(timeout=30)
    # The simulator's data is a pure function of (key, day): an in-process twin knows the truth.
    assert_marts_equal_truth(load_settings(), Simulator().org_for_key(ADMIN_KEY), window)
