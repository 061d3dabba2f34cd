"""One real connect + sync, as a person runs them with umask 022 in a STAX_HOME that existed
before (loose modes, a dagster.yaml the user edited, an old log), with the master key in
STAX_MASTER_KEY and a temp directory of its own. Then, around that one sync:

- every file under STAX_HOME is 0600 and every folder 0700;
- the user's dagster.yaml is byte for byte what they wrote;
- nothing is left in the temp directory;
- dbt ran without the master key in its environment;
- reading commands work although an unrelated setting is malformed, and end quietly on a closed pipe;
- a hostile connection name that reaches the SQL paths (past the CLI's check) reads, deletes
  and drops nothing: the queries take it as a parameter, dbt's window as one quoted literal.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from stax_pipeline.simulator import Faults, Simulator, run_simulator
from tests.cli.test_connect import STAX
from tests.conftest import ADMIN_KEY, SIMULATOR_NOW, TODAY

FIRST, LAST = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
USER_DAGSTER_YAML = """\
# my instance: keep a week of runs, watch for stuck ones
concurrency:
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  max_runtime_seconds: 7200
retention:
  schedule:
    purge_after_days: 7
telemetry:
  enabled: false
"""


@dataclass
class SyncedHome:
    home: Path
    tmpdir: Path
    env: dict[str, str]
    simulator: Simulator
    sync: subprocess.CompletedProcess
    dbt_environments: list[dict[str, str]] = field(default_factory=list)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _dbt_children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` and whose command line is dbt's."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            ppid = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            # python -m stax_pipeline.lib.dbt_worker … (a sync's dbt), or python …/dbt build
            if ppid == parent and (
                b"stax_pipeline.lib.dbt_worker" in argv[:3] or any(arg.endswith(b"/dbt") for arg in argv[:2])
            ):
                found.append(int(entry.name))
        except (OSError, StopIteration, ValueError, IndexError):
            continue  # ended meanwhile
    return found


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [STAX, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        preexec_fn=lambda: os.umask(0o022),
    )


@pytest.fixture(scope="module")
def synced(tmp_path_factory) -> SyncedHome:
    base = tmp_path_factory.mktemp("private")
    home, tmpdir = base / "stax-home", base / "tmp"
    tmpdir.mkdir()
    # A STAX_HOME from before: world-readable, with the user's own dagster.yaml and an old log.
    (home / "dagster").mkdir(parents=True)
    (home / "logs").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(USER_DAGSTER_YAML)
    (home / "logs" / "sync.log").write_text("an old line\n")
    for path in (home, home / "dagster", home / "logs"):
        path.chmod(0o755)
    for path in (home / "dagster" / "dagster.yaml", home / "logs" / "sync.log"):
        path.chmod(0o644)
    with run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0)) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STAX_", "DAGSTER_"))}
        env.update(
            STAX_HOME=str(home),
            STAX_OPENAI_BASE_URL=sim.base_url,
            TMPDIR=str(tmpdir),
            STAX_HTTP_BACKOFF_FLOOR_SECONDS="0.005",
            STAX_HTTP_MAX_RETRY_SECONDS="2",
        )
        connected = _run(
            ["connect", "openai", "--name", "acme", "--no-backfill"], env, stdin=ADMIN_KEY + "\n"
        )
        assert connected.returncode == 0, connected.stderr
        # From here on the master key comes from the environment (it is the key file's key).
        env["STAX_MASTER_KEY"] = (home / "master.key").read_text().strip()
        process = subprocess.Popen(
            [STAX, "sync", "--connection", "acme", "--start", str(FIRST), "--end", str(LAST)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=lambda: os.umask(0o022),
        )
        environments: dict[int, dict[str, str]] = {}
        ended = threading.Event()

        def watch_dbt() -> None:  # until the sync ends: the environment of every dbt it starts
            while not ended.wait(0.02):
                for pid in _dbt_children(process.pid):
                    if pid not in environments:
                        try:
                            environments[pid] = _environ(pid)
                        except OSError:
                            pass  # it ended before we looked

        watcher = threading.Thread(target=watch_dbt)
        watcher.start()
        try:
            stdout, stderr = process.communicate(timeout=600)
        finally:
            ended.set()
            watcher.join()
        sync = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert sync.returncode == 0, sync.stderr
        yield SyncedHome(home, tmpdir, env, sim, sync, list(environments.values()))


def test_every_state_file_is_private(synced):
    home = synced.home
    for name in (
        "warehouse.duckdb",
        "marts.duckdb",
        "stax.db",
        "master.key",
        "logs/timings.jsonl",
        "logs/sync.log",
        "dagster/dagster.yaml",
        "exports/fct_spend_daily.parquet",
    ):
        assert (home / name).is_file(), name
    assert any((home / "dlt").rglob("*")) and any((home / "dbt" / "runs").iterdir())
    assert (
        any((home / "dagster" / "storage").rglob("*")) and (home / "dagster" / "history" / "runs.db").exists()
    )
    loose = []
    for directory, folders, files in os.walk(home):
        for name in [*folders, *files]:
            path = Path(directory) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if stat.S_IMODE(info.st_mode) != want:
                loose.append(f"{oct(stat.S_IMODE(info.st_mode))} {path.relative_to(home)}")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert loose == []


def test_the_users_dagster_yaml_survives(synced):
    assert (synced.home / "dagster" / "dagster.yaml").read_text() == USER_DAGSTER_YAML
    assert (synced.home / "logs" / "sync.log").read_text().startswith("an old line\n")


def test_nothing_is_left_in_the_temp_directory(synced):
    assert sorted(os.listdir(synced.tmpdir)) == []


def test_dbt_never_sees_the_master_key(synced):
    assert synced.env["STAX_MASTER_KEY"]  # the sync had it, and decrypted with it
    assert synced.dbt_environments, "no dbt process was seen during the sync"
    for environment in synced.dbt_environments:
        assert environment.get("STAX_HOME") == str(synced.home)  # it is dbt's real environment
        assert "STAX_MASTER_KEY" not in environment and "STAX_NEW_MASTER_KEY" not in environment
        assert synced.env["STAX_MASTER_KEY"] not in json.dumps(environment)


def test_reading_commands_ignore_unrelated_malformed_settings(synced):
    days = str((datetime.now(UTC).date() - FIRST).days)
    for args, malformed in [
        (["connections"], {"STAX_LOOKBACK_DAYS": "abc", "STAX_HTTP_RUN_RETRY_SECONDS": "soon"}),
        (
            ["report", "--days", days],
            {"STAX_LOOKBACK_DAYS": "abc", "STAX_WAREHOUSE_LOCK_TIMEOUT": "x", "STAX_NEW_MASTER_KEY": "short"},
        ),
        (["doctor"], {"STAX_WAREHOUSE_LOCK_TIMEOUT": "x", "STAX_NEW_MASTER_KEY": "short"}),
    ]:
        result = _run(args, {**synced.env, **malformed})
        ok = (0, 1) if args == ["doctor"] else (0,)  # the doctor's 1 means it found something
        assert result.returncode in ok, result.stderr
        # the report names spend, not connections: it must show the synced spend's total
        assert ("TOTAL" if args[0] == "report" else "acme") in result.stdout, args
        assert not any(name in result.stderr for name in malformed), result.stderr


@pytest.mark.parametrize("args", [["connections"], ["report", "--days", "400"], ["doctor"], ["--help"]])
def test_a_closed_pipe_ends_quietly(synced, args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before the first line (`| head -0`)
    try:
        result = subprocess.run(
            [STAX, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, env=synced.env, timeout=300
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" line
    assert result.returncode == 0  # quietly: the reader had what it wanted


def test_a_hostile_name_past_the_cli_reads_deletes_and_drops_nothing(synced, monkeypatch):
    """The CLI refuses such names (tests/cli/test_bad_input.py); this is the layer below."""
    from dbt.cli.main import dbtRunner

    from stax_pipeline.cli.report import spend_report
    from stax_pipeline.credentials import ConnectionStore
    from stax_pipeline.errors import UsageError
    from stax_pipeline.lib.warehouse import purge_connection
    from stax_pipeline.settings import load_settings

    monkeypatch.setenv("STAX_HOME", str(synced.home))
    settings = load_settings(create=False)
    hostile = "x' or '1'='1"
    count = "select count(*) from marts.fct_spend_daily where connection = 'acme'"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute(count).fetchall()[0][0]
    assert rows > 0

    assert purge_connection(settings, hostile) == 0
    with pytest.raises(UsageError, match="unknown connection"):
        ConnectionStore(settings).get(hostile)
    assert "No spend" in spend_report(settings, hostile, 400, datetime.now(UTC).date())
    assert [c.name for c in ConnectionStore(settings).list()] == ["acme"]

    # dbt's window predicate: the name is one quoted SQL literal, whatever it holds.
    dropper = "x'); drop table marts.fct_spend_daily; --"
    monkeypatch.setenv("STAX_DBT_WINDOW", json.dumps({"connections": [dropper]}))
    project = Path(__file__).resolve().parents[2] / "dbt_project"
    compiled = dbtRunner().invoke(
        [
            "compile",
            "--quiet",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(synced.tmpdir.parent / "dbt-target"),
            "--inline",
            "select count(*) from marts.fct_spend_daily where {{ in_sync_window() }}",
        ]
    )
    assert compiled.success, compiled.exception
    sql = compiled.result.results[0].node.compiled_code
    with duckdb.connect(str(settings.warehouse_path)) as con:
        assert con.execute(sql).fetchall() == [(0,)]
        assert con.execute(count).fetchall()[0][0] == rows  # not purged, not dropped
