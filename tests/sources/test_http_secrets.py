"""The HTTP client and the key: checked before anything is sent, masked in every encoding an API
might echo, and never sent to the wrong kind of API (the simulator vs a real one)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from stax_pipeline.errors import CredentialError, ProviderError, SettingError
from stax_pipeline.lib.http import ApiClient, HttpError, RetryPolicy
from stax_pipeline.lib.redaction import redact
from tests.conftest import ADMIN_KEY

FAST = RetryPolicy(max_retry_s=0.5, backoff_floor_s=0.005)
COSTS = "/organization/costs"


def echoed_forms(token: str) -> list[str]:
    """How a careless API or proxy might echo the bearer token back."""
    raw = token.encode()
    return [
        token,
        quote(token, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(b"Bearer " + raw).decode(),  # the whole header value
        base64.b64encode(b"user:" + raw).decode(),  # as Basic credentials
        raw.hex(),
    ]


@contextmanager
def plain_api(status: int, body_for) -> Iterator[tuple[str, list[str]]]:
    """A small HTTP API on this machine that is NOT the simulator: it answers every GET with
    ``status`` and ``body_for(token)``; yields its base URL and the tokens it received."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            received.append(token)
            body = json.dumps(body_for(token)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_api_echoing_the_key_in_any_encoding_never_gets_it_into_a_message():
    def echo(token):
        return {"error": {"message": "bad credentials: " + " | ".join(echoed_forms(token))}}

    with plain_api(400, echo) as (url, received):
        client = ApiClient(url, ADMIN_KEY, retry=FAST)
        with pytest.raises(HttpError) as info:
            client.get_json(COSTS)
    assert received == [ADMIN_KEY]
    message = str(info.value)
    assert "bad credentials" in message and "[redacted]" in message
    for form in echoed_forms(ADMIN_KEY):
        # not the form, nor any 16 characters of it
        assert not any(form[i : i + 16] in message for i in range(len(form) - 15)), form


def test_redaction_masks_only_what_it_knows_or_what_looks_like_a_key():
    ApiClient("https://api.openai.com/v1", "tok-" + "Zq9" * 8).close()  # registers the token
    assert redact("token tok-" + "Zq9" * 8 + " is wrong") == "token [redacted] is wrong"
    assert redact(quote("tok-" + "Zq9" * 8 + "/+", safe="")) != quote("tok-" + "Zq9" * 8 + "/+", safe="")
    assert redact("sk-proj-abcdefgh1234 was revoked") == "sk-… was revoked"
    assert redact("nothing secret here: 2026-11-20, gpt-4o") == "nothing secret here: 2026-11-20, gpt-4o"


@pytest.mark.parametrize(
    ("url", "token", "error"),
    [
        (None, ADMIN_KEY[:12] + "\x00" + ADMIN_KEY[12:], CredentialError),
        (None, ADMIN_KEY + "\x01", CredentialError),
        (None, ADMIN_KEY + "ü", CredentialError),
        (None, ADMIN_KEY + " x", CredentialError),
        (None, "sk-admin-" + "a" * 2000, CredentialError),
        ("http://example.com/v1", ADMIN_KEY, SettingError),
    ],
)
def test_a_token_or_url_that_could_leak_is_refused_before_any_request(simulator, url, token, error):
    with pytest.raises(error) as info:
        ApiClient(url or simulator.base_url, token, retry=FAST)
    assert ADMIN_KEY[9:] not in str(info.value)
    assert simulator.requests == []  # not one attempt, let alone three


def test_a_real_connection_stops_at_the_simulators_first_answer(simulator):
    client = ApiClient(simulator.base_url, ADMIN_KEY, retry=FAST, expect_simulator=False)
    with pytest.raises(ProviderError, match="answered as the Stax simulator") as info:
        client.get_json(COSTS, [("start_time", "1700000000")])
    assert not info.value.retryable
    assert len(simulator.requests) == 1  # no retry, no second page


def test_a_simulated_connection_stops_at_an_api_that_is_not_the_simulator():
    with plain_api(200, lambda token: {"object": "page", "data": [], "has_more": False}) as (url, received):
        client = ApiClient(url, ADMIN_KEY, retry=FAST, expect_simulator=True)
        with pytest.raises(ProviderError, match="did not answer as the Stax simulator"):
            client.get_json(COSTS)
        assert ApiClient(url, ADMIN_KEY, retry=FAST).get_json(COSTS)["object"] == "page"  # unmarked: fine
    assert len(received) == 2
