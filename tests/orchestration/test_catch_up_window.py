"""The catch-up window: a plain sync (and the nightly run) starts at the first day a connection
is missing, so missed nights are filled. The rules are checked with an injected `today`; the
data check is a real CLI run against the simulator in tests/cli/test_catch_up.py."""

from __future__ import annotations

from datetime import date, timedelta

from stax_pipeline.lib.window import SyncWindow, backfill_window, catch_up_window, nightly_window
from tests.conftest import TODAY

YESTERDAY = TODAY - timedelta(days=1)


def days(first: date, last: date) -> list[date]:
    return SyncWindow.inclusive(first, last).days()


def test_a_connection_that_never_synced_gets_its_first_30_days():
    window = catch_up_window(TODAY, [], lookback_days=3)
    assert window == backfill_window(TODAY)
    assert (window.start, window.last, window.num_days) == (TODAY - timedelta(days=30), YESTERDAY, 30)
    # Having synced only today (still open) is no history either.
    assert catch_up_window(TODAY, [TODAY], lookback_days=3) == backfill_window(TODAY)


def test_a_twelve_day_hole_is_one_window_up_to_yesterday():
    today = date(2026, 11, 2)  # synced 2026-10-01..10-20, then 12 nights missed
    window = catch_up_window(today, days(date(2026, 10, 1), date(2026, 10, 20)), lookback_days=3)
    assert (window.start, window.last) == (date(2026, 10, 21), date(2026, 11, 1))


def test_the_lookback_wins_when_it_starts_earlier():
    up_to_date = days(TODAY - timedelta(days=40), YESTERDAY)
    assert catch_up_window(TODAY, up_to_date, lookback_days=3) == nightly_window(TODAY, 3)
    # Last synced day the day before yesterday: the day after it is later than the lookback start.
    one_night_missed = days(TODAY - timedelta(days=40), TODAY - timedelta(days=2))
    window = catch_up_window(TODAY, one_night_missed, lookback_days=3)
    assert (window.start, window.last) == (TODAY - timedelta(days=4), YESTERDAY)
    # Without a lookback, only what is missing (and always yesterday).
    assert catch_up_window(TODAY, one_night_missed, lookback_days=0) == SyncWindow(YESTERDAY, TODAY)
    assert catch_up_window(TODAY, up_to_date, lookback_days=0) == SyncWindow(YESTERDAY, TODAY)


def test_a_hole_inside_the_history_is_the_earliest_missing_day():
    synced = days(date(2026, 10, 1), date(2026, 10, 5)) + days(date(2026, 10, 10), YESTERDAY)
    window = catch_up_window(TODAY, synced, lookback_days=3)
    assert (window.start, window.last) == (date(2026, 10, 6), YESTERDAY)
