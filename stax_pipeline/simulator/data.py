"""Deterministic organization data behind the OpenAI Admin API simulator, and its ground truth.

Each admin key maps to one organization seeded from sha256(key), sized by a
:class:`~stax_pipeline.simulator.profiles.Profile` (small by default, or large). Usage for a UTC
day is a pure function of (seed, day, revision), generated at the finest grain each endpoint can
group by, and cached.
Costs are derived from that usage through a price table, as line items in the real grammar
``[<product> | ]<model-or-sku>[, <charge>]``. Only the simulator prices usage; the pipeline must
read costs from the API.

Every metric of a day is spread linearly over the day's seconds: the share of a fact in
``[a, b)`` seconds is ``v*b//DAY - v*a//DAY``, so any split into buckets sums back to the day
and the current partial day carries ``v*elapsed//DAY``.
"""

from __future__ import annotations

import gc
import hashlib
import random
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from itertools import accumulate
from typing import Any

from stax_pipeline.simulator.profiles import SMALL, Profile

DAY = 86400
_EPOCH = date(1970, 1, 1)
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class EndpointSpec:
    """Shape of one usage endpoint: result object, metric fields, dimensions and filters."""

    object: str
    metrics: tuple[str, ...]
    dims: tuple[str, ...]  # output order of the dimension fields; also the group_by enum
    filters: dict[str, str]  # array query param -> the dimension it filters on
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)  # closed filter values


_WHO = ("project_id", "user_id", "api_key_id")
_WHO_FILTERS = {"project_ids": "project_id", "user_ids": "user_id", "api_key_ids": "api_key_id"}
_MODEL_FILTERS = {**_WHO_FILTERS, "models": "model"}

# Completions leaves are generated; the totals are sums of leaves, so any slice stays consistent.
_UNCACHED = ("input_text_tokens", "input_audio_tokens", "input_image_tokens")
_CACHED = ("input_cached_text_tokens", "input_cached_audio_tokens", "input_cached_image_tokens")
_OUTPUT = ("output_text_tokens", "output_audio_tokens", "output_image_tokens")
_TOTALS = ("input_tokens", "input_cached_tokens", "input_uncached_tokens", "output_tokens")

IMAGE_SIZES = ("256x256", "512x512", "1024x1024", "1792x1792", "1024x1792")
IMAGE_SOURCES = ("image.generation", "image.edit", "image.variation")
CONTEXT_LEVELS = ("low", "medium", "high")

ENDPOINTS: dict[str, EndpointSpec] = {
    "completions": EndpointSpec(
        "organization.usage.completions.result",
        (
            "input_tokens",
            "input_cached_tokens",
            "input_cache_write_tokens",
            "input_uncached_tokens",
            "output_tokens",
            "input_text_tokens",
            "output_text_tokens",
            "input_cached_text_tokens",
            "input_audio_tokens",
            "input_cached_audio_tokens",
            "output_audio_tokens",
            "input_image_tokens",
            "input_cached_image_tokens",
            "output_image_tokens",
            "num_model_requests",
        ),
        (*_WHO, "model", "batch", "service_tier"),
        _MODEL_FILTERS,
    ),
    "embeddings": EndpointSpec(
        "organization.usage.embeddings.result",
        ("input_tokens", "num_model_requests"),
        (*_WHO, "model"),
        _MODEL_FILTERS,
    ),
    "moderations": EndpointSpec(
        "organization.usage.moderations.result",
        ("input_tokens", "num_model_requests"),
        (*_WHO, "model"),
        _MODEL_FILTERS,
    ),
    "images": EndpointSpec(
        "organization.usage.images.result",
        ("images", "num_model_requests"),
        ("size", "source", *_WHO, "model"),
        {**_MODEL_FILTERS, "sources": "source", "sizes": "size"},
        {"sources": IMAGE_SOURCES, "sizes": IMAGE_SIZES},
    ),
    "audio_speeches": EndpointSpec(
        "organization.usage.audio_speeches.result",
        ("characters", "num_model_requests"),
        (*_WHO, "model"),
        _MODEL_FILTERS,
    ),
    "audio_transcriptions": EndpointSpec(
        "organization.usage.audio_transcriptions.result",
        ("seconds", "num_model_requests"),
        (*_WHO, "model"),
        _MODEL_FILTERS,
    ),
    "vector_stores": EndpointSpec(
        "organization.usage.vector_stores.result",
        ("usage_bytes",),
        ("project_id",),
        {"project_ids": "project_id"},
    ),
    "code_interpreter_sessions": EndpointSpec(
        "organization.usage.code_interpreter_sessions.result",
        ("num_sessions",),
        ("project_id",),
        {"project_ids": "project_id"},
    ),
    "file_search_calls": EndpointSpec(
        "organization.usage.file_searches.result",
        ("num_requests",),
        (*_WHO, "vector_store_id"),
        {**_WHO_FILTERS, "vector_store_ids": "vector_store_id"},
    ),
    "web_search_calls": EndpointSpec(
        "organization.usage.web_searches.result",
        ("num_model_requests", "num_requests"),
        (*_WHO, "model", "context_level"),
        {**_MODEL_FILTERS, "context_levels": "context_level"},
        {"context_levels": CONTEXT_LEVELS},
    ),
}

