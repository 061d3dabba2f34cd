"""marts.focus_cost_and_usage against FOCUS 1.3, built from real simulator data.

Two organizations are pulled from the simulator over HTTP by the sync's own ingest (dlt into
DuckDB) and built by dbt: acme over a month boundary, globex up to a day the API then restates;
that day is re-pulled and rebuilt for its window alone, as the nightly sync does. Every mandatory
FOCUS 1.3 column (and 1.2's ProviderName and PublisherName) must be there with the spec's type
and null rule, values must be allowed ones, and sum(BilledCost) must equal the marts' spend and
the simulator's own truth to 1e-6 USD, per connection and window. (Each build also ran the
windowed dbt test of the same rules, assert_focus_cost_and_usage_conforms, and must pass it.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults, Simulator, run_simulator
from tests.conftest import ADMIN_KEY, SIMULATOR_NOW, TODAY, load_from_api
from tests.dbt.test_dbt_project import dbt_build

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
GLOBEX_KEY = "sk-admin-test-globex-0b9d41c7e2"
TOLERANCE = 1e-6

# What FOCUS 1.3 says of each mandatory column of its Cost and Usage dataset (the specification's
# columns/*.md, read from github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec): the DuckDB type
# Stax gives its FOCUS type (Decimal -> DOUBLE, the API's own precision; Date/Time -> TIMESTAMP
# WITH TIME ZONE in UTC; String -> VARCHAR) and whether the spec allows nulls. ProviderName and
# PublisherName are 1.2's mandatory columns that 1.3 deprecates: still MUST NOT be null.
DECIMAL, DATETIME, STRING, KEY_VALUE = "DOUBLE", "TIMESTAMP WITH TIME ZONE", "VARCHAR", "JSON"
MANDATORY: dict[str, tuple[str, bool]] = {  # column -> (type, nullable)
    "BilledCost": (DECIMAL, False),
    "BillingAccountId": (STRING, False),
    "BillingAccountName": (STRING, False),  # null only where the issuer names no account: never here
    "BillingCurrency": (STRING, False),
    "BillingPeriodEnd": (DATETIME, False),
    "BillingPeriodStart": (DATETIME, False),
    "ChargeCategory": (STRING, False),
    "ChargeClass": (STRING, True),  # null unless the charge corrects a closed billing period
    "ChargeDescription": (STRING, True),  # SHOULD NOT be null
    "ChargePeriodEnd": (DATETIME, False),
    "ChargePeriodStart": (DATETIME, False),
    "ContractedCost": (DECIMAL, False),
    "EffectiveCost": (DECIMAL, False),
    "HostProviderName": (STRING, False),
    "InvoiceIssuerName": (STRING, False),
    "ListCost": (DECIMAL, False),
    "PricingQuantity": (DECIMAL, True),  # null for Tax; not null for Usage where a quantity exists
    "PricingUnit": (STRING, True),  # null exactly when PricingQuantity is null
    "ServiceCategory": (STRING, False),
    "ServiceName": (STRING, False),
    "ServiceProviderName": (STRING, False),
    "ProviderName": (STRING, False),
    "PublisherName": (STRING, False),
}
# Conditional columns the API lets Stax fill, with their FOCUS types.
CONDITIONAL = {
    "ConsumedQuantity": DECIMAL,
    "ConsumedUnit": STRING,
    "ResourceId": STRING,
    "SkuId": STRING,
    "SubAccountId": STRING,
    "SubAccountName": STRING,
    "Tags": KEY_VALUE,
}
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
SERVICE_CATEGORIES = {
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
}

# acme across the October/November boundary; globex ending on the day the API restates.
ACME_WINDOW = SyncWindow.inclusive(date(2026, 10, 31), date(2026, 11, 1))
GLOBEX_WINDOW = SyncWindow.inclusive(TODAY - timedelta(days=3), TODAY - timedelta(days=1))
RESTATED = SyncWindow.inclusive(GLOBEX_WINDOW.last, GLOBEX_WINDOW.last)


def _load(settings, name: str, key: str, window: SyncWindow, base_url: str) -> None:
    """The ingest the Dagster asset runs: the window into raw_openai, then its commit marker."""
    load_from_api(settings, base_url, connection=name, window=window, api_key=key)


def _dbt_build(home: Path, window: SyncWindow | None = None, connections: list[str] | None = None) -> None:
    """`dbt build` as a sync runs it: for the window in STAX_DBT_WINDOW when one is given, else
    every day."""
    statuses = dbt_build(
        home, window=window, connections=connections, unit_tests=False, select="focus_cost_and_usage"
    )
    assert "test.stax.assert_focus_cost_and_usage_conforms" in statuses


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both organizations loaded and built; then globex's last day re-pulled once the API restated
    it and rebuilt for that window only, as the nightly sync does."""
    home = tmp_path_factory.mktemp("focus") / "stax-home"
    with (
        pytest.MonkeyPatch.context() as env,
        run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0)) as simulator,
    ):
        env.setenv("STAX_HOME", str(home))
        env.delenv("STAX_LOOKBACK_DAYS", raising=False)
        settings = load_settings()
        _load(settings, "acme", ADMIN_KEY, ACME_WINDOW, simulator.base_url)
        _load(settings, "globex", GLOBEX_KEY, GLOBEX_WINDOW, simulator.base_url)
        _dbt_build(home)
        simulator.faults = Faults(revision=1, revised_days=1, retry_after=0)  # only the last day
        _load(settings, "globex", GLOBEX_KEY, RESTATED, simulator.base_url)
        _dbt_build(home, RESTATED, ["globex"])
        # dbt ran in this process and keeps its DuckDB instance: connect with its configuration
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            yield {"con": con, "simulator": simulator}
        finally:
            con.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def test_every_mandatory_column_has_the_spec_type_and_null_rule(built):
    con = built["con"]
    types = dict(_rows(con, "select column_name, column_type from (describe marts.focus_cost_and_usage)"))
    for column, (focus_type, _) in MANDATORY.items():
        assert types.get(column) == focus_type, column
    for column, focus_type in CONDITIONAL.items():
        assert types.get(column) == focus_type, column
    # FOCUS columns first, then only x_-prefixed ones (FOCUS's rule for custom columns)
    names = list(types)
    custom = [
        n
        for n in names
        if not (n in MANDATORY or n in CONDITIONAL or n in ("ChargeFrequency", "ServiceSubcategory"))
    ]
    assert custom and all(n.startswith("x_") for n in custom), custom
    assert names[-len(custom) :] == custom

    total = _rows(con, "select count(*) from marts.focus_cost_and_usage")[0][0]
    assert total > 100
    for column, (_, nullable) in MANDATORY.items():
        if not nullable:
            nulls = _rows(con, f"select count(*) from marts.focus_cost_and_usage where {column} is null")
            assert nulls == [(0,)], column
    pairs = _rows(
        con,
        """
        select
            count(*) filter (where (PricingQuantity is null) != (PricingUnit is null)),
            count(*) filter (where (ConsumedQuantity is null) != (ConsumedUnit is null)),
            count(*) filter (where (SubAccountId is null) != (SubAccountName is null)),
            count(*) filter (where ChargeClass is not null),
            count(*) filter (where ChargeDescription is null or SkuId is null)
        from marts.focus_cost_and_usage""",
    )
    assert pairs == [(0, 0, 0, 0, 0)]


