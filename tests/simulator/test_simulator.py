"""HTTP-level tests of the OpenAI Admin API simulator (stax_pipeline.simulator)."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from stax_pipeline.simulator import Faults, Simulator, run_simulator
from stax_pipeline.simulator.data import ENDPOINTS

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
KEY = "sk-admin-test-0123456789abcdef"
TODAY = NOW.date()


def day_of(seconds: int) -> date:
    return datetime.fromtimestamp(seconds, UTC).date()


def ts(d: date | datetime) -> int:
    if isinstance(d, datetime):
        return int(d.timestamp())
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def server() -> Iterator[Simulator]:
    with run_simulator(now=lambda: NOW) as sim:
        yield sim


@pytest.fixture
def sim(server: Simulator) -> Simulator:
    server.faults = Faults()
    server.now = lambda: NOW
    server.reset_requests()
    return server


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    assert sim.base_url is not None
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def fetch_all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow next_page, resending every original param, and return all buckets."""
    buckets, page = [], None
    for _ in range(100):
        body = get(client, path, **params, **({"page": page} if page else {}))
        buckets += body["data"]
        page = body["next_page"]
        assert (page is None) == (not body["has_more"])
        if not page:
            return buckets
    raise AssertionError("pagination did not end")


def error_of(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    return error


def rejected(client: httpx.Client, path: str, param: str, **params: Any) -> dict[str, Any]:
    """Assert GET /organization/<path> is a 400 naming ``param``; return the error object."""
    return error_of(client.get(f"/organization/{path}", params=params), 400, param)


# -- query encodings and aggregation ---------------------------------------------------------


def test_three_array_encodings_give_identical_answers(client: httpx.Client) -> None:
    start = ts(TODAY - timedelta(days=6))
    variants = [
        f"start_time={start}&group_by=line_item&group_by=project_id",
        f"start_time={start}&group_by[]=line_item&group_by[]=project_id",
        f"start_time={start}&group_by=line_item,project_id",
        f"start_time={start}&group_by[]=project_id&group_by=line_item",
    ]
    answers = [client.get(f"/organization/costs?{q}").json() for q in variants]
    assert all(a == answers[0] for a in answers[1:])
    usage = [
        f"start_time={start}&group_by=model&group_by=batch&models=gpt-4o-2024-08-06&models=o3-mini-2025-01-31",
        f"start_time={start}&group_by%5B%5D=model&group_by%5B%5D=batch&models[]=gpt-4o-2024-08-06&models[]=o3-mini-2025-01-31",
        f"start_time={start}&group_by=model,batch&models=gpt-4o-2024-08-06,o3-mini-2025-01-31",
    ]
    answers = [client.get(f"/organization/usage/completions?{q}").json() for q in usage]
    assert all(a == answers[0] for a in answers[1:])
    models = {r["model"] for b in answers[0]["data"] for r in b["results"]}
    assert models and models <= {"gpt-4o-2024-08-06", "o3-mini-2025-01-31"}


def test_costs_totals_and_grouped_sums_equal_truth(sim: Simulator, client: httpx.Client) -> None:
    org = sim.org_for_key(KEY)
    start = TODAY - timedelta(days=30)
    truth = org.cost_total_by_day(start, TODAY + timedelta(days=1))
    plain = get(client, "/organization/costs", start_time=ts(start), limit=31)["data"]
    grouped = get(
        client,
        "/organization/costs",
        start_time=ts(start),
        limit=31,
        group_by=["line_item", "project_id", "api_key_id"],
    )["data"]
    assert [day_of(b["start_time"]) for b in plain] == sorted(truth)
    for p, g in zip(plain, grouped, strict=True):
        day = day_of(p["start_time"])
        total = sum(r["amount"]["value"] for r in p["results"])
        assert abs(total - truth[day]) < 1e-9
        assert abs(sum(r["amount"]["value"] for r in g["results"]) - truth[day]) < 1e-9
        assert len(p["results"]) == (1 if truth[day] else 0)
        for r in p["results"]:
            assert (
                r["line_item"]
                is r["project_id"]
                is r["api_key_id"]
                is r["quantity"]
                is r["quantity_unit"]
                is None
            )
            assert r["organization_id"] == org.org_id and r["amount"]["currency"] == "usd"
        keys = [(r["line_item"], r["project_id"], r["api_key_id"]) for r in g["results"]]
        assert len(keys) == len(set(keys)) and all(k[0] and k[1] for k in keys)
    by_model = org.cost_by_day_model(start, TODAY + timedelta(days=1))
    for day, total in truth.items():
        assert abs(sum(v for (d, _), v in by_model.items() if d == day) - total) < 1e-9


def test_costs_group_by_project_only_has_null_line_item_and_quantity(client: httpx.Client) -> None:
    data = get(
        client, "/organization/costs", start_time=ts(TODAY - timedelta(days=6)), group_by="project_id"
    )["data"]
    rows = [r for b in data for r in b["results"]]
    assert rows and all(r["project_id"] and r["line_item"] is None and r["quantity"] is None for r in rows)
    by_line = get(
        client, "/organization/costs", start_time=ts(TODAY - timedelta(days=6)), group_by="line_item"
    )["data"]
    units = {r["quantity_unit"] for b in by_line for r in b["results"]}
    assert "tokens" in units and units <= {
        None,
        "tokens",
        "images",
        "characters",
        "duration_seconds",
        "gibibyte_hours",
    }


def test_line_item_grammar_and_model_quirks(sim: Simulator) -> None:
    org = sim.org_for_key(KEY)
    start = TODAY - timedelta(days=120)
    facts = [f for i in range(121) for f in org.cost_facts(start + timedelta(days=i))]
    items = {f.line_item for f in facts}
    assert any(i.startswith("ft-gpt-4o-mini-2024-07-18, ") for i in items)
    assert any(i.startswith("batch | ") for i in items) and any(i.startswith("evals | ") for i in items)
    assert {"assistants api | file search", "vector stores | storage", "web search tool calls"} <= items
    assert "Image models" in items
    assert any(f.amount < 1e-3 for f in facts if f.line_item == "vector stores | storage")
    for f in facts:
        if f.model is None:
            assert f.charge_type is None
        else:
            assert f.line_item.split(" | ")[-1] == f"{f.model}, {f.charge_type}"
    models = {
        r["model"] for i in range(121) for r in org.usage_facts("completions", start + timedelta(days=i))
    }
    assert "ft:gpt-4o-mini-2024-07-18:acme::Ab12Cd34" in models


# -- buckets -----------------------------------------------------------------------------------


def test_costs_buckets_are_whole_days_and_include_partial_today(sim: Simulator, client: httpx.Client) -> None:
    start = ts(datetime(2026, 11, 17, 10, 0, tzinfo=UTC))
    data = get(client, "/organization/costs", start_time=start, end_time=ts(TODAY) + 30 * 86400)["data"]
    assert [b["start_time"] for b in data] == [ts(date(2026, 11, d)) for d in (17, 18, 19, 20)]
    assert all(b["end_time"] - b["start_time"] == 86400 for b in data)
    assert data[-1]["end_time"] > ts(NOW)  # the current, partial day
    partial = sum(r["amount"]["value"] for r in data[-1]["results"])
    sim.now = lambda: datetime(2026, 11, 21, 1, tzinfo=UTC)
    full = sum(
        r["amount"]["value"]
        for r in get(client, "/organization/costs", start_time=ts(TODAY))["data"][0]["results"]
    )
    assert 0 < partial < full
    sim.now = lambda: NOW
    ended = get(client, "/organization/costs", start_time=start, end_time=ts(date(2026, 11, 19)))["data"]
    assert [b["start_time"] for b in ended] == [ts(date(2026, 11, 17)), ts(date(2026, 11, 18))]


def test_usage_first_bucket_starts_at_start_time_and_last_ends_now(client: httpx.Client) -> None:
    start = ts(datetime(2026, 11, 18, 10, 0, 7, tzinfo=UTC))
    data = get(client, "/organization/usage/completions", start_time=start)["data"]
    assert data[0]["start_time"] == start and data[0]["end_time"] == ts(date(2026, 11, 19))
    assert data[1]["start_time"] == ts(date(2026, 11, 19)) and data[1]["end_time"] == ts(TODAY)
    assert data[-1]["start_time"] == ts(TODAY) and data[-1]["end_time"] == ts(NOW)
    hourly = get(client, "/organization/usage/embeddings", start_time=start, bucket_width="1h", limit=3)[
        "data"
    ]
    assert [(b["start_time"], b["end_time"]) for b in hourly][:2] == [
        (start, start - 7 + 3600),
        (start - 7 + 3600, start - 7 + 7200),
    ]


def test_sub_day_buckets_preserve_daily_integer_totals(client: httpx.Client) -> None:
    day = TODAY - timedelta(days=3)
    params = {"start_time": ts(day), "end_time": ts(day + timedelta(days=1))}
    daily = get(client, "/organization/usage/completions", **params)["data"][0]["results"][0]
    for width, limit in (("1h", 24), ("1m", 1440)):
        buckets = get(client, "/organization/usage/completions", **params, bucket_width=width, limit=limit)[
            "data"
        ]
        assert len(buckets) == limit
        for metric in ENDPOINTS["completions"].metrics:
            values = [r[metric] for b in buckets for r in b["results"]]
            assert all(isinstance(v, int) for v in values) and sum(values) == daily[metric]


def test_empty_days_return_empty_buckets(sim: Simulator, client: httpx.Client) -> None:
    org = sim.org_for_key(KEY)
    start = TODAY - timedelta(days=90)
    empty = [d for d, v in org.cost_total_by_day(start, TODAY).items() if v == 0]
    assert empty, "the seeded org has quiet days"
    day = empty[0]
    costs = get(client, "/organization/costs", start_time=ts(day), end_time=ts(day + timedelta(days=1)))[
        "data"
    ]
    usage = get(
        client, "/organization/usage/completions", start_time=ts(day), end_time=ts(day + timedelta(days=1))
    )["data"]
    assert costs == [{"object": "bucket", "start_time": ts(day), "end_time": ts(day) + 86400, "results": []}]
    assert usage[0]["results"] == []


def test_no_buckets_after_now(client: httpx.Client) -> None:
    body = get(client, "/organization/usage/moderations", start_time=ts(NOW) + 3600)
    assert body == {"object": "page", "data": [], "has_more": False, "next_page": None}


# -- usage shapes and truth ----------------------------------------------------------------------


def test_completions_by_model_equal_truth_and_tokens_are_consistent(
    sim: Simulator, client: httpx.Client
) -> None:
    start = TODAY - timedelta(days=6)
    truth = sim.org_for_key(KEY).completions_by_day_model(start, TODAY + timedelta(days=1))
    seen: dict[tuple[date, str], dict[str, int]] = {}
    for b in get(client, "/organization/usage/completions", start_time=ts(start), group_by="model")["data"]:
        for r in b["results"]:
            seen[(day_of(b["start_time"]), r["model"])] = {k: r[k] for k in truth[next(iter(truth))]}
            assert (
                r["input_tokens"]
                == r["input_cached_tokens"] + r["input_uncached_tokens"] + r["input_cache_write_tokens"]
            )
            assert (
                r["input_uncached_tokens"]
                == r["input_text_tokens"] + r["input_audio_tokens"] + r["input_image_tokens"]
            )
            assert (
                r["output_tokens"]
                == r["output_text_tokens"] + r["output_audio_tokens"] + r["output_image_tokens"]
            )
    assert seen == truth


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_usage_endpoint_shapes(client: httpx.Client, endpoint: str) -> None:
    spec = ENDPOINTS[endpoint]
    start = ts(TODAY - timedelta(days=20))
    fields = {"object", *spec.metrics, *spec.dims}
    grouped = get(
        client, f"/organization/usage/{endpoint}", start_time=start, limit=21, group_by=list(spec.dims)
    )["data"]
    rows = [r for b in grouped for r in b["results"]]
    assert rows, endpoint
    for r in rows:
        assert set(r) == fields and r["object"] == spec.object
        assert all(r[d] is not None for d in spec.dims)
    plain = get(client, f"/organization/usage/{endpoint}", start_time=start, limit=21)["data"]
    for b in plain:
        assert len(b["results"]) <= 1
        assert all(r[d] is None for r in b["results"] for d in spec.dims)
    project = rows[0]["project_id"]
    only = get(
        client,
        f"/organization/usage/{endpoint}",
        start_time=start,
        limit=21,
        project_ids=[project],
        group_by="project_id",
    )["data"]
    assert {r["project_id"] for b in only for r in b["results"]} == {project}


def test_usage_object_names_follow_the_spec() -> None:
    assert ENDPOINTS["file_search_calls"].object == "organization.usage.file_searches.result"
    assert ENDPOINTS["web_search_calls"].object == "organization.usage.web_searches.result"


def test_batch_filter(client: httpx.Client) -> None:
    start = ts(TODAY - timedelta(days=20))
    both = get(client, "/organization/usage/completions", start_time=start, limit=21, group_by="batch")[
        "data"
    ]
    only = get(
        client, "/organization/usage/completions", start_time=start, limit=21, group_by="batch", batch="true"
    )["data"]
    assert {r["batch"] for b in both for r in b["results"]} == {True, False}
    assert {r["batch"] for b in only for r in b["results"]} == {True}


# -- validation and limits -----------------------------------------------------------------------


def test_defaults_limits_and_400s(client: httpx.Client) -> None:
    start = ts(TODAY - timedelta(days=60))
    assert len(get(client, "/organization/costs", start_time=start)["data"]) == 7
    assert len(get(client, "/organization/usage/images", start_time=start)["data"]) == 7
    assert len(get(client, "/organization/usage/images", start_time=start, bucket_width="1h")["data"]) == 24
    assert len(get(client, "/organization/usage/images", start_time=start, bucket_width="1m")["data"]) == 60
    assert len(get(client, "/organization/costs", start_time=start, limit=180)["data"]) == 61
    error_of(client.get("/organization/costs"), 400, "start_time")
    rejected(client, "costs", "start_time", start_time="yesterday")
    rejected(client, "costs", "end_time", start_time=start, end_time="x")
    rejected(client, "costs", "bucket_width", start_time=start, bucket_width="1h")
    for path, width, bad in (
        ("costs", None, 181),
        ("costs", None, 0),
        ("usage/completions", "1d", 32),
        ("usage/completions", "1h", 169),
        ("usage/completions", "1m", 1441),
    ):
        params = {"start_time": start, "limit": bad, **({"bucket_width": width} if width else {})}
        error = error_of(client.get(f"/organization/{path}", params=params), 400, "limit")
        assert error["type"] == "invalid_request_error" and error["code"] is None
    rejected(client, "usage/completions", "bucket_width", start_time=start, bucket_width="1w")
    rejected(client, "costs", "group_by", start_time=start, group_by="model")
    rejected(client, "usage/vector_stores", "group_by", start_time=start, group_by="user_id")
    rejected(client, "usage/images", "sizes", start_time=start, sizes="640x480")
    rejected(client, "usage/completions", "batch", start_time=start, batch="maybe")
    error_of(client.get("/organization/usage/nope", params={"start_time": start}), 404)


# -- pagination --------------------------------------------------------------------------------


def test_pagination_with_page_size(sim: Simulator, client: httpx.Client) -> None:
    start = ts(TODAY - timedelta(days=9))
    unpaged = get(client, "/organization/costs", start_time=start, limit=31, group_by="line_item")["data"]
    sim.faults.page_size = 3
    first = get(client, "/organization/costs", start_time=start, limit=31, group_by="line_item")
    assert (
        len(first["data"]) == 3
        and first["has_more"]
        and re.fullmatch(r"page_[A-Za-z0-9_\-=]+", first["next_page"])
    )
    assert (
        fetch_all(client, "/organization/costs", start_time=start, limit=31, group_by="line_item") == unpaged
    )
    hourly = {"start_time": ts(TODAY - timedelta(days=1)), "bucket_width": "1h", "limit": 5}
    sim.faults.page_size = None
    buckets = fetch_all(client, "/organization/usage/web_search_calls", **hourly)
    assert len(buckets) == 24 + 15 + 1 and buckets[-1]["end_time"] == ts(NOW)
    assert all(a["end_time"] == b["start_time"] for a, b in itertools.pairwise(buckets))


def test_page_token_must_match_the_request(client: httpx.Client) -> None:
    start = ts(TODAY - timedelta(days=20))
    token = get(client, "/organization/costs", start_time=start, group_by="line_item")["next_page"]
    rejected(client, "costs", "page", start_time=start, group_by="project_id", page=token)
    rejected(client, "costs", "page", start_time=start, page=token)
    rejected(client, "usage/completions", "group_by", start_time=start, group_by="line_item", page=token)
    rejected(client, "costs", "page", start_time=start, group_by="line_item", page="page_garbage!")
    # the same params in another encoding are the same request
    same = client.get(f"/organization/costs?start_time={start}&group_by[]=line_item&page={token}")
    assert same.status_code == 200 and same.json()["data"][0]["start_time"] == ts(TODAY - timedelta(days=13))


# -- faults ------------------------------------------------------------------------------------


def test_rate_limit_burst(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.rate_limit_burst, sim.faults.retry_after = 2, 0
    start = ts(TODAY)
    for _ in range(2):
        response = client.get("/organization/costs", params={"start_time": start})
        error = error_of(response, 429)
        assert response.headers["Retry-After"] == "0" and error["code"] == "rate_limit_exceeded"
        assert error["message"].startswith("Rate limit reached")
    assert client.get("/organization/costs", params={"start_time": start}).status_code == 200
    assert len(sim.requests) == 3


def test_5xx_burst_cycles_and_rate(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.error_5xx_burst = 4
    responses = [client.get("/organization/costs", params={"start_time": ts(TODAY)}) for _ in range(5)]
    assert [r.status_code for r in responses] == [500, 502, 503, 504, 200]
    assert (
        responses[1].headers["content-type"].startswith("text/html")
        and b"502 Bad Gateway" in responses[1].content
    )
    assert responses[0].json()["error"]["type"] == "server_error"
    sim.faults.error_5xx_rate = 0.5
    statuses = [client.get("/organization/projects").status_code for _ in range(40)]
    assert 5 < sum(s >= 500 for s in statuses) < 35 and statuses.count(200) > 5


def test_rate_limits_per_endpoint_and_every_nth_request(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.rate_limit_per_path, sim.faults.rate_limit_every = 2, 5
    costs = {"start_time": ts(TODAY)}
    statuses = [client.get("/organization/costs", params=costs).status_code for _ in range(3)]
    statuses += [client.get("/organization/projects").status_code for _ in range(3)]
    statuses += [client.get("/organization/costs", params=costs).status_code for _ in range(4)]
    assert statuses == [429, 429, 200, 429, 429, 200, 200, 200, 200, 429]  # requests 5 and 10: every 5th


def test_retry_after_forms(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.rate_limit_burst, sim.faults.retry_after = 3, 30
    for form in ("seconds", "http-date", "nan"):
        sim.faults.retry_after_form = form
        header = client.get("/organization/projects").headers["Retry-After"]
        if form == "seconds":
            assert header == "30"
        elif form == "http-date":  # real time, rounded up to the second
            when = parsedate_to_datetime(header)
            assert header.endswith(" GMT") and 29 < (when - datetime.now(UTC)).total_seconds() <= 31
        else:
            assert header == "nan"


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_outage_from_the_kth_request_for_t_seconds(sim: Simulator, client: httpx.Client, mode: str) -> None:
    sim.faults.outage_at_request, sim.faults.outage_seconds, sim.faults.outage_mode = 2, 0.5, mode
    assert client.get("/organization/projects").status_code == 200
    began = time.monotonic()
    failures = 0
    while True:
        try:
            response = client.get("/organization/projects")
        except httpx.RemoteProtocolError:  # "drop": closed without an answer
            assert mode == "drop"
            failures += 1
            continue
        if response.status_code == 200:
            break
        assert mode == "503" and response.status_code == 503
        failures += 1
    assert time.monotonic() - began >= 0.5 and failures >= 2


def test_drop_mid_response_sends_half_the_promised_body(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.drop_mid_response_every = 2
    assert client.get("/organization/projects").status_code == 200
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|closed connection"):
        client.get("/organization/projects")
    assert client.get("/organization/projects").status_code == 200


def test_redirect_answers_301_with_a_body_that_looks_like_data(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.redirect_burst = 1
    response = client.get("/organization/costs", params={"start_time": ts(TODAY)})
    assert response.status_code == 301 and response.json()["object"] == "page"
    assert response.headers["Location"] == "https://api.openai.invalid/v1/organization/costs"
    assert client.get("/organization/costs", params={"start_time": ts(TODAY)}).status_code == 200


def test_endless_pages_hand_out_fresh_cursors(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.endless_pages, sim.faults.page_size = True, 3
    params = {"start_time": ts(TODAY - timedelta(days=4))}
    cursors, days = [], []
    page = get(client, "/organization/costs", **params)
    for _ in range(5):
        days += [b["start_time"] for b in page["data"]]
        assert page["has_more"] and page["next_page"] not in cursors
        cursors.append(page["next_page"])
        page = get(client, "/organization/costs", **params, page=page["next_page"])
    assert days == [ts(TODAY - timedelta(days=n)) for n in (4, 3, 2, 1, 0)]  # the real data once
    projects, after = [], None
    for _ in range(3):
        listing = get(client, "/organization/projects", limit=100, **({"after": after} if after else {}))
        assert listing["has_more"] and listing["data"]
        projects += [p["id"] for p in listing["data"]]
        after = listing["last_id"]
    assert len(projects) == len(set(projects))


def test_latency(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.latency_ms = 150
    began = time.perf_counter()
    client.get("/organization/projects")
    assert time.perf_counter() - began >= 0.15


def test_truncated_body(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.truncated_body_burst = 1
    broken = client.get("/organization/costs", params={"start_time": ts(TODAY - timedelta(days=3))})
    assert broken.status_code == 200 and int(broken.headers["content-length"]) == len(broken.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    whole = client.get("/organization/costs", params={"start_time": ts(TODAY - timedelta(days=3))})
    assert len(whole.content) in (2 * len(broken.content), 2 * len(broken.content) + 1)
    assert whole.json()["object"] == "page"


def test_cursor_loop(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.cursor_loop = True
    params = {"start_time": ts(TODAY - timedelta(days=2))}
    first = get(client, "/organization/costs", **params)
    again = get(client, "/organization/costs", **params, page=first["next_page"])
    assert first["has_more"] and again["has_more"] and again["next_page"] == first["next_page"]
    assert again["data"] == first["data"]


def test_reject_costs_group_by_api_key_id(sim: Simulator, client: httpx.Client) -> None:
    params = {"start_time": ts(TODAY - timedelta(days=2)), "group_by": "line_item,api_key_id"}
    assert client.get("/organization/costs", params=params).status_code == 200
    sim.faults.reject_costs_group_by_api_key_id = True
    error_of(client.get("/organization/costs", params=params), 400, "group_by")
    assert (
        client.get("/organization/costs", params={**params, "group_by": "line_item,project_id"}).status_code
        == 200
    )


def test_revision_restates_only_recent_closed_days(sim: Simulator, client: httpx.Client) -> None:
    start = TODAY - timedelta(days=8)

    def costs() -> dict[int, dict[tuple[str, str, str], float]]:
        data = get(
            client,
            "/organization/costs",
            start_time=ts(start),
            limit=31,
            group_by="line_item,project_id,api_key_id",
        )["data"]
        return {
            b["start_time"]: {
                (r["line_item"], r["project_id"], r["api_key_id"]): r["amount"]["value"] for r in b["results"]
            }
            for b in data
        }

    def tokens() -> dict[int, list[int]]:
        data = get(client, "/organization/usage/completions", start_time=ts(start), limit=31)["data"]
        return {b["start_time"]: [r["input_tokens"] for r in b["results"]] for b in data}

    before, tokens_before = costs(), tokens()
    sim.faults.revision, sim.faults.revised_days = 1, 3
    after, tokens_after = costs(), tokens()
    revised = {ts(TODAY - timedelta(days=n)) for n in (1, 2, 3)}
    assert set(before) == set(after) and len(before) == 9
    for day in before:
        if day in revised:
            assert set(after[day]) - set(before[day]), "a new row appears"
            assert set(before[day]) - set(after[day]) or not before[day], "a row disappears"
            assert tokens_after[day] != tokens_before[day] or not tokens_before[day]
        else:
            assert after[day] == before[day] and tokens_after[day] == tokens_before[day]
    truth = sim.org_for_key(KEY).cost_total_by_day(start, TODAY + timedelta(days=1))
    assert all(abs(sum(after[ts(d)].values()) - total) < 1e-9 for d, total in truth.items())


# -- auth ----------------------------------------------------------------------------------------


def test_auth_errors(sim: Simulator) -> None:
    assert sim.base_url is not None
    url = f"{sim.base_url}/organization/costs?start_time={ts(TODAY)}"
    missing = httpx.get(url)
    assert error_of(missing, 401)["message"].startswith("You didn't provide an API key")
    garbage = httpx.get(url, headers={"Authorization": "Bearer not-a-key"})
    assert error_of(garbage, 401)["code"] == "invalid_api_key"
    project_key = httpx.get(url, headers={"Authorization": "Bearer sk-proj-abcdefghijklmnop"})
    assert project_key.status_code == 403
    assert project_key.json() == {
        "error": "You have insufficient permissions for this operation. Missing scopes: api.usage.read."
    }
    revoked_key = "sk-admin-team-revoked-SECRETSECRET1234"
    revoked = httpx.get(url, headers={"Authorization": f"Bearer {revoked_key}"})
    error = error_of(revoked, 401)
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert (
        "sk-admin-...1234" in error["message"]
        and revoked_key not in revoked.text
        and "SECRET" not in revoked.text
    )
    nonowner = httpx.get(url, headers={"Authorization": "Bearer sk-admin-x-nonowner-0000"})
    assert "api.usage.read" in error_of(nonowner, 403)["message"]
    later = "sk-admin-revoke-me-later-0001"
    assert httpx.get(url, headers={"Authorization": f"Bearer {later}"}).status_code == 200
    sim.revoke(later)
    assert (
        error_of(httpx.get(url, headers={"Authorization": f"Bearer {later}"}), 401)["code"]
        == "invalid_api_key"
    )
    sim.faults.error_body_string = True
    for key, status in ((later, 401), ("sk-admin-x-nonowner-0000", 403), ("sk-proj-abcdefghijklmnop", 403)):
        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == status and isinstance(response.json()["error"], str)
    assert all("authorization" not in {k.lower() for k in params} for _, params in sim.requests)


# -- determinism, organizations and projects ---------------------------------------------------


def test_determinism_per_key_and_distinct_orgs() -> None:
    start = ts(TODAY - timedelta(days=10))
    answers = []
    for key in (KEY, KEY, "sk-admin-someone-else-99999999"):
        with (
            run_simulator(now=lambda: NOW) as sim,
            httpx.Client(base_url=str(sim.base_url), headers={"Authorization": f"Bearer {key}"}) as c,
        ):
            answers.append(
                (
                    sim.org_for_key(key).org_id,
                    get(
                        c,
                        "/organization/costs",
                        start_time=start,
                        limit=11,
                        group_by="line_item,project_id,api_key_id",
                    ),
                    get(c, "/organization/projects", include_archived="true"),
                )
            )
    assert answers[0] == answers[1]
    assert (
        answers[0][0] != answers[2][0] and answers[0][1] != answers[2][1] and answers[0][2] != answers[2][2]
    )
    # a closed day does not depend on when it is asked about
    later = Simulator(now=lambda: NOW + timedelta(days=5)).org_for_key(KEY)
    day = TODAY - timedelta(days=4)
    assert later.cost_facts(day) == Simulator(now=lambda: NOW).org_for_key(KEY).cost_facts(day)


def test_projects_listing(sim: Simulator, client: httpx.Client) -> None:
    active = get(client, "/organization/projects")
    everything = get(client, "/organization/projects", include_archived="true")
    assert active["object"] == "list" and not active["has_more"]
    archived = [p for p in everything["data"] if p["status"] == "archived"]
    assert archived and all(p["archived_at"] for p in archived)
    assert all(p["status"] == "active" and p["archived_at"] is None for p in active["data"])
    assert len(everything["data"]) == len(active["data"]) + len(archived)
    assert any(p["name"] == "Default project" for p in active["data"])
    assert all(re.fullmatch(r"proj_[A-Za-z0-9]{24}", p["id"]) for p in everything["data"])
    assert sim.org_for_key(KEY).projects == everything["data"]
    walked, after = [], None
    while True:
        page = get(
            client,
            "/organization/projects",
            include_archived="true",
            limit=2,
            **({"after": after} if after else {}),
        )
        walked += page["data"]
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert walked == everything["data"]
    error_of(client.get("/organization/projects", params={"limit": 101}), 400, "limit")


def test_project_api_keys_listing(sim: Simulator, client: httpx.Client) -> None:
    """Every project's keys (archived projects too), paged by ``after``; deleted keys are spent
    through but listed nowhere; names and owners come from a stream of their own."""
    org = sim.org_for_key(KEY)
    listed: dict[str, dict[str, Any]] = {}
    for project in org.projects:  # archived ones included
        path = f"/organization/projects/{project['id']}/api_keys"
        whole = get(client, path, limit=100)
        assert whole["object"] == "list" and not whole["has_more"]
        walked, after = [], None
        while True:
            page = get(client, path, limit=1, **({"after": after} if after else {}))
            walked += page["data"]
            if not page["has_more"]:
                break
            assert page["first_id"] == page["last_id"] == page["data"][0]["id"]
            after = page["last_id"]
        assert walked == whole["data"] == org.api_keys(project["id"])
        for key in whole["data"]:
            listed[key["id"]] = key
    assert listed and org.deleted_api_keys and not org.deleted_api_keys & set(listed)
    spent = {
        f.api_key_id for d in (TODAY - timedelta(days=i) for i in range(1, 31)) for f in org.cost_facts(d)
    }
    assert org.deleted_api_keys <= spent  # deleted keys still appear in costs
    for key in listed.values():
        assert key["object"] == "organization.project.api_key" and re.fullmatch(
            r"key_[A-Za-z0-9]{16}", key["id"]
        )
        assert key["name"] and key["redacted_value"].startswith("sk-proj-") and "..." in key["redacted_value"]
        owner = key["owner"]
        assert owner["type"] in ("user", "service_account") and owner[owner["type"]]["name"]
        assert key["created_at"] <= key["last_used_at"] <= ts(NOW)
    assert {k["owner"]["type"] for k in listed.values()} == {"user", "service_account"}
    # the same organization, asked again from a fresh simulator, names its keys the same way
    again = Simulator(now=lambda: NOW).org_for_key(KEY)
    assert [again.api_keys(p["id"]) for p in again.projects] == [org.api_keys(p["id"]) for p in org.projects]
    error_of(client.get("/organization/projects/proj_nope/api_keys"), 404, "project_id")
    error_of(
        client.get(f"/organization/projects/{org.projects[0]['id']}/api_keys", params={"limit": 101}),
        400,
        "limit",
    )


def test_request_log(sim: Simulator, client: httpx.Client) -> None:
    client.get("/organization/costs?start_time=1&group_by[]=line_item")
    client.get("/organization/usage/images", params={"start_time": 1})
    assert sim.requests == [
        ("/v1/organization/costs", {"start_time": ["1"], "group_by[]": ["line_item"]}),
        ("/v1/organization/usage/images", {"start_time": ["1"]}),
    ]
    sim.reset_requests()
    assert sim.requests == []