# USD per 1M tokens: (input, cached input, output), keyed by the model as line items name it.
_TOKEN_PRICES = {
    "gpt-4o-2024-08-06": (2.5, 1.25, 10.0),
    "gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.6),
    "gpt-4.1-2025-04-14": (2.0, 0.5, 8.0),
    "gpt-4.1-mini-2025-04-14": (0.4, 0.1, 1.6),
    "o3-mini-2025-01-31": (1.1, 0.55, 4.4),
    "ft-gpt-4o-mini-2024-07-18": (0.3, 0.15, 1.2),
    "text-embedding-3-small": (0.02, 0.0, 0.0),
    "text-embedding-3-large": (0.13, 0.0, 0.0),
    # the large profile's extra models
    "gpt-4o-2024-11-20": (2.5, 1.25, 10.0),
    "gpt-4o-2024-05-13": (5.0, 5.0, 15.0),
    "gpt-4.1-nano-2025-04-14": (0.1, 0.025, 0.4),
    "o3-2025-04-16": (2.0, 0.5, 8.0),
    "o4-mini-2025-04-16": (1.1, 0.275, 4.4),
    "o1-2024-12-17": (15.0, 7.5, 60.0),
    "o1-mini-2024-09-12": (1.1, 0.55, 4.4),
    "gpt-4-turbo-2024-04-09": (10.0, 10.0, 30.0),
    "gpt-3.5-turbo-0125": (0.5, 0.5, 1.5),
    "gpt-4o-audio-preview-2024-12-17": (2.5, 2.5, 10.0),
    "gpt-4o-search-preview-2025-03-11": (2.5, 2.5, 10.0),
    "chatgpt-4o-latest": (5.0, 5.0, 15.0),
    "gpt-5-2025-08-07": (1.25, 0.125, 10.0),
    "gpt-5-mini-2025-08-07": (0.25, 0.025, 2.0),
    "gpt-5-nano-2025-08-07": (0.05, 0.005, 0.4),
    "codex-mini-latest": (1.5, 0.375, 6.0),
    "gpt-4.5-preview-2025-02-27": (75.0, 37.5, 150.0),
    "ft-gpt-4.1-mini-2025-04-14": (0.8, 0.2, 3.2),
    "text-embedding-ada-002": (0.1, 0.0, 0.0),
}
# What each usage endpoint that names a model contributes to that model's row of
# marts.fct_model_spend_daily: usage field -> mart column.
MODEL_USAGE_UNITS: dict[str, dict[str, str]] = {
    "completions": {
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "input_cached_tokens": "input_cached_tokens",
        "num_model_requests": "num_model_requests",
    },
    "embeddings": {"input_tokens": "input_tokens", "num_model_requests": "num_model_requests"},
    "moderations": {"input_tokens": "input_tokens", "num_model_requests": "num_model_requests"},
    "images": {"images": "images", "num_model_requests": "num_model_requests"},
    "audio_speeches": {"characters": "characters", "num_model_requests": "num_model_requests"},
    "audio_transcriptions": {"seconds": "seconds", "num_model_requests": "num_model_requests"},
    "web_search_calls": {"num_requests": "web_search_calls", "num_model_requests": "num_model_requests"},
}
MODEL_SPEND_COLUMNS = (
    "cost_usd",
    *dict.fromkeys(c for units in MODEL_USAGE_UNITS.values() for c in units.values()),
)