def test_quantities_are_there_wherever_the_api_gives_them(built):
    con = built["con"]
    ((quantities, priced, consumed, units),) = _rows(
        con,
        """
        select count(s.quantity), count(f.PricingQuantity), count(f.ConsumedQuantity),
               list_sort(list_distinct(list(f.PricingUnit)))
        from marts.fct_spend_daily s
        join marts.focus_cost_and_usage f
          on f.x_Connection = s.connection and f.x_ChargeDate = s.date
         and f.ChargeDescription = s.line_item
         and f.SubAccountId is not distinct from s.project_id
         and f.ResourceId is not distinct from s.api_key_id""",
    )
    assert quantities == priced == consumed > 0
    # the API's units in FOCUS Unit Format; 'Units' where it gives a count without a unit
    assert set(units) <= {"Tokens", "1000 Tokens", "Images", "Characters", "Seconds", "GiB-Hours", "Units"}
    assert {"Tokens", "Units"} <= set(units)


def test_values_are_ones_the_spec_allows(built):
    con = built["con"]

    def distinct(expression: str) -> set:
        return {v for (v,) in _rows(con, f"select distinct {expression} from marts.focus_cost_and_usage")}

    assert distinct("ChargeCategory") == {"Usage"} <= CHARGE_CATEGORIES
    assert distinct("ServiceCategory") == {"AI and Machine Learning"} <= SERVICE_CATEGORIES
    assert distinct("ServiceSubcategory") == {"Generative AI"}  # a subcategory of AI and Machine Learning
    assert distinct("BillingCurrency") == {"USD"}
    assert distinct("ChargeFrequency") == {"Usage-Based"}
    assert distinct(
        "concat_ws('|', ServiceProviderName, HostProviderName, InvoiceIssuerName, ProviderName, "
        "PublisherName)"
    ) == {"|".join(["OpenAI"] * 5)}


