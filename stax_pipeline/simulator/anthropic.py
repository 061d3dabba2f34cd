"""The Anthropic Admin API side of the simulator: its organizations, its answers, its ground truth.

The same ``stax simulator`` process serves both APIs: OpenAI's paths are ``/v1/organization/…``,
Anthropic's ``/v1/organizations/…``. :class:`~stax_pipeline.simulator.server.Simulator` routes
by that prefix and applies the same fault switches to both (with each API's own error bodies);
this module holds what is Anthropic's:

- authentication by ``x-api-key`` (plus the required ``anthropic-version`` header): a key starting
  ``sk-ant-admin01-`` is an admin key and sees its own organization, seeded from sha256 of the
  key; one containing ``-revoked`` (or revoked at runtime), an inference key (``sk-ant-api…``)
  or anything else answers 401 ``authentication_error``; one containing ``-nopermission``
  answers 403 ``permission_error``;
- ``GET /v1/organizations/cost_report`` (``1d`` buckets, ``limit`` ≤ 31, ``group_by[]`` of
  ``workspace_id``, ``description``, ``inference_geo``), ``…/usage_report/messages`` (``1d``
  buckets, ``group_by[]`` of model, workspace_id, api_key_id, service_tier, context_window,
  inference_geo), both paged by ``page``/``next_page``/``has_more``;
  ``…/workspaces`` (``include_archived``, ``include_default``) and ``…/api_keys`` paged by
  ``after_id``; ``…/me`` (the organization's id and name);
- :class:`AnthropicOrganization`: usage per day at the finest grain, costs priced from it **in
  cents, as exact decimals** (what the API's ``amount`` strings say), and the truth functions the
  tests compare the marts with. As on the real API, Priority Tier usage has no cost rows, code
  execution has cost but no usage, and there is no cost per API key.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

DAY = 86400
_EPOCH = date(1970, 1, 1)
_ALNUM = string.ascii_letters + string.digits

ADMIN_KEY_PREFIX = "sk-ant-admin01-"
PATH_PREFIX = "/v1/organizations/"
COST_GROUP_BY = ("workspace_id", "description", "inference_geo")
USAGE_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo")
MAX_BUCKETS_1D = 31
DEFAULT_BUCKETS_1D = 7
USAGE_METRICS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h",
    "cache_creation_5m",
    "output_tokens",
    "web_search_requests",
)

# model -> (display name, USD per million input tokens, per million output tokens)
MODELS: dict[str, tuple[str, Decimal, Decimal]] = {
    "claude-sonnet-4-5-20250929": ("Claude Sonnet 4.5", Decimal(3), Decimal(15)),
    "claude-opus-4-1-20250805": ("Claude Opus 4.1", Decimal(15), Decimal(75)),
    "claude-haiku-4-5-20251001": ("Claude Haiku 4.5", Decimal(1), Decimal(5)),
    "claude-3-5-haiku-20241022": ("Claude Haiku 3.5", Decimal("0.8"), Decimal(4)),
}
_MODEL_WEIGHTS = (5, 1, 3, 2)
LONG_CONTEXT_MODELS = ("claude-sonnet-4-5-20250929",)
# token_type -> (description label, multiplier of the input price); output tokens use the output price
TOKEN_TYPES: dict[str, tuple[str, Decimal]] = {
    "uncached_input_tokens": ("Input Tokens", Decimal(1)),
    "cache_read_input_tokens": ("Cache Read", Decimal("0.1")),
    "cache_creation.ephemeral_5m_input_tokens": ("Cache Write (5m)", Decimal("1.25")),
    "cache_creation.ephemeral_1h_input_tokens": ("Cache Write (1h)", Decimal(2)),
    "output_tokens": ("Output Tokens", Decimal(1)),
}
_TOKEN_METRIC = {
    "uncached_input_tokens": "uncached_input_tokens",
    "cache_read_input_tokens": "cache_read_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens": "cache_creation_5m",
    "cache_creation.ephemeral_1h_input_tokens": "cache_creation_1h",
    "output_tokens": "output_tokens",
}
WEB_SEARCH_CENTS = Decimal(1)  # $10 per 1,000 searches
CODE_EXECUTION_CENTS_PER_HOUR = Decimal(5)  # $0.05 per container hour
_WORKSPACE_NAMES = ("Support Agents", "Research", "Claude Code", "Data Pipelines", "Evals", "Sales Copilot")
_KEY_NAMES = ("prod", "staging", "ci", "notebooks", "batch", "backend", "eval harness", "local dev")
_GEOS = ("global", "us")


def _rid(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


def day_start(day: date) -> int:
    return (day - _EPOCH).days * DAY


def day_of(ts: int) -> date:
    return _EPOCH + timedelta(days=ts // DAY)


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cents_text(cents: Decimal) -> str:
    """An amount as the API writes it: a plain decimal string (never exponent notation)."""
    return format(cents.normalize() if cents else Decimal(0), "f")


class AnthropicOrganization:
    """One simulated Anthropic organization: workspaces, API keys, daily usage, costs in cents.

    ``now`` and ``revision`` are read on every call, so a test can move the clock or restate days
    (the same ``Faults.revision``/``revised_days`` switches as the OpenAI side).
    """

    def __init__(
        self, seed: str, now: Callable[[], datetime], revision: Callable[[], tuple[int, int]] = lambda: (0, 3)
    ) -> None:
        rng = random.Random(f"anthropic/{seed}")
        self.seed = seed
        self._now = now
        self._revision = revision
        # GET /v1/organizations/me: a UUID and a name
        self.org_id = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-8{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}"
        self.org_name = f"{rng.choice(('Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli'))} AI"
        n = rng.randint(2, 4)
        created = int(datetime(2024, 6, 3, tzinfo=UTC).timestamp())
        self.workspaces: list[dict[str, Any]] = []
        for i, name in enumerate(rng.sample(_WORKSPACE_NAMES, n)):
            created += rng.randint(DAY, 90 * DAY)
            # sometimes the newest one was archived this autumn: its usage stops that day
            archived = i == n - 1 and rng.random() < 0.5
            archived_at = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp()) + rng.randint(0, 60) * DAY
            self.workspaces.append(
                {
                    "type": "workspace",
                    "id": "wrkspc_01" + _rid(rng, 22),
                    "name": name,
                    "display_color": f"#{rng.randrange(1 << 24):06X}",
                    "created_at": rfc3339(created),
                    "archived_at": rfc3339(archived_at) if archived else None,
                }
            )
        # None is the default workspace, as the reports name it
        self.workspace_ids: list[str | None] = [None, *(w["id"] for w in self.workspaces)]
        self.keys: dict[str | None, list[dict[str, Any]]] = {}
        for ws in self.workspace_ids:
            self.keys[ws] = []
            for _ in range(rng.randint(1, 3)):
                self.keys[ws].append(
                    {
                        "type": "api_key",
                        "id": "apikey_01" + _rid(rng, 22),
                        "name": f"{rng.choice(_KEY_NAMES)}-{rng.randint(1, 99)}",
                        "workspace_id": ws,
                        "created_at": rfc3339(created - rng.randint(0, 200) * DAY),
                        "created_by": {"id": "user_01" + _rid(rng, 22), "type": "user"},
                        "partial_key_hint": f"sk-ant-api03-{_rid(rng, 3)}...{_rid(rng, 4)}",
                        "status": "active" if rng.random() < 0.85 else "inactive",
                    }
                )
        # (day, revision) -> (usage facts, code execution quarter-hours per workspace, cost rows)
        self._cache: dict[
            tuple[date, int], tuple[list[dict[str, Any]], dict[str | None, int], list[dict[str, Any]]]
        ] = {}
        self._lock = threading.Lock()

    # -- the clock ------------------------------------------------------------------------------

    def now_ts(self) -> int:
        now = self._now()
        return int((now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp())

    def _seen_seconds(self, day: date) -> int:
        return max(0, min(DAY, self.now_ts() - day_start(day)))

    def revision_of(self, day: date) -> int:
        revision, revised_days = self._revision()
        today = day_of(self.now_ts())
        return revision if revision > 0 and today - timedelta(days=revised_days) <= day < today else 0

    # -- what the API shows now -----------------------------------------------------------------

    def usage_facts(self, day: date) -> list[dict[str, Any]]:
        """Finest-grain usage of a day as the API sums it now (the current day: its elapsed share)."""
        seen = self._seen_seconds(day)
        if seen == 0:
            return []
        usage = self._day(day)[0]
        if seen == DAY:
            return usage
        out = []
        for fact in usage:
            part = {**fact, **{m: fact[m] * seen // DAY for m in USAGE_METRICS}}
            if any(part[m] for m in USAGE_METRICS):
                out.append(part)
        return out

    def cost_facts(self, day: date) -> list[dict[str, Any]]:
        """Finest-grain cost rows of a day, ``amount`` as a Decimal number of cents."""
        seen = self._seen_seconds(day)
        if seen == 0:
            return []
        if seen == DAY:
            return self._day(day)[2]
        quarters = {ws: q * seen // DAY for ws, q in self._day(day)[1].items()}
        return self._price(self.usage_facts(day), quarters)

    def _day(self, day: date) -> tuple[list[dict[str, Any]], dict[str | None, int], list[dict[str, Any]]]:
        key = (day, self.revision_of(day))
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                usage, quarters = self._generate(*key)
                cached = self._cache[key] = (usage, quarters, self._price(usage, quarters))
            return cached

    def _generate(self, day: date, revision: int) -> tuple[list[dict[str, Any]], dict[str | None, int]]:
        """A day's usage facts and its code execution (quarter-hours per workspace)."""
        rng = random.Random(f"anthropic/{self.seed}/{day.isoformat()}")
        if rng.random() < 0.1:  # a quiet day: nothing at all
            return [], {}
        volume = (0.4 if day.weekday() >= 5 else 1.0) * (
            random.Random(f"anthropic/{self.seed}/{day}/r{revision}").uniform(1.03, 1.25) if revision else 1.0
        )
        live = [ws for ws in self.workspace_ids if ws is None or not self._archived_before(ws, day)]
        facts: dict[tuple[Any, ...], dict[str, Any]] = {}
        for _ in range(rng.randint(6, 16)):
            model = rng.choices(list(MODELS), weights=_MODEL_WEIGHTS)[0]
            ws = rng.choice(live)
            key = rng.choice(self.keys[ws])["id"]
            tier = rng.choice(("standard", "standard", "standard", "batch", "priority"))
            window = "200k-1M" if model in LONG_CONTEXT_MODELS and rng.random() < 0.2 else "0-200k"
            geo = rng.choice(_GEOS)
            requests = max(1, int(rng.randint(5, 400) * volume))
            inp = requests * rng.randint(300, 6000)
            metrics = {
                "uncached_input_tokens": int(inp * rng.uniform(0.3, 0.9)),
                "cache_read_input_tokens": int(inp * rng.uniform(0, 0.6)),
                "cache_creation_1h": int(inp * rng.uniform(0, 0.05)) if rng.random() < 0.3 else 0,
                "cache_creation_5m": int(inp * rng.uniform(0, 0.1)),
                "output_tokens": requests * rng.randint(50, 1500),
                "web_search_requests": rng.randint(0, requests // 3) if rng.random() < 0.3 else 0,
            }
            dims = (ws, key, model, tier, window, geo)
            if dims in facts:
                for m in USAGE_METRICS:
                    facts[dims][m] += metrics[m]
            else:
                facts[dims] = {
                    "workspace_id": ws,
                    "api_key_id": key,
                    "model": model,
                    "service_tier": tier,
                    "context_window": window,
                    "inference_geo": geo,
                    **metrics,
                }
        # code execution: billed per workspace, never in the usage report
        quarters = {ws: rng.randint(1, 40) for ws in live if rng.random() < 0.25}
        return list(facts.values()), quarters

    def _archived_before(self, workspace_id: str | None, day: date) -> bool:
        ws = next(w for w in self.workspaces if w["id"] == workspace_id)
        return ws["archived_at"] is not None and ws["archived_at"][:10] <= day.isoformat()

    @staticmethod
    def _price(
        usage: list[dict[str, Any]], code_quarter_hours: dict[str | None, int]
    ) -> list[dict[str, Any]]:
        """Cost rows in cents, summed per (workspace, description, inference geo): exact decimals."""
        acc: dict[tuple[Any, ...], dict[str, Any]] = {}

        def charge(ws: str | None, geo: str | None, cents: Decimal, **fields: Any) -> None:
            if cents <= 0:
                return
            key = (ws, fields["description"], geo)
            row = acc.get(key)
            if row is None:
                acc[key] = {
                    "workspace_id": ws,
                    "inference_geo": geo,
                    "amount": cents,
                    "currency": "USD",
                    **fields,
                }
            else:
                row["amount"] += cents

        for fact in usage:
            if fact["service_tier"] == "priority":
                continue  # Priority Tier is not in the cost report
            display, price_in, price_out = MODELS[fact["model"]]
            long_context = fact["context_window"] == "200k-1M"
            if long_context:
                price_in, price_out = price_in * 2, price_out * Decimal("1.5")
            batch = fact["service_tier"] == "batch"
            for token_type, (label, multiplier) in TOKEN_TYPES.items():
                tokens = fact[_TOKEN_METRIC[token_type]]
                price = price_out if token_type == "output_tokens" else price_in * multiplier
                if batch:
                    price = price / 2
                # USD per million tokens -> cents per token: * 100 / 1e6
                cents = Decimal(tokens) * price / Decimal(10_000)
                description = (
                    f"{display} Usage - {label}"
                    + (" - Batch" if batch else "")
                    + (" - Long Context" if long_context else "")
                )
                charge(
                    fact["workspace_id"],
                    fact["inference_geo"],
                    cents,
                    description=description,
                    cost_type="tokens",
                    model=fact["model"],
                    token_type=token_type,
                    service_tier=fact["service_tier"],
                    context_window=fact["context_window"],
                )
            if fact["web_search_requests"]:
                charge(
                    fact["workspace_id"],
                    None,
                    Decimal(fact["web_search_requests"]) * WEB_SEARCH_CENTS,
                    description="Web Search",
                    cost_type="web_search",
                    model=None,
                    token_type=None,
                    service_tier=None,
                    context_window=None,
                )
        for ws, quarters in code_quarter_hours.items():
            charge(
                ws,
                None,
                Decimal(quarters) * CODE_EXECUTION_CENTS_PER_HOUR / 4,
                description="Code Execution Usage",
                cost_type="code_execution",
                model=None,
                token_type=None,
                service_tier=None,
                context_window=None,
            )
        return sorted(
            acc.values(), key=lambda r: (r["workspace_id"] or "", r["description"], r["inference_geo"] or "")
        )

    # -- ground truth over [start, end), days up to today --------------------------------------

    def _days(self, start: date, end: date) -> list[date]:
        last = min(end, day_of(self.now_ts()) + timedelta(days=1))
        return [start + timedelta(days=i) for i in range((last - start).days)]

    def cost_cents_by_day(self, start: date, end: date) -> dict[date, Decimal]:
        """Total cost per day in cents, exactly (0 for empty days)."""
        return {d: sum((f["amount"] for f in self.cost_facts(d)), Decimal(0)) for d in self._days(start, end)}

    def cost_usd_by_day(self, start: date, end: date) -> dict[date, Decimal]:
        """Total cost per day in dollars, exactly."""
        return {d: cents / 100 for d, cents in self.cost_cents_by_day(start, end).items()}

    def cost_usd_by_day_model(self, start: date, end: date) -> dict[tuple[date, str | None], Decimal]:
        """Dollars per (day, model); None for costs of no model (web search, code execution)."""
        out: dict[tuple[date, str | None], Decimal] = {}
        for d in self._days(start, end):
            for f in self.cost_facts(d):
                out[(d, f["model"])] = out.get((d, f["model"]), Decimal(0)) + f["amount"] / 100
        return out

    def tokens_by_day_model(self, start: date, end: date) -> dict[tuple[date, str], dict[str, int]]:
        """Usage per (day, model) in the marts' vocabulary: input (every input token: uncached,
        cache reads and cache writes), cached input (cache reads), cache write, output, web searches."""
        out: dict[tuple[date, str], dict[str, int]] = {}
        for d in self._days(start, end):
            for f in self.usage_facts(d):
                acc = out.setdefault(
                    (d, f["model"]),
                    dict.fromkeys(
                        (
                            "input_tokens",
                            "input_cached_tokens",
                            "input_cache_write_tokens",
                            "output_tokens",
                            "web_search_calls",
                        ),
                        0,
                    ),
                )
                writes = f["cache_creation_1h"] + f["cache_creation_5m"]
                acc["input_tokens"] += f["uncached_input_tokens"] + f["cache_read_input_tokens"] + writes
                acc["input_cached_tokens"] += f["cache_read_input_tokens"]
                acc["input_cache_write_tokens"] += writes
                acc["output_tokens"] += f["output_tokens"]
                acc["web_search_calls"] += f["web_search_requests"]
        return out

    def api_keys(self) -> list[dict[str, Any]]:
        return [k for ws in self.workspace_ids for k in self.keys[ws]]


# -- HTTP -------------------------------------------------------------------------------------------


class AnthropicError(Exception):
    """An error answer in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


SERVER_ERRORS = {
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("api_error", "Gateway timeout"),
    529: ("overloaded_error", "Overloaded"),
}


def authenticate(api_key: str | None, version: str | None, revoked: set[str]) -> str:
    """The admin key of a request, or the error the API answers."""
    if not api_key:
        raise AnthropicError(401, "authentication_error", "x-api-key header is required")
    if not version:
        raise AnthropicError(400, "invalid_request_error", "anthropic-version: header is required")
    if not api_key.startswith(ADMIN_KEY_PREFIX) or api_key in revoked or "-revoked" in api_key:
        raise AnthropicError(401, "authentication_error", "invalid x-api-key")
    if "-nopermission" in api_key:
        raise AnthropicError(
            403, "permission_error", "Your API key does not have permission to use the specified resource."
        )
    return api_key


def _invalid(message: str) -> AnthropicError:
    return AnthropicError(400, "invalid_request_error", message)


def _timestamp(params: dict[str, list[str]], name: str, required: bool) -> int | None:
    values = params.get(name)
    if not values:
        if required:
            raise _invalid(f"{name}: Field required")
        return None
    try:
        return int(datetime.fromisoformat(values[0].replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise _invalid(f"{name}: Input should be a valid datetime (RFC 3339)") from None


def _group_by(params: dict[str, list[str]], allowed: tuple[str, ...]) -> set[str]:
    chosen = set()
    for value in params.get("group_by", []):
        if value not in allowed:
            raise _invalid(f"group_by: Input should be {', '.join(repr(a) for a in allowed)}")
        chosen.add(value)
    return chosen


def route(
    path: str,
    params: dict[str, list[str]],
    org: AnthropicOrganization,
    pager_factory,
    page_size: int | None = None,
    *,
    ending_at_strict: bool = False,
    unknown_group_by: tuple[str, ...] = (),
) -> bytes:
    """The body of a successful answer to ``path`` (``/v1/organizations/…``), or AnthropicError.
    ``pager_factory(path, params, limit)`` gives the shared bucket pager (which honours the
    page-size, cursor-loop and endless-pages faults); ``page_size`` caps listing pages too."""
    if path == "/v1/organizations/cost_report":
        return _report(
            path,
            params,
            org,
            pager_factory,
            cost=True,
            strict=ending_at_strict,
            unknown_group_by=unknown_group_by,
        )
    if path == "/v1/organizations/usage_report/messages":
        return _report(
            path,
            params,
            org,
            pager_factory,
            cost=False,
            strict=ending_at_strict,
            unknown_group_by=unknown_group_by,
        )
    if path == "/v1/organizations/workspaces":
        include_archived = (params.get("include_archived") or ["false"])[0].lower() == "true"
        include_default = (params.get("include_default") or ["false"])[0].lower() == "true"
        items = [dict(w) for w in org.workspaces if include_archived or w["archived_at"] is None]
        if include_default:
            items.insert(
                0,
                {
                    "type": "workspace",
                    "id": "default",
                    "name": "Default Workspace",
                    "display_color": "#6C5BB9",
                    "created_at": "2024-06-03T00:00:00Z",
                    "archived_at": None,
                },
            )
        return _listing(params, items, page_size)
    if path == "/v1/organizations/me":
        return json.dumps({"id": org.org_id, "type": "organization", "name": org.org_name}).encode()
    if path == "/v1/organizations/api_keys":
        return _listing(params, [dict(key) for key in org.api_keys()], page_size)
    raise AnthropicError(404, "not_found_error", f"Not found: GET {path}")


def _listing(params: dict[str, list[str]], items: list[dict[str, Any]], page_size: int | None) -> bytes:
    try:
        limit = int((params.get("limit") or ["20"])[0])
    except ValueError:
        raise _invalid("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise _invalid("limit: Input should be between 1 and 1000")
    if page_size:
        limit = min(limit, page_size)
    after = (params.get("after_id") or [""])[0]
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return json.dumps(
        {
            "data": page,
            "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
    ).encode()


def _report(
    path: str,
    params: dict[str, list[str]],
    org: AnthropicOrganization,
    pager_factory,
    *,
    cost: bool,
    strict: bool = False,
    unknown_group_by: tuple[str, ...] = (),
) -> bytes:
    """One page of a report. Buckets end at or before ``ending_at`` (``strict``: before it), the
    last one at the latest ending after now (today, still filling up)."""
    start = _timestamp(params, "starting_at", required=True)
    end = _timestamp(params, "ending_at", required=False)
    assert start is not None
    width = (params.get("bucket_width") or ["1d"])[0]
    if width != "1d":
        allowed = "'1d'" if cost else "'1d', '1h', '1m'"
        if cost or width not in ("1h", "1m"):
            raise _invalid(f"bucket_width: Input should be {allowed}")
        raise _invalid("bucket_width: the simulator serves 1d buckets only")
    try:
        limit = int((params.get("limit") or [str(DEFAULT_BUCKETS_1D)])[0])
    except ValueError:
        raise _invalid("limit: Input should be a valid integer") from None
    if not 1 <= limit <= MAX_BUCKETS_1D:
        raise _invalid(f"limit: Input should be less than or equal to {MAX_BUCKETS_1D} for bucket_width=1d")
    allowed = tuple(d for d in (COST_GROUP_BY if cost else USAGE_GROUP_BY) if d not in unknown_group_by)
    group_by = _group_by(params, allowed)
    if strict and end is not None:
        end -= DAY  # the bucket ending exactly at ending_at is left out
    upper = org.now_ts() if end is None else min(end, org.now_ts())
    pager = pager_factory(path, params, limit)
    first = pager.resume if pager.resume is not None else start // DAY * DAY
    days = []
    a = first
    while a < upper:
        days.append(a)
        a += DAY
    shown, more = days[: pager.size], len(days) > pager.size
    token = pager.encode(days[pager.size]) if more else None
    if pager.loop:
        more, token = True, pager.token or pager.encode(first)
    elif pager.endless and not more:
        more, token = True, pager.encode((shown[-1] if shown else first) + DAY)
    data = [
        {
            "starting_at": rfc3339(a),
            "ending_at": rfc3339(a + DAY),
            "results": (_cost_results if cost else _usage_results)(org, day_of(a), group_by),
        }
        for a in shown
    ]
    return json.dumps({"data": data, "has_more": more, "next_page": token}).encode()


def _cost_results(org: AnthropicOrganization, day: date, group_by: set[str]) -> list[dict[str, Any]]:
    by_description = "description" in group_by
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in org.cost_facts(day):
        key = (
            f["workspace_id"] if "workspace_id" in group_by else None,
            f["description"] if by_description else None,
            f["inference_geo"] if "inference_geo" in group_by else None,
        )
        row = groups.get(key)
        if row is None:
            groups[key] = {
                "amount": f["amount"],
                "currency": "USD",
                "cost_type": f["cost_type"] if by_description else None,
                "description": key[1],
                "model": f["model"] if by_description else None,
                "token_type": f["token_type"] if by_description else None,
                "service_tier": f["service_tier"] if by_description else None,
                "context_window": f["context_window"] if by_description else None,
                "inference_geo": key[2],
                "workspace_id": key[0],
            }
        else:
            row["amount"] += f["amount"]
    return [
        {**row, "amount": cents_text(row["amount"])}
        for _, row in sorted(groups.items(), key=lambda kv: tuple(str(v) for v in kv[0]))
    ]


def _usage_results(org: AnthropicOrganization, day: date, group_by: set[str]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, int]] = {}
    for f in org.usage_facts(day):
        key = tuple(f[d] if d in group_by else None for d in USAGE_GROUP_BY)
        acc = groups.setdefault(key, dict.fromkeys(USAGE_METRICS, 0))
        for m in USAGE_METRICS:
            acc[m] += f[m]
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        m = groups[key]
        out.append(
            {
                **dict(zip(USAGE_GROUP_BY, key, strict=True)),
                "uncached_input_tokens": m["uncached_input_tokens"],
                "cache_read_input_tokens": m["cache_read_input_tokens"],
                "cache_creation": {
                    "ephemeral_1h_input_tokens": m["cache_creation_1h"],
                    "ephemeral_5m_input_tokens": m["cache_creation_5m"],
                },
                "output_tokens": m["output_tokens"],
                "server_tool_use": {"web_search_requests": m["web_search_requests"]},
            }
        )
    return out


def org_seed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


__all__ = [
    "ADMIN_KEY_PREFIX",
    "PATH_PREFIX",
    "AnthropicError",
    "AnthropicOrganization",
    "authenticate",
    "org_seed",
    "route",
]
