"""When checks are due: each model's schedule, a DEFER's ``retry_after``, and the slot a check fills.

A schedule is ``every`` (a fixed period, slots aligned to the epoch) or a cron expression (slots
are its firing times, read by :class:`controller.core.cron.Cron`, the one cron engine of the
service: Celery beat uses it too). A scheduled check carries its slot as its request key, so a
duplicated or redelivered message for one slot is one check.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.config import ModelConfig
from controller.reactors.context import Context


def slot_start(cfg: ModelConfig, when: datetime) -> datetime:
    """The start of the schedule slot ``when`` falls in (the last firing at or before it)."""
    cron = cfg.schedule.cron_expr
    if cron is not None:
        return cron.previous(when) or when.replace(second=0, microsecond=0)
    ts = when.astimezone(UTC).timestamp()
    seconds = cfg.schedule.seconds or 3600.0
    return datetime.fromtimestamp(ts - ts % seconds, UTC)


def slot_key(cfg: ModelConfig, when: datetime) -> str:
    """A request key naming the schedule slot ``when`` falls in.

    >>> m = ModelConfig.model_validate({"name": "churn", "registered_model": "churn",
    ...     "data": {"source": {"kind": "files", "path": "x.parquet"}}, "schedule": {"every": "1h"}})
    >>> slot_key(m, datetime(2026, 11, 28, 10, 59, tzinfo=UTC)), slot_key(m, datetime(2026, 11, 28, 11, 1, tzinfo=UTC))
    ('sched:churn:2026-11-28T10:00', 'sched:churn:2026-11-28T11:00')
    """
    return f"sched:{cfg.name}:{slot_start(cfg, when).strftime('%Y-%m-%dT%H:%M')}"


def next_due(cfg: ModelConfig, last: datetime | None, now: datetime) -> datetime:
    """When the model's next check is due, given its last check."""
    if last is None:
        return now
    cron = cfg.schedule.cron_expr
    if cron is None:
        return last + timedelta(seconds=cfg.schedule.seconds or 3600.0)
    return cron.next_after(last) or datetime.max.replace(tzinfo=UTC)


def due_checks(ctx: Context, now: datetime | None = None) -> list[str]:
    """Models whose schedule says a check is due now (a DEFER's retry_after counts too)."""
    now = now or ctx.clock()
    names = sorted(ctx.models)
    latest = ctx.store.latest_decisions(names)
    last_checked = ctx.store.last_check_times(names)
    due = []
    for name in names:
        cfg = ctx.models[name]
        when = next_due(cfg, last_checked.get(name), now)
        d = latest.get(name)
        if d is not None and d.retry_after is not None:
            when = min(when, d.retry_after)
        if when <= now:
            due.append(name)
    return due
