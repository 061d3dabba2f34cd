"""Serving: BI readers open the published ``marts.duckdb`` and never block a sync; a client that
holds the warehouse itself fails the sync with one clear line, after a bounded wait.

Readers and holders are real processes (DuckDB's locks are per process), syncs are real runs of
the definitions against the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from stax_pipeline.cli.report import spend_report
from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.errors import StaxError
from stax_pipeline.lib.serving import publish_marts, read_marts
from stax_pipeline.lib.warehouse import ensure_warehouse
from stax_pipeline.lib.window import SyncWindow, range_run_tags
from stax_pipeline.orchestration import dagster_instance, register_connection, run_failure_reason, run_sync
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults
from tests.cli.test_connect import stax
from tests.conftest import ADMIN_KEY, TODAY

# Closed days inside the simulator's revision window, so a revision changes them.
WINDOW = SyncWindow(TODAY - timedelta(days=4), TODAY - timedelta(days=1))

# A DuckDB client in its own process, as a BI tool is: it opens the file (read-only unless told
# otherwise), says
# "ready", then answers each SQL line on stdin with one JSON line, on the SAME connection,
# until stdin closes.
_CLIENT = r"""
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read-only")
print(json.dumps("ready"), flush=True)
for sql in sys.stdin:
    print(json.dumps(con.execute(sql).fetchall(), default=str), flush=True)
"""


class Client:
    """A DuckDB client process holding ``path`` open until :meth:`close`."""

    def __init__(self, path: Path, mode: str = "read-only"):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, str(path), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def query(self, sql: str) -> list:
        self.process.stdin.write(" ".join(sql.split()) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0

    def _answer(self):
        line = self.process.stdout.readline()
        assert line, f"the client process died (exit {self.process.poll()})"
        return json.loads(line)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _query_once(path: Path, sql: str) -> list:
    """What a NEW connection (a new client process) sees."""
    with Client(path) as client:
        rows = client.query(sql)
        client.close()
    return rows


def _relations(path: Path, schema: str) -> list[str]:
    return [
        name
        for (name,) in _query_once(
            path,
            f"select table_name from information_schema.tables where table_schema = '{schema}' order by 1",
        )
    ]


def _storage_version(path: Path) -> int:
    """The storage version number in a DuckDB file's main header (bytes 8..20: "DUCK", u64)."""
    header = path.read_bytes()[:20]
    assert header[8:12] == b"DUCK"
    return int.from_bytes(header[12:20], "little")


def _everything(path: Path, relations: list[str]) -> dict[str, list]:
    """Every row of every relation, as ``marts.<name>`` (the SQL a BI tool runs on either file)."""
    with Client(path) as client:
        rows = {name: client.query(f"select * from marts.{name} order by all") for name in relations}
        client.close()
    return rows


_TWO_MARTS = ("fct_spend_daily", "fct_model_spend_daily")


def test_reader_holding_marts_keeps_its_snapshot_through_a_sync(stax_home, simulator):
    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    instance = dagster_instance(settings)
    first = run_sync(instance, "acme", WINDOW)
    assert first.success, first.error

    # The published copy: every relation of the warehouse's marts, equal to it, and nothing else.
    relations = _relations(settings.warehouse_path, "marts")
    assert {"fct_spend_daily", "fct_model_spend_daily", "dim_projects"} <= set(relations)
    assert _relations(settings.marts_path, "main") == relations
    tables = _query_once(
        settings.marts_path, "select table_schema, table_name from information_schema.tables"
    )
    assert not [t for t in tables if any(word in "".join(t) for word in ("raw", "credential", "connections"))]
    columns = {
        c for (c,) in _query_once(settings.marts_path, "select column_name from information_schema.columns")
    }
    assert not {c for c in columns if "secret" in c or "encrypted" in c or c in ("api_key", "key_hint")}
    before = _everything(settings.marts_path, relations)
    assert before == _everything(settings.warehouse_path, relations)
    assert before["fct_spend_daily"] and before["fct_model_spend_daily"]
    # Readable by DuckDB >= 1.1: storage version 64 is what 0.10 .. 1.1 read (2.0's own is 999).
    assert _storage_version(settings.marts_path) == 64
    _assert_exports_equal(settings, before)

    # A BI tool holds the published file open, mid-session, while the provider restates the
    # days and the nightly sync rebuilds them.
    spend, model_spend = (f"select * from marts.{name} order by all" for name in _TWO_MARTS)
    with Client(settings.marts_path) as reader:
        assert reader.query(spend) == before["fct_spend_daily"]
        simulator.faults = Faults(revision=1, revised_days=3, retry_after=0)
        second = run_sync(instance, "acme", WINDOW)
        assert second.success, second.error
        # Its connection still reads the file it opened (its snapshot), including a table it
        # had not read before the sync, so nothing can have come from a cache.
        assert reader.query(model_spend) == before["fct_model_spend_daily"]
        assert reader.query(spend) == before["fct_spend_daily"]
        reader.close()

    # A new connection sees the new data, equal to the warehouse's.
    after = _everything(settings.marts_path, relations)
    assert after["fct_spend_daily"] != before["fct_spend_daily"]
    assert after == _everything(settings.warehouse_path, relations)
    _assert_exports_equal(settings, after)
    # Nothing of the previous publish or its staging files is left behind.
    assert sorted(p.name for p in stax_home.glob(".marts-*")) == []
    assert [p.name for p in stax_home.glob(".exports-*")] == [os.readlink(settings.exports_dir)]


