"""Where local state lives and how the environment configures Stax.

Everything is read at call time (never at import), so tests and the CLI can point ``STAX_HOME``
elsewhere without reloading modules. Each ``STAX_*`` variable is parsed when it is first needed,
so a command that only reads (``stax connections``, ``report``, ``doctor``) is not broken by a
malformed setting it does not use; a command that changes state calls :func:`load_settings`
(``create=True``), which checks every variable before it creates anything. A malformed value is
one :class:`~stax_pipeline.errors.SettingError` line (exit 2) that names the variable.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stax_pipeline.errors import SettingError

DEFAULT_LOOKBACK_DAYS = 3
DEFAULT_WAREHOUSE_LOCK_TIMEOUT_S = 60.0
BACKFILL_DAYS = 30

# Upper bounds: beyond them a value is a typo or a unit mix-up, not a wish (a lookback of a year
# re-pulls a year every night; a retry budget of days never ends a sync).
MAX_LOOKBACK_DAYS = 365
MAX_WAIT_S = 86400.0  # a day: per-request and per-run retry budgets, the warehouse lock wait
MAX_BACKOFF_FLOOR_S = 60.0  # the backoff's own cap: a higher floor would never back off less
_SHOWN_CHARS = 40  # of a malformed value in an error message


@dataclass(frozen=True)
class HttpRetrySettings:
    """How long the HTTP client keeps retrying (the policy itself: ``stax_pipeline/lib/http.py``)."""

    max_retry_s: float = 300.0  # STAX_HTTP_MAX_RETRY_SECONDS: per request
    run_retry_s: float = 1800.0  # STAX_HTTP_RUN_RETRY_SECONDS: all requests of one sync run
    backoff_floor_s: float = 1.0  # STAX_HTTP_BACKOFF_FLOOR_SECONDS: the shortest wait


def load_http_retry_settings() -> HttpRetrySettings:
    """The retry budgets from the environment; a malformed value is a one-line SettingError."""
    defaults = HttpRetrySettings()
    return HttpRetrySettings(
        max_retry_s=_seconds("STAX_HTTP_MAX_RETRY_SECONDS", defaults.max_retry_s, zero_ok=True),
        run_retry_s=_seconds("STAX_HTTP_RUN_RETRY_SECONDS", defaults.run_retry_s, zero_ok=True),
        backoff_floor_s=_seconds(
            "STAX_HTTP_BACKOFF_FLOOR_SECONDS", defaults.backoff_floor_s, maximum=MAX_BACKOFF_FLOOR_S
        ),
    )


def _raw(name: str) -> str | None:
    """The variable's value, or None when it is unset or blank (``FOO= cmd`` means unset)."""
    value = os.environ.get(name)
    return value if value is not None and value.strip() else None


def shown(value: str) -> str:
    """A malformed value as an error message shows it: quoted, escaped, at most a few words."""
    if len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + f"… ({len(value)} characters)"
    return repr(value)


def _seconds(name: str, default: float, *, zero_ok: bool = False, maximum: float = MAX_WAIT_S) -> float:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok) or value > maximum:
        bound = f"from 0 to {maximum:g}" if zero_ok else f"> 0 and at most {maximum:g}"
        raise SettingError(f"{name} must be a number of seconds {bound}, got {shown(raw)}")
    return value


def _lookback_days() -> int:
    name = "STAX_LOOKBACK_DAYS"
    raw = _raw(name)
    if raw is None:
        return DEFAULT_LOOKBACK_DAYS
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_LOOKBACK_DAYS:
        raise SettingError(
            f"{name} must be a whole number of days from 0 to {MAX_LOOKBACK_DAYS}, got {shown(raw)}"
        )
    return int(text)


def _configured_base_urls() -> None:
    """Check every provider's ``STAX_<PROVIDER>_BASE_URL`` (https, or http only to this machine)."""
    from stax_pipeline.providers import PROVIDERS

    for provider in PROVIDERS:
        provider.configured_base_url()


def _master_keys() -> None:
    """Decode STAX_MASTER_KEY and STAX_NEW_MASTER_KEY if set (their errors never echo them)."""
    from stax_pipeline.credentials.crypto import MASTER_KEY_ENV, NEW_MASTER_KEY_ENV, master_key_from_env

    master_key_from_env(MASTER_KEY_ENV)
    master_key_from_env(NEW_MASTER_KEY_ENV)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration: where state lives; every other setting is read when used.

    Build it with :func:`load_settings`.
    """

    home: Path

    @property
    def lookback_days(self) -> int:
        """``STAX_LOOKBACK_DAYS``: closed days the nightly sync re-pulls."""
        return _lookback_days()

    @property
    def warehouse_lock_timeout_s(self) -> float:
        """``STAX_WAREHOUSE_LOCK_TIMEOUT``: how long a sync waits for the warehouse's lock."""
        return _seconds("STAX_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_WAREHOUSE_LOCK_TIMEOUT_S, zero_ok=True)

    @property
    def http_retry(self) -> HttpRetrySettings:
        """``STAX_HTTP_*``: the HTTP client's retry budgets."""
        return load_http_retry_settings()

    def validate(self) -> None:
        """Parse every ``STAX_*`` setting now; raise the first malformed one's SettingError."""
        for check in _CHECKS:
            check(self)

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


# Every setting Settings.validate() checks (STAX_HOME itself is checked by load_settings).
_CHECKS: tuple[Callable[[Settings], object], ...] = (
    lambda s: _configured_base_urls(),
    lambda s: s.lookback_days,
    lambda s: s.warehouse_lock_timeout_s,
    lambda s: s.http_retry,
    lambda s: _master_keys(),
)


def load_settings(*, create: bool = True) -> Settings:
    """Read ``STAX_HOME``; with ``create``, check every setting, then make ``STAX_HOME`` (a
    private folder, mode 0700, also when it already existed) if missing.

    Without ``create`` (commands that only read) nothing is created and only ``STAX_HOME`` is
    checked; other settings are parsed when used. ``STAX_HOME`` is exported back as an absolute
    path so child processes (dbt, the Dagster webserver) see the same home whatever their
    working directory.
    """
    raw_home = _raw("STAX_HOME")
    home = Path(raw_home or ".stax").expanduser().resolve()
    _check_home(home)
    settings = Settings(home=home)
    if create:
        from stax_pipeline.lib.private_files import make_private, private_umask

        settings.validate()  # nothing is created while any setting is malformed
        private_umask()  # everything this process (and dbt) creates is owner-only
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingError(f"STAX_HOME {home} cannot be created: {exc.strerror}") from None
        make_private(home)
    os.environ["STAX_HOME"] = str(home)
    return settings


def _check_home(home: Path) -> None:
    """Refuse a ``STAX_HOME`` that is a file, or a shared folder such as /tmp."""
    try:
        info = home.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SettingError(f"STAX_HOME {home} cannot be used: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SettingError(f"STAX_HOME {home} is a file, not a folder: point STAX_HOME at a folder")
    if info.st_mode & (stat.S_ISVTX | stat.S_IWOTH):
        raise SettingError(
            f"STAX_HOME {home} is a folder shared with other users (like /tmp): point STAX_HOME at "
            "a folder of its own, e.g. a new subfolder"
        )