_KEY_NAMES = (
    "production",
    "staging",
    "ci pipeline",
    "analytics notebook",
    "batch jobs",
    "eval harness",
    "local dev",
    "backend",
    "support bot",
    "ingest worker",
    "prototype",
    "load test",
)
_FIRST_NAMES = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Margaret",
    "Dennis",
    "Katherine",
    "Linus",
    "Sophie",
    "John",
)
_LAST_NAMES = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Hamilton",
    "Ritchie",
    "Johnson",
    "Torvalds",
    "Wilson",
    "McCarthy",
)
_SERVICE_ACCOUNTS = ("etl-service", "ci-bot", "support-automation", "nightly-batch", "search-indexer")

_IMAGE_PRICES = {"gpt-image-1": (0.042, 0.063), "dall-e-3": (0.04, 0.08)}  # USD/image: square, other
_WEB_SEARCH_PRICES = {"low": 0.025, "medium": 0.0275, "high": 0.03}  # USD per call


@dataclass(frozen=True, slots=True)  # slots: a large organization holds ~10k of these a day
class CostFact:
    """One cost line item of one day at the finest grain: (project_id, api_key_id, line_item).

    ``api_key_id`` is None for project-level charges (storage, code interpreter sessions).
    """

    day: date
    project_id: str
    api_key_id: str | None
    line_item: str
    model: str | None
    charge_type: str | None
    amount: float
    quantity: float | None
    quantity_unit: str | None


def billed_model(model: str) -> str:
    """The model as cost line items name it: usage names a fine-tune ``ft:<base>:<org>:<suffix>:<id>``,
    costs bill it as ``ft-<base>``."""
    return "ft-" + model.split(":")[1] if model.startswith("ft:") else model


def day_start(day: date) -> int:
    """Unix seconds of a UTC day's midnight."""
    return (day - _EPOCH).days * DAY


