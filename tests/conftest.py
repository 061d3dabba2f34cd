"""Shared fixtures: an isolated STAX_HOME per test and a live simulator over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from stax_pipeline.simulator import Faults, Simulator, run_simulator

ADMIN_KEY = "sk-admin-test-7c1e55aa09d34f2b"

# One fixed clock for tests with explicit windows: the simulator's "now" is noon of TODAY and
# the tests' windows are days before it. The simulator's data is a pure function of (key, day),
# so these tests see the same data whenever they run — including empty days and restated days —
# and a run that crosses UTC midnight cannot move the window under them. (Code that must use the
# real clock — the sensor, `stax demo`, "end in the future" — is tested against it.)
TODAY = date(2026, 11, 20)
SIMULATOR_NOW = datetime.combine(TODAY, time(12), tzinfo=UTC)


@pytest.fixture
def stax_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "stax-home"
    monkeypatch.setenv("STAX_HOME", str(home))
    monkeypatch.delenv("STAX_MASTER_KEY", raising=False)
    monkeypatch.delenv("STAX_NEW_MASTER_KEY", raising=False)
    monkeypatch.delenv("STAX_LOOKBACK_DAYS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # Retries in milliseconds, at most a couple of seconds a request: no test waits minutes.
    monkeypatch.setenv("STAX_HTTP_BACKOFF_FLOOR_SECONDS", "0.005")
    monkeypatch.setenv("STAX_HTTP_MAX_RETRY_SECONDS", "2")
    monkeypatch.delenv("STAX_HTTP_RUN_RETRY_SECONDS", raising=False)
    return home


@pytest.fixture
def simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    with run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0)) as sim:
        monkeypatch.setenv("STAX_OPENAI_BASE_URL", sim.base_url)
        monkeypatch.setenv("STAX_ANTHROPIC_BASE_URL", sim.base_url)  # it answers both APIs
        yield sim


@pytest.fixture(scope="session")
def large_simulator() -> Iterator[Simulator]:
    """A live simulator whose organizations are the large profile (~40 projects, 30 models, 200 API
    keys, ~10k cost rows a day), at SIMULATOR_NOW.

    Session-scoped because a large day takes ~0.1 s to generate and its rendered buckets stay
    cached for every later test. A test that changes its faults or clock restores them; one that
    runs the product against it sets STAX_OPENAI_BASE_URL to ``large_simulator.base_url`` itself.
    """
    with run_simulator(now=lambda: SIMULATOR_NOW, faults=Faults(retry_after=0), profile="large") as sim:
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


def load_from_api(
    settings,
    base_url: str,
    *,
    connection: str,
    window,
    api_key: str = ADMIN_KEY,
    provider: str = "openai",
    run_id: str | None = None,
):
    """What a sync's ingest does, without Dagster: ``window`` of ``connection`` from
    ``provider``'s API at ``base_url`` (the simulator) into raw, then its commit marker."""
    from stax_pipeline.ingest import load_window
    from stax_pipeline.providers import get_provider

    return load_window(
        settings,
        get_provider(provider),
        connection=connection,
        window=window,
        api_key=api_key,
        base_url=base_url,
        run_id=run_id or f"test-{connection}-{window}",
    )
