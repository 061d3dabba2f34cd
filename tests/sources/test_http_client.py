"""The one HTTP client and its retry policy, against the simulator over real HTTP.

Waits are recorded through the client's ``sleep`` instead of slept (except where the simulator's
outage runs on the real clock), so minutes of policy take milliseconds of test.
"""

from __future__ import annotations

import itertools
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from stax_pipeline.errors import ConfigError, ProviderError
from stax_pipeline.lib.http import (
    ApiClient,
    HttpError,
    RetriesExhausted,
    RetryPolicy,
    retry_after_seconds,
    run_retry_budget,
)
from stax_pipeline.simulator import Faults
from stax_pipeline.sources.openai_admin.helpers import OpenAIAdminClient, unix_midnight
from stax_pipeline.sources.openai_admin.settings import LIST_MAX_PAGES
from tests.conftest import ADMIN_KEY, TODAY

FAST = RetryPolicy(max_retry_s=5.0, backoff_floor_s=0.001, backoff_cap_s=0.01)
# The shipped shape (a 1 s floor, a 60 s cap) with tighter limits; its waits are only recorded.
PATIENT = RetryPolicy(max_retry_s=10.0, run_retry_s=600.0, backoff_floor_s=1.0)
COSTS = "/organization/costs"


def _costs_params(days_ago: int = 3) -> list[tuple[str, str]]:
    return [("start_time", str(unix_midnight(TODAY - timedelta(days=days_ago))))]


def _client(sim, key: str = ADMIN_KEY, retry: RetryPolicy = FAST, **kwargs) -> ApiClient:
    return ApiClient(sim.base_url, key, retry=retry, **kwargs)


def _recording(sim, retry: RetryPolicy = PATIENT, **kwargs) -> tuple[ApiClient, list[float]]:
    """A client whose waits are recorded, not slept."""
    waits: list[float] = []
    return _client(sim, retry=retry, sleep=waits.append, **kwargs), waits


# -- 429 and Retry-After ---------------------------------------------------------------------


def test_429_waits_retry_after_and_does_not_consume_the_error_budget(simulator):
    # 9 s of rate limiting plus up to 6 s of 5xx backoff: more than the 10 s per request if
    # both drew on one budget, yet each kind stays within its own.
    simulator.faults = Faults(rate_limit_burst=3, retry_after=3, error_5xx_burst=2)
    client, waits = _recording(simulator)
    assert client.get_json(COSTS, _costs_params())["object"] == "page"
    assert client.requests_made == 6
    assert waits[:3] == [3.0, 3.0, 3.0]  # what Retry-After asked, not our backoff
    assert 1.0 <= waits[3] <= 2.0 and 1.0 <= waits[4] <= 4.0


def test_429_without_end_is_bounded_by_the_per_request_limit(simulator):
    simulator.faults = Faults(rate_limit_burst=1000, retry_after=4)
    client, waits = _recording(simulator)
    with pytest.raises(HttpError) as info:
        client.get_json(COSTS, _costs_params())
    assert info.value.status == 429 and info.value.retryable
    assert waits[:2] == [4.0, 4.0] and 1.5 < waits[2] < 2.0  # the last wait: what was left
    assert len(waits) == 3 and sum(waits) == pytest.approx(PATIENT.max_retry_s, abs=0.5)
    assert "kept rate limiting" in str(info.value)


def test_retry_after_as_an_http_date_is_honoured(simulator):
    simulator.faults = Faults(rate_limit_burst=1, retry_after=5, retry_after_form="http-date")
    client, waits = _recording(simulator)
    client.get_json(COSTS, _costs_params())
    assert len(waits) == 1 and 4.0 < waits[0] <= 6.0  # whole seconds, rounded up by the server


def test_malformed_retry_after_falls_back_to_the_backoff(simulator):
    simulator.faults = Faults(rate_limit_burst=2, retry_after=3, retry_after_form="nan")
    client, waits = _recording(simulator)
    client.get_json(COSTS, _costs_params())
    assert len(waits) == 2
    assert 1.0 <= waits[0] <= 2.0 and 1.0 <= waits[1] <= 4.0  # backoff with its floor, not 0 or nan


