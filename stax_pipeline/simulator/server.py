"""HTTP front of the Admin API simulator: auth, validation, buckets, paging and faults.

Serves OpenAI's ``GET /v1/organization/costs``, ``/v1/organization/usage/<endpoint>``,
``/v1/organization/projects`` and ``/v1/organization/projects/<id>/api_keys``, and Anthropic's
``/v1/organizations/…`` (see :mod:`.anthropic`), on a stdlib ``ThreadingHTTPServer``: the two
path families are distinct, so one process serves both APIs. The fault switches apply to both,
each answering with its own API's error bodies. Request handling lives in
:meth:`Simulator.handle` so it is independent of the socket plumbing.

A large organization's 30-day page is tens of megabytes of JSON, so the results of every closed
bucket are encoded once and kept (:class:`_BucketCache`); a page is those pieces joined, byte for
byte what ``json.dumps`` of the whole page gives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from stax_pipeline.lib.endpoints import SIMULATOR_HEADER
from stax_pipeline.simulator import anthropic
from stax_pipeline.simulator.data import DAY, ENDPOINTS, CostFact, Organization, day_of, day_start, paused_gc
from stax_pipeline.simulator.profiles import profile_named

ARRAY_PARAMS = frozenset(
    {
        "project_ids",
        "user_ids",
        "api_key_ids",
        "models",
        "group_by",
        "sources",
        "sizes",
        "vector_store_ids",
        "context_levels",
    }
)
COSTS_GROUP_BY = ("line_item", "project_id", "api_key_id")  # also the output key order
USAGE_WIDTHS = {"1d": (DAY, 7, 31), "1h": (3600, 24, 168), "1m": (60, 60, 1440)}  # seconds, default, max
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_NO_SCOPE = "You have insufficient permissions for this operation."
_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_SERVER_ERRORS = {
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout. Please try again later.",
}

# json.dumps's output without its check for reference cycles (plain rows have none): 30% faster
_ENCODER = json.JSONEncoder(check_circular=False)
_FAULTS_LOCK = threading.Lock()  # module-level so Faults stays a plain, copyable dataclass


@dataclass
class Faults:
    """Failure modes to inject, mutable at runtime; bursts count down once per request.

    "The N-th request" counts every request the simulator received, from 1, whatever its path.
    """

    rate_limit_burst: int = 0
    rate_limit_per_path: int = 0  # the first N requests of each path answer 429
    rate_limit_every: int = 0  # every N-th request answers 429
    retry_after: int = 1
    retry_after_form: str = "seconds"  # of the 429's Retry-After: "seconds", "http-date" or "nan"
    outage_at_request: int = 0  # the K-th request starts an outage: every request fails ...
    outage_seconds: float = 0.0  # ... for this long ...
    outage_mode: str = "503"  # ... answered 503, or "drop": the connection closes unanswered
    drop_mid_response_every: int = 0  # every N-th answer stops half-way: the connection closes
    redirect_burst: int = 0  # the next N requests answer 301 (with a body that looks like data)
    endless_pages: bool = False  # the last page still says has_more, with a fresh cursor, forever
    error_5xx_burst: int = 0
    error_5xx_rate: float = 0.0
    latency_ms: int = 0
    truncated_body_burst: int = 0
    page_size: int | None = None
    cursor_loop: bool = False
    reject_costs_group_by_api_key_id: bool = False
    revision: int = 0
    revised_days: int = 3
    error_body_string: bool = False
    missing_usage_endpoints: tuple[str, ...] = ()  # an older API without these (404)
    # Anthropic reports: read "buckets that end before ending_at" strictly, leaving out the bucket
    # that ends exactly at ending_at
    ending_at_strict: bool = False
    anthropic_unknown_group_by: tuple[str, ...] = ()  # an older Anthropic API without these dimensions

    def take(self, burst: str) -> bool:
        """Atomically consume one unit of a ``*_burst`` counter; False when it is exhausted."""
        with _FAULTS_LOCK:
            left = getattr(self, burst)
            if left > 0:
                setattr(self, burst, left - 1)
            return left > 0


@dataclass
class Response:
    """A complete HTTP response as the handler writes it."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: str | None = None  # "unanswered": close at once; "mid_body": send half the body, close


