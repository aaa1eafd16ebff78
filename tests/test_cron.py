"""The one cron engine: parsing, validation, and when an expression fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.cron import Cron, CronError

MONDAY = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def test_fields_match_as_written() -> None:
    assert Cron.parse("30 9 * * 1").matches(MONDAY)
    assert not Cron.parse("30 9 * * 2").matches(MONDAY)
    assert Cron.parse("*/10 8-10 * * *").matches(MONDAY)
    assert not Cron.parse("*/7 * * * *").matches(MONDAY.replace(minute=31))
    assert Cron.parse("30 9 * jan mon").matches(MONDAY) and Cron.parse("30 9 * * 7").matches(MONDAY - timedelta(days=1))


def test_both_day_fields_restricted_means_either_as_in_standard_cron() -> None:
    c = Cron.parse("0 0 1 * mon")
    assert c.matches(datetime(2026, 1, 5, tzinfo=UTC))  # a Monday, not the 1st
    assert c.matches(datetime(2026, 1, 1, tzinfo=UTC))  # the 1st, a Thursday
    assert not c.matches(datetime(2026, 1, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("99 * * * *", "minute: 99 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("* * 0 * *", "day of month: 0 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * * 8", "day of week: 8 is out of range 0-7"),
        ("*/0 * * * *", "minute: step '0' must be a positive whole number"),
        ("5-1 * * * *", "minute: range 5-1 runs backwards"),
        ("x * * * *", "minute: 'x' is not a number"),
        ("* * * *", "5 fields"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_a_bad_expression_is_one_line_naming_the_field(expr: str, field: str) -> None:
    with pytest.raises(CronError, match=field.replace("*", r"\*")):
        Cron.parse(expr)


EXPRS = ["*/15 9-17 * * 1-5", "0 0 1 * *", "30 2 * * sun", "5,35 */3 10-20 * *", "0 12 29 2 *", "0 6 * * 6,0"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(EXPRS), st.integers(0, 60 * 24 * 400))
def test_next_and_previous_firings_agree_with_a_minute_by_minute_scan(expr: str, offset: int) -> None:
    cron = Cron.parse(expr)
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=offset)
    nxt, prev = cron.next_after(t), cron.previous(t)
    assert nxt is not None and prev is not None
    assert nxt > t and cron.matches(nxt) and prev <= t and cron.matches(prev)
    # nothing fires in between (scan at most two days each side; longer gaps are checked by the day)
    step = timedelta(minutes=1)
    probe = t + step
    while probe < min(nxt, t + timedelta(days=2)):
        assert not cron.matches(probe)
        probe += step
    probe = t
    while probe > max(prev, t - timedelta(days=2)):
        assert not cron.matches(probe)
        probe -= step
