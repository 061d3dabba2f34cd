"""A connection synced from before its organization's first project: those days have no project
to put on the per-project spine, and the rollups' coverage test must still pass (a 3-year sync of
a young organization failed its dbt build on exactly these days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import load_settings
from tests.conftest import ADMIN_KEY, load_from_api
from tests.dbt.test_dbt_project import dbt_build


def test_days_before_the_first_project_build_and_stay_covered(stax_home, simulator):
    org = simulator.org_for_key(ADMIN_KEY)
    first_project_day = min(datetime.fromtimestamp(p["created_at"], UTC).date() for p in org.projects)
    # from a day without spend before the first project: the day the old check refused
    costs = org.cost_total_by_day(first_project_day - timedelta(days=60), first_project_day)
    quiet_day = max(day for day, dollars in costs.items() if not dollars)
    window = SyncWindow(quiet_day - timedelta(days=1), first_project_day + timedelta(days=2))
    settings = load_settings()
    load_from_api(settings, simulator.base_url, connection="acme", window=window)
    statuses = dbt_build(stax_home)  # asserts every model and test succeeded
    assert statuses["test.stax.assert_daily_rollups_cover_every_synced_day"] == "pass"
    con = duckdb.connect(str(settings.warehouse_path))  # dbt ran in this process: same configuration
    try:
        by_connection = con.execute(
            "select count(*) from marts.fct_spend_daily_by_connection where date >= ? and date < ?",
            [window.start, window.end],
        ).fetchall()[0][0]
        before = con.execute(
            "select count(*) from marts.fct_spend_daily_by_project where date < ?", [first_project_day]
        ).fetchall()[0][0]
    finally:
        con.close()
    assert by_connection == window.num_days  # every synced day, $0 or not
    spent_before = sum(org.cost_total_by_day(window.start, first_project_day).values())
    assert spent_before > 0 or before == 0  # no project alive, nothing spent: no per-project row
