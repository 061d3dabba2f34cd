"""`stax export focus` as a person runs it: a real `stax` process after a real connect and sync
against the simulator; the files it writes are read back and compared with the API's truth."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import duckdb
import pytest

from stax_pipeline.simulator import Faults, run_simulator
from tests.cli.test_connect import stax
from tests.conftest import ADMIN_KEY, SIMULATOR_NOW, TODAY

FIRST, LAST = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
TOLERANCE = 1e-6
MANDATORY = [  # FOCUS 1.3's mandatory Cost and Usage columns, and 1.2's ProviderName/PublisherName
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "HostProviderName",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ServiceCategory",
    "ServiceName",
    "ServiceProviderName",
    "ProviderName",
    "PublisherName",
]
# FOCUS text formats: DateTimeFormat ('YYYY-MM-DDTHH:mm:ssZ') and NumericFormat (no '+', E notation)
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
NUMBER = re.compile(r"-?\d+(\.\d+)?(E-?[1-9]\d*)?")


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A STAX_HOME where `stax connect` and `stax sync` brought acme's FIRST..LAST in."""
    home = tmp_path_factory.mktemp("export") / "stax-home"
    with (
        pytest.MonkeyPatch.context() as env,
        run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0)) as simulator,
    ):
        env.setenv("STAX_HOME", str(home))
        env.setenv("STAX_OPENAI_BASE_URL", simulator.base_url)
        env.delenv("STAX_MASTER_KEY", raising=False)
        env.delenv("STAX_LOOKBACK_DAYS", raising=False)
        connected = stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY)
        assert connected.returncode == 0, connected.stderr
        synced = stax("sync", "--connection", "acme", "--start", str(FIRST), "--end", str(LAST))
        assert synced.returncode == 0, synced.stderr
        org = simulator.org_for_key(ADMIN_KEY)
        yield {
            "home": home,
            "truth": org.cost_total_by_day(FIRST, LAST + timedelta(days=1)),
            "org_id": org.org_id,
        }


def _export(*args: str):
    result = stax("export", "focus", *args)
    return result, result.stdout.strip().splitlines()


