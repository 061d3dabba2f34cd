"""The simulator's profiles: the large organization is as big as promised and still exact, and the
small one serves byte for byte what it served before profiles existed."""

from __future__ import annotations

import gc
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from stax_pipeline.simulator import Faults, Simulator
from stax_pipeline.simulator.data import ENDPOINTS, paused_gc
from stax_pipeline.simulator.profiles import LARGE
from stax_pipeline.sources.openai_admin.settings import COSTS_GROUP_BY, USAGE_ENDPOINTS
from tests.conftest import TODAY

KEY = "sk-admin-test-large-4d2c9e"
DAYS = [TODAY - timedelta(days=n) for n in range(7, 0, -1)]  # a week of closed days, weekend included
TARGET_DAYS = 30
COST_ROWS_TARGET = 250_000  # in TARGET_DAYS days, grouped as Stax groups them
COMPLETIONS_ROWS_TARGET = 100_000

# How Stax requests each endpoint (never by user_id): the grouping the row targets are about.
USAGE_GROUP_BY = {e.name: e.group_by for e in USAGE_ENDPOINTS}


def ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def window() -> dict[str, Any]:
    return {"start_time": ts(DAYS[0]), "end_time": ts(DAYS[-1] + timedelta(days=1)), "bucket_width": "1d"}


