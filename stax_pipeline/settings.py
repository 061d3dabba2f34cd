"""Where local state lives and how the environment configures Stax.

Everything is read at call time (never at import), so tests and the CLI can point ``STAX_HOME``
elsewhere without reloading modules.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from stax_pipeline.errors import ConfigError

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_LOOKBACK_DAYS = 3
DEFAULT_WAREHOUSE_LOCK_TIMEOUT_S = 60.0
BACKFILL_DAYS = 30


@dataclass(frozen=True)
class HttpRetrySettings:
    """How long the HTTP client keeps retrying (the policy itself: ``stax_pipeline/lib/http.py``)."""

    max_retry_s: float = 300.0  # STAX_HTTP_MAX_RETRY_SECONDS: per request
    run_retry_s: float = 1800.0  # STAX_HTTP_RUN_RETRY_SECONDS: all requests of one sync run
    backoff_floor_s: float = 1.0  # STAX_HTTP_BACKOFF_FLOOR_SECONDS: the shortest wait


def load_http_retry_settings() -> HttpRetrySettings:
    """The retry budgets from the environment; a malformed value is a one-line ConfigError."""
    defaults = HttpRetrySettings()
    return HttpRetrySettings(
        max_retry_s=_seconds("STAX_HTTP_MAX_RETRY_SECONDS", defaults.max_retry_s, zero_ok=True),
        run_retry_s=_seconds("STAX_HTTP_RUN_RETRY_SECONDS", defaults.run_retry_s, zero_ok=True),
        backoff_floor_s=_seconds("STAX_HTTP_BACKOFF_FLOOR_SECONDS", defaults.backoff_floor_s),
    )


def _seconds(name: str, default: float, *, zero_ok: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(f"{name} must be a number of seconds {bound}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :func:`load_settings`."""

    home: Path
    openai_base_url: str
    lookback_days: int
    warehouse_lock_timeout_s: float = DEFAULT_WAREHOUSE_LOCK_TIMEOUT_S

    @property
    def warehouse_path(self) -> Path:
        """The pipeline's own DuckDB file (dlt and dbt write it); it may be busy."""
        return self.home / "warehouse.duckdb"

    @property
    def marts_path(self) -> Path:
        """The published copy of the marts that BI tools and SQL users open (lib/serving.py)."""
        return self.home / "marts.duckdb"

    @property
    def exports_dir(self) -> Path:
        """The marts as Parquet, one file per relation (a symlink swapped on every publish)."""
        return self.home / "exports"

    @property
    def app_db_path(self) -> Path:
        """The app database (connections and encrypted keys); never the warehouse."""
        return self.home / "stax.db"

    @property
    def master_key_path(self) -> Path:
        return self.home / "master.key"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dlt_pipelines_dir(self) -> Path:
        return self.home / "dlt"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def load_settings(*, create: bool = True) -> Settings:
    """Read the environment; with ``create`` make ``STAX_HOME`` (mode 0700) if missing.

    ``STAX_HOME`` is exported back as an absolute path so child processes (dbt, the Dagster
    webserver) see the same home whatever their working directory.
    """
    home = Path(os.environ.get("STAX_HOME") or ".stax").expanduser().resolve()
    raw_lookback = os.environ.get("STAX_LOOKBACK_DAYS", str(DEFAULT_LOOKBACK_DAYS))
    try:
        lookback = int(raw_lookback)
        if lookback < 0:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"STAX_LOOKBACK_DAYS must be a whole number of days >= 0, got {raw_lookback!r}"
        ) from None
    lock_timeout = _seconds_from_env("STAX_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_WAREHOUSE_LOCK_TIMEOUT_S)
    base_url = (os.environ.get("STAX_OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL).rstrip("/")
    load_http_retry_settings()  # a malformed value fails every command before it runs anything
    if create:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["STAX_HOME"] = str(home)
    return Settings(
        home=home,
        openai_base_url=base_url,
        lookback_days=lookback,
        warehouse_lock_timeout_s=lock_timeout,
    )


def _seconds_from_env(name: str, default: float) -> float:
    """A finite number of seconds >= 0 from ``name``, or a one-line ConfigError."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also refuses nan
        raise ConfigError(f"{name} must be a number of seconds >= 0, got {raw!r}")
    return seconds
