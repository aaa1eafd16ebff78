"""Thin tasks: take ids, re-read state, call ``controller.reactors.check``.

Retry policy is declared on each task: :class:`ControllerTask` turns
:class:`~controller.errors.RetryLater` into a retry after the error's delay (up to the task's
``max_retries``) and lets :class:`~controller.errors.GiveUp` fail the task at once. Every task is
idempotent, so each is acknowledged late and redelivered when its worker dies.

Each worker process builds its :class:`~controller.service.Context` once (after the fork) and
re-reads the model files when they change, so editing a model needs no restart.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from celery import Task

from controller.config import ENV_PREFIX
from controller.errors import GiveUp, RetryLater
from controller.reactors.check import CheckOutcome, run_check
from controller.reactors.context import Context
from controller.reactors.costs import check_spend
from controller.reactors.outbox import deliver_outbox
from controller.reactors.retrain import reclaim_retrains, run_retrain
from controller.reactors.schedule import due_checks, slot_key
from workers.app import app, redis_key
from workers.locks import model_lock
from workers.schedule import ModelsWatcher, models_folder, send_checks

log = logging.getLogger(__name__)

DELIVER_PENDING_KEY = "retrain:deliver:pending"
DELIVER_BUDGET_SECONDS = 50.0
STALE_QUEUED_RETRAIN = timedelta(minutes=10)


@dataclass
class _Process:
    pid: int
    ctx: Context
    watcher: ModelsWatcher
    redis: redis.Redis


_process: _Process | None = None


def process() -> _Process:
    """This worker process's context, built on first use and refreshed when model files change."""
    global _process
    if _process is None or _process.pid != os.getpid():
        ctx = Context.from_config(os.environ.get(f"{ENV_PREFIX}CONFIG"), migrate=False)
        _process = _Process(
            os.getpid(), ctx, ModelsWatcher(models_folder(ctx.service)), redis.Redis.from_url(ctx.service.broker_url)
        )
    elif _process.watcher.changed():
        _process.ctx.reload_models()
        log.info("model files changed: %d models", len(_process.ctx.models))
    return _process


class ControllerTask(Task):
    """Maps the controller's errors to Celery: RetryLater -> retry after its delay, GiveUp -> fail."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except RetryLater as exc:
            raise self.retry(exc=exc, countdown=exc.delay) from exc


REDONE_IF_WORKER_DIES: dict[str, Any] = {
    "base": ControllerTask,
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
}
"""Options of the tasks whose message goes back to the queue when their worker dies mid-task."""


def kick_delivery(client: redis.Redis) -> None:
    """Queue one outbox delivery unless one is already queued (many checks, one deliverer)."""
    if client.set(redis_key(DELIVER_PENDING_KEY), "1", nx=True, ex=30):
        deliver.delay()


def _recently_checked(
    ctx: Context, model: str, last: tuple[datetime, str, str | None] | None, request_key: str | None, now: datetime
) -> bool:
    """A scheduled check whose model was checked under another key within half its interval."""
    if last is None or last[1] != "done" or last[2] == request_key:
        return False
    interval = ctx.models[model].schedule.seconds or 60.0
    return (now - last[0]).total_seconds() < interval / 2


def _check_locked(p: _Process, model: str, request_key: str | None) -> CheckOutcome:
    """One check under the model's lock; its retrain queued on TRIGGER."""
    with model_lock(p.redis, model, p.ctx.service.check_lock_seconds):
        outcome = run_check(p.ctx, model, request_key)
    if outcome.retrain_id is not None:
        retrain.delay(outcome.retrain_id)
    return outcome


@app.task(name="retrain.check", max_retries=30, **REDONE_IF_WORKER_DIES)
def check(self: Task, model: str, request_key: str | None = None, scheduled: bool = False) -> dict[str, Any]:
    """Check one model under its lock; on TRIGGER queue the retrain it created."""
    p = process()
    ctx = p.ctx
    if model not in ctx.models:
        raise GiveUp(f"model {model!r} is not configured (any more)")
    if scheduled and _recently_checked(ctx, model, ctx.store.last_check(model), request_key, ctx.clock()):
        return {"model": model, "skipped": "checked recently"}
    outcome = _check_locked(p, model, request_key)
    if not outcome.skipped:
        kick_delivery(p.redis)
    return {
        "model": model,
        "check_id": outcome.check_id,
        "decision_id": outcome.decision_id,
        "decision": outcome.decision.action.value if outcome.decision else None,
        "retrain_id": outcome.retrain_id,
        "skipped": outcome.skipped,
    }


