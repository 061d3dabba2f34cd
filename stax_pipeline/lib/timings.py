"""Where a sync's time goes: one JSON line per phase in ``$STAX_HOME/logs/timings.jsonl``.

``make bench`` splits a run into fetch, extract, normalize, load, dbt and publish from these
lines (orchestration is what is left of the wall time); a person can read them too when a sync
feels slow.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stax_pipeline.settings import Settings


def record_phase(
    settings: Settings, *, run_id: str, connection: str, phase: str, seconds: float, **extra: Any
) -> None:
    """Append one phase's figures (a single short ``O_APPEND`` write, so lines never interleave)."""
    settings.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = json.dumps(
        {"run_id": run_id, "connection": connection, "phase": phase, "seconds": round(seconds, 4), **extra},
        default=str,
    )
    fd = os.open(settings.logs_dir / "timings.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the block's wall time in seconds."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start