def test_retry_after_parsing_of_both_forms_and_what_is_not_believed():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    in_90s = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(in_90s, now=now) == 90.0
    assert retry_after_seconds("Fri, 20 Nov 2026 11:00:00 GMT", now=now) == 0.0  # past: now
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    for malformed in (None, "", "nan", "NaN", "inf", "-5", "86400000", "soon", "Fri, 99 Nov"):
        assert retry_after_seconds(malformed) is None, malformed


# -- errors: backoff with a floor, time limits ------------------------------------------------


def test_backoff_has_a_floor_and_grows(simulator):
    simulator.faults = Faults(error_5xx_burst=6)
    client, waits = _recording(simulator, retry=RetryPolicy(max_retry_s=300.0, backoff_floor_s=1.0))
    client.get_json(COSTS, _costs_params())
    assert len(waits) == 6
    for retry, wait in enumerate(waits):  # uniform(floor, floor * 2**(retry + 1))
        assert 1.0 <= wait <= 2.0 ** (retry + 1), (retry, wait)
    # The expected wait doubles (minus the floor) until the cap: 1.5, 2.5, 4.5, 8.5, …, then 30.5.
    means = [statistics.fmean(PATIENT.backoff(retry) for _ in range(300)) for retry in range(8)]
    assert all(later > 1.5 * earlier for earlier, later in itertools.pairwise(means[:6]))  # until the cap
    assert means[0] >= 1.0 and means[7] < PATIENT.backoff_cap_s
    assert min(PATIENT.backoff(0) for _ in range(1000)) >= PATIENT.backoff_floor_s


def test_per_request_limit_stops_with_one_clear_line(simulator):
    simulator.faults = Faults(error_5xx_burst=10_000)
    client, waits = _recording(simulator)
    with pytest.raises(HttpError) as info:
        client.get_json(COSTS, _costs_params())
    assert PATIENT.max_retry_s - PATIENT.backoff_floor_s <= sum(waits) <= PATIENT.max_retry_s
    assert min(waits) >= PATIENT.backoff_floor_s
    message = str(info.value)
    assert info.value.retryable and "\n" not in message
    assert message.startswith(f"GET {COSTS} failed with HTTP 50")
    assert "STAX_HTTP_MAX_RETRY_SECONDS=10" in message and "again later" in message
    assert ADMIN_KEY not in message


def test_run_limit_is_shared_by_every_request_of_the_run(simulator):
    simulator.faults = Faults(error_5xx_burst=10_000)
    policy = RetryPolicy(max_retry_s=100.0, backoff_floor_s=1.0)
    waits: list[float] = []
    with run_retry_budget(8.0) as budget:
        first = _client(simulator, retry=policy, sleep=waits.append)
        second = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=policy).api
    assert first.budget is budget and second.budget is budget
    with pytest.raises(HttpError, match=r"STAX_HTTP_RUN_RETRY_SECONDS=8\b"):
        first.get_json(COSTS, _costs_params())
    assert 7.0 <= sum(waits) <= 8.0 and budget.remaining_s < policy.backoff_floor_s
    with pytest.raises(HttpError, match="retry budget is used up"):
        second.get_json(COSTS, _costs_params())
    assert second.requests_made == 1  # nothing left to wait with: no retry at all
    assert ApiClient(simulator.base_url, ADMIN_KEY, retry=policy).budget is not budget


def test_no_retries_when_the_limit_is_zero(simulator):
    simulator.faults = Faults(error_5xx_burst=1)
    client, waits = _recording(simulator, retry=RetryPolicy(max_retry_s=0.0))
    with pytest.raises(HttpError, match="HTTP 500"):
        client.get_json(COSTS, _costs_params())
    assert client.requests_made == 1 and waits == []