def _assert_exports_equal(settings, published: dict[str, list]) -> None:
    """``exports/`` is a symlink to one directory with one Parquet file per relation, equal to
    the published tables."""
    assert settings.exports_dir.is_symlink()
    assert sorted(p.name for p in settings.exports_dir.iterdir()) == sorted(f"{n}.parquet" for n in published)
    with Client(settings.marts_path) as client:
        for name, rows in published.items():
            parquet = settings.exports_dir / f"{name}.parquet"
            assert client.query(f"select * from read_parquet('{parquet}') order by all") == rows, name
        client.close()


def test_a_client_holding_the_warehouse_fails_the_sync_in_one_line_then_it_recovers(
    stax_home, simulator, monkeypatch
):
    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    ensure_warehouse(settings)
    monkeypatch.setenv("STAX_WAREHOUSE_LOCK_TIMEOUT", "1.5")
    window = ["--connection", "acme", "--start", str(WINDOW.start), "--end", str(WINDOW.last)]

    with Client(settings.warehouse_path) as bi_tool:  # read-only is enough to block a writer
        started = time.monotonic()
        result = stax("sync", *window)
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("stax:")]
        assert len(errors) == 1, result.stderr
        assert errors[0] == result.stderr.strip().splitlines()[-1]
        assert "the warehouse is busy" in errors[0]
        assert f"(PID {bi_tool.pid}," in errors[0]
        assert str(settings.marts_path) in errors[0]
        assert "credentials" not in result.stderr and "internet" not in result.stderr
        assert elapsed >= 1.5  # it waited for the lock, boundedly
        # Nothing changed: nothing fetched, nothing written, nothing published.
        assert simulator.requests == []
        assert bi_tool.query("select count(*) from information_schema.tables") == [[0]]
        assert not settings.marts_path.exists()
        bi_tool.close()

    monkeypatch.setenv("STAX_WAREHOUSE_LOCK_TIMEOUT", "abc")
    malformed = stax("sync", *window)
    assert malformed.returncode == 2
    assert malformed.stderr.strip() == (
        "stax: STAX_WAREHOUSE_LOCK_TIMEOUT must be a number of seconds from 0 to 86400, got 'abc'"
    )

    monkeypatch.setenv("STAX_WAREHOUSE_LOCK_TIMEOUT", "1.5")
    released = run_sync(dagster_instance(settings), "acme", WINDOW)
    assert released.success, released.error
    assert _query_once(settings.marts_path, "select count(*) from marts.fct_spend_daily")[0][0] > 0


