"""Where a connection's admin key may be sent: its own API, over TLS, and nowhere else.

A key is sent only to the API base URL its connection was made against, stored with it at
connect time (``credentials/store.py``), never to whatever its provider's variable
(``STAX_<PROVIDER>_BASE_URL``, e.g. ``STAX_OPENAI_BASE_URL``) says today:

- **https only**, except plain ``http://`` to this machine (127.0.0.0/8, ``::1``, ``localhost``:
  the simulator, a local proxy). :func:`check_base_url` is applied to the configured URL, to the
  stored one before every sync, and by the HTTP client itself before it sends anything.
- **The simulator is never confused with a real API.** The simulator marks every answer with
  ``X-Stax-Simulator: 1``; a connection whose key check was answered so is stored as simulated.
  A simulated connection is only synced against a simulator on this machine (the configured
  URL if set — the simulator's port changes from run to run — else its stored one), and every
  answer must carry the header. A real connection is only synced against its stored URL, and an
  answer carrying the header ends the sync. So a real key never reaches the simulator, and
  simulated days never overwrite real ones.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from stax_pipeline.errors import SettingError

SIMULATOR_HEADER = "X-Stax-Simulator"  # every answer of stax_pipeline/simulator carries it: "1"
MAX_URL_CHARS = 2048


class StoredEndpoint(Protocol):
    """What a stored connection knows about its API (``credentials.Connection``)."""

    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def api_base_url(self) -> str: ...
    @property
    def simulated(self) -> bool: ...


@dataclass(frozen=True)
class ApiEndpoint:
    """The base URL a sync sends a connection's key to, and whether the simulator must answer."""

    base_url: str
    simulator: bool


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1`` (names are not resolved: DNS could say anything)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, source: str) -> str:
    """Return ``url`` without a trailing slash if a key may be sent there; else a SettingError
    naming ``source`` (where the URL came from). Never resolves or contacts the host, and never
    echoes the URL (a key pasted into the wrong variable must not end up on screen)."""
    malformed = SettingError(
        f"{source} must be a URL like https://api.openai.com/v1 (https://, a host, an optional "
        "port and path; no spaces, user name, query or fragment)"
    )
    if len(url) > MAX_URL_CHARS or not (url.isascii() and url.isprintable()) or any(c in url for c in " \\"):
        raise malformed
    import httpx  # here, not at import: `stax connections` and argument errors need no HTTP client

    try:
        parts = urlsplit(url)
        _ = parts.port  # reading it raises ValueError on a malformed port
        # The host checked here must be the host the HTTP client connects to.
        same_host = httpx.URL(url).host == (parts.hostname or "")
    except (ValueError, httpx.InvalidURL):
        raise malformed from None
    if not same_host:
        raise malformed
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise malformed
    # "https://api.openai.com@evil.example/" reads as OpenAI and goes to evil.example.
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise malformed
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        raise SettingError(
            f"{source} uses plain http:// to {parts.hostname}, which would send the admin key "
            "unencrypted: use https:// (http:// is only allowed to this machine: 127.0.0.1, ::1, "
            "localhost)"
        )
    return url.rstrip("/")


def configured_base_url(variable: str) -> str | None:
    """The base URL in the environment ``variable`` (a provider's ``STAX_<PROVIDER>_BASE_URL``),
    checked as :func:`check_base_url` does; None when it is unset or blank."""
    import os

    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return None
    return check_base_url(raw.strip(), source=variable)


def connection_endpoint(connection: StoredEndpoint) -> ApiEndpoint:
    """Where a sync (or a key check) of a stored connection sends its key: :func:`sync_endpoint`
    with its provider's configured URL and variable (``providers.py``)."""
    from stax_pipeline.providers import get_provider

    provider = get_provider(connection.provider)
    return sync_endpoint(connection, provider.configured_base_url(), variable=provider.base_url_variable)


def sync_endpoint(
    connection: StoredEndpoint, configured_url: str | None, *, variable: str = "STAX_OPENAI_BASE_URL"
) -> ApiEndpoint:
    """Where a sync of ``connection`` sends its key (``configured_url``: the ``variable`` if set).

    A real connection: its stored URL, whatever is configured. A simulated one: the configured
    URL if set (the simulator's port changes between runs), else its stored one — refused
    unless it is on this machine, so a simulated connection never talks to a real API.
    """
    stored = check_base_url(connection.api_base_url, source=f"the stored API URL of {connection.name!r}")
    if not connection.simulated:
        return ApiEndpoint(stored, simulator=False)
    url = configured_url or stored
    host = urlsplit(url).hostname or ""
    if not is_loopback_host(host):
        raise SettingError(
            f"connection {connection.name!r} was made against the Stax simulator, but {variable} "
            f"points at {url}: a simulated connection is only synced against a simulator on this "
            f"machine. Start one (`stax simulator`) and set {variable} to its URL, or unset {variable}"
        )
    return ApiEndpoint(url, simulator=True)