class ApiError(Exception):
    """An error response in the API's ``{"error": {...}}`` shape, or the bare-string one."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
        bare: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        error: Any = message if bare else {"message": message, "type": kind, "param": param, "code": code}
        self.body = json.dumps({"error": error}).encode()

    def response(self) -> Response:
        return Response(self.status, self.body, headers=self.headers)


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param)


def mask_key(key: str) -> str:
    """How the API echoes a key it refused: a prefix and the last four characters only."""
    return f"{key[:9]}...{key[-4:]}" if len(key) > 16 else f"{key[:3]}..."


def normalize_params(raw: dict[str, list[str]]) -> dict[str, list[str]]:
    """Merge the three array encodings (repeated, ``name[]``, comma-joined) into one list per name."""
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        name = key.removesuffix("[]")
        if name in ARRAY_PARAMS:
            values = [part for v in values for part in v.split(",") if part]
        out.setdefault(name, []).extend(values)
    return out


def _int_param(params: dict[str, list[str]], name: str, *, required: bool = False) -> int | None:
    values = params.get(name)
    if not values:
        if required:
            raise _invalid(name, f"Missing required parameter: '{name}'.")
        return None
    try:
        return int(values[0])
    except ValueError:
        message = f"Invalid type for '{name}': expected an integer, but got '{values[0]}' instead."
        raise _invalid(name, message) from None


def _choices(params: dict[str, list[str]], name: str, allowed: tuple[str, ...]) -> list[str]:
    values = params.get(name, [])
    for v in values:
        if v not in allowed:
            supported = ", ".join(f"'{a}'" for a in allowed)
            raise _invalid(name, f"Invalid value for '{name}': '{v}'. Supported values are: {supported}.")
    return values


def _limit(params: dict[str, list[str]], default: int, maximum: int, context: str = "") -> int:
    limit = _int_param(params, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise _invalid(
            "limit", f"Invalid value for 'limit': {limit}. It must be between 1 and {maximum}{context}."
        )
    return limit


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple([(v is not None, str(v)) for v in key])


class _BucketCache:
    """Encoded ``results`` of closed buckets, least recently used dropped beyond ``max_bytes``.

    A closed bucket of a given revision never changes, so its answer to the same grouping and
    filters can be served again without regrouping or re-encoding tens of thousands of rows.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, encode: Callable[[], bytes]) -> bytes:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        value = encode()  # outside the lock: other buckets are served meanwhile
        with self._lock:
            if key not in self._entries:
                self._entries[key] = value
                self._size += len(value)
                while self._size > self.max_bytes and len(self._entries) > 1:
                    self._size -= len(self._entries.popitem(last=False)[1])
        return value


class _Pager:
    """Bucket pagination: a page holds at most ``size`` buckets; the cursor is bound to the params."""

    def __init__(self, path: str, params: dict[str, list[str]], size: int, faults: Faults) -> None:
        canon = sorted((k, sorted(v) if k in ARRAY_PARAMS else v) for k, v in params.items() if k != "page")
        self.fingerprint = hashlib.sha256(json.dumps([path, canon]).encode()).digest()[:8]
        self.size = min(size, faults.page_size) if faults.page_size else size
        self.token = (params.get("page") or [""])[0]
        self.loop = faults.cursor_loop
        self.endless = faults.endless_pages
        self.resume = self._decode(self.token) if self.token else None

    def encode(self, start: int) -> str:
        """The cursor of the page that starts at bucket ``start``."""
        return self._encode(start)

    def _encode(self, start: int) -> str:
        return "page_" + base64.urlsafe_b64encode(struct.pack(">q8s", start, self.fingerprint)).decode()

    def _decode(self, token: str) -> int:
        try:
            start, fingerprint = struct.unpack(">q8s", base64.urlsafe_b64decode(token.removeprefix("page_")))
        except (ValueError, binascii.Error, struct.error):
            raise _invalid("page", "Invalid value for 'page': not a cursor this endpoint returned.") from None
        if not token.startswith("page_") or fingerprint != self.fingerprint:
            raise _invalid(
                "page",
                "Invalid value for 'page': the cursor does not match the other request "
                "parameters; resend the original parameters with 'page'.",
            )
        return start

    def page(self, bounds: Iterator[tuple[int, int]], render: Callable[[int, int], bytes]) -> bytes:
        """One page of buckets from ``bounds`` (already resumed at the cursor), as JSON.

        ``render`` gives a bucket's encoded ``results`` list; the page is assembled around those
        pieces exactly as ``json.dumps`` would write the whole object.
        """
        buckets = list(islice(bounds, self.size + 1))
        shown = buckets[: self.size]
        if self.loop:  # a broken server that keeps handing back the same cursor
            more, cursor = True, self.token or self._encode(shown[0][0] if shown else 0)
        else:
            more = len(buckets) > self.size
            cursor = self._encode(buckets[-1][0]) if more else None
            if self.endless and not more:  # a broken server: past the end, empty pages, fresh cursors
                after = shown[-1][1] if shown else (self.resume if self.resume is not None else 2**62) + 1
                more, cursor = True, self._encode(after)
        parts = [b'{"object": "page", "data": [']
        for i, (a, b) in enumerate(shown):
            head = b'{"object": "bucket", "start_time": %d, "end_time": %d, "results": ' % (a, b)
            parts += [b", " if i else b"", head, render(a, b), b"}"]
        parts.append(
            b'], "has_more": %b, "next_page": %b}'
            % (b"true" if more else b"false", json.dumps(cursor).encode())
        )
        return b"".join(parts)  # one copy of what may be ~100 MB