@pytest.mark.parametrize("step", ["raw_openai", "stax_dbt_assets"])
def test_lock_lost_after_the_wait_still_reads_as_one_busy_line(stax_home, simulator, monkeypatch, step):
    """A client that grabs the warehouse after the wait returned makes dlt (or dbt) fail on the
    lock itself: the run's error is still the busy line, never dlt's credentials text."""
    from stax_pipeline.definitions import defs
    from stax_pipeline.defs import ingest as ingest_assets
    from stax_pipeline.defs.dbt import assets as dbt_assets
    from stax_pipeline.defs.jobs import SYNC_JOB_NAME

    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    ensure_warehouse(settings)
    for module in (ingest_assets, dbt_assets):  # the client wins the race after the wait
        monkeypatch.setattr(module, "wait_for_warehouse", lambda settings: None)
    instance = dagster_instance(settings)
    register_connection(instance, "acme")
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    assets = {
        "raw_openai": ingest_assets.INGEST_ASSETS["openai"],
        "stax_dbt_assets": dbt_assets.stax_dbt_assets,
    }

    with Client(settings.warehouse_path) as bi_tool:
        result = job.execute_in_process(
            instance=instance,
            tags=range_run_tags("acme", WINDOW),
            asset_selection=list(assets[step].keys),
            raise_on_error=False,
        )
        error = run_failure_reason(result.all_events)
        bi_tool.close()
    assert not result.success
    assert error.startswith("the warehouse is busy:"), error
    assert f"(PID {bi_tool.pid}," in error and str(settings.marts_path) in error
    assert "\n" not in error and "credentials" not in error


def test_a_run_failing_after_its_dbt_started_leaves_no_dbt_behind(stax_home, simulator, monkeypatch):
    """A CLI run starts its dbt as soon as the biggest page is extracted (dbt then imports and
    parses while the sync goes on). A run that fails after that, here because a client took the warehouse
    before dlt could write, stops that dbt: none outlives its run."""
    import psutil

    from stax_pipeline.defs import ingest as ingest_assets
    from stax_pipeline.lib import dbt as lib_dbt

    settings = load_settings()
    ConnectionStore(settings).add("acme", "openai", ADMIN_KEY)
    ensure_warehouse(settings)
    monkeypatch.setenv("STAX_WAREHOUSE_LOCK_TIMEOUT", "0.5")
    monkeypatch.setattr(ingest_assets, "wait_for_warehouse", lambda settings: None)  # taken after it
    started: list[psutil.Process] = []  # one per call: the costs page done, then the extract

    def start_and_note(run_id: str) -> None:
        lib_dbt.start_dbt_early(run_id)
        started.append(psutil.Process(lib_dbt._STARTED[run_id]._process.pid))

    monkeypatch.setattr(ingest_assets, "start_dbt_early", start_and_note)
    with Client(settings.warehouse_path) as bi_tool:
        outcome = run_sync(dagster_instance(settings), "acme", WINDOW)
        bi_tool.close()
    assert not outcome.success
    assert outcome.error is not None and outcome.error.startswith("the warehouse is busy:"), outcome.error
    assert simulator.requests, "the pages were fetched before the load failed"
    assert len({p.pid for p in started}) == 1, "the run did not start one dbt during its extract"
    assert not started[0].is_running() or started[0].status() == psutil.STATUS_ZOMBIE
    assert lib_dbt._STARTED == {} and lib_dbt._EARLY_RUNS == {}
    assert not any(
        "stax_pipeline.lib.dbt_worker" in " ".join(c.cmdline()) for c in psutil.Process().children()
    )


def _small_warehouse(settings) -> None:
    """A warehouse as dbt leaves it, in miniature: marts (a table, a view), and what must never be
    published (raw tables, other schemas, anything named like credentials)."""
    ensure_warehouse(settings)
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("""
            create schema marts; create schema raw_openai; create schema intermediate;
            create table marts.fct_model_spend_daily as
                select 'openai' as provider, 'acme' as connection, date '2026-11-18' as date, 'gpt-4o' as model,
                       'model' as spend_category, null::varchar as product, null::varchar as sku,
                       12.345678 ::double as cost_usd, 1000 as input_tokens, 200 as output_tokens,
                       0 as input_cached_tokens, null::bigint as images, null::bigint as characters,
                       null::double as seconds, null::bigint as web_search_calls,
                       3 as num_model_requests, true as has_cost_data;
            create view marts.rpt_models as select distinct model from marts.fct_model_spend_daily;
            create table raw_openai.costs as select 'acme' as connection, 12.345678 as amount_value;
            create table intermediate.int_x as select 1 as x;
            create table main.credentials as select 'sk-admin-secret' as api_key;
        """)
    finally:
        con.close()


