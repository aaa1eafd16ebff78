"""Beat schedules built from the model files, reloaded when the files change, one beat only.

Each model's ``schedule`` (``every`` or 5-field ``cron``) becomes a beat entry ``check:<model>``
that sends ``retrain.check`` with a request key naming the schedule slot, so a duplicated or
redelivered message is one check. Two service entries run beside them: ``retrain.tick`` (the
level-triggered timer: every due model is checked even if a beat entry was missed, for instance
while beat was down; it fires once at start) and ``retrain.deliver`` (drains the outbox).

:class:`ConfigScheduler` re-reads the models directory when a file in it changes (checked every
few seconds by modification time), so adding, editing or removing a model file needs no restart.
Several beats may run for availability: only the holder of a Redis lock sends anything; the others
wait and take over within the lock's expiry when the holder stops.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import BaseSchedule, schedstate, schedule

from controller.config import ModelConfig, ServiceConfig, config_dir, load_models
from controller.core.cron import Cron
from controller.errors import ConfigError
from controller.reactors.schedule import slot_key
from workers.app import CHECKS, NOTIFY, service_settings
from workers.locks import RedisLock

log = logging.getLogger(__name__)

CHECK_PREFIX = "check:"
TICK_ENTRY, DELIVER_ENTRY, SPEND_ENTRY = "retrain-tick", "retrain-deliver", "retrain-spend-check"
BEAT_LOCK = "beat"
LOCK_TTL_SECONDS = 30.0
RELOAD_EVERY_SECONDS = 5.0


def send_checks(app: Celery, checks: list[tuple[str, str]], batch_size: int, producer: Any = None) -> int:
    """Send scheduled checks ``(model, request_key)``, ``batch_size`` to a ``retrain.check_batch``
    task (one ``retrain.check`` each when it is 1); returns the number of tasks sent."""
    options = {"queue": CHECKS, "producer": producer}
    if batch_size <= 1:
        for model, key in checks:
            app.send_task("retrain.check", args=(model,), kwargs={"request_key": key, "scheduled": True}, **options)
        return len(checks)
    batches = [checks[i : i + batch_size] for i in range(0, len(checks), batch_size)]
    for batch in batches:
        app.send_task("retrain.check_batch", args=([list(c) for c in batch],), **options)
    return len(batches)


class CronSchedule(BaseSchedule):
    """A Celery beat schedule on :class:`controller.core.cron.Cron`, the service's one cron engine."""

    def __init__(self, cron: Cron, app: Celery | None = None) -> None:
        super().__init__(app=app)
        self.cron = cron

    def _next(self, last_run_at: datetime) -> datetime:
        return self.cron.next_after(last_run_at) or datetime.max.replace(tzinfo=UTC)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return max(self._next(last_run_at) - datetime.now(UTC), timedelta(0))

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = datetime.now(UTC)
        fire = self._next(last_run_at)
        if fire <= now:
            upcoming = self.cron.next_after(now) or datetime.max.replace(tzinfo=UTC)
            return schedstate(True, (upcoming - now).total_seconds())
        return schedstate(False, (fire - now).total_seconds())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronSchedule) and other.cron.expr == self.cron.expr

    def __hash__(self) -> int:
        return hash(self.cron.expr)

    def __reduce__(self) -> tuple[type[CronSchedule], tuple[Cron]]:
        return (self.__class__, (self.cron,))

    def __repr__(self) -> str:
        return f"<cron: {self.cron.expr}>"


def beat_schedule_of(cfg: ModelConfig) -> BaseSchedule:
    cron = cfg.schedule.cron_expr
    if cron is not None:
        return CronSchedule(cron)
    return schedule(timedelta(seconds=cfg.schedule.seconds or 3600.0))


def model_entries(models: dict[str, ModelConfig]) -> dict[str, dict[str, Any]]:
    """One beat entry per model, in Celery's ``beat_schedule`` format."""
    return {
        CHECK_PREFIX + name: {
            "task": "retrain.check",
            "schedule": beat_schedule_of(cfg),
            "args": (name,),
            "kwargs": {"scheduled": True},
            "options": {"queue": CHECKS},
        }
        for name, cfg in models.items()
    }