class Simulator:
    """A stateful fake of the OpenAI Admin API: organizations per key, faults, and a request log."""

    def __init__(
        self, now: Callable[[], datetime] | None = None, faults: Faults | None = None, profile: str = "small"
    ) -> None:
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.faults = faults or Faults()
        self.profile = profile_named(profile)  # every key's organization has this size
        self.base_url: str | None = None  # set by run_simulator / serve
        self.port: int | None = None
        self._lock = threading.Lock()
        self._orgs: dict[str, Organization] = {}
        self._anthropic_orgs: dict[str, anthropic.AnthropicOrganization] = {}
        self._revoked: set[str] = set()
        self._requests: list[tuple[str, dict[str, list[str]]]] = []
        self._errors_served = 0
        self._error_rng = random.Random(0)
        self._buckets = _BucketCache()
        self._received = 0  # every request, for the "N-th request" faults
        self._received_by_path: dict[str, int] = {}
        self._outage_until: float | None = None  # time.monotonic() when the outage ends

    @property
    def requests(self) -> list[tuple[str, dict[str, list[str]]]]:
        """Every request served so far, as (path, raw query params as lists); a snapshot copy."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        """Forget the request log, and restart the "N-th request" counts (and any outage)."""
        with self._lock:
            self._requests.clear()
            self._received = 0
            self._received_by_path.clear()
            self._outage_until = None

    def revoke(self, key: str) -> None:
        """From now on the key is refused with 401 invalid_api_key."""
        with self._lock:
            self._revoked.add(key)

    def org_for_key(self, key: str) -> Organization:
        """The organization a key sees, seeded from sha256(key)."""
        with self._lock:
            if key not in self._orgs:
                self._orgs[key] = Organization(
                    hashlib.sha256(key.encode()).hexdigest(),
                    self._now,
                    lambda: (self.faults.revision, self.faults.revised_days),
                    self.profile,
                )
            return self._orgs[key]

    def anthropic_org_for_key(self, key: str) -> anthropic.AnthropicOrganization:
        """The Anthropic organization an admin key sees, seeded from sha256(key)."""
        with self._lock:
            if key not in self._anthropic_orgs:
                self._anthropic_orgs[key] = anthropic.AnthropicOrganization(
                    anthropic.org_seed(key),
                    self._now,
                    lambda: (self.faults.revision, self.faults.revised_days),
                )
            return self._anthropic_orgs[key]

    def _now(self) -> datetime:
        return self.now()

    def handle(
        self,
        target: str,
        authorization: str | None,
        *,
        api_key: str | None = None,
        anthropic_version: str | None = None,
    ) -> Response:
        """Answer one GET request (``target`` is the path with its query string). OpenAI paths
        authenticate by ``authorization`` (a bearer token), Anthropic's by ``api_key`` (the
        ``x-api-key`` header) and need ``anthropic_version``."""
        url = urlsplit(target)
        path = url.path.rstrip("/")
        if path.startswith(anthropic.PATH_PREFIX):
            return self._handle_anthropic(
                path, parse_qs(url.query, keep_blank_values=True), api_key, anthropic_version
            )
        raw = parse_qs(url.query, keep_blank_values=True)
        faults = self.faults
        with self._lock:
            self._requests.append((path, raw))
            self._received += 1
            nth = self._received
            nth_of_path = self._received_by_path[path] = self._received_by_path.get(path, 0) + 1
            if faults.outage_at_request and nth == faults.outage_at_request:
                self._outage_until = time.monotonic() + faults.outage_seconds
            in_outage = self._outage_until is not None and time.monotonic() < self._outage_until
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if in_outage:
            if faults.outage_mode == "drop":
                return Response(0, b"", drop="unanswered")
            return ApiError(503, _SERVER_ERRORS[503], kind="server_error").response()
        if faults.take("redirect_burst"):
            page = {"object": "page", "data": [], "has_more": False, "next_page": None}
            return Response(
                301, json.dumps(page).encode(), headers={"Location": f"https://api.openai.invalid{url.path}"}
            )
        try:
            if (
                faults.take("rate_limit_burst")
                or nth_of_path <= faults.rate_limit_per_path
                or (faults.rate_limit_every and nth % faults.rate_limit_every == 0)
            ):
                raise ApiError(
                    429,
                    f"Rate limit reached for requests on organization admin endpoints. "
                    f"Please try again in {faults.retry_after}s.",
                    kind="requests",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": self._retry_after()},
                )
            failure = self._server_error()
            if failure is not None:
                return failure
            scope = (
                "api.management.read" if path.startswith("/v1/organization/projects") else "api.usage.read"
            )
            org = self.org_for_key(self._authenticate(authorization, scope))
            payload = self._route(path, normalize_params(raw), org)
        except ApiError as error:
            return error.response()
        if faults.take("truncated_body_burst"):
            payload = payload[: len(payload) // 2]
        if faults.drop_mid_response_every and nth % faults.drop_mid_response_every == 0:
            return Response(200, payload, drop="mid_body")
        return Response(200, payload)

    def _handle_anthropic(
        self, path: str, raw: dict[str, list[str]], api_key: str | None, version: str | None
    ) -> Response:
        """One Anthropic Admin API request, with the same fault switches as OpenAI's, answered in
        Anthropic's error shape (429 ``rate_limit_error``, 529 ``overloaded_error``, …)."""
        faults = self.faults
        with self._lock:
            self._requests.append((path, raw))
            self._received += 1
            nth = self._received
            nth_of_path = self._received_by_path[path] = self._received_by_path.get(path, 0) + 1
            if faults.outage_at_request and nth == faults.outage_at_request:
                self._outage_until = time.monotonic() + faults.outage_seconds
            in_outage = self._outage_until is not None and time.monotonic() < self._outage_until
            revoked = set(self._revoked)
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if in_outage:
            if faults.outage_mode == "drop":
                return Response(0, b"", drop="unanswered")
            return self._anthropic_error(anthropic.AnthropicError(529, *anthropic.SERVER_ERRORS[529]))
        if faults.take("redirect_burst"):
            page = {"data": [], "has_more": False, "next_page": None}
            return Response(
                301, json.dumps(page).encode(), headers={"Location": f"https://api.anthropic.invalid{path}"}
            )
        try:
            if (
                faults.take("rate_limit_burst")
                or nth_of_path <= faults.rate_limit_per_path
                or (faults.rate_limit_every and nth % faults.rate_limit_every == 0)
            ):
                raise anthropic.AnthropicError(
                    429,
                    "rate_limit_error",
                    "Number of request tokens has exceeded your per-minute rate limit",
                    headers={"retry-after": self._retry_after()},
                )
            hit = faults.take("error_5xx_burst")
            status = 500
            with self._lock:
                if not hit and faults.error_5xx_rate > 0:
                    hit = self._error_rng.random() < faults.error_5xx_rate
                if hit:
                    status = (500, 529, 502, 529)[self._errors_served % 4]
                    self._errors_served += 1
            if hit:
                if status == 502:
                    return Response(502, _BAD_GATEWAY, "text/html")
                raise anthropic.AnthropicError(status, *anthropic.SERVER_ERRORS[status])
            key = anthropic.authenticate(api_key, version, revoked)
            org = self.anthropic_org_for_key(key)
            payload = anthropic.route(
                path,
                normalize_params(raw),
                org,
                lambda p, params, size: _Pager(p, params, size, faults),
                faults.page_size,
                ending_at_strict=faults.ending_at_strict,
                unknown_group_by=faults.anthropic_unknown_group_by,
            )
        except anthropic.AnthropicError as error:
            return self._anthropic_error(error)
        except ApiError as error:  # the shared page-token check: re-worded in Anthropic's shape
            message = json.loads(error.body)["error"]
            text = message["message"] if isinstance(message, dict) else str(message)
            return self._anthropic_error(
                anthropic.AnthropicError(error.status, "invalid_request_error", text)
            )
        if faults.take("truncated_body_burst"):
            payload = payload[: len(payload) // 2]
        if faults.drop_mid_response_every and nth % faults.drop_mid_response_every == 0:
            return Response(200, payload, drop="mid_body")
        return Response(200, payload)

    @staticmethod
    def _anthropic_error(error: anthropic.AnthropicError) -> Response:
        return Response(error.status, error.body, headers=error.headers)

    def _retry_after(self) -> str:
        """The 429's ``Retry-After`` in the form the faults ask for."""
        form, seconds = self.faults.retry_after_form, self.faults.retry_after
        if form == "nan":
            return "nan"
        if form == "http-date":  # real time, read by the client's real clock; whole seconds, rounded up
            return format_datetime(datetime.fromtimestamp(math.ceil(time.time() + seconds), UTC), usegmt=True)
        return str(seconds)

    def _server_error(self) -> Response | None:
        hit = self.faults.take("error_5xx_burst")
        with self._lock:
            if not hit and self.faults.error_5xx_rate > 0:
                hit = self._error_rng.random() < self.faults.error_5xx_rate
            if not hit:
                return None
            status = (500, 502, 503, 504)[self._errors_served % 4]
            self._errors_served += 1
        if status == 502:
            return Response(502, _BAD_GATEWAY, "text/html")
        return ApiError(status, _SERVER_ERRORS[status], kind="server_error").response()

    def _authenticate(self, authorization: str | None, scope: str) -> str:
        bare = self.faults.error_body_string
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, _NO_KEY, bare=bare)
        refused = (
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        if not key.startswith("sk-"):
            raise ApiError(401, refused, code="invalid_api_key", bare=bare)
        if not key.startswith("sk-admin-"):
            raise ApiError(403, f"{_NO_SCOPE} Missing scopes: {scope}.", bare=True)
        with self._lock:
            revoked = key in self._revoked
        if revoked or "-revoked" in key:
            raise ApiError(401, refused, code="invalid_api_key", bare=bare)
        if "-nonowner" in key:
            raise ApiError(
                403,
                f"{_NO_SCOPE} Missing scopes: {scope}. The creator of this admin key is not "
                "an owner of the organization.",
                bare=bare,
            )
        return key

    def _route(self, path: str, params: dict[str, list[str]], org: Organization) -> bytes:
        if path == "/v1/organization/costs":
            return self._costs(path, params, org)
        if path == "/v1/organization/projects":
            return json.dumps(_projects(params, org, endless=self.faults.endless_pages)).encode()
        project_path, _, leaf = path.rpartition("/")
        if leaf == "api_keys" and project_path.startswith("/v1/organization/projects/"):
            project_id = project_path.removeprefix("/v1/organization/projects/")
            return json.dumps(_api_keys(params, org, project_id, self.faults.page_size)).encode()
        prefix, _, endpoint = path.rpartition("/")
        if endpoint in self.faults.missing_usage_endpoints:
            raise ApiError(404, f"Invalid URL (GET {path})")
        if prefix == "/v1/organization/usage" and endpoint in ENDPOINTS:
            return self._usage(path, endpoint, params, org)
        raise ApiError(404, f"Invalid URL (GET {path})")

    def _window(self, params: dict[str, list[str]], org: Organization) -> tuple[int, int]:
        """Validated [start_time, min(end_time, now))."""
        start = _int_param(params, "start_time", required=True)
        end = _int_param(params, "end_time")
        now = org.now_ts()
        assert start is not None  # required=True raised otherwise
        return start, now if end is None else min(end, now)

    def _results(
        self,
        org: Organization,
        a: int,
        b: int,
        query: tuple[Hashable, ...],
        rows: Callable[[], list[dict[str, Any]]],
    ) -> bytes:
        """The encoded results of bucket [a, b): from the cache once the bucket is closed.

        ``query`` names everything besides the bucket that decides its rows (endpoint, grouping,
        filters); the day's revision is added here, as restating a day changes its closed buckets.
        """

        def encode() -> bytes:
            with paused_gc():
                return _ENCODER.encode(rows()).encode()

        if b > org.now_ts():  # still filling up
            return encode()
        return self._buckets.get((org.seed, org.revision_of(day_of(a)), a, b, *query), encode)

    def _costs(self, path: str, params: dict[str, list[str]], org: Organization) -> bytes:
        start, upper = self._window(params, org)
        _choices(params, "bucket_width", ("1d",))
        allowed = COSTS_GROUP_BY[:2] if self.faults.reject_costs_group_by_api_key_id else COSTS_GROUP_BY
        group_by = set(_choices(params, "group_by", allowed))
        projects, keys = set(params.get("project_ids", [])), set(params.get("api_key_ids", []))
        pager = _Pager(path, params, _limit(params, 7, 180), self.faults)

        def bounds() -> Iterator[tuple[int, int]]:
            a = pager.resume if pager.resume is not None else start // DAY * DAY
            while a < upper:  # whole days; the current one ends in the future
                yield a, a + DAY
                a += DAY

        query = ("costs", *(tuple(sorted(v)) for v in (group_by, projects, keys)))

        def render(a: int, b: int) -> bytes:
            return self._results(org, a, b, query, lambda: rows(a))

        by_line = "line_item" in group_by
        picked = [d in group_by for d in COSTS_GROUP_BY]

        def rows(a: int) -> list[dict[str, Any]]:
            facts = [
                f
                for f in org.cost_facts(day_of(a))
                if (not projects or f.project_id in projects) and (not keys or f.api_key_id in keys)
            ]
            if all(picked):  # facts are unique per (project, key, line item): a group each
                groups = {(f.line_item, f.project_id, f.api_key_id): [f] for f in facts}
            else:
                groups = {}
                for f in facts:
                    full = (f.line_item, f.project_id, f.api_key_id)
                    key = tuple([v if p else None for v, p in zip(full, picked, strict=True)])
                    groups.setdefault(key, []).append(f)
            return [row(key, groups[key]) for key in sorted(groups, key=_sort_key)]

        def row(key: tuple[Any, ...], facts: list[CostFact]) -> dict[str, Any]:
            quantity = None
            if by_line and facts[0].quantity is not None:  # one line item has one unit
                quantity = sum([f.quantity or 0 for f in facts])
            return {
                "object": "organization.costs.result",
                "amount": {"value": sum([f.amount for f in facts]), "currency": "usd"},
                "line_item": key[0],
                "project_id": key[1],
                "api_key_id": key[2],
                "quantity": quantity,
                "quantity_unit": facts[0].quantity_unit if by_line else None,
                "organization_id": org.org_id,
            }

        return pager.page(bounds(), render)

    def _usage(self, path: str, endpoint: str, params: dict[str, list[str]], org: Organization) -> bytes:
        spec = ENDPOINTS[endpoint]
        start, upper = self._window(params, org)
        width_name = (params.get("bucket_width") or ["1d"])[0]
        if width_name not in USAGE_WIDTHS:
            raise _invalid(
                "bucket_width",
                f"Invalid value for 'bucket_width': '{width_name}'. Supported values are: '1m', '1h', '1d'.",
            )
        width, default, maximum = USAGE_WIDTHS[width_name]
        group_by = set(_choices(params, "group_by", spec.dims))
        filters = {
            dim: set(_choices(params, name, spec.enums[name]) if name in spec.enums else params.get(name, []))
            for name, dim in spec.filters.items()
        }
        batch = None
        if endpoint == "completions" and params.get("batch"):
            flag = params["batch"][0].lower()
            if flag not in ("true", "false"):
                raise _invalid("batch", f"Invalid value for 'batch': '{flag}'. Expected 'true' or 'false'.")
            batch = flag == "true"
        limit = _limit(params, default, maximum, f" for bucket_width={width_name}")
        pager = _Pager(path, params, limit, self.faults)

        def bounds() -> Iterator[tuple[int, int]]:
            a = pager.resume if pager.resume is not None else start
            while a < upper:  # the first bucket starts at start_time, the last ends at min(end, now)
                b = min((a // width + 1) * width, upper)
                yield a, b
                a = b

        query = (
            endpoint,
            tuple(sorted(group_by)),
            batch,
            *((dim, tuple(sorted(values))) for dim, values in sorted(filters.items())),
        )

        def render(a: int, b: int) -> bytes:
            return self._results(org, a, b, query, lambda: rows(a, b))

        active = [(dim, values) for dim, values in filters.items() if values]
        picked = [d if d in group_by else None for d in spec.dims]

        def rows(a: int, b: int) -> list[dict[str, Any]]:
            day = day_of(a)
            groups: dict[tuple[Any, ...], dict[str, int]] = {}
            for row in org.usage_slice(endpoint, day, a - day_start(day), b - day_start(day)):
                if active and any(row[dim] not in values for dim, values in active):
                    continue
                if batch is not None and row["batch"] != batch:
                    continue
                key = tuple([row[d] if d else None for d in picked])
                acc = groups.get(key)
                if acc is None:
                    groups[key] = {m: row[m] for m in spec.metrics}
                else:
                    for m in spec.metrics:
                        acc[m] += row[m]
            return [
                {"object": spec.object, **groups[key], **dict(zip(spec.dims, key, strict=False))}
                for key in sorted(groups, key=_sort_key)
            ]

        return pager.page(bounds(), render)


def _projects(params: dict[str, list[str]], org: Organization, *, endless: bool = False) -> dict[str, Any]:
    limit = _limit(params, 20, 100)
    archived = (params.get("include_archived") or ["false"])[0].lower() == "true"
    after = (params.get("after") or [""])[0]
    items = [dict(p) for p in org.projects if archived or p["status"] != "archived"]
    if after:
        ids = [p["id"] for p in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    if endless and len(items) <= limit:  # a broken server: has_more forever, a made-up project a page
        if not page:
            n = int(after.removeprefix("proj_endless_")) + 1 if after.startswith("proj_endless_") else 0
            page = [
                {
                    "object": "organization.project",
                    "id": f"proj_endless_{n}",
                    "name": f"Endless {n}",
                    "created_at": 0,
                    "archived_at": None,
                    "status": "active",
                }
            ]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"],
            "last_id": page[-1]["id"],
            "has_more": True,
        }
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _api_keys(
    params: dict[str, list[str]], org: Organization, project_id: str, page_size: int | None
) -> dict[str, Any]:
    """``GET /organization/projects/{project_id}/api_keys``: a cursor list (``after``/``limit``,
    ``has_more``, ``first_id``/``last_id``) of the project's keys, archived projects included."""
    if project_id not in {p["id"] for p in org.projects}:
        raise ApiError(404, f"No such project: '{project_id}'.", param="project_id", code="not_found")
    limit = _limit(params, 20, 100)
    if page_size:
        limit = min(limit, page_size)
    after = (params.get("after") or [""])[0]
    items = org.api_keys(project_id)
    if after:
        ids = [k["id"] for k in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


class _Handler(BaseHTTPRequestHandler):
    """Writes :meth:`Simulator.handle` answers to the socket; logs nothing (headers hold keys)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; avoid the 40 ms delayed-ACK stall
    server_version = "stax-openai-admin-simulator"

    def do_GET(self) -> None:
        server = cast(_Server, self.server)  # the server this handler class is made for
        response = server.simulator.handle(
            self.path,
            self.headers.get("Authorization"),
            api_key=self.headers.get("x-api-key"),
            anthropic_version=self.headers.get("anthropic-version"),
        )
        if response.drop == "unanswered":
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header(SIMULATOR_HEADER, "1")  # so no connection mistakes it for a real API
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.drop == "mid_body":  # Content-Length promised the whole body
            self.wfile.write(response.body[: len(response.body) // 2])
            self.close_connection = True
            return
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, simulator: Simulator, host: str, port: int) -> None:
        self.simulator = simulator
        super().__init__((host, port), _Handler)
        simulator.port = self.server_address[1]
        simulator.base_url = f"http://{host}:{simulator.port}/v1"


@contextmanager
def run_simulator(host: str = "127.0.0.1", port: int = 0, **simulator_kwargs: Any) -> Iterator[Simulator]:
    """Serve a new :class:`Simulator` from a daemon thread for the duration of the block."""
    server = _Server(Simulator(**simulator_kwargs), host, port)
    # a short poll interval keeps shutdown (and so each test using the simulator) fast
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="openai-admin-simulator", daemon=True
    )
    thread.start()
    try:
        yield server.simulator
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve(
    host: str = "127.0.0.1", port: int = 8000, faults: Faults | None = None, profile: str = "small"
) -> None:
    """Serve in the foreground until Ctrl-C."""
    server = _Server(Simulator(faults=faults, profile=profile), host, port)
    print(
        f"OpenAI and Anthropic Admin API simulator at {server.simulator.base_url}, {profile} organizations "
        "(any sk-admin-... or sk-ant-admin01-... key; Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
