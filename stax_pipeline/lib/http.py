"""The one HTTP client Stax uses to talk to provider APIs, with its one retry policy.

GET only. What a later attempt can fix is retried, budgeted by time rather than by a count of
attempts, because an API outage lasts minutes and a nightly sync has hours:

- **429** waits what ``Retry-After`` asks (delta-seconds or an HTTP date). A missing, malformed
  (``nan``), negative or absurd (over an hour) value falls back to the backoff below. Being rate
  limited is the API working as designed, so this time does not consume the error budget: it is
  counted against a rate-limit budget of the same length instead.
- **Any 5xx, 408, timeouts, dropped connections and bodies that are not a JSON object** back off
  exponentially with jitter and a floor: retry ``n`` (from 0) waits ``uniform(floor,
  min(cap, floor * 2**(n + 1)))`` — never less than the floor, never 0 s.

Every failed attempt and every wait is charged to the request's budget (``max_retry_s``, default
300 s, ``STAX_HTTP_MAX_RETRY_SECONDS``) and to the run's (``run_retry_s``, default 30 min,
``STAX_HTTP_RUN_RETRY_SECONDS``), which every request of one sync run shares (see
:func:`run_retry_budget`). The last wait is cut to what is left; when less than the floor is left,
the request fails with an error that names the endpoint, the problem and what to do, and is marked
``retryable`` so the Dagster step can try again later (``stax_pipeline/defs/retries.py``).

Anything else fails at once: a 3xx (redirects are not followed; a redirect's body is never taken
for data), any other 4xx. No message ever contains the API key.

Providers differ only in an :class:`ApiDialect`: how the key is sent (OpenAI's bearer token,
Anthropic's ``x-api-key`` and ``anthropic-version``), how an error body reads, what each final
status tells the user and which setting names the base URL. Anthropic's 529 ``overloaded_error``
is a 5xx and its 429 ``rate_limit_error`` carries ``retry-after``: the policy above covers both.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

from stax_pipeline.errors import CredentialError, ProviderError
from stax_pipeline.lib.endpoints import SIMULATOR_HEADER, check_base_url
from stax_pipeline.lib.redaction import redact, register_secret
from stax_pipeline.settings import HttpRetrySettings, load_http_retry_settings

log = logging.getLogger(__name__)

QueryParams = Sequence[tuple[str, str]]

# A Retry-After longer than this is not believed (a bug or a unit mix-up): the backoff applies.
RETRY_AFTER_MAX_S = 3600.0

MAX_TOKEN_CHARS = 1024  # a bearer token longer than this is not an API key

# A page's JSON, decoded: the same Python values as ``json.loads`` (floats bit for bit, money
# included) in about 60% of its time; a large organization's 30-day costs page is ~100 MB.
_decode_json = msgspec.json.Decoder().decode


def _is_header_safe(token: str) -> bool:
    """Whether ``token`` can go into an Authorization header as it is (else httpx fails late,
    after retries, or sends something else than the key)."""
    return 0 < len(token) <= MAX_TOKEN_CHARS and token.isascii() and token.isprintable() and " " not in token


def is_retryable_status(status: int) -> bool:
    """Statuses a later attempt can fix: rate limiting, request timeout, any server error."""
    return status in (408, 429) or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how patiently a request is retried (defaults: ``HttpRetrySettings``)."""

    max_retry_s: float = HttpRetrySettings.max_retry_s
    run_retry_s: float = HttpRetrySettings.run_retry_s
    backoff_floor_s: float = HttpRetrySettings.backoff_floor_s
    backoff_cap_s: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The policy ``STAX_HTTP_*`` configures (a malformed value raises ConfigError)."""
        settings = load_http_retry_settings()
        return cls(
            max_retry_s=settings.max_retry_s,
            run_retry_s=settings.run_retry_s,
            backoff_floor_s=settings.backoff_floor_s,
        )

    def at_most(self, max_retry_s: float) -> RetryPolicy:
        """The same policy with the per-request limit lowered to ``max_retry_s`` (if higher)."""
        return replace(self, max_retry_s=min(self.max_retry_s, max_retry_s))

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (from 0): jittered, growing, never below the floor."""
        floor = self.backoff_floor_s
        ceiling = min(self.backoff_cap_s, floor * 2.0 ** min(retry + 1, 64))
        return random.uniform(floor, max(floor, ceiling))


