"""Anthropic Admin API client: report pagination, workspace and API key listings, key check.

Everything HTTP goes through the shared :class:`~stax_pipeline.lib.http.ApiClient` (one client,
one retry policy); this module only says how Anthropic differs: the ``x-api-key`` and
``anthropic-version`` headers, its error body ``{"type": "error", "error": {"type", "message"}}``,
RFC 3339 bucket bounds, ``page``/``next_page`` report paging and ``after_id`` listing paging.
A 429 (``rate_limit_error``) waits its ``retry-after``; a 529 (``overloaded_error``) is a 5xx
and backs off like one — both by the shared policy, nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import httpx

from stax_pipeline.errors import ProviderError
from stax_pipeline.lib.http import ApiClient, ApiDialect, HttpError, RetryPolicy
from stax_pipeline.lib.redaction import redact
from stax_pipeline.sources.anthropic_admin.settings import (
    AMOUNT_USD_SCALE,
    API_KEYS_PATH,
    API_VERSION,
    BASE_URL_SETTING,
    BUCKET_WIDTH,
    COST_REPORT_PATH,
    LIST_MAX_LIMIT,
    LIST_MAX_PAGES,
    ORGANIZATION_PATH,
    WORKSPACES_PATH,
)

log = logging.getLogger(__name__)

CENTS_PER_DOLLAR = Decimal(100)


def anthropic_auth(token: str) -> dict[str, str]:
    """Anthropic's authentication: the key in ``x-api-key``, and the API version every request names."""
    return {"x-api-key": token, "anthropic-version": API_VERSION}


def anthropic_error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The provider's words from ``{"type": "error", "error": {"type": ..., "message": ...}}``:
    ``"<type>: <message>"`` (e.g. ``overloaded_error: Overloaded``); anything else falls back to
    the start of the body, or the status's reason for an HTML page. Anthropic names no parameter."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and (error.get("message") or error.get("type")):
        kind, message = error.get("type"), error.get("message")
        text = f"{kind}: {message}" if kind and message else str(message or kind)
    else:
        text = response.text.strip().replace("\n", " ")[:200]
        if not text or text.startswith("<"):
            text = response.reason_phrase
    return redact(text), None


ANTHROPIC_DIALECT = ApiDialect(
    auth_headers=anthropic_auth,
    error_details=anthropic_error_details,
    hints={
        400: "the API refused the request's parameters; this is a bug in Stax or an API change, please report it",
        401: "the key was rejected: it is not an admin key, or it was revoked; reconnect with a valid admin key",
        403: "the key lacks permission to read usage and cost; an organization admin must create the admin key",
        404: f"the endpoint does not exist at this base URL; check {BASE_URL_SETTING}",
        429: "the API kept rate limiting; run the sync again later",
    },
    base_url_setting=BASE_URL_SETTING,
)


def rfc3339_midnight(day: date) -> str:
    """00:00 UTC of ``day`` in RFC 3339, as the reports' ``starting_at``/``ending_at`` take it."""
    return f"{day.isoformat()}T00:00:00Z"


