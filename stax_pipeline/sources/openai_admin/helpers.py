"""OpenAI Admin API client: bucket pagination, project and API key listings, key validation."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from stax_pipeline.lib.http import ApiClient, HttpError, RetryPolicy
from stax_pipeline.sources.openai_admin.settings import (
    COSTS_PATH,
    LIST_MAX_LIMIT,
    LIST_MAX_PAGES,
    PROJECTS_PATH,
    project_api_keys_path,
)

log = logging.getLogger(__name__)


def unix_midnight(day: date) -> int:
    """Unix seconds of 00:00 UTC on ``day``."""
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def bucket_day(start_time: int) -> date:
    """The UTC day a bucket belongs to (the day of its start)."""
    return datetime.fromtimestamp(start_time, tz=UTC).date()


# How far back the key check looks for a day with spend, whose results name the organization.
ORGANIZATION_LOOKUP_DAYS = 30


class OpenAIAdminClient:
    """Reads the organization endpoints of the OpenAI Admin API with one :class:`ApiClient`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        expect_simulator: bool | None = None,
    ):
        self.api = ApiClient(base_url, api_key, retry=retry, expect_simulator=expect_simulator)

    def __repr__(self) -> str:
        return f"OpenAIAdminClient({self.api.base_url!r})"

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
        """Yield every 1d bucket of ``path`` for UTC days [start, end), following ``next_page``.

        Paging is the shared :meth:`ApiClient.iter_day_buckets` (every parameter resent, bounded,
        a repeated cursor fails).
        """
        params: list[tuple[str, str]] = [
            ("start_time", str(unix_midnight(start))),
            ("end_time", str(unix_midnight(end))),
            ("bucket_width", "1d"),
            ("limit", str(limit)),
            *(("group_by", dim) for dim in group_by),  # repeated keys: OpenAPI's form/explode
            *extra,
        ]
        yield from self.api.iter_day_buckets(path, params, start=start, end=end)

    def iter_projects(self) -> Iterator[dict[str, Any]]:
        """Yield every project, archived ones included."""
        yield from self._iter_list(PROJECTS_PATH, [("include_archived", "true")], "projects")

    def iter_project_api_keys(self, project_id: str) -> Iterator[dict[str, Any]]:
        """Yield every API key of one project (``GET /organization/projects/{id}/api_keys``)."""
        yield from self._iter_list(project_api_keys_path(project_id), [], "API keys")

    def _iter_list(self, path: str, params: list[tuple[str, str]], what: str) -> Iterator[dict[str, Any]]:
        """Every object of a cursor listing (:meth:`ApiClient.iter_list`, ``after`` cursors)."""
        return self.api.iter_list(
            path, params, cursor_param="after", limit=LIST_MAX_LIMIT, max_pages=LIST_MAX_PAGES, what=what
        )

    def check_admin_key(self) -> str | None:
        """One cheap request that an admin key with usage read access can make; returns the id
        of the organization behind the key, or None when the API did not say.

        No documented endpoint names the key's organization, but costs results carry an
        (undocumented) ``organization_id``. A result exists only for a day with spend, so the
        request covers the last :data:`ORGANIZATION_LOOKUP_DAYS` days, ungrouped: at most one
        small result a day, one page.

        Raises :class:`HttpError` (status 401/403/…) or :class:`ProviderError` (unreachable).
        """
        today = datetime.now(UTC).date()
        page = self.api.get_json(
            COSTS_PATH,
            [
                ("start_time", str(unix_midnight(today - timedelta(days=ORGANIZATION_LOOKUP_DAYS)))),
                ("limit", str(ORGANIZATION_LOOKUP_DAYS + 1)),  # the days and today's partial one
            ],
        )
        return organization_of(page)


def organization_of(page: dict[str, Any]) -> str | None:
    """The ``organization_id`` the costs results of ``page`` carry (the latest bucket's first)."""
    for bucket in reversed(page.get("data") or []):
        for result in bucket.get("results") or []:
            organization = result.get("organization_id")
            if isinstance(organization, str) and organization:
                return organization
    return None


__all__ = ["HttpError", "OpenAIAdminClient", "bucket_day", "unix_midnight"]