def test_retries_5xx_and_truncated_bodies(simulator):
    simulator.faults = Faults(error_5xx_burst=2, truncated_body_burst=1, retry_after=0)
    client = _client(simulator)
    body = client.get_json(COSTS, _costs_params())
    assert body["data"]
    assert client.requests_made == 4


def test_timeouts_are_retried_then_reported(simulator):
    simulator.faults = Faults(latency_ms=300)
    policy = RetryPolicy(max_retry_s=0.35, backoff_floor_s=0.001, backoff_cap_s=0.01)
    client = _client(simulator, retry=policy, timeout_s=0.1)
    with pytest.raises(RetriesExhausted, match=r"timed out after 0.1s") as info:
        client.get_json(COSTS, _costs_params())
    assert info.value.retryable
    assert client.requests_made >= 3  # each attempt's 0.1 s counts against the 0.35 s


def test_connection_refused_is_reported_with_what_to_do():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens
    client = ApiClient(f"http://127.0.0.1:{port}/v1", ADMIN_KEY, retry=FAST.at_most(0.05))
    with pytest.raises(ProviderError, match=r"could not connect.*STAX_OPENAI_BASE_URL"):
        client.get_json(COSTS, _costs_params())
    assert client.requests_made > 1


# -- dropped connections and outages ----------------------------------------------------------


def test_a_connection_dropped_mid_response_is_retried(simulator):
    simulator.faults = Faults(drop_mid_response_every=2)
    client = _client(simulator)
    first = client.get_json(COSTS, _costs_params())  # request 1
    again = client.get_json(COSTS, _costs_params())  # request 2 is cut off half-way, 3 answers
    assert again == first
    assert client.requests_made == 3


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_an_outage_is_ridden_out(simulator, mode):
    simulator.faults = Faults(outage_at_request=2, outage_seconds=0.6, outage_mode=mode)
    client = _client(simulator, retry=RetryPolicy(max_retry_s=5.0, backoff_floor_s=0.02))
    client.get_json(COSTS, _costs_params())  # before the outage
    began = time.monotonic()
    assert client.get_json(COSTS, _costs_params())["object"] == "page"
    assert time.monotonic() - began >= 0.6  # it really waited the outage out
    assert client.requests_made > 3


def test_an_outage_longer_than_the_limit_fails_retryably(simulator):
    simulator.faults = Faults(outage_at_request=1, outage_seconds=60, outage_mode="drop")
    client, _ = _recording(simulator, retry=RetryPolicy(max_retry_s=3.0, backoff_floor_s=0.5))
    with pytest.raises(RetriesExhausted) as info:
        client.get_json(COSTS, _costs_params())
    message = str(info.value)
    assert info.value.retryable and "\n" not in message
    assert message.startswith(f"GET {COSTS} failed: the connection dropped")
    assert "STAX_HTTP_MAX_RETRY_SECONDS=3" in message and simulator.base_url in message


# -- what is never retried ----------------------------------------------------------------------


def test_a_redirect_is_an_error_not_data(simulator):
    simulator.faults = Faults(redirect_burst=1)  # its body is a valid, empty page
    client = _client(simulator)
    with pytest.raises(HttpError) as info:
        client.get_json(COSTS, _costs_params())
    assert info.value.status == 301 and not info.value.retryable
    assert client.requests_made == 1
    message = str(info.value)
    assert "redirected to https://api.openai.invalid/v1/organization/costs" in message
    assert "STAX_OPENAI_BASE_URL" in message


@pytest.mark.parametrize("string_body", [False, True])
def test_both_error_body_shapes_give_the_api_message(simulator, string_body):
    simulator.faults = Faults(error_body_string=string_body)
    client = _client(simulator, key="sk-admin-test-nonowner-0000aaaa")
    with pytest.raises(HttpError) as info:
        client.get_json(COSTS, _costs_params())
    assert info.value.status == 403 and not info.value.retryable
    assert client.requests_made == 1  # not retried
    assert "api.usage.read" in info.value.api_message


