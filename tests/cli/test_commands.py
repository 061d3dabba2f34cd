"""`stax sync / report / doctor / disconnect --purge / rotate-master-key` as a person runs them."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.settings import load_settings
from tests.cli.test_connect import STAX, stax
from tests.conftest import ADMIN_KEY, TODAY

FIRST, LAST = TODAY - timedelta(days=3), TODAY - timedelta(days=2)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", "2026-13-01"], "not a date"),
        (["--start", str(LAST), "--end", str(FIRST)], "is before --start"),
        (["--connection", "nope"], "unknown connection 'nope'"),
        (["--end", str(datetime.now(UTC).date() + timedelta(days=2))], "in the future"),
        (["--start", "2019-01-01", "--end", "2019-01-02"], "before the first supported day"),
    ],
)
def test_sync_argument_errors_are_one_line_exit_2_and_run_nothing(stax_home, simulator, args, says):
    ConnectionStore(load_settings()).add("acme", "openai", ADMIN_KEY)
    result = stax("sync", *args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert simulator.requests == []
    assert not (stax_home / "warehouse.duckdb").exists()


def test_sync_without_connections_says_what_to_do(stax_home):
    result = stax("sync")
    assert result.returncode == 2 and "stax connect" in result.stderr


def test_sync_report_doctor_purge_and_rotate(stax_home, simulator):
    assert stax("connect", "openai", "--name", "acme", "--no-backfill", key=ADMIN_KEY).returncode == 0
    synced = stax("sync", "--connection", "acme", "--start", str(FIRST), "--end", str(LAST))
    assert synced.returncode == 0, synced.stderr
    # The process closed Dagster's SQLite databases on its way out: no WAL journal left behind.
    assert sorted(p.name for p in (stax_home / "dagster").rglob("*-wal")) == []
    settings = load_settings()
    org = simulator.org_for_key(ADMIN_KEY)
    truth = sum(org.cost_total_by_day(FIRST, LAST + timedelta(days=1)).values())

    # The report counts back from the real today; reach back to the synced (fixed) days.
    days_back = (datetime.now(UTC).date() - FIRST).days
    report = stax("report", "--connection", "acme", "--days", str(days_back))
    assert report.returncode == 0, report.stderr
    assert "gpt-4o-2024-08-06" in report.stdout and "SHARE" in report.stdout
    total_line = next(line for line in report.stdout.splitlines() if line.startswith("TOTAL"))
    assert f"{truth:,.2f}" in total_line
    _assert_report_options_and_formats(org, days_back, truth)

    listing = stax("connections")
    assert "never" not in listing.stdout.splitlines()[1]  # last successful sync is shown

    doctor = stax("doctor", "--connection", "acme")
    assert "check ok against" in doctor.stdout
    assert "projects" in doctor.stdout and org.org_id in doctor.stdout

    rotated = stax("rotate-master-key")
    assert rotated.returncode == 0 and "Re-encrypted 1" in rotated.stdout
    again = stax("sync", "--connection", "acme", "--start", str(LAST), "--end", str(LAST))
    assert again.returncode == 0, again.stderr  # the key still decrypts under the new master key

    purged = stax("disconnect", "acme", "--purge")
    assert purged.returncode == 0 and "Purged" in purged.stdout
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        for table in (
            "raw_openai.costs",
            "raw_openai.sync_windows",
            "marts.fct_spend_daily",
            "marts.fct_model_spend_daily",
        ):
            assert con.execute(f"select count(*) from {table} where connection = 'acme'").fetchall() == [(0,)]
    finally:
        con.close()
    # The published copy BI tools read loses them too.
    served = duckdb.connect(str(settings.marts_path), read_only=True)
    try:
        for table in ("fct_spend_daily", "fct_model_spend_daily", "dim_projects"):
            parquet = settings.exports_dir / f"{table}.parquet"
            for relation in (f"marts.{table}", f"'{parquet}'"):
                count = f"select count(*) from {relation} where connection = 'acme'"
                assert served.execute(count).fetchall() == [(0,)], relation
    finally:
        served.close()


def _report(*args: str) -> subprocess.CompletedProcess:
    result = stax("report", "--connection", "acme", *args)
    assert result.returncode == 0, result.stderr
    return result


def _assert_report_options_and_formats(org, days_back: int, truth: float) -> None:
    """Every --by in every --format, against the simulator's own figures for the synced days."""
    days = ("--days", str(days_back))
    model_truth: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    for (_, _, model, sku), row in org.model_spend_by_day(FIRST, LAST + timedelta(days=1)).items():
        for column, value in row.items():
            model_truth[(model, sku)][column] += value

    # --by model as JSON: one row per model with its cost beside every unit, non-model spend per SKU
    by_model = json.loads(_report(*days, "--format", "json").stdout)
    assert by_model["by"] == "model" and by_model["total_cost_usd"] == pytest.approx(truth, abs=1e-6)
    rows = {(r["model"], r["sku"]): r for r in by_model["rows"]}
    assert set(rows) == set(model_truth)
    for key, want in model_truth.items():
        assert rows[key]["cost_usd"] == pytest.approx(want["cost_usd"], abs=1e-6), key
        for unit in (
            "input_tokens",
            "output_tokens",
            "images",
            "characters",
            "seconds",
            "num_model_requests",
        ):
            assert rows[key][unit] == want[unit], (key, unit)
    fine_tune = rows[("ft-gpt-4o-mini-2024-07-18", None)]
    assert fine_tune["cost_usd"] > 0 and fine_tune["input_tokens"] > 0 and fine_tune["cost_per_1m_tokens"] > 0
    assert rows[("omni-moderation-latest", None)]["cost_per_1m_tokens"] is None  # free: no cost rows

    # the table: usage in each model's own units; blank, not 0.00, where tokens or cost are missing
    table = _report(*days).stdout.splitlines()
    # each model's line, by its MODEL / SKU cell (after the PROVIDER column)
    line_of = {re.split(r"\s{2,}", line)[1]: line for line in table if line.startswith("openai ")}
    assert "characters" in line_of["tts-1"] and "tokens" not in line_of["tts-1"]
    assert "audio seconds" in line_of["whisper-1"] and "images" in line_of["gpt-image-1"]
    assert (
        "in + " in line_of["ft-gpt-4o-mini-2024-07-18"]
        and "out tokens" in line_of["ft-gpt-4o-mini-2024-07-18"]
    )
    assert not line_of["omni-moderation-latest"].rstrip().endswith("0.00")  # $/1M blank: no cost
    assert line_of["vector stores | storage"].rstrip().endswith("%")  # no usage, no $/1M: blank cells
    assert f"({days_back} days, connection acme)" in table[0]

    # CSV: a header and full-precision figures that add up to the truth
    parsed = list(csv.DictReader(io.StringIO(_report(*days, "--format", "csv").stdout)))
    assert {"model", "sku", "cost_usd", "input_tokens", "characters", "seconds", "cost_per_1m_tokens"} <= set(
        parsed[0]
    )
    assert sum(float(r["cost_usd"]) for r in parsed) == pytest.approx(truth, abs=1e-6)

    # --by project / api-key / line-item name what they group
    projects = json.loads(_report(*days, "--by", "project", "--format", "json").stdout)["rows"]
    names = {p["id"]: p["name"] for p in org.projects}
    assert projects and all(r["project_name"] == names[r["project_id"]] for r in projects)
    keys = json.loads(_report(*days, "--by", "api-key", "--format", "json").stdout)["rows"]
    listed = {k["id"]: k["name"] for p in org.projects for k in org.api_keys(p["id"])}
    for row in keys:
        if row["api_key_id"] is None:
            continue  # project-level charges (storage, code interpreter)
        want = listed.get(row["api_key_id"], "(deleted key)")
        assert row["api_key_name"] == want, row
    assert sum(r["cost_usd"] for r in keys) == pytest.approx(truth, abs=1e-6)
    items = list(csv.DictReader(io.StringIO(_report(*days, "--by", "line-item", "--format", "csv").stdout)))
    facts = {f.line_item for day in (FIRST, LAST) for f in org.cost_facts(day)}
    assert {r["line_item"] for r in items} == facts
    assert _report(*days, "--by", "api-key").stdout.startswith("Spend by API key, ")

    # "1 day", not "1 days"
    assert "(1 day, connection acme)" in _report("--days", "1").stdout.splitlines()[0]

    # piped into a reader that stops at once: no traceback, exit 0
    head = subprocess.Popen(["head", "-n", "0"], stdin=subprocess.PIPE)
    piped = subprocess.run(
        [STAX, "report", *days, "--by", "line-item"],
        stdout=head.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    head.stdin.close()
    head.wait(timeout=30)
    assert piped.returncode == 0 and piped.stderr == ""
    first = subprocess.run(
        f"'{STAX}' report --days {days_back} --by line-item | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.stdout.startswith("Spend by line item, ") and first.stderr == ""


def test_report_help_says_what_each_option_does_and_its_default():
    result = stax("report", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option, default in (
        ("--connection NAME", "all connections"),
        ("--days N", "30"),
        ("--by {model,project,api-key,line-item}", "model"),
        ("--format {table,csv,json}", "table"),
    ):
        assert f"{option} " in text and f"(default: {default})" in text, option


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--by", "team"], "invalid choice: 'team'"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--days", "0"], "must be a whole number from 1"),
    ],
)
def test_report_argument_errors_are_one_line_exit_2(stax_home, args, says):
    result = stax("report", *args)
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
