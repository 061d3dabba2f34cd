"""benchmarks/bench.py stays runnable: its baseline and fetch-only agree with the simulator's truth,
its RSS sampler sees descendants, and a failing product makes it fail loudly."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from stax_pipeline.simulator import Simulator
from tests.conftest import ADMIN_KEY, TODAY

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "bench.py"

_spec = importlib.util.spec_from_file_location("bench", BENCH)
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench"] = bench  # dataclasses resolve their module by name
_spec.loader.exec_module(bench)


def test_baseline_and_fetch_only_read_every_row_and_the_baseline_sums_to_truth(
    simulator: Simulator, tmp_path: Path
) -> None:
    start, end = TODAY - timedelta(days=5), TODAY
    fetched = bench.fetch_only(simulator.base_url, ADMIN_KEY, start, end)
    baseline = bench.naive_baseline(simulator.base_url, ADMIN_KEY, start, end, tmp_path / "naive.duckdb")
    assert baseline["rows"] == fetched["rows"] and len(fetched["rows"]) == 1 + len(bench.USAGE_GROUP_BY)
    truth = simulator.org_for_key(ADMIN_KEY).cost_total_by_day(start, end)
    assert abs(baseline["cost_usd"] - sum(truth.values())) < 1e-6
    with duckdb.connect(str(tmp_path / "naive.duckdb"), read_only=True) as con:
        loaded = {
            t: con.execute(f'select count(*) from "{t}"').fetchall()[0][0]
            for (t,) in con.execute("select table_name from information_schema.tables").fetchall()
        }
    assert loaded == {path.rsplit("/", 1)[-1]: n for path, n in fetched["rows"].items() if n}
    paths = [p for p, _ in simulator.requests]
    assert paths.count("/v1/organization/costs") == 2  # one page each, as Stax asks for them
    params = dict(simulator.requests[0][1])
    assert params["group_by"] == list(bench.COSTS_GROUP_BY) and params["limit"] == ["31"]


def test_tree_rss_counts_descendants(tmp_path: Path) -> None:
    child = "import time; b = bytearray(150 * 2**20); time.sleep(1.0)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    run = bench.run_measured([sys.executable, "-c", parent], dict(os.environ))
    assert run.exit_code == 0
    assert run.peak_rss_mb > 150 > run.peak_rss_main_mb


def test_phases_come_from_timings_jsonl(tmp_path: Path) -> None:
    assert bench.read_phases(tmp_path, 10.0) is None  # an older product: no phase split
    (tmp_path / "logs").mkdir()
    timings = tmp_path / "logs" / "timings.jsonl"
    timings.write_text(
        json.dumps({"run_id": "history", "connection": "big", "phase": "load", "seconds": 99.0}) + "\n"
    )  # an earlier, untimed run
    offset = bench.timings_offset(tmp_path)
    lines = [
        {"run_id": "r", "connection": "big", "phase": "fetch", "seconds": 1.5, "rows": 10},
        {"run_id": "r", "connection": "big", "phase": "load", "seconds": 2.0, "rows": 10},
        {"run_id": "r", "connection": "big", "phase": "fetch", "seconds": 0.5},
        {"run_id": "r", "connection": "big", "phase": "dbt", "seconds": 3.0},
    ]
    with timings.open("a") as f:
        f.write("".join(json.dumps(x) + "\n" for x in lines))
    phases = bench.read_phases(tmp_path, 10.0, offset)
    assert phases["fetch"] == 2.0 and phases["load"] == 2.0 and phases["dbt"] == 3.0
    assert phases["extract"] == phases["normalize"] == phases["publish"] == 0.0
    assert phases["orchestration"] == pytest.approx(3.0) and phases["rows_fetch"] == 10


def test_tree_bytes_counts_every_matching_file_below(tmp_path: Path) -> None:
    (tmp_path / "dagster" / "history" / "runs").mkdir(parents=True)
    (tmp_path / "dagster" / "history" / "runs" / "index.db").write_bytes(b"x" * 3000)
    (tmp_path / "dagster" / "dagster.yaml").write_bytes(b"y" * 10)
    (tmp_path / "warehouse.duckdb").write_bytes(b"z" * 500)
    (tmp_path / "warehouse.duckdb.wal").write_bytes(b"w" * 20)
    (tmp_path / "marts.duckdb").write_bytes(b"m" * 7)
    assert bench.tree_bytes(tmp_path / "dagster") == 3010
    assert bench.tree_bytes(tmp_path, "warehouse.duckdb*") == 520


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAX_")}
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_bench_runs_fetch_only_and_baseline_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = run_bench(
        "--only",
        "fetch-only,baseline",
        "--profile",
        "small",
        "--days",
        "3",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert set(data["scenarios"]) == {"fetch-only", "baseline"} and data["days"] == 3
    for scenario in data["scenarios"].values():
        assert scenario["rows"] == data["simulator"]["rows_total"] > 0
        assert scenario["wall_seconds"] > 0 and scenario["peak_rss_mb"] > 10
        assert scenario["requests"] == {"costs": 1, **{f"usage/{e}": 1 for e in bench.USAGE_GROUP_BY}}
    assert {t["name"] for t in data["targets"]} >= {"backfill wall", "report wall"}
    assert data["machine"]["nproc"] == os.cpu_count()
    assert "naive baseline" in result.stdout and "fetch-only" in result.stdout
    assert not any((tmp_path / "work").iterdir())  # scenario homes are removed


def test_a_failing_product_fails_the_bench_with_its_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "old-checkout"
    (fake / ".venv" / "bin").mkdir(parents=True)
    stax = fake / ".venv" / "bin" / "stax"
    stax.write_text("#!/bin/sh\necho 'Traceback: the ingest broke' >&2\nexit 3\n")
    stax.chmod(0o755)
    out = tmp_path / "result.json"
    result = run_bench(
        "--only",
        "product",
        "--profile",
        "small",
        "--days",
        "1",
        "--product-root",
        str(fake),
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
    )
    assert result.returncode == 1
    assert "exited 3" in result.stdout and "Traceback: the ingest broke" in result.stdout
    assert "the ingest broke" in json.loads(out.read_text())["failures"][0]