def service_entries(
    tick_seconds: float, deliver_seconds: float, spend_cron: str | None = None
) -> dict[str, dict[str, Any]]:
    """The timer, the outbox drain and, with ``spend_cron`` (``costs.check_cron``), the daily spend check."""
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    spend = (
        {
            SPEND_ENTRY: {
                "task": "retrain.spend_check",
                "schedule": CronSchedule(Cron.parse(spend_cron)),
                "options": {"queue": CHECKS},
            }
        }
        if spend_cron
        else {}
    )
    return spend | {
        TICK_ENTRY: {
            "task": "retrain.tick",
            "schedule": schedule(timedelta(seconds=tick_seconds)),
            "options": {"queue": CHECKS, "expires": tick_seconds},
            "last_run_at": long_ago,
        },
        DELIVER_ENTRY: {
            "task": "retrain.deliver",
            "schedule": schedule(timedelta(seconds=deliver_seconds)),
            "options": {"queue": NOTIFY, "expires": deliver_seconds},
        },
    }


class ModelsWatcher:
    """Notices changes to the model files by their names, sizes and modification times."""

    def __init__(self, folder: Path, every_seconds: float = RELOAD_EVERY_SECONDS) -> None:
        self.folder = folder
        self.every_seconds = every_seconds
        self._seen = self.signature()
        self._checked = time.monotonic()

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        try:
            files = sorted(self.folder.glob("*.y*ml"))
            return tuple((f.name, (st := f.stat()).st_mtime_ns, st.st_size) for f in files)
        except FileNotFoundError:
            return ()

    def changed(self, force: bool = False) -> bool:
        """True once after a change; looks at the disk at most every ``every_seconds``."""
        if not force and time.monotonic() - self._checked < self.every_seconds:
            return False
        self._checked = time.monotonic()
        now = self.signature()
        if now == self._seen:
            return False
        self._seen = now
        return True


def models_folder(service: ServiceConfig) -> Path:
    return config_dir(service) / service.models_dir


class ConfigScheduler(Scheduler):
    """Celery beat scheduler whose entries come from the model files (see the module docstring)."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        self.service = service_settings()
        self.watcher = ModelsWatcher(models_folder(self.service))
        self.models: dict[str, ModelConfig] = {}
        self.lock_seconds = float(app.conf.get("retrain_beat_lock_seconds") or LOCK_TTL_SECONDS)
        self.lock = RedisLock(redis.Redis.from_url(self.service.broker_url), BEAT_LOCK, self.lock_seconds)
        self.tick_seconds = float(app.conf.get("retrain_tick_seconds") or 60.0)
        self.deliver_seconds = float(app.conf.get("retrain_deliver_seconds") or 10.0)
        self.leader: bool | None = None  # unknown until the first tick
        self.pending: list[tuple[str, str]] = []  # due model entries, sent together (check_batch_size)
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        self.models = load_models(self.service)
        self.merge_inplace({
            **model_entries(self.models),
            **service_entries(self.tick_seconds, self.deliver_seconds, self.service.costs.check_cron),
        })
        log.info("beat: %d model entries", len(self.models))

    def reload(self) -> None:
        """Rebuild the entries from the model files; a bad file keeps the old entries."""
        try:
            self.setup_schedule()
        except ConfigError as exc:
            log.error("beat: model files not reloaded, keeping the previous schedule: %s", exc)
            return
        self._heap = None  # entries were updated in place; rebuild the heap from them

    def tick(self, *args: Any, **kwargs: Any) -> float:
        holds = self.lock.hold()
        if holds != self.leader:
            log.info("beat: %s", "this beat is active" if holds else "another beat is active; standing by")
            self.leader = holds
        if not holds:
            self.pending.clear()  # the active beat sends them
            return self.lock_seconds / 3
        if self.watcher.changed():
            self.reload()
        delay: float = super().tick(*args, **kwargs)
        if delay > 0 or len(self.pending) >= self.service.check_batch_size:
            self.flush_checks()  # nothing else is due now, or a batch is full
        return min(delay, self.lock_seconds / 3)

    def flush_checks(self) -> None:
        if self.pending:
            checks, self.pending = self.pending, []
            send_checks(self.app, checks, self.service.check_batch_size, producer=self.producer)

    def apply_async(self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.name.startswith(CHECK_PREFIX):
            cfg = self.models.get(entry.name.removeprefix(CHECK_PREFIX))
            if cfg is not None:
                # Held until the entries due now are all seen, then sent in batches (see tick).
                self.pending.append((cfg.name, slot_key(cfg, datetime.now(UTC))))
                if advance:
                    self.reserve(entry)
                return None
        return super().apply_async(entry, producer, advance, **kwargs)

    def close(self) -> None:
        if self.leader:
            self.flush_checks()
            self.lock.release()
            self.leader = False
        super().close()