@app.task(name="retrain.check_batch", max_retries=0, **REDONE_IF_WORKER_DIES)
def check_batch(self: Task, checks: list[list[str]]) -> dict[str, Any]:
    """Scheduled checks of several models, ``[[model, request_key], ...]``, one after the other.

    Each model is checked as :func:`check` would: under its own lock and request key, so a batch
    delivered twice, or redone after its worker died, redoes only the checks that did not finish.
    A model whose lock is held is handed to :func:`check` (which retries it); a model whose check
    fails is logged and left to the next schedule slot, as a failed :func:`check` is; neither
    holds up the rest of the batch. The recent-check read is one query for the whole batch.
    """
    p = process()
    ctx = p.ctx
    now = ctx.clock()
    known = [(m, k) for m, k in checks if m in ctx.models]
    last = ctx.store.last_checks([m for m, _ in known])
    counts = {"checked": 0, "skipped": 0, "handed_off": 0, "failed": 0, "unknown": len(checks) - len(known)}
    for model, key in known:
        if _recently_checked(ctx, model, last.get(model), key, now):
            counts["skipped"] += 1
            continue
        try:
            outcome = _check_locked(p, model, key)
        except RetryLater as exc:
            check.apply_async((model,), {"request_key": key, "scheduled": True}, countdown=exc.delay)
            counts["handed_off"] += 1
            continue
        except Exception as exc:  # recorded on the check by run_check; the next slot checks again
            log.error("check of %s failed: %s", model, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            counts["failed"] += 1
            continue
        counts["skipped" if outcome.skipped else "checked"] += 1
    if counts["checked"]:
        kick_delivery(p.redis)
    return counts


@app.task(name="retrain.retrain", max_retries=10, **REDONE_IF_WORKER_DIES)
def retrain(self: Task, retrain_id: int) -> dict[str, Any]:
    """Run one retrain; a second delivery finds it claimed and does nothing."""
    p = process()
    outcome = run_retrain(p.ctx, retrain_id)
    kick_delivery(p.redis)
    return {
        "retrain_id": retrain_id,
        "state": outcome.state,
        "challenger_version": outcome.challenger_version,
        "skipped": outcome.skipped,
    }


@app.task(base=ControllerTask, bind=True, name="retrain.deliver", acks_late=True, max_retries=3)
def deliver(self: Task) -> dict[str, int]:
    """Drain the due outbox items for up to ``DELIVER_BUDGET_SECONDS``."""
    p = process()
    p.redis.delete(redis_key(DELIVER_PENDING_KEY))
    totals = {"delivered": 0, "failed": 0, "dead": 0, "suppressed": 0, "tags_written": 0}
    started = p.ctx.clock()
    while True:
        report = deliver_outbox(p.ctx)
        for k in totals:
            totals[k] += getattr(report, k)
        handled = report.delivered + report.failed + report.dead + report.suppressed
        if handled == 0:
            break
        if (p.ctx.clock() - started).total_seconds() > DELIVER_BUDGET_SECONDS:
            kick_delivery(p.redis)
            break
    return totals


@app.task(base=ControllerTask, bind=True, name="retrain.spend_check", acks_late=True, max_retries=3)
def spend_check(self: Task) -> dict[str, Any]:
    """The daily spend check: new anomalies are recorded once and their webhooks queued (idempotent)."""
    p = process()
    new = check_spend(p.ctx)
    if new:
        kick_delivery(p.redis)
    return {"new_anomalies": len(new)}


@app.task(base=ControllerTask, bind=True, name="retrain.tick", acks_late=True, max_retries=3)
def tick(self: Task) -> dict[str, Any]:
    """The level-triggered timer: check every due model and requeue retrains that were never sent."""
    p = process()
    ctx = p.ctx
    now = ctx.clock()
    due = due_checks(ctx, now)
    send_checks(app, [(name, slot_key(ctx.models[name], now)) for name in due], ctx.service.check_batch_size)
    reclaimed = reclaim_retrains(ctx, now)
    stale = reclaimed + [
        r.id for r in ctx.store.retrains(limit=200) if r.state == "queued" and now - r.updated_at > STALE_QUEUED_RETRAIN
    ]
    for retrain_id in stale:
        retrain.delay(retrain_id)
    kick_delivery(p.redis)
    return {"due": len(due), "requeued_retrains": len(stale)}
