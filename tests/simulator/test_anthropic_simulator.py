"""The simulator's Anthropic side, over raw HTTP: auth headers, error bodies, limits, grouping,
page tokens, listings, and the fault switches answering in Anthropic's shape."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from stax_pipeline.simulator import Faults
from tests.conftest import TODAY

KEY = "sk-ant-admin01-test-sim-0a1b2c3d4e5f"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
START = f"{(TODAY - timedelta(days=10)).isoformat()}T00:00:00Z"
END = f"{TODAY.isoformat()}T00:00:00Z"


def _get(sim, path: str, params=(), headers=HEADERS) -> httpx.Response:
    return httpx.get(f"{sim.base_url}{path}", params=list(params), headers=headers, timeout=10)


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return response.status_code, body["error"]["type"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"anthropic-version": "2023-06-01"}, (401, "authentication_error")),
        ({"x-api-key": KEY}, (400, "invalid_request_error")),
        (
            {"x-api-key": "sk-ant-api03-inference-key", "anthropic-version": "2023-06-01"},
            (401, "authentication_error"),
        ),
        ({"x-api-key": KEY + "-revoked", "anthropic-version": "2023-06-01"}, (401, "authentication_error")),
        ({"x-api-key": KEY + "-nopermission", "anthropic-version": "2023-06-01"}, (403, "permission_error")),
        (
            {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"},
            (401, "authentication_error"),
        ),
    ],
)
def test_authentication_answers_in_anthropic_error_bodies(simulator, headers, expected):
    response = _get(simulator, "/organizations/cost_report", [("starting_at", START)], headers)
    assert _error(response) == expected


def test_the_two_apis_are_distinct_paths_of_one_process(simulator):
    anthropic = _get(simulator, "/organizations/cost_report", [("starting_at", START)])
    openai = httpx.get(
        f"{simulator.base_url}/organization/costs",
        params={"start_time": 1},
        headers={"Authorization": "Bearer sk-admin-test-0123456789abcdef"},
        timeout=10,
    )
    assert anthropic.status_code == openai.status_code == 200
    assert "data" in anthropic.json() and openai.json()["object"] == "page"
    # an Anthropic key means nothing to the OpenAI side, and the other way round
    assert (
        httpx.get(
            f"{simulator.base_url}/organization/costs",
            params={"start_time": 1},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
        ).status_code
        == 403
    )
    assert (
        _get(
            simulator,
            "/organizations/cost_report",
            [("starting_at", START)],
            {"x-api-key": "sk-admin-test-0123456789abcdef", "anthropic-version": "2023-06-01"},
        ).status_code
        == 401
    )


@pytest.mark.parametrize(
    "params",
    [
        [("starting_at", START), ("limit", "32")],
        [("starting_at", START), ("bucket_width", "1h")],
        [("starting_at", START), ("group_by[]", "api_key_id")],  # no per-key cost
        [("limit", "7")],
    ],
)
def test_the_cost_report_refuses_what_the_api_refuses(simulator, params):
    assert _error(_get(simulator, "/organizations/cost_report", params)) == (400, "invalid_request_error")


def test_page_tokens_walk_the_window_and_amounts_are_cents(simulator):
    params = [("starting_at", START), ("ending_at", END), ("limit", "4"), ("group_by[]", "description")]
    pages, token = [], None
    while True:
        body = _get(
            simulator, "/organizations/cost_report", params + ([("page", token)] if token else [])
        ).json()
        pages.append(body)
        if not body["has_more"]:
            assert body["next_page"] is None
            break
        token = body["next_page"]
    assert [len(p["data"]) for p in pages] == [4, 4, 2]
    org = simulator.anthropic_org_for_key(KEY)
    truth = org.cost_cents_by_day(TODAY - timedelta(days=10), TODAY)
    buckets = [bucket for page in pages for bucket in page["data"]]
    for offset, bucket in enumerate(buckets):
        day = TODAY - timedelta(days=10 - offset)
        assert bucket["starting_at"] == f"{day.isoformat()}T00:00:00Z"
        assert all(isinstance(r["amount"], str) and r["currency"] == "USD" for r in bucket["results"])
        assert sum((Decimal(r["amount"]) for r in bucket["results"]), Decimal(0)) == truth[day]
    # a token is bound to its parameters
    other = [("starting_at", START), ("limit", "5"), ("page", pages[0]["next_page"])]
    assert _error(_get(simulator, "/organizations/cost_report", other)) == (400, "invalid_request_error")


def test_usage_is_grouped_only_by_what_is_asked(simulator):
    body = _get(
        simulator,
        "/organizations/usage_report/messages",
        [("starting_at", START), ("ending_at", END), ("group_by[]", "model")],
    ).json()
    results = [r for b in body["data"] for r in b["results"]]
    assert results and all(
        r["workspace_id"] is None and r["api_key_id"] is None and r["model"] for r in results
    )
    assert set(results[0]["cache_creation"]) == {"ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"}
    assert set(results[0]["server_tool_use"]) == {"web_search_requests"}


def test_listings_page_by_after_id(simulator):
    org = simulator.anthropic_org_for_key(KEY)
    seen, after = [], None
    while True:
        body = _get(
            simulator, "/organizations/api_keys", [("limit", "2")] + ([("after_id", after)] if after else [])
        ).json()
        seen += [k["id"] for k in body["data"]]
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert seen == [k["id"] for k in org.api_keys()]
    default = _get(simulator, "/organizations/workspaces", [("include_default", "true")]).json()["data"][0]
    assert default["id"] == "default"
    assert _get(simulator, "/organizations/workspaces").json()["data"][0]["id"] != "default"


def test_fault_switches_answer_in_anthropic_shape(simulator):
    simulator.faults = Faults(rate_limit_burst=1, retry_after=7, error_5xx_burst=2)
    limited = _get(simulator, "/organizations/cost_report", [("starting_at", START)])
    assert _error(limited) == (429, "rate_limit_error") and limited.headers["retry-after"] == "7"
    assert _error(_get(simulator, "/organizations/cost_report", [("starting_at", START)])) == (
        500,
        "api_error",
    )
    assert _error(_get(simulator, "/organizations/cost_report", [("starting_at", START)])) == (
        529,
        "overloaded_error",
    )
    simulator.faults = Faults(truncated_body_burst=1)
    truncated = _get(simulator, "/organizations/cost_report", [("starting_at", START)])
    with pytest.raises(ValueError):
        truncated.json()
    assert _get(simulator, "/organizations/cost_report", [("starting_at", START)]).status_code == 200
