"""Five-field cron expressions: parsed and validated once, then asked when they fire.

The one cron engine of the service: the schedule of due checks, the beat entries and the
validation of model files all use :class:`Cron`. Fields are minute (0-59), hour (0-23), day of
month (1-31), month (1-12 or ``jan``-``dec``) and day of week (0-7 or ``sun``-``sat``; 0 and 7
are Sunday), each ``*``, a value, a range ``a-b``, a step ``*/s``, ``a-b/s`` or ``a/s``, or a
comma-separated list of these. As in standard cron, when both day fields are restricted a day
matches either. Times are read in UTC, to the minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_NAMES = {
    3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_SEARCH_DAYS = 366 * 8  # "0 0 29 2 1" (a Monday 29 February) can be years away; longer means never
_MINUTE = timedelta(minutes=1)


class CronError(ValueError):
    """A cron expression that cannot fire as written; the message names the field."""


def _value(text: str, index: int, lo: int) -> int:
    names = _NAMES.get(index)
    if names and text.lower() in names:
        return names.index(text.lower()) + lo
    if not text.isdigit():
        raise CronError(f"{_FIELDS[index][0]}: {text!r} is not a number")
    return int(text)


def _field(spec: str, index: int) -> frozenset[int]:
    name, lo, hi = _FIELDS[index]
    out: set[int] = set()
    for part in spec.split(","):
        rng, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: step {step_text!r} must be a positive whole number")
            step = int(step_text)
        if rng == "*":
            start, end = lo, hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, index, lo), _value(b, index, lo)
        else:
            start = _value(rng, index, lo)
            end = hi if slash else start
        for v in (start, end):
            if not lo <= v <= hi:
                raise CronError(f"{name}: {v} is out of range {lo}-{hi}")
        if start > end:
            raise CronError(f"{name}: range {start}-{end} runs backwards")
        out.update(range(start, end + 1, step))
    if index == 4 and 7 in out:  # Sunday is 0 and 7
        out = (out - {7}) | {0}
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression (see the module docstring).

    >>> c = Cron.parse("*/15 9-17 * * mon-fri")
    >>> c.matches(datetime(2026, 11, 27, 9, 30, tzinfo=UTC)), c.matches(datetime(2026, 11, 28, 9, 30, tzinfo=UTC))
    (True, False)
    >>> c.next_after(datetime(2026, 11, 27, 17, 50, tzinfo=UTC)).isoformat()
    '2026-11-30T09:00:00+00:00'
    >>> Cron.parse("0 0 1 * *").previous(datetime(2026, 11, 27, 12, 0, tzinfo=UTC)).isoformat()
    '2026-11-01T00:00:00+00:00'
    >>> Cron.parse("99 * * * *")
    Traceback (most recent call last):
    ...
    controller.core.cron.CronError: minute: 99 is out of range 0-59
    """

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> Cron:
        parts = expr.split()
        if len(parts) != 5:
            raise CronError(f"a cron expression has 5 fields (minute hour day month weekday), got {len(parts)}")
        minutes, hours, days, months, weekdays = (_field(p, i) for i, p in enumerate(parts))
        cron = cls(expr, minutes, hours, days, months, weekdays, parts[2] == "*", parts[4] == "*")
        if cron.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise CronError(f"{expr!r} never fires (no such day)")
        return cron

    def day_matches(self, when: datetime) -> bool:
        if when.month not in self.months:
            return False
        dom = when.day in self.days
        dow = (when.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def matches(self, when: datetime) -> bool:
        """Whether the expression fires at the minute of ``when`` (UTC)."""
        when = when.astimezone(UTC) if when.tzinfo else when
        return when.minute in self.minutes and when.hour in self.hours and self.day_matches(when)

    def next_after(self, when: datetime) -> datetime | None:
        """The first firing strictly after ``when``; ``None`` if it never fires again."""
        t = _utc(when).replace(second=0, microsecond=0) + _MINUTE
        day = t.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        fire = day.replace(hour=h, minute=m)
                        if fire >= t:
                            return fire
            day += timedelta(days=1)
        return None

    def previous(self, when: datetime) -> datetime | None:
        """The last firing at or before ``when``; ``None`` if there was none in the searched years."""
        t = _utc(when).replace(second=0, microsecond=0)
        day = t.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                for h in sorted(self.hours, reverse=True):
                    for m in sorted(self.minutes, reverse=True):
                        fire = day.replace(hour=h, minute=m)
                        if fire <= t:
                            return fire
            day -= timedelta(days=1)
        return None


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