class RunRetryBudget:
    """The seconds of failing and waiting that one sync run may spend, shared by its requests."""

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self._spent_s = 0.0
        self._lock = threading.Lock()  # dlt may extract resources from several threads

    @property
    def remaining_s(self) -> float:
        with self._lock:
            return max(0.0, self.limit_s - self._spent_s)

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._spent_s += seconds


_RUN_BUDGET: ContextVar[RunRetryBudget | None] = ContextVar("stax_run_retry_budget", default=None)


@contextmanager
def run_retry_budget(limit_s: float | None = None) -> Iterator[RunRetryBudget]:
    """One run budget for every :class:`ApiClient` created inside the block (one sync run).

    ``limit_s`` defaults to ``STAX_HTTP_RUN_RETRY_SECONDS``. A client created outside any such
    block gets a run budget of its own.
    """
    limit = load_http_retry_settings().run_retry_s if limit_s is None else limit_s
    budget = RunRetryBudget(limit)
    token = _RUN_BUDGET.set(budget)
    try:
        yield budget
    finally:
        _RUN_BUDGET.reset(token)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait, or None when there is none worth believing.

    Both forms of RFC 9110 §10.2.3: delta-seconds (``120``) and an HTTP date (``Wed, 21 Oct 2026
    07:28:00 GMT``; one in the past means "now"). Anything else, or a negative, non-finite
    (``nan``, ``inf``) or absurd (over :data:`RETRY_AFTER_MAX_S`) value, gives None: the caller
    falls back to its own backoff.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are always GMT
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if not math.isfinite(seconds) or not 0 <= seconds <= RETRY_AFTER_MAX_S:
        return None
    return seconds


def error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The provider's own words from an error body, and the ``param`` it blames (if any).

    Error bodies come in two shapes: ``{"error": {"message": ..., "param": ...}}`` (documented)
    and ``{"error": "text"}`` (seen live); anything else falls back to the start of the body, or
    to the status's reason for an HTML page (a proxy's "502 Bad Gateway").
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        text, param = str(err.get("message") or err.get("code") or err), err.get("param")
    elif err is not None:
        text, param = str(err), None
    else:
        text = response.text.strip().replace("\n", " ")[:200]
        if not text or text.startswith("<"):
            text = response.reason_phrase
        param = None
    return redact(text), param


_WHAT_TO_DO = {
    400: "the API refused the request's parameters; this is a bug in Stax or an API change, please report it",
    401: "the admin key was rejected (revoked, or not an admin key); reconnect with a valid admin key",
    403: "the key is not allowed to read usage; an organization owner must create the admin key",
    404: "the endpoint does not exist at this base URL; check STAX_OPENAI_BASE_URL",
    429: "the API kept rate limiting; run the sync again later",
}
_REDIRECT_HINT = (
    "Stax does not follow redirects, so nothing was read; check STAX_OPENAI_BASE_URL "
    "(https, and the /v1 suffix)"
)


def bearer_auth(token: str) -> dict[str, str]:
    """OpenAI's authentication: the key as a bearer token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class ApiDialect:
    """What differs between two providers' JSON-over-HTTPS APIs, and nothing else: how the key is
    sent, how an error body names the problem, what to tell the user per final status and which
    setting holds the base URL. Everything else (retries, budgets, redirects, the simulator
    check, secret masking) is the one :class:`ApiClient` policy. The default is OpenAI's."""

    auth_headers: Callable[[str], dict[str, str]] = bearer_auth
    error_details: Callable[[httpx.Response], tuple[str, str | None]] = field(
        default_factory=lambda: error_details
    )
    hints: Mapping[int, str] = field(default_factory=lambda: _WHAT_TO_DO)
    base_url_setting: str = "STAX_OPENAI_BASE_URL"


OPENAI_DIALECT = ApiDialect()