def day_of(ts: int) -> date:
    """The UTC day containing a Unix timestamp."""
    return _EPOCH + timedelta(days=ts // DAY)


def slice_fact(endpoint: str, fact: dict[str, Any], a: int, b: int) -> dict[str, Any] | None:
    """The share of a day's fact falling in seconds [a, b) of that day; None when it is all zero."""
    metrics = ENDPOINTS[endpoint].metrics
    out = dict(fact)
    for m in metrics:
        out[m] = fact[m] * b // DAY - fact[m] * a // DAY
    if endpoint == "completions":
        _complete_totals(out)
    return out if any(out[m] for m in metrics) else None


def _complete_totals(row: dict[str, Any]) -> None:
    row["input_cached_tokens"] = sum(row[f] for f in _CACHED)
    row["input_uncached_tokens"] = sum(row[f] for f in _UNCACHED)
    row["input_tokens"] = (
        row["input_cached_tokens"] + row["input_uncached_tokens"] + row["input_cache_write_tokens"]
    )
    row["output_tokens"] = sum(row[f] for f in _OUTPUT)


_gc_pauses = 0
_gc_pauses_lock = threading.Lock()
_gc_was_enabled = True


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (reentrant, thread-safe).

    Generating a large day or rendering its buckets builds some 100k short, acyclic objects next
    to millions of long-lived ones; the collector's passes over them double the time. Reference
    counting still frees everything; the collector resumes when the last block ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_pauses_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_pauses_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _rid(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


class Organization:
    """One simulated organization: projects, keys, users, daily usage and costs, and truth helpers.

    ``now`` and ``revision`` are read on every call, so a test can move the clock or restate days.
    ``profile`` sets its size (:mod:`.profiles`); a day is generated once per revision and cached.
    """

    def __init__(
        self,
        seed: str,
        now: Callable[[], datetime],
        revision: Callable[[], tuple[int, int]] = lambda: (0, 3),
        profile: Profile = SMALL,
    ) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.profile = profile
        self._now = now
        self._revision = revision
        self.org_id = "org-" + _rid(rng, 24)
        n = rng.randint(*profile.projects)
        names = ["Default project", *rng.sample(profile.project_names, n - 1)]
        archived = rng.randrange(1, n)  # never the default project
        created = datetime(2024, 1, 8, tzinfo=UTC).timestamp() + rng.randint(0, 30 * DAY)
        self.projects: list[dict[str, Any]] = []
        self._archived_day: dict[str, date] = {}
        for i, name in enumerate(names):
            pid = "proj_" + _rid(rng, 24)
            created += rng.randint(DAY, profile.project_spacing_days * DAY)
            archived_at = None
            if i == archived:
                archived_at = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) + rng.randint(0, 120 * DAY)
                self._archived_day[pid] = day_of(archived_at)
            self.projects.append(
                {
                    "id": pid,
                    "object": "organization.project",
                    "name": name,
                    "created_at": int(created),
                    "archived_at": archived_at,
                    "status": "archived" if archived_at else "active",
                    "external_key_id": None,
                    "residency": "GLOBAL",
                }
            )
        self._keys = {
            p["id"]: ["key_" + _rid(rng, 16) for _ in range(rng.randint(*profile.keys_per_project))]
            for p in self.projects
        }
        self._users = ["user-" + _rid(rng, 24) for _ in range(rng.randint(*profile.users))]
        self._vector_stores = {
            p["id"]: ["vs_" + _rid(rng, 24) for _ in range(rng.randint(1, 2))]
            for p in self.projects
            if rng.random() < 0.6
        }
        self._cache: dict[tuple[date, int], tuple[dict[str, list[dict[str, Any]]], list[CostFact]]] = {}
        self._generating = threading.Lock()  # one thread generates a day; the others wait for it

    # -- what the API shows at the simulator's "now" --------------------------------------------

    def now_ts(self) -> int:
        """The simulator's current time in Unix seconds."""
        now = self._now()
        return int((now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp())

    def _seen_seconds(self, day: date) -> int:
        return max(0, min(DAY, self.now_ts() - day_start(day)))

    def usage_slice(self, endpoint: str, day: date, a: int, b: int) -> list[dict[str, Any]]:
        """Finest-grain usage of ``endpoint`` in seconds [a, b) of ``day`` (rows with private ``_`` keys).

        The whole day is the generated rows themselves (shared: read them, never change them).
        """
        rows = self._day(day)[0][endpoint]
        if a == 0 and b == DAY:
            metrics = ENDPOINTS[endpoint].metrics
            return [r for r in rows if any(r[m] for m in metrics)]
        return [s for r in rows if (s := slice_fact(endpoint, r, a, b)) is not None]

    def usage_facts(self, endpoint: str, day: date) -> list[dict[str, Any]]:
        """Finest-grain usage rows of a day as the API would sum them at sim now (partial today)."""
        rows = self.usage_slice(endpoint, day, 0, self._seen_seconds(day))
        return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]

    def cost_facts(self, day: date) -> list[CostFact]:
        """Finest-grain cost facts of a day at sim now; the current day carries its elapsed share."""
        seen = self._seen_seconds(day)
        if seen == 0:
            return []
        if seen == DAY:
            return list(self._day(day)[1])
        return self._derive_costs(day, {ep: self.usage_slice(ep, day, 0, seen) for ep in ENDPOINTS})

    # -- ground truth over half-open day ranges [start, end), days up to today ------------------

    def _days(self, start: date, end: date) -> list[date]:
        last = min(end, day_of(self.now_ts()) + timedelta(days=1))
        return [start + timedelta(days=i) for i in range((last - start).days)]

    def cost_total_by_day(self, start: date, end: date) -> dict[date, float]:
        """Total cost per day (0.0 for empty days)."""
        return {d: sum(f.amount for f in self.cost_facts(d)) for d in self._days(start, end)}

    def cost_by_day_model(self, start: date, end: date) -> dict[tuple[date, str | None], float]:
        """Cost per (day, model as the line item names it); None for non-model line items."""
        out: dict[tuple[date, str | None], float] = {}
        for d in self._days(start, end):
            for f in self.cost_facts(d):
                out[(d, f.model)] = out.get((d, f.model), 0.0) + f.amount
        return out

    def completions_by_day_model(self, start: date, end: date) -> dict[tuple[date, str], dict[str, int]]:
        """Completions input/output/cached tokens and requests per (day, model)."""
        keys = ("input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests")
        out: dict[tuple[date, str], dict[str, int]] = {}
        for d in self._days(start, end):
            for r in self.usage_slice("completions", d, 0, self._seen_seconds(d)):
                acc = out.setdefault((d, r["model"]), dict.fromkeys(keys, 0))
                for k in keys:
                    acc[k] += r[k]
        return out

    def model_spend_by_day(
        self, start: date, end: date, *, by_api_key: bool = False
    ) -> dict[tuple[Any, ...], dict[str, float]]:
        """What one row of ``marts.fct_model_spend_daily`` should hold, keyed
        ``(day, project_id, model, sku)`` (with ``api_key_id`` after ``project_id`` when
        ``by_api_key``): the cost of the model's line items and its usage in every unit
        (:data:`MODEL_USAGE_UNITS`), fine-tunes under their billed ``ft-<base>`` name. Spend that
        bills no model has ``model`` None and its line item as ``sku`` (no simulated SKU line item
        has a charge part); moderations are free, so their rows have usage and no cost.
        """
        out: dict[tuple[Any, ...], dict[str, float]] = {}

        def row(
            day: date, project_id: str, api_key_id: str | None, model: str | None, sku: str | None
        ) -> dict[str, float]:
            key = (day, project_id, api_key_id, model, sku) if by_api_key else (day, project_id, model, sku)
            return out.setdefault(key, dict.fromkeys(MODEL_SPEND_COLUMNS, 0))

        for d in self._days(start, end):
            for f in self.cost_facts(d):
                row(d, f.project_id, f.api_key_id, f.model, None if f.model else f.line_item)["cost_usd"] += (
                    f.amount
                )
            for endpoint, units in MODEL_USAGE_UNITS.items():
                for r in self.usage_slice(endpoint, d, 0, self._seen_seconds(d)):
                    acc = row(d, r["project_id"], r["api_key_id"], billed_model(r["model"]), None)
                    for field_name, column in units.items():
                        acc[column] += r[field_name]
        return out

    # -- API keys: names and owners from a random stream of their own ---------------------------

    @cached_property
    def _api_keys(self) -> tuple[dict[str, list[dict[str, Any]]], frozenset[str]]:
        """Every project's keys as ``GET /organization/projects/{id}/api_keys`` lists them, and the
        ids of deleted keys (used in costs and usage, listed nowhere).

        Drawn from their own stream, so the usage and cost streams (which tests fingerprint) stay
        exactly as they were. At least one key of an organization is deleted when it has two or more.
        """
        rng = random.Random(f"{self.seed}/api_keys")
        people = {u: f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}" for u in self._users}
        deleted = {k for keys in self._keys.values() for k in keys if rng.random() < 0.15}
        all_keys = [k for keys in self._keys.values() for k in keys]
        if not deleted and len(all_keys) > 1:
            deleted.add(rng.choice(all_keys))
        listed: dict[str, list[dict[str, Any]]] = {}
        for project in self.projects:
            listed[project["id"]] = []
            for key_id in self._keys[project["id"]]:
                created = project["created_at"] + rng.randint(0, 30 * DAY)
                if rng.random() < 0.7:
                    user = rng.choice(self._users)
                    owner = {
                        "type": "user",
                        "user": {
                            "object": "organization.project.user",
                            "id": user,
                            "name": people[user],
                            "email": people[user].lower().replace(" ", ".") + "@example.com",
                            "role": rng.choice(("owner", "member")),
                            "added_at": project["created_at"],
                        },
                    }
                else:
                    owner = {
                        "type": "service_account",
                        "service_account": {
                            "object": "organization.project.service_account",
                            "id": "svc_acct_" + _rid(rng, 24),
                            "name": rng.choice(_SERVICE_ACCOUNTS),
                            "role": "member",
                            "created_at": created,
                        },
                    }
                key = {
                    "object": "organization.project.api_key",
                    "id": key_id,
                    "name": f"{rng.choice(_KEY_NAMES)} {rng.randint(1, 99)}",
                    "redacted_value": f"sk-proj-{_rid(rng, 2)}***...{_rid(rng, 4)}",
                    "created_at": created,
                    "_last_used_hours": rng.randint(1, 72),
                    "owner": owner,
                }
                if key_id not in deleted:
                    listed[project["id"]].append(key)
        return listed, frozenset(deleted)

    def api_keys(self, project_id: str) -> list[dict[str, Any]]:
        """The keys of a project as the API lists them now (deleted keys left out)."""
        today = day_start(day_of(self.now_ts()))
        return [
            {
                **{k: v for k, v in key.items() if not k.startswith("_")},
                "last_used_at": today - key["_last_used_hours"] * 3600,
            }
            for key in self._api_keys[0][project_id]
        ]

    @property
    def deleted_api_keys(self) -> frozenset[str]:
        """Ids of keys that appear in costs and usage but are no longer listed."""
        return self._api_keys[1]

    # -- generation -----------------------------------------------------------------------------

    def revision_of(self, day: date) -> int:
        """Which revision of ``day`` the API shows now (0: the original; > 0: restated)."""
        revision, revised_days = self._revision()
        today = day_of(self.now_ts())
        return revision if revision > 0 and today - timedelta(days=revised_days) <= day < today else 0

    def _day(self, day: date) -> tuple[dict[str, list[dict[str, Any]]], list[CostFact]]:
        key = (day, self.revision_of(day))
        cached = self._cache.get(key)
        if cached is None:
            with self._generating, paused_gc():  # a large day takes a while: generate it once
                cached = self._cache.get(key)
                if cached is None:
                    usage = self._generate_usage(*key)
                    cached = (usage, self._restate(day, key[1], self._derive_costs(day, usage)))
                    self._cache[key] = cached
        return cached

    def _generate_usage(self, day: date, revision: int) -> dict[str, list[dict[str, Any]]]:
        rng = random.Random(f"{self.seed}/{day.isoformat()}")
        profile = self.profile
        usage: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {ep: {} for ep in ENDPOINTS}
        if profile.quiet_day_rate and rng.random() < profile.quiet_day_rate:  # no traffic, no cost
            return {ep: [] for ep in ENDPOINTS}
        # A restatement scales volumes but draws the same structure from the same random stream.
        volume = (0.4 if day.weekday() >= 5 else 1.0) * (
            random.Random(f"{self.seed}/{day}/r{revision}").uniform(1.03, 1.25) if revision else 1.0
        )
        active = [p["id"] for p in self.projects if day < self._archived_day.get(p["id"], date.max)]
        with_vs = [p for p in active if p in self._vector_stores]

        def n(lo: int, hi: int) -> int:
            return max(1, int(rng.randint(lo, hi) * volume))

        def who(projects: list[str] = active) -> dict[str, Any]:
            p = rng.choice(projects)
            return {
                "project_id": p,
                "user_id": rng.choice(self._users),
                "api_key_id": rng.choice(self._keys[p]),
            }

        def add(endpoint: str, row: dict[str, Any]) -> None:
            spec = ENDPOINTS[endpoint]
            key = (*[row[d] for d in spec.dims], row.get("_product"))
            if key in usage[endpoint]:
                for m in spec.metrics:
                    usage[endpoint][key][m] += row[m]
            else:
                usage[endpoint][key] = row

        draws = profile.draws
        chat_cum_weights = list(accumulate(profile.chat_weights))  # what choices(weights=) computes each call
        for _ in range(rng.randint(*draws["completions"])):
            model = rng.choices(profile.chat_models, cum_weights=chat_cum_weights)[0]
            batch = rng.random() < 0.15
            evals = not batch and model == "gpt-4o-mini-2024-07-18" and rng.random() < 0.3
            tier = "default" if batch else rng.choice(("default", "default", "default", "flex", "priority"))
            add(
                "completions",
                {
                    **who(),
                    "model": model,
                    "batch": batch,
                    "service_tier": tier,
                    "_product": "evals" if evals else None,
                    **self._completion_metrics(rng, model, n(5, 400)),
                },
            )
        for _ in range(rng.randint(*draws["embeddings"])):
            req = n(2, 300)
            model = rng.choice(profile.embedding_models)
            add(
                "embeddings",
                {
                    **who(),
                    "model": model,
                    "input_tokens": req * rng.randint(50, 2000),
                    "num_model_requests": req,
                },
            )
        for _ in range(rng.randint(*draws["moderations"])):
            req = n(5, 500)
            add(
                "moderations",
                {
                    **who(),
                    "model": "omni-moderation-latest",
                    "input_tokens": req * rng.randint(20, 400),
                    "num_model_requests": req,
                },
            )
        for _ in range(rng.randint(*draws["images"])):
            if rng.random() < 0.5:
                model, size = "gpt-image-1", rng.choice(("1024x1024", "1024x1792"))
                source = rng.choice(("image.generation", "image.edit"))
            else:
                model, size, source = "dall-e-3", rng.choice(IMAGE_SIZES[2:]), "image.generation"
            req = n(1, 30)
            add(
                "images",
                {
                    **who(),
                    "model": model,
                    "size": size,
                    "source": source,
                    "images": req * rng.randint(1, 2),
                    "num_model_requests": req,
                },
            )
        for _ in range(rng.randint(*draws["audio_speeches"])):
            req = n(1, 60)
            add(
                "audio_speeches",
                {
                    **who(),
                    "model": "tts-1",
                    "characters": req * rng.randint(100, 2000),
                    "num_model_requests": req,
                },
            )
        for _ in range(rng.randint(*draws["audio_transcriptions"])):
            req = n(1, 40)
            add(
                "audio_transcriptions",
                {
                    **who(),
                    "model": "whisper-1",
                    "seconds": req * rng.randint(10, 600),
                    "num_model_requests": req,
                },
            )
        for p in with_vs:  # a daily gauge that drifts; not drawn from rng so the stream stays stable
            size = int.from_bytes(hashlib.sha256(f"{self.seed}/{p}".encode()).digest()[:3], "big") * 8
            size += day.toordinal() % 97 * 20_000
            add("vector_stores", {"project_id": p, "usage_bytes": int(size * volume)})
        for _ in range(rng.randint(*draws["code_interpreter_sessions"])):
            add("code_interpreter_sessions", {"project_id": rng.choice(active), "num_sessions": n(1, 20)})
        for _ in range(rng.randint(*draws["file_search_calls"]) if with_vs else 0):
            row = who(with_vs)
            store = rng.choice(self._vector_stores[row["project_id"]])
            add("file_search_calls", {**row, "vector_store_id": store, "num_requests": n(1, 300)})
        for _ in range(rng.randint(*draws["web_search_calls"])):
            calls = n(1, 100)
            model = rng.choice(profile.web_search_models)
            add(
                "web_search_calls",
                {
                    **who(),
                    "model": model,
                    "context_level": rng.choice(CONTEXT_LEVELS),
                    "num_model_requests": calls,
                    "num_requests": calls + rng.randint(0, calls),
                },
            )
        return {ep: list(rows.values()) for ep, rows in usage.items()}

    @staticmethod
    def _completion_metrics(rng: random.Random, model: str, requests: int) -> dict[str, int]:
        """Token leaves for ``requests`` calls, consistent by construction (totals are sums)."""
        inp = requests * rng.randint(300, 4000)
        out = requests * rng.randint(50, 900)
        cached, write = int(inp * rng.uniform(0, 0.6)), int(inp * rng.uniform(0, 0.05))
        image = rng.uniform(0, 0.15) if model.startswith(("gpt-4o", "gpt-4.1")) else 0.0
        audio = rng.uniform(0, 0.05) if model == "gpt-4o-2024-08-06" else 0.0
        uncached = inp - cached - write
        row = {"input_cache_write_tokens": write, "num_model_requests": requests, "output_image_tokens": 0}
        for kind, share in (("image", image), ("audio", audio)):
            row[f"input_{kind}_tokens"] = int(uncached * share)
            row[f"input_cached_{kind}_tokens"] = int(cached * share)
        row["output_audio_tokens"] = int(out * audio)
        row["input_text_tokens"] = uncached - row["input_image_tokens"] - row["input_audio_tokens"]
        row["input_cached_text_tokens"] = (
            cached - row["input_cached_image_tokens"] - row["input_cached_audio_tokens"]
        )
        row["output_text_tokens"] = out - row["output_audio_tokens"]
        _complete_totals(row)
        return row

    def _derive_costs(self, day: date, usage: dict[str, list[dict[str, Any]]]) -> list[CostFact]:
        """Price usage into line items, summed per (project_id, api_key_id, line_item)."""
        # (project_id, api_key_id, line_item) -> [model, charge_type, amount, quantity, quantity_unit];
        # plain lists while summing, as a large day charges ~75k times into ~10k line items
        acc: dict[tuple[str, str | None, str], list[Any]] = {}
        legacy_images = random.Random(f"{self.seed}/{day}/legacy").random() < 0.25

        def charge(
            row: dict[str, Any],
            line_item: str,
            model: str | None,
            charge_type: str | None,
            qty: float,
            unit_price: float,
            unit: str | None,
            report_qty: bool = True,
        ) -> None:
            if qty <= 0:
                return
            key = (row["project_id"], row.get("api_key_id"), line_item)
            prev = acc.get(key)
            amount = qty * unit_price + (prev[2] if prev else 0.0)
            quantity = qty + (prev[3] or 0 if prev else 0) if report_qty else None
            acc[key] = [model, charge_type, amount, quantity, unit if report_qty else None]

        for r in usage["completions"]:
            base = billed_model(r["model"])
            prefix = "batch | " if r["batch"] else "evals | " if r.get("_product") == "evals" else ""
            p_in, p_cached, p_out = (p * (0.5 if r["batch"] else 1.0) / 1e6 for p in _TOKEN_PRICES[base])
            charge(
                r,
                f"{prefix}{base}, input",
                base,
                "input",
                r["input_uncached_tokens"] + r["input_cache_write_tokens"],
                p_in,
                "tokens",
            )
            charge(
                r,
                f"{prefix}{base}, cached input",
                base,
                "cached input",
                r["input_cached_tokens"],
                p_cached,
                "tokens",
            )
            charge(r, f"{prefix}{base}, output", base, "output", r["output_tokens"], p_out, "tokens")
        for r in usage["embeddings"]:
            charge(
                r,
                f"{r['model']}, input",
                r["model"],
                "input",
                r["input_tokens"],
                _TOKEN_PRICES[r["model"]][0] / 1e6,
                "tokens",
            )
        # moderations are free, as on the real API: no line item
        for r in usage["images"]:
            price = _IMAGE_PRICES[r["model"]][0 if r["size"] == "1024x1024" else 1]
            if legacy_images and r["model"] == "dall-e-3":
                charge(r, "Image models", None, None, r["images"], price, None, report_qty=False)
            else:
                kind = "image edit" if r["source"] == "image.edit" else "image generation"
                charge(r, f"{r['model']}, {kind}", r["model"], kind, r["images"], price, "images")
        for r in usage["audio_speeches"]:
            charge(r, "tts-1, characters", "tts-1", "characters", r["characters"], 15.0 / 1e6, "characters")
        for r in usage["audio_transcriptions"]:
            charge(r, "whisper-1, audio", "whisper-1", "audio", r["seconds"], 0.006 / 60, "duration_seconds")
        for r in usage["vector_stores"]:
            gib_hours = r["usage_bytes"] / 2**30 * 24
            charge(r, "vector stores | storage", None, None, gib_hours, 0.10 / 24, "gibibyte_hours")
        for r in usage["code_interpreter_sessions"]:
            charge(r, "assistants api | code interpreter", None, None, r["num_sessions"], 0.03, None)
        for r in usage["file_search_calls"]:
            charge(r, "assistants api | file search", None, None, r["num_requests"], 2.5 / 1000, None)
        for r in usage["web_search_calls"]:
            price = _WEB_SEARCH_PRICES[r["context_level"]]
            charge(r, "web search tool calls", None, None, r["num_requests"], price, None)
        return [
            CostFact(day, *key, *fields)
            for key, fields in sorted(
                acc.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
            )
        ]

    def _restate(self, day: date, revision: int, facts: list[CostFact]) -> list[CostFact]:
        """A restated day loses one cost row and gains one it did not have (besides changed volumes)."""
        if not revision:
            return facts
        rng = random.Random(f"{self.seed}/{day}/r{revision}/costs")
        existing = {(f.project_id, f.api_key_id, f.line_item) for f in facts}
        facts = list(facts)
        if facts:
            facts.pop(rng.randrange(len(facts)))
        candidates = [
            (p, k, m)
            for p, keys in self._keys.items()
            for k in keys
            for m in ("gpt-4.1-2025-04-14", "o3-mini-2025-01-31")
            if (p, k, f"{m}, output") not in existing
        ]
        if candidates:  # empty only if every key already has these rows, then nothing new appears
            p, k, m = rng.choice(candidates)
            tokens = rng.randint(1_000, 80_000)
            amount = tokens * _TOKEN_PRICES[m][2] / 1e6
            facts.append(CostFact(day, p, k, f"{m}, output", m, "output", amount, tokens, "tokens"))
        return facts
