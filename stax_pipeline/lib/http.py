"""The one HTTP client Stax uses to talk to provider APIs, with its one retry policy.

GET only. Retries 429 (honouring ``Retry-After``), 500/502/503/504, timeouts, connection
errors and bodies that are not JSON, with exponential backoff and full jitter, a bounded number
of times. Any other error status fails at once. The final error names the endpoint, the status
and what to do; it never contains the API key.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from stax_pipeline.errors import ProviderError

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
QueryParams = Sequence[tuple[str, str]]

_SECRET_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{4,}")


def redact(text: str) -> str:
    """Mask anything that looks like an API key (some error bodies echo part of the key)."""
    return _SECRET_PATTERN.sub("sk-…", text)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried."""

    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.retry_after_max_s)
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))


def error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The provider's own words from an error body, and the ``param`` it blames (if any).

    Error bodies come in two shapes: ``{"error": {"message": ..., "param": ...}}`` (documented)
    and ``{"error": "text"}`` (seen live); anything else falls back to the start of the body.
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
        text = response.text.strip().replace("\n", " ")[:200] or response.reason_phrase
        param = None
    return redact(text), param


_WHAT_TO_DO = {
    400: "the API refused the request's parameters; this is a bug in Stax or an API change, please report it",
    401: "the admin key was rejected (revoked, or not an admin key); reconnect with a valid admin key",
    403: "the key is not allowed to read usage; an organization owner must create the admin key",
    404: "the endpoint does not exist at this base URL; check STAX_OPENAI_BASE_URL",
    429: "the API kept rate limiting; run the sync again later",
}


class HttpError(ProviderError):
    """A final HTTP error status from the provider (after retries, if it was retryable)."""

    def __init__(self, *, endpoint: str, status: int, message: str, param: str | None):
        hint = _WHAT_TO_DO.get(status, "the API is failing; run the sync again later")
        super().__init__(
            f"GET {endpoint} failed with HTTP {status}: {message} ({hint})",
            status=status,
            endpoint=endpoint,
        )
        self.api_message = message
        self.param = param

    @classmethod
    def from_response(cls, endpoint: str, response: httpx.Response) -> HttpError:
        message, param = error_details(response)
        return cls(endpoint=endpoint, status=response.status_code, message=message, param=param)


class ApiClient:
    """A small JSON-over-HTTPS GET client bound to one base URL and one bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "User-Agent": "stax-pipeline",
            },
            timeout=timeout_s,
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

    def get_json(self, path: str, params: QueryParams = ()) -> dict[str, Any]:
        """GET ``path`` and return the decoded JSON object, retrying what is worth retrying."""
        endpoint = "/" + path.lstrip("/")
        problem = ""
        for attempt in range(self.retry.max_attempts):
            retry_after: float | None = None
            try:
                self.requests_made += 1
                self.requests_by_path[endpoint] = self.requests_by_path.get(endpoint, 0) + 1
                started = time.perf_counter()
                try:
                    response = self._http.get(endpoint, params=list(params))
                finally:
                    waited = time.perf_counter() - started
                    self.seconds_by_path[endpoint] = self.seconds_by_path.get(endpoint, 0.0) + waited
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TransportError as exc:
                problem = f"could not connect to {self.base_url} ({type(exc).__name__})"
            else:
                status = response.status_code
                if status >= 400:
                    last_attempt = attempt == self.retry.max_attempts - 1
                    if status not in RETRYABLE_STATUSES or last_attempt:
                        raise HttpError.from_response(endpoint, response)
                    problem = f"HTTP {status}: {error_details(response)[0]}"
                    retry_after = _retry_after_seconds(response)
                else:
                    try:
                        body = json.loads(response.content)
                        if not isinstance(body, dict):
                            raise ValueError("not a JSON object")
                        return body
                    except ValueError:
                        problem = f"HTTP {status} with a body that is not valid JSON"
            if attempt < self.retry.max_attempts - 1:
                wait = self.retry.delay(attempt, retry_after)
                log.warning(
                    "GET %s: %s; retrying in %.1fs (attempt %d of %d)",
                    endpoint, problem, wait, attempt + 2, self.retry.max_attempts,
                )
                self._sleep(wait)
        raise ProviderError(
            f"GET {endpoint} failed after {self.retry.max_attempts} attempts: {problem}. "
            f"Check that {self.base_url} is reachable (STAX_OPENAI_BASE_URL) and run again later.",
            endpoint=endpoint,
        )


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff
