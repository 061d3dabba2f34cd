"""The one HTTP client and its retry policy, against the simulator over real HTTP."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from stax_pipeline.errors import ProviderError
from stax_pipeline.lib.http import ApiClient, HttpError, RetryPolicy
from stax_pipeline.simulator import Faults
from stax_pipeline.sources.openai_admin.helpers import OpenAIAdminClient, unix_midnight
from tests.conftest import ADMIN_KEY, TODAY

FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.01)


def _costs_params(days_ago: int = 3) -> list[tuple[str, str]]:
    return [("start_time", str(unix_midnight(TODAY - timedelta(days=days_ago))))]


def _client(sim, key: str = ADMIN_KEY, retry: RetryPolicy = FAST) -> ApiClient:
    return ApiClient(sim.base_url, key, retry=retry)


def test_retries_429_honouring_retry_after(simulator):
    simulator.faults = Faults(rate_limit_burst=2, retry_after=0)
    waits: list[float] = []
    client = ApiClient(simulator.base_url, ADMIN_KEY, retry=FAST, sleep=waits.append)
    body = client.get_json("/organization/costs", _costs_params())
    assert body["object"] == "page"
    assert client.requests_made == 3
    assert waits == [0.0, 0.0]  # Retry-After: 0 honoured, not replaced by our backoff


def test_retries_5xx_and_truncated_bodies(simulator):
    simulator.faults = Faults(error_5xx_burst=2, truncated_body_burst=1, retry_after=0)
    client = _client(simulator)
    body = client.get_json("/organization/costs", _costs_params())
    assert body["data"]
    assert client.requests_made == 4


def test_gives_up_after_bounded_attempts_naming_endpoint_and_status(simulator):
    simulator.faults = Faults(error_5xx_burst=100)
    client = _client(simulator)
    with pytest.raises(HttpError) as info:
        client.get_json("/organization/costs", _costs_params())
    assert client.requests_made == FAST.max_attempts
    message = str(info.value)
    assert "/organization/costs" in message and "HTTP 50" in message
    assert "again later" in message


def test_timeouts_are_retried_then_reported(simulator):
    simulator.faults = Faults(latency_ms=400)
    client = ApiClient(simulator.base_url, ADMIN_KEY, retry=RetryPolicy(2, 0.001, 0.01), timeout_s=0.1)
    with pytest.raises(ProviderError, match="timed out"):
        client.get_json("/organization/costs", _costs_params())
    assert client.requests_made == 2


def test_connection_refused_is_reported_with_what_to_do():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens
    client = ApiClient(f"http://127.0.0.1:{port}/v1", ADMIN_KEY, retry=RetryPolicy(2, 0.001, 0.01))
    with pytest.raises(ProviderError, match="could not connect.*STAX_OPENAI_BASE_URL"):
        client.get_json("/organization/costs", _costs_params())


@pytest.mark.parametrize("string_body", [False, True])
def test_both_error_body_shapes_give_the_api_message(simulator, string_body):
    simulator.faults = Faults(error_body_string=string_body)
    client = _client(simulator, key="sk-admin-test-nonowner-0000aaaa")
    with pytest.raises(HttpError) as info:
        client.get_json("/organization/costs", _costs_params())
    assert info.value.status == 403
    assert client.requests_made == 1  # not retried
    assert "api.usage.read" in info.value.api_message


def test_error_messages_never_contain_the_key(simulator):
    key = "sk-admin-test-revoked-9f8e7d6c5b4a"
    client = _client(simulator, key=key)
    with pytest.raises(HttpError) as info:
        client.get_json("/organization/costs", _costs_params())
    assert info.value.status == 401
    assert key not in str(info.value)
    assert key[-12:] not in str(info.value)


def test_repeating_cursor_fails_instead_of_looping(simulator):
    simulator.faults = Faults(cursor_loop=True, page_size=2)
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    today = TODAY
    with pytest.raises(ProviderError, match="same pagination cursor"):
        list(client.iter_buckets("/organization/costs", start=today - timedelta(days=10),
                                 end=today, limit=180))
    assert client.api.requests_made <= 3


def test_pagination_resends_every_parameter(simulator):
    simulator.faults = Faults(page_size=4)
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    today = TODAY
    start = today - timedelta(days=10)
    buckets = list(client.iter_buckets("/organization/usage/completions", start=start, end=today,
                                       limit=31, group_by=("project_id", "model")))
    assert [b["start_time"] for b in buckets] == [
        unix_midnight(start + timedelta(days=i)) for i in range(10)
    ]
    assert client.api.requests_made == 3  # ceil(10 / 4): the server's forced pages only
    for _, params in simulator.requests:
        assert params["group_by"] == ["project_id", "model"]
        assert params["limit"] == ["31"]