def test_error_messages_never_contain_the_key(simulator):
    key = "sk-admin-test-revoked-9f8e7d6c5b4a"
    client = _client(simulator, key=key)
    with pytest.raises(HttpError) as info:
        client.get_json(COSTS, _costs_params())
    assert info.value.status == 401
    assert key not in str(info.value)
    assert key[-12:] not in str(info.value)


# -- configuration ------------------------------------------------------------------------------


def test_policy_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("STAX_HTTP_MAX_RETRY_SECONDS", "45")
    monkeypatch.setenv("STAX_HTTP_RUN_RETRY_SECONDS", "600")
    monkeypatch.setenv("STAX_HTTP_BACKOFF_FLOOR_SECONDS", "0.25")
    assert RetryPolicy.from_env() == RetryPolicy(max_retry_s=45, run_retry_s=600, backoff_floor_s=0.25)
    client = ApiClient("http://127.0.0.1:9/v1", ADMIN_KEY)
    assert client.retry.max_retry_s == 45 and client.budget.limit_s == 600


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STAX_HTTP_MAX_RETRY_SECONDS", "five"),
        ("STAX_HTTP_MAX_RETRY_SECONDS", "nan"),
        ("STAX_HTTP_RUN_RETRY_SECONDS", "-1"),
        ("STAX_HTTP_BACKOFF_FLOOR_SECONDS", "0"),
    ],
)
def test_a_malformed_setting_is_one_clear_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        RetryPolicy.from_env()
    assert str(info.value).startswith(f"{name} must be a number of seconds")
    assert repr(value) in str(info.value) and "\n" not in str(info.value)


# -- pagination bounds --------------------------------------------------------------------------


def test_repeating_cursor_fails_instead_of_looping(simulator):
    simulator.faults = Faults(cursor_loop=True, page_size=2)
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    with pytest.raises(ProviderError, match="same pagination cursor"):
        list(client.iter_buckets(COSTS, start=TODAY - timedelta(days=10), end=TODAY, limit=180))
    assert client.api.requests_made <= 3


def test_bucket_pagination_stops_after_a_bound_on_pages_per_window(simulator):
    start, end = TODAY - timedelta(days=10), TODAY
    simulator.faults = Faults(page_size=1)  # one day a page: the most pages a window can honestly take
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    assert len(list(client.iter_buckets(COSTS, start=start, end=end, limit=180))) == 10
    simulator.faults = Faults(page_size=4, endless_pages=True)  # fresh cursors, forever
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    with pytest.raises(ProviderError) as info:
        list(client.iter_buckets(COSTS, start=start, end=end, limit=180))
    assert client.api.requests_made == 12  # 10 days + 2
    assert str(info.value).startswith(f"GET {COSTS} was still paging after 12 pages for a 10-day")
    assert not info.value.retryable


def test_project_pagination_stops_after_a_bound(simulator):
    simulator.faults = Faults(endless_pages=True)
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    with pytest.raises(ProviderError, match="still paging after 1000 pages"):
        list(client.iter_projects())
    assert client.api.requests_made == LIST_MAX_PAGES


def test_pagination_resends_every_parameter(simulator):
    simulator.faults = Faults(page_size=4)
    client = OpenAIAdminClient(simulator.base_url, ADMIN_KEY, retry=FAST)
    start = TODAY - timedelta(days=10)
    buckets = list(
        client.iter_buckets(
            "/organization/usage/completions",
            start=start,
            end=TODAY,
            limit=31,
            group_by=("project_id", "model"),
        )
    )
    assert [b["start_time"] for b in buckets] == [unix_midnight(start + timedelta(days=i)) for i in range(10)]
    assert client.api.requests_made == 3  # ceil(10 / 4): the server's forced pages only
    for _, params in simulator.requests:
        assert params["group_by"] == ["project_id", "model"]
        assert params["limit"] == ["31"]
