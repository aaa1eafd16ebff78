"""When checks are due: each model's schedule and a DEFER's ``retry_after``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from controller.config import (
    ModelConfig,
)
from controller.reactors.context import Context


# schedules
def cron_matches(expr: str, when: datetime) -> bool:
    """Whether a 5-field cron expression fires at the minute of ``when``.

    >>> cron_matches("*/15 9-17 * * 1-5", datetime(2026, 11, 27, 9, 30))
    True
    >>> cron_matches("0 0 1 * *", datetime(2026, 11, 27, 0, 0))
    False
    """
    minute, hour, dom, month, dow = expr.split()
    return (
        _field(minute, when.minute, 0, 59)
        and _field(hour, when.hour, 0, 23)
        and _field(dom, when.day, 1, 31)
        and _field(month, when.month, 1, 12)
        and _field(dow, (when.isoweekday() % 7), 0, 6)
    )


def _field(spec: str, value: int, lo: int, hi: int) -> bool:
    for part in spec.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if rng == "*":
            start, end = lo, hi
        elif "-" in rng:
            a, b = rng.split("-")
            start, end = int(a), int(b)
        else:
            start = end = int(rng)
            if step_s:
                end = hi
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


def next_due(cfg: ModelConfig, last: datetime | None, now: datetime) -> datetime:
    """When the model's next check is due, given its last check."""
    if last is None:
        return now
    every = cfg.schedule.seconds
    if every is not None:
        return last + timedelta(seconds=every)
    t = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(60 * 24 * 31):
        if cron_matches(cfg.schedule.cron or "* * * * *", t):
            return t
        t += timedelta(minutes=1)
    return t


def due_checks(ctx: Context, now: datetime | None = None) -> list[str]:
    """Models whose schedule says a check is due now (a DEFER's retry_after counts too)."""
    now = now or ctx.clock()
    names = sorted(ctx.models)
    latest = ctx.store.latest_decisions(names)
    last_checked = ctx.store.last_check_times(names)
    due = []
    for name in names:
        cfg = ctx.models[name]
        last_at = last_checked.get(name)
        when = next_due(cfg, last_at, now)
        d = latest.get(name)
        if d is not None and d.retry_after is not None:
            when = min(when, d.retry_after)
        if when <= now:
            due.append(name)
    return due