def parse_rfc3339(text: str) -> datetime:
    """A bucket bound (``2026-11-01T00:00:00Z``) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# Room for any dollar amount DECIMAL(38, 18) holds, so quantizing never runs out of digits.
_DOLLARS = Context(prec=40, rounding=ROUND_HALF_EVEN)
_DOLLARS_QUANTUM = Decimal(1).scaleb(-AMOUNT_USD_SCALE)


def cents_to_dollars(amount: Any) -> Decimal | None:
    """A cost report ``amount`` (a decimal string in cents: ``"123.45"`` = $1.2345) in dollars,
    exactly: Decimal arithmetic, never a float, to the landed column's 1e-18 dollars (an API
    amount finer than that is rounded half-even). None stays None; anything that is not a finite
    decimal number fails the load rather than landing a wrong dollar figure."""
    if amount is None:
        return None
    try:
        cents = Decimal(str(amount).strip())
    except InvalidOperation:
        cents = Decimal("NaN")
    if not cents.is_finite() or cents.adjusted() > 37 - AMOUNT_USD_SCALE:
        raise ProviderError(
            f"GET {COST_REPORT_PATH} returned an amount that is not a decimal number of cents "
            f"({str(amount)[:40]!r}); nothing of this sync was stored. Run the sync again later; "
            "if it persists, report it.",
            endpoint=COST_REPORT_PATH,
        )
    return _DOLLARS.divide(cents, CENTS_PER_DOLLAR).quantize(_DOLLARS_QUANTUM, context=_DOLLARS)


class AnthropicAdminClient:
    """Reads the organization endpoints of the Anthropic Admin API with one :class:`ApiClient`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        expect_simulator: bool | None = None,
    ):
        self.api = ApiClient(
            base_url, api_key, retry=retry, expect_simulator=expect_simulator, dialect=ANTHROPIC_DIALECT
        )

    def __repr__(self) -> str:
        return f"AnthropicAdminClient({self.api.base_url!r})"

    def close(self) -> None:
        self.api.close()

    def iter_buckets(
        self,
        path: str,
        *,
        start: date,
        end: date,
        limit: int,
        group_by: Sequence[str] = (),
        extra: Sequence[tuple[str, str]] = (),
    ) -> Iterator[dict[str, Any]]:
        """Yield every 1d bucket of a report for UTC days [start, end), following ``next_page``.

        Every page request resends the original parameters plus ``page``. A token handed out
        twice, or paging past the window's days, fails instead of looping forever
        (:meth:`ApiClient.iter_day_buckets`).

        ``ending_at`` is documented as "buckets that end before" it: read as "at or before", the
        window's last bucket (which ends exactly at ``end``) is in the answer; read strictly, it
        is not. So when the last day has closed and no bucket of it came back, it is asked for
        alone (``ending_at`` a day later, and only that day kept): the day is never committed as
        empty merely because of how a server reads the bound.
        """
        last_day = end - timedelta(days=1)
        seen_last_day = False
        for bucket in self._iter_pages(
            path, start=start, end=end, limit=limit, group_by=group_by, extra=extra
        ):
            seen_last_day = seen_last_day or bucket_day(bucket["starting_at"]) == last_day
            yield bucket
        if seen_last_day or end > datetime.now(UTC).date():
            return
        log.info("%s: no bucket for %s with ending_at=%s; asking for that day alone", path, last_day, end)
        for bucket in self._iter_pages(
            path, start=last_day, end=end + timedelta(days=1), limit=limit, group_by=group_by, extra=extra
        ):
            if bucket_day(bucket["starting_at"]) == last_day:
                yield bucket

    def _iter_pages(
        self,
        path: str,
        *,
        start: date,
        end: date,
        limit: int,
        group_by: Sequence[str],
        extra: Sequence[tuple[str, str]],
    ) -> Iterator[dict[str, Any]]:
        """The buckets of every page of one report query for [start, end)."""
        params: list[tuple[str, str]] = [
            ("starting_at", rfc3339_midnight(start)),
            ("ending_at", rfc3339_midnight(end)),
            ("bucket_width", BUCKET_WIDTH),
            ("limit", str(limit)),
            *(("group_by[]", dim) for dim in group_by),
            *extra,
        ]
        yield from self.api.iter_day_buckets(path, params, start=start, end=end)

    def iter_workspaces(self) -> Iterator[dict[str, Any]]:
        """Every workspace, archived ones and the default one included."""
        yield from self._iter_list(
            WORKSPACES_PATH, [("include_archived", "true"), ("include_default", "true")], "workspaces"
        )

    def iter_api_keys(self) -> Iterator[dict[str, Any]]:
        """Every API key of the organization, whatever its status."""
        yield from self._iter_list(API_KEYS_PATH, [], "API keys")

    def _iter_list(self, path: str, params: list[tuple[str, str]], what: str) -> Iterator[dict[str, Any]]:
        """Every object of a cursor listing (:meth:`ApiClient.iter_list`, ``after_id`` cursors)."""
        return self.api.iter_list(
            path, params, cursor_param="after_id", limit=LIST_MAX_LIMIT, max_pages=LIST_MAX_PAGES, what=what
        )

    def organization_id(self) -> str | None:
        """The id of the organization behind the key (``GET /organizations/me``), or None when
        the API does not say (an older API without the endpoint, or any failure: the id only
        guards against connecting one organization twice, it never blocks a valid key)."""
        try:
            me = self.api.get_json(ORGANIZATION_PATH)
        except ProviderError as exc:  # HttpError included
            log.info("%s did not name the organization: %s", ORGANIZATION_PATH, exc)
            return None
        organization = me.get("id")
        return organization if isinstance(organization, str) and organization else None

    def check_admin_key(self) -> None:
        """One cheap request only an admin key can make: yesterday's cost report, ungrouped (one
        bucket, one small result at most). The report names no organization, so neither does
        this. Raises :class:`HttpError` (401, 403, …) or :class:`ProviderError` (unreachable)."""
        today = datetime.now(UTC).date()
        self.api.get_json(
            COST_REPORT_PATH,
            [
                ("starting_at", rfc3339_midnight(today - timedelta(days=1))),
                ("ending_at", rfc3339_midnight(today)),
                ("bucket_width", BUCKET_WIDTH),
                ("limit", "1"),
            ],
        )


def unix_seconds(bound: str) -> int:
    """Unix seconds of an RFC 3339 bucket bound."""
    return int(parse_rfc3339(bound).timestamp())


def bucket_day(starting_at: str) -> date:
    """The UTC day a bucket belongs to (the day of its start)."""
    return parse_rfc3339(starting_at).date()


__all__ = [
    "ANTHROPIC_DIALECT",
    "AnthropicAdminClient",
    "HttpError",
    "bucket_day",
    "cents_to_dollars",
    "rfc3339_midnight",
    "unix_seconds",
]
