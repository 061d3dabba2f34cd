"""What outlasts the HTTP client's retries: Dagster runs the ingest step again, later.

The HTTP client (``stax_pipeline/lib/http.py``) rides out rate limits and outages of up to
``STAX_HTTP_MAX_RETRY_SECONDS`` per request and ``STAX_HTTP_RUN_RETRY_SECONDS`` per run. A longer
outage fails the request with a :class:`ProviderError` marked ``retryable``; the ingest step then
asks Dagster to retry it after a pause (:func:`step_retry_policy`: twice, after about one and then
three per-request limits, jittered). Everything a retry cannot fix — a rejected key, a redirect, a
paginator that never ends, a busy warehouse, Ctrl-C — fails the step at once.

A retried step re-pulls its whole window cleanly: the source keeps no cursor, every attempt loads
under a new ``sync_id``, and the rows of a failed attempt never got their ``sync_windows`` commit
marker, so staging never reads them.

Why not ``RetryPolicy`` on the asset: a retry policy retries every exception (a revoked key three
times, minutes apart) and turns an interrupt into a retry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from dagster import Backoff, Jitter, RetryPolicy, RetryRequested

from stax_pipeline.errors import ProviderError
from stax_pipeline.lib.http import run_retry_budget
from stax_pipeline.settings import load_http_retry_settings

STEP_MAX_RETRIES = 2


def step_retry_policy() -> RetryPolicy:
    """How often and after how long Dagster retries an ingest step that an outage outlasted.

    The pause is based on the per-request limit: an outage that outlasted one request's retries
    is given as long again before the step re-pulls (read at call time, so tests can shrink it).
    """
    return RetryPolicy(
        max_retries=STEP_MAX_RETRIES,
        delay=load_http_retry_settings().max_retry_s,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )


def retry_step_after_outages(compute_fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Wrap an ingest asset's compute function: one run retry budget per attempt, and a Dagster
    retry (``RetryRequested``) when a retryable provider error ends the attempt."""

    @functools.wraps(compute_fn)
    def attempt(context, *args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            with run_retry_budget():
                yield from compute_fn(context, *args, **kwargs)
        except Exception as exc:
            cause = retryable_provider_error(exc)
            if cause is None:
                raise
            policy = step_retry_policy()
            wait_s = policy.calculate_delay(context.retry_number + 1)
            if context.retry_number < policy.max_retries:
                context.log.warning(f"{cause} — Dagster retries the step in {wait_s:.0f}s")
            raise RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait_s) from cause

    return attempt


def retryable_provider_error(exc: BaseException) -> ProviderError | None:
    """The retryable :class:`ProviderError` behind ``exc`` (dlt wraps what a resource raised)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        error = todo.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ProviderError):
            return error if error.retryable else None
        todo += [error.__cause__, error.__context__, getattr(error, "exception", None)]
    return None