def test_periods_are_the_utc_day_inside_its_calendar_month(built):
    con = built["con"]
    rows = _rows(
        con,
        """
        select distinct x_ChargeDate, ChargePeriodStart, ChargePeriodEnd, BillingPeriodStart, BillingPeriodEnd
        from marts.focus_cost_and_usage where x_Connection = 'acme' order by 1""",
    )
    assert [r[0] for r in rows] == ACME_WINDOW.days()  # October 31st and November 1st
    for day, start, end, month_start, month_end in rows:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        assert (start, end) == (midnight, midnight + timedelta(days=1))
        assert start.utcoffset() == timedelta(0)
        first = datetime(day.year, day.month, 1, tzinfo=UTC)
        following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
        assert (month_start, month_end) == (first, following)


def test_accounts_projects_and_tags_name_what_was_billed(built):
    con, simulator = built["con"], built["simulator"]
    for name, key in (("acme", ADMIN_KEY), ("globex", GLOBEX_KEY)):
        org = simulator.org_for_key(key)
        accounts = _rows(
            con,
            "select distinct BillingAccountId, BillingAccountName "
            "from marts.focus_cost_and_usage where x_Connection = ?",
            [name],
        )
        assert accounts == [(org.org_id, name)]
        names = {p["id"]: p["name"] for p in org.projects}
        projects = _rows(
            con,
            "select distinct SubAccountId, SubAccountName from marts.focus_cost_and_usage "
            "where x_Connection = ? and SubAccountId is not null",
            [name],
        )
        assert projects and all(names[pid] == pname for pid, pname in projects)
    for tags, project_id, key_id, model, charge_type in _rows(
        con,
        """
            select cast(Tags as varchar), SubAccountId, ResourceId, x_Model, x_ChargeType
            from marts.focus_cost_and_usage""",
    ):
        parsed = json.loads(tags)
        assert isinstance(parsed, dict)
        assert all(isinstance(v, (str, int, float, bool)) for v in parsed.values())
        assert all(k.startswith("stax/") for k in parsed)  # FOCUS: provider-defined tags are prefixed
        assert parsed.get("stax/project_id") == project_id
        assert parsed.get("stax/api_key_id") == key_id
        assert parsed.get("stax/model") == model and parsed.get("stax/charge_type") == charge_type


@pytest.mark.parametrize(
    ("name", "key", "window"),
    [
        ("acme", ADMIN_KEY, ACME_WINDOW),
        ("globex", GLOBEX_KEY, GLOBEX_WINDOW),
    ],
)
def test_billed_cost_equals_the_marts_and_the_api_per_connection_and_window(built, name, key, window):
    con, simulator = built["con"], built["simulator"]
    focus = dict(
        _rows(
            con,
            """
        select x_ChargeDate, sum(BilledCost) from marts.focus_cost_and_usage
        where x_Connection = ? and x_ChargeDate >= ? and x_ChargeDate < ? group by 1""",
            [name, window.start, window.end],
        )
    )
    marts = dict(
        _rows(
            con,
            """
        select date, sum(cost_usd) from marts.fct_spend_daily
        where connection = ? and date >= ? and date < ? group by 1""",
            [name, window.start, window.end],
        )
    )
    truth = simulator.org_for_key(key).cost_total_by_day(window.start, window.end)  # globex: restated
    assert set(focus) == set(marts) == {d for d, v in truth.items() if v}
    for day, value in truth.items():
        assert focus.get(day, 0.0) == pytest.approx(marts.get(day, 0.0), abs=TOLERANCE), day
        assert focus.get(day, 0.0) == pytest.approx(value, abs=TOLERANCE), day
    assert sum(focus.values()) == pytest.approx(sum(truth.values()), abs=TOLERANCE)
    counts = _rows(
        con,
        """
        select (select count(*) from marts.focus_cost_and_usage where x_Connection = $1),
               (select count(*) from marts.fct_spend_daily where connection = $1)""",
        [name],
    )
    assert counts[0][0] == counts[0][1]  # one FOCUS row per charge, none dropped or doubled
    # the restated day differs from what the API first said: the view followed the re-sync
    if name == "globex":
        original = (
            Simulator(now=lambda: SIMULATOR_NOW)
            .org_for_key(key)
            .cost_total_by_day(RESTATED.start, RESTATED.end)[RESTATED.start]
        )
        assert abs(original - focus[RESTATED.start]) > TOLERANCE
