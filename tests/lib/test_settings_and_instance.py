"""Settings parsed when needed (and all of them before anything is created), the instance's
dagster.yaml kept as the user edited it, and the environment `make ui` hands to dagster dev."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stax_pipeline.cli.ui import ui_environment
from stax_pipeline.errors import ConfigError, SettingError
from stax_pipeline.lib.instance_config import write_instance_config
from stax_pipeline.orchestration import INSTANCE_TEMPLATE
from stax_pipeline.providers import get_provider
from stax_pipeline.settings import load_settings


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STAX_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("STAX_") and name != "STAX_HOME":
            monkeypatch.delenv(name)
    return home


def test_a_malformed_setting_fails_only_what_uses_it(home, monkeypatch):
    monkeypatch.setenv("STAX_LOOKBACK_DAYS", "abc")
    settings = load_settings(create=False)  # reading commands: fine
    assert settings.warehouse_lock_timeout_s == 60.0
    assert get_provider("openai").new_connection_base_url() == "https://api.openai.com/v1"
    with pytest.raises(
        SettingError, match="STAX_LOOKBACK_DAYS must be a whole number of days from 0 to 365, got 'abc'"
    ):
        _ = settings.lookback_days
    with pytest.raises(SettingError, match="STAX_LOOKBACK_DAYS"):
        load_settings()  # writing commands check everything first…
    assert not home.exists()  # …and create nothing when one is malformed
    monkeypatch.setenv("STAX_LOOKBACK_DAYS", " 7 ")
    assert load_settings().lookback_days == 7 and home.is_dir()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STAX_LOOKBACK_DAYS", "366"),
        ("STAX_LOOKBACK_DAYS", "3.5"),
        ("STAX_LOOKBACK_DAYS", "٣"),
        ("STAX_WAREHOUSE_LOCK_TIMEOUT", "-1"),
        ("STAX_WAREHOUSE_LOCK_TIMEOUT", "1e9"),
        ("STAX_HTTP_BACKOFF_FLOOR_SECONDS", "61"),
        ("STAX_HTTP_MAX_RETRY_SECONDS", "inf"),
        ("STAX_OPENAI_BASE_URL", "api.openai.com"),
        ("STAX_MASTER_KEY", "dG9vIHNob3J0"),
        ("STAX_NEW_MASTER_KEY", "!!!"),
    ],
)
def test_every_setting_is_checked_before_anything_is_created(home, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as info:
        load_settings()
    assert str(info.value).startswith(name) and "\n" not in str(info.value)
    if "MASTER_KEY" in name:
        assert value not in str(info.value)
    assert not home.exists()


def test_stax_home_must_be_a_folder_of_its_own(home, tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    monkeypatch.setenv("STAX_HOME", str(a_file))
    with pytest.raises(SettingError, match="is a file, not a folder"):
        load_settings(create=False)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    monkeypatch.setenv("STAX_HOME", str(shared))
    with pytest.raises(SettingError, match="shared with other users"):
        load_settings()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # never chmod-ed


def test_an_existing_home_is_made_private(home):
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    load_settings()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_dagster_yaml_is_written_once_then_left_to_the_user(tmp_path):
    previous = os.umask(0o022)
    try:
        target = write_instance_config(tmp_path, INSTANCE_TEMPLATE)
    finally:
        os.umask(previous)
    assert target.read_bytes() == INSTANCE_TEMPLATE.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    edited = target.read_text() + "retention:\n  schedule:\n    purge_after_days: 7\n"
    target.write_text(edited)
    write_instance_config(tmp_path, INSTANCE_TEMPLATE)
    assert target.read_text() == edited  # byte for byte

    # Only what Stax cannot work without is put back: one writer at a time on the warehouse.
    target.write_text("run_monitoring:\n  enabled: true\nconcurrency:\n  pools:\n    default_limit: 4\n")
    write_instance_config(tmp_path, INSTANCE_TEMPLATE)
    assert yaml.safe_load(target.read_text()) == {
        "run_monitoring": {"enabled": True},
        "concurrency": {"pools": {"default_limit": 1}},
    }

    target.write_text("concurrency: [unclosed\n")
    with pytest.raises(ConfigError, match=r"dagster.yaml is not valid YAML \(line \d+\): fix it"):
        write_instance_config(tmp_path, INSTANCE_TEMPLATE)
    assert target.read_text() == "concurrency: [unclosed\n"


def test_make_ui_gives_dagster_no_master_key(home, monkeypatch):
    settings = load_settings()
    env = ui_environment(
        {"STAX_MASTER_KEY": "k", "STAX_NEW_MASTER_KEY": "n", "PATH": "/usr/bin", "LANG": "C"}, settings
    )
    assert "STAX_MASTER_KEY" not in env and "STAX_NEW_MASTER_KEY" not in env
    assert env["DAGSTER_HOME"] == str(home / "dagster") and env["STAX_HOME"] == str(home)
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent) and env["LANG"] == "C"
    assert env["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] == "true"  # as the CLI's runs

    # The real thing, up to dagster dev itself (asked for its help, so it exits at once).
    result = subprocess.run(
        [sys.executable, "-m", "stax_pipeline.cli.ui", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STAX_MASTER_KEY": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "dagster dev" in result.stdout
    assert stat.S_IMODE((home / "dagster" / "dagster.yaml").stat().st_mode) == 0o600