def test_parquet_export_holds_every_charge_with_focus_columns_and_the_api_total(synced, tmp_path):
    out = tmp_path / "focus"  # created by the export
    result, lines = _export("--start", str(FIRST), "--end", str(LAST), "--out", str(out))
    assert result.returncode == 0, result.stderr
    path = out / f"focus_cost_and_usage_all_{FIRST}_{LAST}.parquet"
    assert sorted(out.iterdir()) == [path]  # nothing else, no temporary file left behind
    truth = sum(synced["truth"].values())
    con = duckdb.connect()
    try:
        types = dict(
            con.execute(f"select column_name, column_type from (describe select * from '{path}')").fetchall()
        )
        rows, billed, days, accounts = con.execute(
            f"select count(*), sum(BilledCost), list(distinct x_ChargeDate order by x_ChargeDate), "
            f"list(distinct BillingAccountId) from '{path}'"
        ).fetchall()[0]
    finally:
        con.close()
    assert set(MANDATORY) <= set(types)
    assert types["BilledCost"] == "DOUBLE" and types["Tags"] == "JSON"
    assert types["ChargePeriodStart"] == types["BillingPeriodEnd"] == "TIMESTAMP WITH TIME ZONE"
    assert billed == pytest.approx(truth, abs=TOLERANCE)
    assert days == [day for day in (FIRST, LAST) if synced["truth"][day]]
    assert accounts == [synced["org_id"]]
    with duckdb.connect(str(synced["home"] / "warehouse.duckdb"), read_only=True) as warehouse:
        charges = warehouse.execute(
            "select count(*) from marts.fct_spend_daily where date between ? and ?", [FIRST, LAST]
        ).fetchall()[0][0]
    assert rows == charges
    assert lines == [f"Wrote {rows:,} FOCUS 1.3 rows, BilledCost {truth:,.6f} USD, to {path}"]

    # Again, over a file that is in the way: replaced whole, the same rows
    path.write_bytes(b"not parquet")
    again, _ = _export("--start", str(FIRST), "--end", str(LAST), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert sorted(out.iterdir()) == [path]
    with duckdb.connect() as con:
        assert con.execute(f"select count(*), sum(BilledCost) from '{path}'").fetchall()[0] == (rows, billed)


def test_csv_export_of_one_connection_and_day_is_focus_text(synced, tmp_path):
    result, lines = _export(
        "--connection",
        "acme",
        "--start",
        str(LAST),
        "--end",
        str(LAST),
        "--out",
        str(tmp_path),
        "--format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"focus_cost_and_usage_acme_{LAST}_{LAST}.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames or []
    assert set(MANDATORY) <= set(header)
    assert header.index("Tags") < header.index("x_Connection")  # FOCUS columns before x_ ones
    assert rows and len(lines) == 1 and f"Wrote {len(rows):,} FOCUS 1.3 rows" in lines[0]
    for row in rows:
        assert row["ChargePeriodStart"] == f"{LAST}T00:00:00Z"
        assert row["ChargePeriodEnd"] == f"{LAST + timedelta(days=1)}T00:00:00Z"
        assert DATETIME.fullmatch(row["BillingPeriodStart"]) and DATETIME.fullmatch(row["BillingPeriodEnd"])
        for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
            assert NUMBER.fullmatch(row[column]), (column, row[column])
        assert row["PricingQuantity"] == "" or NUMBER.fullmatch(row["PricingQuantity"])
        assert (row["PricingQuantity"] == "") == (row["PricingUnit"] == "")
        assert row["ChargeCategory"] == "Usage" and row["ChargeClass"] == ""
        assert isinstance(json.loads(row["Tags"]), dict)
        assert row["x_Connection"] == "acme"
    total = sum(float(row["BilledCost"]) for row in rows)
    assert total == pytest.approx(synced["truth"][LAST], abs=TOLERANCE)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", str(LAST), "--end", str(FIRST)], "is before --start"),
        (["--start", "2026-13-01", "--end", str(LAST)], "not a date"),
        (["--start", str(FIRST)], "required: --end"),
        (["--connection", "nope", "--start", str(FIRST), "--end", str(LAST)], "unknown connection 'nope'"),
        (["--start", str(FIRST), "--end", str(LAST), "--format", "xlsx"], "invalid choice"),
        (["--start", str(FIRST), "--end", str(LAST), "--out-is-a-file"], "is a file"),
        (["--start", str(FIRST), "--end", str(LAST), "--out-under-a-file"], "is a file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(synced, tmp_path, args, says):
    a_file = tmp_path / "report.txt"
    a_file.write_text("keep me")
    out = tmp_path / "out"
    if "--out-is-a-file" in args:
        args, out = [a for a in args if a != "--out-is-a-file"], a_file
    elif "--out-under-a-file" in args:
        args, out = [a for a in args if a != "--out-under-a-file"], a_file / "focus"
    result, _ = _export(*args, "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == [a_file] and a_file.read_text() == "keep me"


def test_reads_the_published_copy_and_never_waits_for_a_busy_warehouse(synced, tmp_path):
    """The published marts.duckdb (relations in its default schema, as the publish step writes
    them) is read when it has the FOCUS relation, so an export works while a sync holds the
    warehouse. Its rows here are acme's plus a disconnected 'globex' (not stored, still known by
    its rows), so the connection filter is what tells them apart."""
    home = synced["home"]
    published, staged = home / "marts.duckdb", home / ".marts-new.duckdb"  # written, then renamed
    with duckdb.connect(str(staged)) as con:
        con.execute(f"attach '{home / 'warehouse.duckdb'}' as warehouse (read_only)")
        con.execute("""
            create table main.focus_cost_and_usage as
            select * from warehouse.marts.focus_cost_and_usage
            union all
            select * replace ('globex' as x_Connection, BilledCost * 2 as BilledCost)
            from warehouse.marts.focus_cost_and_usage""")
    staged.rename(published)
    truth = sum(synced["truth"].values())
    writer = duckdb.connect(str(home / "warehouse.duckdb"))  # a sync writing the warehouse
    try:
        for connection, factor in (("acme", 1), ("globex", 2)):
            result, lines = _export(
                "--connection", connection, "--start", str(FIRST), "--end", str(LAST), "--out", str(tmp_path)
            )
            assert result.returncode == 0, result.stderr
            assert f"BilledCost {truth * factor:,.6f} USD" in lines[0]
        published.unlink()
        busy, _ = _export("--start", str(FIRST), "--end", str(LAST), "--out", str(tmp_path / "busy"))
        assert busy.returncode == 1 and "the warehouse is busy" in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "busy").exists()
    finally:
        writer.close()
        published.unlink(missing_ok=True)