def test_publish_copies_exactly_the_marts_schema_views_as_tables(stax_home):
    settings = load_settings()
    _small_warehouse(settings)
    result = publish_marts(settings)
    assert result.relations == ("fct_model_spend_daily", "rpt_models")
    assert result.rows == 2 and result.metadata()["published_relations"] == 2
    tables = _query_once(settings.marts_path, "select table_name, table_type from information_schema.tables")
    assert sorted(tables) == [["fct_model_spend_daily", "BASE TABLE"], ["rpt_models", "BASE TABLE"]]
    assert b"sk-admin-secret" not in settings.marts_path.read_bytes()
    assert _query_once(settings.marts_path, "select model, cost_usd from marts.fct_model_spend_daily") == [
        ["gpt-4o", 12.345678]
    ]
    assert _storage_version(settings.marts_path) == 64
    assert sorted(p.name for p in settings.exports_dir.iterdir()) == [
        "fct_model_spend_daily.parquet",
        "rpt_models.parquet",
    ]


def test_publish_takes_over_a_real_exports_dir_and_clears_what_a_crashed_publish_left(stax_home):
    settings = load_settings()
    _small_warehouse(settings)
    settings.exports_dir.mkdir()
    (settings.exports_dir / "stale.parquet").write_bytes(b"old")
    crashed = [
        stax_home / ".marts-dead.duckdb",
        stax_home / ".exports-dead",
        stax_home / ".exports-link-dead",
    ]
    crashed[0].write_bytes(b"half a file")
    crashed[1].mkdir()
    crashed[2].symlink_to(crashed[1].name)
    # A WAL beside marts.duckdb belongs to the file it replaces: replayed into the new one, it
    # would corrupt it.
    (stax_home / "marts.duckdb.wal").write_bytes(b"not ours")

    publish_marts(settings)
    first = os.readlink(settings.exports_dir)
    publish_marts(settings)

    assert settings.exports_dir.is_symlink() and os.readlink(settings.exports_dir) != first
    assert not (settings.exports_dir / "stale.parquet").exists()
    assert [p for p in crashed if p.exists() or p.is_symlink()] == []
    assert [p.name for p in stax_home.glob(".exports-*")] == [os.readlink(settings.exports_dir)]
    assert not (stax_home / "marts.duckdb.wal").exists()
    assert _query_once(settings.marts_path, "select count(*) from marts.rpt_models") == [[1]]


def test_report_reads_the_published_copy_while_a_writer_holds_the_warehouse(stax_home):
    settings = load_settings()
    with pytest.raises(StaxError, match="no warehouse"), read_marts(settings):  # nothing published yet
        pass
    _small_warehouse(settings)
    publish_marts(settings)
    with Client(settings.warehouse_path, mode="read-write") as sync:  # as dlt or dbt hold it
        report = spend_report(settings, "acme", 30, TODAY)
        sync.close()
    assert "gpt-4o" in report and "12.35" in report
    # A BI tool that opened the published copy for writing gets one line, not a traceback.
    with Client(settings.marts_path, mode="read-write") as careless:
        with pytest.raises(StaxError, match="must open it read-only"):
            spend_report(settings, "acme", 30, TODAY)
        careless.close()


def test_a_publish_that_fails_half_way_raises_and_replaces_nothing(stax_home):
    """The copies and the exports are written by two threads: a relation that cannot be read
    (here a view that raises) fails the publish with its error, neither thread is left waiting
    on the other, and what readers had is left as it was."""
    settings = load_settings()
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.fct_spend_daily as select 'acme' as connection, 1.5 as cost_usd")
        con.execute("create view marts.focus_cost_and_usage as select * from marts.fct_spend_daily")
    first = publish_marts(settings)
    assert first.relations == ("fct_spend_daily", "focus_cost_and_usage")
    published = settings.marts_path.read_bytes()
    exports = sorted(p.name for p in settings.exports_dir.iterdir())

    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create view marts.a_broken_view as select error('the view cannot be read') as x")
    with pytest.raises(duckdb.Error, match="the view cannot be read"):
        publish_marts(settings)  # returns (raising): no thread waits forever
    assert settings.marts_path.read_bytes() == published
    assert sorted(p.name for p in settings.exports_dir.iterdir()) == exports

    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("drop view marts.a_broken_view")
    again = publish_marts(settings)
    assert again.rows == first.rows == 2
    assert sorted(p.name for p in stax_home.glob(".marts-*")) == []
