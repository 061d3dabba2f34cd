"""A sync sends a connection's key only to the API the connection was made against: a real
connection never syncs against the simulator STAX_OPENAI_BASE_URL points at, and a simulator
answering in its place ends the sync before any simulated row lands."""

from __future__ import annotations

import duckdb

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.orchestration import dagster_instance, run_sync
from stax_pipeline.settings import load_settings
from tests.conftest import ADMIN_KEY, TODAY
from tests.sources.test_http_secrets import plain_api

WINDOW = SyncWindow.inclusive(TODAY.replace(day=1), TODAY.replace(day=2))


def _rows(settings, connection: str) -> int:
    if not settings.warehouse_path.exists():
        return 0
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.columns where column_name = 'connection'"
        ).fetchall()
        return sum(
            con.execute(
                f'select count(*) from "{schema}"."{table}" where connection = ?', [connection]
            ).fetchall()[0][0]
            for schema, table in tables
        )


def test_a_real_connection_syncs_against_its_stored_api_only(stax_home, simulator):
    """STAX_OPENAI_BASE_URL points at the simulator (the fixture); the connection was made
    against another API, which gets the key, and the simulator nothing."""
    settings = load_settings()
    with plain_api(401, lambda token: {"error": {"message": "Incorrect API key provided"}}) as (
        url,
        received,
    ):
        ConnectionStore(settings).add("prod", "openai", ADMIN_KEY, base_url=url, simulated=False)
        outcome = run_sync(dagster_instance(settings), "prod", WINDOW)
    assert not outcome.success and "HTTP 401" in outcome.error
    assert received and set(received) == {ADMIN_KEY}
    assert simulator.requests == []
    assert _rows(settings, "prod") == 0


def test_the_simulator_answering_a_real_connection_ends_the_sync(stax_home, simulator):
    settings = load_settings()
    ConnectionStore(settings).add("prod", "openai", ADMIN_KEY, base_url=simulator.base_url, simulated=False)
    outcome = run_sync(dagster_instance(settings), "prod", WINDOW)
    assert not outcome.success
    assert "answered as the Stax simulator" in outcome.error and ADMIN_KEY not in outcome.error
    assert _rows(settings, "prod") == 0  # no simulated day replaced a real one
    assert len(simulator.requests) <= 12  # the first answer of each endpoint ended it: no retries