@pytest.fixture(scope="module")
def client(large_simulator: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=str(large_simulator.base_url), headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as c:
        yield c


def buckets(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(path, params={**window(), **params})
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert not body["has_more"]
    return body["data"]


@pytest.fixture(scope="module")
def served_costs(client: httpx.Client) -> list[dict[str, Any]]:
    return buckets(client, "/organization/costs", limit=180, group_by=list(COSTS_GROUP_BY))


@pytest.fixture(scope="module")
def served_usage(client: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    return {
        ep: buckets(client, f"/organization/usage/{ep}", limit=31, group_by=list(dims))
        for ep, dims in USAGE_GROUP_BY.items()
    }


def test_large_profile_sizes(large_simulator: Simulator) -> None:
    org = large_simulator.org_for_key(KEY)
    keys = [k for p in org.projects for k in org._keys[p["id"]]]
    assert 38 <= len(org.projects) <= 42 and 180 <= len(keys) <= 230
    models = {r["model"] for ep in ENDPOINTS for d in DAYS for r in org.usage_facts(ep, d) if "model" in r}
    assert len(models) >= 30
    assert len({r["user_id"] for d in DAYS for r in org.usage_facts("completions", d)}) >= 200


def test_every_day_meets_its_share_of_the_row_targets_grouped_like_stax(
    served_costs: list[dict[str, Any]], served_usage: dict[str, list[dict[str, Any]]]
) -> None:
    """Each day carries at least 1/30 of the targets, so any 30 days meet them. Counting served
    rows (not generated facts) proves it holds after user_id is summed away."""
    assert [b["start_time"] for b in served_costs] == [ts(d) for d in DAYS]
    for bucket in served_costs:
        rows = bucket["results"]
        assert len(rows) * TARGET_DAYS >= COST_ROWS_TARGET, (bucket["start_time"], len(rows))
        assert len({(r["project_id"], r["line_item"], r["api_key_id"]) for r in rows}) == len(rows)
    for bucket in served_usage["completions"]:
        assert len(bucket["results"]) * TARGET_DAYS >= COMPLETIONS_ROWS_TARGET
    for endpoint, data in served_usage.items():
        assert [b["start_time"] for b in data] == [ts(d) for d in DAYS]
        assert all(b["results"] for b in data), f"{endpoint} has an empty day"


def test_user_id_is_a_finer_grain_than_stax_asks_for(
    large_simulator: Simulator, served_usage: dict[str, list[dict[str, Any]]]
) -> None:
    org = large_simulator.org_for_key(KEY)
    facts = org.usage_facts("completions", DAYS[0])
    assert len(facts) > len(served_usage["completions"][0]["results"])


def test_truth_equals_the_served_pages(
    large_simulator: Simulator, client: httpx.Client, served_costs: list[dict[str, Any]]
) -> None:
    org = large_simulator.org_for_key(KEY)
    start, end = DAYS[0], DAYS[-1] + timedelta(days=1)
    totals = org.cost_total_by_day(start, end)
    by_model = org.cost_by_day_model(start, end)
    for bucket in served_costs:
        day = DAYS[0] + timedelta(days=(bucket["start_time"] - ts(DAYS[0])) // 86400)
        assert abs(sum(r["amount"]["value"] for r in bucket["results"]) - totals[day]) < 1e-6
        per_model: dict[str | None, float] = defaultdict(float)
        for r in bucket["results"]:  # "[<product> | ]<model>, <charge>"; no comma: not a model
            item = r["line_item"].split(" | ")[-1]
            per_model[item.rsplit(", ", 1)[0] if ", " in item else None] += r["amount"]["value"]
        day_truth = {m: v for (d, m), v in by_model.items() if d == day}
        assert per_model.keys() == day_truth.keys()
        assert all(abs(per_model[m] - day_truth[m]) < 1e-6 for m in day_truth)
    items = {r["line_item"] for b in served_costs for r in b["results"]}
    for item in items:  # the real grammar: [<product> | ]<model-or-sku>[, <charge>]
        assert item.count(" | ") <= 1 and item.count(", ") <= 1 and item.strip() == item
    assert any(i.startswith("batch | gpt-5-") for i in items) and any(i.startswith("evals | ") for i in items)
    assert "ft-gpt-4.1-mini-2025-04-14, output" in items and "text-embedding-ada-002, input" in items
    truth = org.completions_by_day_model(start, end)
    served = {}
    for bucket in buckets(client, "/organization/usage/completions", limit=31, group_by="model"):
        day = DAYS[0] + timedelta(days=(bucket["start_time"] - ts(DAYS[0])) // 86400)
        for r in bucket["results"]:
            served[(day, r["model"])] = {k: r[k] for k in next(iter(truth.values()))}
    assert served == truth and len({m for _, m in truth}) == len(LARGE.chat_models)


def test_one_bucket_per_page_serves_the_same_buckets(
    large_simulator: Simulator, client: httpx.Client, served_costs: list[dict[str, Any]]
) -> None:
    large_simulator.faults.page_size = 1
    try:
        data, page, requests = [], None, 0
        while True:
            response = client.get(
                "/organization/costs",
                params={
                    **window(),
                    "limit": 180,
                    "group_by": list(COSTS_GROUP_BY),
                    **({"page": page} if page else {}),
                },
            )
            body = response.json()
            requests += 1
            assert len(body["data"]) == 1
            data += body["data"]
            page = body["next_page"]
            if not page:
                break
    finally:
        large_simulator.faults = Faults(retry_after=0)
    assert requests == len(DAYS) and data == served_costs


def test_closed_buckets_are_served_identically_and_restatements_change_them(
    large_simulator: Simulator, client: httpx.Client
) -> None:
    params = {**window(), "limit": 31, "group_by": ["project_id", "model"]}
    first = client.get("/organization/usage/embeddings", params=params).content
    assert client.get("/organization/usage/embeddings", params=params).content == first
    large_simulator.faults.revision = 1
    try:
        restated = client.get("/organization/usage/embeddings", params=params).content
    finally:
        large_simulator.faults = Faults(retry_after=0)
    assert restated != first  # the last 3 closed days changed, despite the cache
    assert client.get("/organization/usage/embeddings", params=params).content == first


def test_paused_gc_nests_and_restores() -> None:
    assert gc.isenabled()
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


# -- the small profile is untouched ---------------------------------------------------------------

# sha256 over (request target, response body) of the queries below, served by the simulator at
# commit f61d54f, before profiles and the bucket cache existed: (no restatement, revision 1).
SMALL_FINGERPRINTS = (
    "f1ee948cadf32a0ed8776342176b9f5fe6cfcad67393f64eef2174f77395a3bc",
    "84537315d29f9e777669e6f09457bfdf7937f41cf3a38941fd2def8a8a2b9c9e",
)


def small_fingerprint(revision: int) -> str:
    now = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    sim = Simulator(now=lambda: now, faults=Faults(revision=revision))  # the default profile
    start = ts(date(2026, 10, 21))
    targets = [
        f"/v1/organization/costs?start_time={start}&limit=31&group_by=line_item,project_id,api_key_id",
        f"/v1/organization/costs?start_time={start}&limit=31",
    ]
    for endpoint, spec in sorted(ENDPOINTS.items()):
        targets += [
            f"/v1/organization/usage/{endpoint}?start_time={start}&limit=31&group_by={','.join(spec.dims)}",
            f"/v1/organization/usage/{endpoint}?start_time={start}&limit=31&bucket_width=1d",
        ]
    targets += [
        f"/v1/organization/usage/completions?start_time={start + 86400 * 27}&limit=100&bucket_width=1h"
        "&group_by=model",
        "/v1/organization/projects?include_archived=true",
    ]
    digest = hashlib.sha256()
    for target in targets:
        response = sim.handle(target, "Bearer sk-admin-test-0123456789abcdef")
        assert response.status == 200, response.body[:300]
        digest.update(target.encode())
        digest.update(response.body)
    return digest.hexdigest()


@pytest.mark.parametrize("revision", [0, 1])
def test_small_profile_serves_exactly_what_it_served_before_profiles(revision: int) -> None:
    assert small_fingerprint(revision) == SMALL_FINGERPRINTS[revision]