class HttpError(ProviderError):
    """A final HTTP error status from the provider (after retries, if it was retryable)."""

    def __init__(
        self,
        *,
        endpoint: str,
        status: int,
        message: str,
        param: str | None,
        gave_up: str | None = None,
        dialect: ApiDialect | None = None,
    ):
        dialect = dialect or OPENAI_DIALECT
        if 300 <= status < 400:
            hint = _REDIRECT_HINT.replace("STAX_OPENAI_BASE_URL", dialect.base_url_setting)
        else:
            hint = dialect.hints.get(status, "the API is failing; run the sync again later")
        if gave_up:
            hint = f"{gave_up}; {hint}"
        super().__init__(
            f"GET {endpoint} failed with HTTP {status}: {message} ({hint})",
            status=status,
            endpoint=endpoint,
        )
        self.api_message = message
        self.param = param
        self.retryable = is_retryable_status(status)

    @classmethod
    def from_response(
        cls,
        endpoint: str,
        response: httpx.Response,
        *,
        gave_up: str | None = None,
        dialect: ApiDialect | None = None,
    ) -> HttpError:
        dialect = dialect or OPENAI_DIALECT
        if response.is_redirect or 300 <= response.status_code < 400:
            location = response.headers.get("Location", "").split("?")[0]
            message, param = f"redirected to {redact(location) or 'nowhere'}", None
        else:
            message, param = dialect.error_details(response)
        return cls(
            endpoint=endpoint,
            status=response.status_code,
            message=message,
            param=param,
            gave_up=gave_up,
            dialect=dialect,
        )


class RetriesExhausted(ProviderError):
    """A request kept failing without an HTTP status (timeouts, dropped connections, bad bodies)."""

    retryable = True


@dataclass(frozen=True)
class _Failure:
    """One attempt that a later attempt may fix."""

    problem: str  # for the log and the final error, e.g. "HTTP 503: overloaded", "timed out"
    rate_limited: bool = False
    retry_after_s: float | None = None
    response: httpx.Response | None = None


