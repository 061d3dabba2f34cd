"""Shared fixtures: an isolated STAX_HOME per test and a live simulator over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from stax_pipeline.simulator import Faults, Simulator, run_simulator

ADMIN_KEY = "sk-admin-test-7c1e55aa09d34f2b"

# One clock for the whole session: the simulator's "now" is pinned to noon of the day the tests
# started, and tests derive their windows from TODAY. A run that crosses UTC midnight would
# otherwise see the simulator's partial day and its restated days move under it.
TODAY = datetime.now(UTC).date()
SIMULATOR_NOW = datetime.combine(TODAY, time(12), tzinfo=UTC)


@pytest.fixture
def stax_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "stax-home"
    monkeypatch.setenv("STAX_HOME", str(home))
    monkeypatch.delenv("STAX_MASTER_KEY", raising=False)
    monkeypatch.delenv("STAX_NEW_MASTER_KEY", raising=False)
    monkeypatch.delenv("STAX_LOOKBACK_DAYS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@pytest.fixture
def simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    with run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0)) as sim:
        monkeypatch.setenv("STAX_OPENAI_BASE_URL", sim.base_url)
        yield sim


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle`` (binary files included)."""
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if needle in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits
