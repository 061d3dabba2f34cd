"""Each connection keeps the API it was made against (and whether that was the simulator); keys
and URLs that could leak the key are refused before anything is stored."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.errors import SettingError, UsageError
from stax_pipeline.lib.endpoints import check_base_url, sync_endpoint
from stax_pipeline.settings import Settings, load_settings

KEY_A = "sk-admin-" + "Qx7vLr2NpW9sKd4TmYb8HcZf3JgE6uRa"
KEY_B = "sk-admin-" + "Vn5tBw1XcM8qPz0LkSd7FjHy2GrU4eTo"
KEY_C = "sk-admin-" + "Hc2pRt6WmZ9bQx4KsJd8VfLy3NgE7uTa"
SIMULATOR = "http://127.0.0.1:8765/v1"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STAX_HOME", str(tmp_path / "home"))
    for name in ("STAX_MASTER_KEY", "STAX_NEW_MASTER_KEY", "STAX_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return load_settings(create=False)


def test_a_connection_keeps_the_api_it_was_made_against(settings, monkeypatch):
    store = ConnectionStore(settings)
    monkeypatch.setenv("STAX_OPENAI_BASE_URL", SIMULATOR + "/")
    store.add("demo", "openai", KEY_A)  # no key check seen: a URL on this machine is the simulator
    monkeypatch.delenv("STAX_OPENAI_BASE_URL")
    store.add("acme", "openai", KEY_B)
    store.add("proxied", "openai", KEY_C, base_url="http://localhost:9000/v1", simulated=False)

    stored = {c.name: (c.api_base_url, c.simulated) for c in ConnectionStore(load_settings()).list()}
    assert stored == {
        "demo": (SIMULATOR, True),
        "acme": ("https://api.openai.com/v1", False),
        "proxied": ("http://localhost:9000/v1", False),
    }


def test_a_sync_sends_the_key_to_the_stored_api_only():
    real = SimpleNamespace(name="acme", api_base_url="https://api.openai.com/v1", simulated=False)
    simulated = SimpleNamespace(name="demo", api_base_url=SIMULATOR, simulated=True)
    # A real connection ignores whatever is configured today (the simulator, another API).
    for configured in (None, "http://127.0.0.1:9999/v1", "https://eu.api.example/v1"):
        endpoint = sync_endpoint(real, configured)
        assert (endpoint.base_url, endpoint.simulator) == ("https://api.openai.com/v1", False)
    # A simulated one follows the simulator's port, and never leaves this machine.
    assert sync_endpoint(simulated, None).base_url == SIMULATOR
    moved = sync_endpoint(simulated, "http://[::1]:40000/v1")
    assert (moved.base_url, moved.simulator) == ("http://[::1]:40000/v1", True)
    with pytest.raises(
        SettingError, match=r"made against the Stax simulator.*never|only synced against a simulator"
    ):
        sync_endpoint(simulated, "https://api.openai.com/v1")
    # A stored URL that could not have been stored (edited by hand) is refused too.
    tampered = SimpleNamespace(name="acme", api_base_url="http://api.openai.com/v1", simulated=False)
    with pytest.raises(SettingError, match="plain http://"):
        sync_endpoint(tampered, None)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://api.openai.com:443/v1/",
        "http://127.0.0.1:8765/v1",
        "http://127.8.9.1/v1",
        "http://[::1]:8765/v1",
        "http://localhost:8765/v1",
        "HTTP://LOCALHOST/v1",
    ],
)
def test_urls_a_key_may_go_to(url):
    assert check_base_url(url, source="X") == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://api.openai.com/v1", "plain http://"),
        ("http://10.0.0.7:8765/v1", "plain http://"),
        ("http://0x7f000001/v1", "plain http://"),  # an integer IP: not recognised, so not trusted
        ("http://localhost.example.com/v1", "plain http://"),
        ("https://api.openai.com@evil.example/v1", "must be a URL"),  # reads as OpenAI, goes to evil
        ("https://user:secret@api.openai.com/v1", "must be a URL"),
        ("https://api.openai.com/v1?key=sk-admin-x", "must be a URL"),
        ("https://api.openai.com/v1#x", "must be a URL"),
        ("ftp://api.openai.com/v1", "must be a URL"),
        ("https://api.openai.com:99999/v1", "must be a URL"),
        ("https:///v1", "must be a URL"),
        ("https://api.openai.com/v1\n", "must be a URL"),
        ("https://api.öpenai.com/v1", "must be a URL"),
        ("http://127.0.0.1\\@evil.example/v1", "must be a URL"),
        ("https://" + "a" * 3000 + ".com/v1", "must be a URL"),
    ],
)
def test_urls_a_key_never_goes_to(settings, url, says):
    with pytest.raises(SettingError, match=says) as info:
        check_base_url(url, source="STAX_OPENAI_BASE_URL")
    assert "sk-admin" not in str(info.value) and "secret" not in str(info.value)  # never echoed
    with pytest.raises(SettingError):
        ConnectionStore(settings).add("acme", "openai", KEY_A, base_url=url)
    assert not settings.home.exists()  # refused before the store or a master key was created


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (KEY_A[:12] + "\x01" + KEY_A[12:], "control characters"),
        (KEY_A[:12] + "\x00" + KEY_A[12:], "control characters"),
        (KEY_A + "é", "non-ASCII"),
        (KEY_A + "a" * 200, "at most 200"),
        (f'"{KEY_A}"', "in quotes"),
        (KEY_A[:12] + " " + KEY_A[12:], "spaces"),
    ],
)
def test_keys_no_api_could_accept_are_never_stored(settings, key, says):
    with pytest.raises(UsageError, match=says) as info:
        ConnectionStore(settings).add("acme", "openai", key)
    assert KEY_A[9:] not in str(info.value)
    assert not settings.home.exists()