class ApiClient:
    """A small JSON-over-HTTPS GET client bound to one base URL and one bearer token.

    The URL must pass :func:`~stax_pipeline.lib.endpoints.check_base_url` (https, or http only
    to this machine) and the token must be printable ASCII, both checked before anything is
    sent; the token (and its encodings) is masked by :func:`redact` from then on.
    ``expect_simulator`` (True or False) ends the request with a ProviderError when an answer
    does (not) come from the Stax simulator (see ``lib/endpoints.py``); ``answered_by_simulator``
    tells what the last answer was. ``dialect`` is the provider's way of authenticating and of
    wording errors (OpenAI's by default). ``budget`` is the run's shared :class:`RunRetryBudget`; by
    default the one of the enclosing :func:`run_retry_budget` block, else a budget of this
    client's own. ``sleep`` is injectable so tests can record the waits instead of sleeping them.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        budget: RunRetryBudget | None = None,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        expect_simulator: bool | None = None,
        dialect: ApiDialect | None = None,
    ):
        self.dialect = dialect or OPENAI_DIALECT
        self.base_url = check_base_url(base_url, source="the API base URL")
        if not _is_header_safe(token):
            raise CredentialError(
                "the API key has characters or a length no API key has (control characters, "
                "spaces, non-ASCII); connect again with the key exactly as it was issued"
            )
        register_secret(token)
        self.expect_simulator = expect_simulator
        self.answered_by_simulator: bool | None = None
        self.retry = retry or RetryPolicy.from_env()
        self.budget = budget or _RUN_BUDGET.get() or RunRetryBudget(self.retry.run_retry_s)
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                **self.dialect.auth_headers(token),
                "Content-Type": "application/json",
                "User-Agent": "stax-pipeline",
            },
            timeout=timeout_s,
            follow_redirects=False,  # a 3xx is an error (see HttpError), never data
        )
        self.requests_made = 0
        # Requests and seconds spent waiting on each path (network and server), for timings.
        self.requests_by_path: dict[str, int] = {}
        self.seconds_by_path: dict[str, float] = {}

    def __repr__(self) -> str:  # never show the token
        return f"ApiClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def iter_day_buckets(
        self, path: str, params: Sequence[tuple[str, str]], *, start: date, end: date
    ) -> Iterator[dict[str, Any]]:
        """Yield every bucket (``data`` item) of a report of 1-day buckets for UTC days
        [start, end), over all its pages: each page request resends every parameter plus
        ``page`` (the ``next_page`` token), until ``next_page`` is empty or ``has_more`` false.

        Buckets are handed out one by one and dropped once consumed, so a large page's rows are
        freed as they become Arrow batches instead of living until the next page. A token the
        API hands out twice, or more pages than the window has days (plus a margin for an empty
        last page: a page holds at least one day), fails instead of paging forever.
        """
        max_pages = max((end - start).days, 1) + 2
        seen_tokens: set[str] = set()
        token: str | None = None
        pages = 0
        while True:
            if pages == max_pages:
                raise ProviderError(
                    f"GET {path} was still paging after {pages} pages for a "
                    f"{(end - start).days}-day window (a page holds at least one day); stopping "
                    "instead of paging forever. The API misbehaved: run the sync again later.",
                    endpoint=path,
                )
            page = self.get_json(path, [*params, *([("page", token)] if token else [])])
            pages += 1
            buckets = list(reversed(page.pop("data", None) or []))
            while buckets:
                yield buckets.pop()
            token = page.get("next_page")
            if not token or page.get("has_more") is False:
                break
            if token in seen_tokens:
                raise ProviderError(
                    f"GET {path} returned the same pagination cursor twice; stopping instead of "
                    "looping forever. The API misbehaved: run the sync again later.",
                    endpoint=path,
                )
            seen_tokens.add(token)
        log.info("%s: %s..%s in %d page(s)", path, start, end - timedelta(days=1), pages)

    def iter_list(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        *,
        cursor_param: str,
        limit: int,
        max_pages: int,
        what: str,
    ) -> Iterator[dict[str, Any]]:
        """Yield every object of a cursor listing (projects, workspaces, API keys): pages of
        ``limit`` objects, the next one asked for with ``cursor_param`` = the page's ``last_id``
        (OpenAI calls it ``after``, Anthropic ``after_id``), until ``has_more`` is false.

        A cursor the API hands out twice, or more than ``max_pages`` pages (of ``what``, for
        the message), fails instead of looping forever.
        """
        after: str | None = None
        seen: set[str] = set()  # the cursors followed: one per page fetched
        while True:
            if len(seen) == max_pages:
                raise ProviderError(
                    f"GET {path} was still paging after {max_pages} pages of {limit} {what}; "
                    "stopping instead of paging forever. The API misbehaved: run the sync again later.",
                    endpoint=path,
                )
            page = self.get_json(
                path, [("limit", str(limit)), *params, *([(cursor_param, after)] if after else [])]
            )
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                break
            after = page.get("last_id") or data[-1].get("id")
            if not after or after in seen:
                raise ProviderError(
                    f"GET {path} repeated its pagination cursor; stopping instead of looping "
                    "forever. Run the sync again later.",
                    endpoint=path,
                )
            seen.add(after)

    def get_json(self, path: str, params: QueryParams = ()) -> dict[str, Any]:
        """GET ``path`` and return the decoded JSON object, retrying what is worth retrying."""
        endpoint = "/" + path.lstrip("/")
        policy, budget = self.retry, self.budget
        # Two budgets per request: being rate limited never eats into the one for errors.
        spent_s = {"errors": 0.0, "rate limits": 0.0}
        retries = {"errors": 0, "rate limits": 0}
        while True:
            began = time.monotonic()
            outcome = self._attempt(endpoint, params)
            if not isinstance(outcome, _Failure):
                return outcome
            kind = "rate limits" if outcome.rate_limited else "errors"
            failing_s = time.monotonic() - began
            spent_s[kind] += failing_s
            budget.spend(failing_s)
            wait = outcome.retry_after_s
            if wait is None:
                wait = policy.backoff(retries[kind])
            request_left = policy.max_retry_s - spent_s[kind]
            wait = min(max(wait, policy.backoff_floor_s), request_left, budget.remaining_s)
            if wait < policy.backoff_floor_s:
                raise self._gave_up(endpoint, outcome, spent_s[kind], request_left)
            retries[kind] += 1
            log.warning(
                "GET %s: %s; retry %d in %.1fs (%.0fs of %gs of %s for this request, %.0fs left for the run)",
                endpoint,
                outcome.problem,
                retries[kind],
                wait,
                spent_s[kind],
                policy.max_retry_s,
                kind,
                budget.remaining_s,
            )
            self._sleep(wait)
            spent_s[kind] += wait
            budget.spend(wait)

    def _attempt(self, endpoint: str, params: QueryParams) -> dict[str, Any] | _Failure:
        """One request: the JSON object, a failure worth retrying, or a final error (raised)."""
        self.requests_made += 1
        self.requests_by_path[endpoint] = self.requests_by_path.get(endpoint, 0) + 1
        started = time.perf_counter()
        try:
            response = self._http.get(endpoint, params=list(params))
        except httpx.TimeoutException:
            return _Failure(f"timed out after {self.timeout_s:g}s")
        except httpx.ConnectError:
            return _Failure(f"could not connect to {self.base_url}")
        except httpx.UnsupportedProtocol:
            raise ProviderError(
                f"{self.base_url} is not an http(s) URL; check {self.dialect.base_url_setting}",
                endpoint=endpoint,
            ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # RemoteProtocolError (closed mid-body, or before answering), ReadError (reset), …
            return _Failure(f"the connection dropped before the whole answer arrived ({type(exc).__name__})")
        finally:
            waited = time.perf_counter() - started
            self.seconds_by_path[endpoint] = self.seconds_by_path.get(endpoint, 0.0) + waited
        self._check_answered_by(endpoint, response)
        status = response.status_code
        if is_retryable_status(status):
            return _Failure(
                f"HTTP {status}: {self.dialect.error_details(response)[0]}",
                rate_limited=status == 429,
                retry_after_s=retry_after_seconds(response.headers.get("Retry-After")),
                response=response,
            )
        if status >= 300:  # a redirect's body is never data
            raise HttpError.from_response(endpoint, response, dialect=self.dialect)
        try:
            body = _decode_json(response.content)
        except ValueError:  # msgspec.DecodeError is one
            body = None
        if not isinstance(body, dict):
            return _Failure(f"HTTP {status} with a body that is not a JSON object")
        return body

    def _check_answered_by(self, endpoint: str, response: httpx.Response) -> None:
        """Record whether the Stax simulator answered; end the request if that is not expected."""
        by_simulator = response.headers.get(SIMULATOR_HEADER) == "1"
        self.answered_by_simulator = by_simulator
        if self.expect_simulator is None or by_simulator == self.expect_simulator:
            return
        if by_simulator:
            problem = (
                f"{self.base_url} answered as the Stax simulator, but this connection was made "
                "against a real API: simulated data never replaces real days. Stop the simulator "
                "there, or connect it under another name"
            )
        else:
            problem = (
                f"{self.base_url} did not answer as the Stax simulator, but this connection was "
                "made against the simulator: its key and data never go to a real API. Start "
                f"`stax simulator` and point {self.dialect.base_url_setting} at it"
            )
        raise ProviderError(f"GET {endpoint}: {problem}", status=response.status_code, endpoint=endpoint)

    def _gave_up(
        self, endpoint: str, failure: _Failure, spent_s: float, request_left_s: float
    ) -> ProviderError:
        """The final error of a request whose retries ran out of time: what, why, what to do."""
        if request_left_s <= self.budget.remaining_s:
            limit = (
                f"still failing after {round(spent_s, 1):g}s of retries, the limit per request "
                f"(STAX_HTTP_MAX_RETRY_SECONDS={self.retry.max_retry_s:g})"
            )
        else:
            limit = (
                f"the sync run's retry budget is used up "
                f"(STAX_HTTP_RUN_RETRY_SECONDS={self.budget.limit_s:g})"
            )
        if failure.response is not None:
            return HttpError.from_response(endpoint, failure.response, gave_up=limit, dialect=self.dialect)
        return RetriesExhausted(
            f"GET {endpoint} failed: {failure.problem}; {limit}. Check that {self.base_url} is "
            f"reachable ({self.dialect.base_url_setting}) and run the sync again later.",
            endpoint=endpoint,
        )
