"""Locks, beat entries from config, reload on file change, one active beat, and the commands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery.schedules import schedule

from controller.cli import run
from controller.config import ModelConfig
from controller.errors import RetryLater
from controller.reactors.schedule import next_due, slot_key
from workers.app import app as celery_app
from workers.locks import RedisLock, model_lock
from workers.schedule import (
    CHECK_PREFIX,
    DELIVER_ENTRY,
    SPEND_ENTRY,
    TICK_ENTRY,
    ConfigScheduler,
    CronSchedule,
    ModelsWatcher,
    model_entries,
    send_checks,
)

pytestmark = pytest.mark.redis


def model_yaml(name: str, schedule_line: str) -> str:
    return (
        f"name: {name}\nregistered_model: {name}\n"
        "data: {source: {kind: files, path: data/*.parquet}}\n"
        f"schedule: {schedule_line}\n"
    )


def model(name: str, **sched: str) -> ModelConfig:
    return ModelConfig.model_validate(
        {"name": name, "registered_model": name, "data": {"source": {"kind": "files", "path": "x"}}, "schedule": sched}
    )


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def test_lock_is_exclusive_and_only_the_holder_releases(client: redis.Redis) -> None:
    a, b = RedisLock(client, "x", 5), RedisLock(client, "x", 5)
    assert a.acquire() and not b.acquire()
    assert not b.release() and not b.renew()
    assert a.held_by_anyone()
    assert a.release() and b.acquire()


def test_lock_expires_when_its_holder_dies(client: redis.Redis) -> None:
    dead = RedisLock(client, "x", 0.3)
    assert dead.acquire()
    other = RedisLock(client, "x", 5)
    assert not other.acquire()
    time.sleep(0.4)
    assert other.acquire()
    assert not dead.renew()


def test_model_lock_raises_retry_later_while_held(client: redis.Redis) -> None:
    with model_lock(client, "churn", 10):
        with pytest.raises(RetryLater) as err, model_lock(client, "churn", 10, retry_delay=3):
            pass
        assert err.value.delay == 3
        with model_lock(client, "other-model", 10):
            pass
    with model_lock(client, "churn", 10):
        pass


def test_entries_follow_each_models_schedule() -> None:
    entries = model_entries({"a": model("a", every="30m"), "b": model("b", cron="*/15 9-17 * * 1-5", every="1h")})
    a, b = entries[CHECK_PREFIX + "a"], entries[CHECK_PREFIX + "b"]
    assert a["task"] == b["task"] == "retrain.check"
    assert a["args"] == ("a",) and a["options"]["queue"] == "checks"
    assert isinstance(a["schedule"], schedule) and a["schedule"].run_every == timedelta(minutes=30)
    assert isinstance(b["schedule"], CronSchedule)
    cron = b["schedule"].cron
    assert cron.minutes == {0, 15, 30, 45} and cron.hours == set(range(9, 18)) and cron.weekdays == set(range(1, 6))


def test_a_cron_beat_entry_is_due_at_the_firing_the_due_checks_use() -> None:
    """Beat and the level-triggered timer read one cron engine: the entry is due exactly when next_due says."""
    cfg = model("b", cron="*/15 * * * *", every="1h")
    entry = model_entries({"b": cfg})[CHECK_PREFIX + "b"]["schedule"]
    now = datetime.now(UTC)
    last = now - timedelta(minutes=20)
    due, _ = entry.is_due(last)
    assert due == (next_due(cfg, last, now) <= now)
    assert entry.is_due(now)[0] is False
    assert 0 < entry.remaining_estimate(now).total_seconds() <= 15 * 60


def test_slot_key_is_stable_within_a_slot_and_changes_across_slots() -> None:
    m = model("m", every="6h")
    t = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert slot_key(m, t) == slot_key(m, t + timedelta(hours=4, minutes=59)) == "sched:m:2026-11-28T06:00"
    assert slot_key(m, t + timedelta(hours=5)) == "sched:m:2026-11-28T12:00"
    c = model("c", cron="0 * * * *")
    assert slot_key(c, t + timedelta(seconds=30)) == "sched:c:2026-11-28T07:00"


def test_watcher_notices_added_changed_and_removed_files(tmp_path: Path) -> None:
    w = ModelsWatcher(tmp_path, every_seconds=3600)
    (tmp_path / "a.yaml").write_text("x")
    assert not w.changed(), "throttled: the disk is not looked at yet"
    assert w.changed(force=True) and not w.changed(force=True)
    (tmp_path / "a.yaml").write_text("xy")
    assert w.changed(force=True)
    (tmp_path / "a.yaml").unlink()
    assert w.changed(force=True)


@pytest.fixture
def config_dir(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "controller.yaml").write_text(
        f"broker_url: {redis_url}\nresult_backend: {redis_url}\nstore_url: sqlite:///{tmp_path}/audit.db\n"
    )
    (tmp_path / "models" / "a.yaml").write_text(model_yaml("a", "{every: 1h}"))
    monkeypatch.setenv("RETRAIN_CONFIG", str(tmp_path / "controller.yaml"))
    return tmp_path


def scheduler() -> ConfigScheduler:
    celery_app.conf.retrain_beat_lock_seconds = 3
    s = ConfigScheduler(celery_app)
    s.watcher.every_seconds = 0
    return s


def test_scheduler_reloads_model_files_without_restart(config_dir: Path) -> None:
    s = scheduler()
    try:
        assert set(s.schedule) == {CHECK_PREFIX + "a", TICK_ENTRY, DELIVER_ENTRY, SPEND_ENTRY}
        s.tick()
        (config_dir / "models" / "b.yaml").write_text(model_yaml("b", "{cron: '0 3 * * *'}"))
        (config_dir / "models" / "a.yaml").write_text(model_yaml("a", "{every: 5m}"))
        s.tick()
        assert set(s.schedule) == {CHECK_PREFIX + "a", CHECK_PREFIX + "b", TICK_ENTRY, DELIVER_ENTRY, SPEND_ENTRY}
        assert s.schedule[CHECK_PREFIX + "a"].schedule.run_every == timedelta(minutes=5)
        (config_dir / "models" / "b.yaml").write_text("name: b\nregistered_model: [broken\n")
        s.tick()
        assert CHECK_PREFIX + "b" in s.schedule, "a broken file keeps the previous schedule"
        (config_dir / "models" / "b.yaml").unlink()
        s.tick()
        assert CHECK_PREFIX + "b" not in s.schedule
    finally:
        s.close()


def test_tick_entry_fires_at_start_then_on_its_interval(config_dir: Path) -> None:
    s = scheduler()
    try:
        due, _ = s.schedule[TICK_ENTRY].is_due()
        assert due
        due, _ = s.schedule[CHECK_PREFIX + "a"].is_due()
        assert not due
    finally:
        s.close()


def test_the_daily_spend_check_is_a_beat_entry_on_its_cron(config_dir: Path) -> None:
    from datetime import UTC, datetime


    s = scheduler()
    try:
        entry = s.schedule[SPEND_ENTRY]
        assert entry.task == "retrain.spend_check" and isinstance(entry.schedule, CronSchedule)
        # costs.check_cron defaults to 06:30 UTC every day
        fired = entry.schedule.cron.previous(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
        assert fired == datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    finally:
        s.close()


def test_only_one_beat_is_active_and_a_standby_takes_over(config_dir: Path) -> None:
    first, second = scheduler(), scheduler()
    try:
        first.tick()
        assert first.leader
        assert second.tick() == pytest.approx(1.0)
        assert not second.leader
        first.close()  # the active beat stops: the lock is released at once
        second.tick()
        assert second.leader
        third = scheduler()
        third.tick()
        assert not third.leader
        # a leader that dies without releasing is replaced once its lock expires
        time.sleep(3.2)
        third.tick()
        assert third.leader
        third.close()
    finally:
        second.close()


def test_bad_queue_is_one_line_and_exit_2(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["worker", "--queues", "checks,gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --queues: unknown queue(s) gpu; use checks, training, notify"


def test_missing_config_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["beat", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.yaml" in err[0] and "not found" in err[0]


def test_unknown_model_in_run_once_is_exit_2(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["run-once", "--model", "zzz"]) == 2
    assert "unknown model(s) zzz" in capsys.readouterr().err


def test_retry_later_becomes_a_retry_with_its_delay_and_give_up_fails_at_once() -> None:
    from celery import Celery
    from celery.exceptions import Retry

    from controller.errors import GiveUp
    from workers.tasks import ControllerTask

    local = Celery("t", broker="memory://", backend="cache+memory://")
    calls: list[str] = []
    countdowns: list[float | None] = []

    @local.task(base=ControllerTask, bind=True, max_retries=2)
    def flaky(self: ControllerTask, outcome: str) -> str:
        calls.append(outcome)
        if outcome == "later":
            raise RetryLater("lock held", delay=7)
        if outcome == "never":
            raise GiveUp("no such model")
        return "ok"

    original_retry = ControllerTask.retry

    def spy(self: ControllerTask, *args: object, **kwargs: object) -> Retry:
        countdowns.append(kwargs.get("countdown"))  # type: ignore[arg-type]
        return original_retry(self, *args, **kwargs)

    ControllerTask.retry = spy
    try:
        with pytest.raises(Retry) as retried:
            flaky.apply(args=["later"], throw=True)
        assert retried.value.when == 7 and isinstance(retried.value.exc, RetryLater)
        assert countdowns == [7] and calls == ["later"]
        with pytest.raises(GiveUp):
            flaky.apply(args=["never"], throw=True)
        assert calls == ["later", "never"] and countdowns == [7], "GiveUp is not retried"
        assert flaky.apply(args=["fine"]).get() == "ok"
    finally:
        ControllerTask.retry = original_retry


def test_a_redis_namespace_prefixes_every_key(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import Celery

    from workers.app import configure

    monkeypatch.setenv("RETRAIN_REDIS_NAMESPACE", "blue")
    lock = RedisLock(client, "check:churn", 5)
    assert lock.key == "blue:retrain:lock:check:churn"
    assert lock.acquire() and client.exists("blue:retrain:lock:check:churn")
    assert RedisLock(client, "check:churn", 5).key == lock.key
    monkeypatch.delenv("RETRAIN_REDIS_NAMESPACE")
    assert RedisLock(client, "check:churn", 5).acquire(), "another namespace, another lock"
    from controller.config import ServiceConfig

    monkeypatch.setenv("RETRAIN_REDIS_NAMESPACE", "blue")
    conf = configure(Celery("x"), ServiceConfig()).conf
    assert conf.broker_transport_options["global_keyprefix"] == "blue:"
    assert conf.result_backend_transport_options["global_keyprefix"] == "blue:"


def test_due_model_entries_are_sent_together_in_batches(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (config_dir / "controller.yaml").open("a") as f:
        f.write("check_batch_size: 2\n")
    for name in ("b", "c"):
        (config_dir / "models" / f"{name}.yaml").write_text(model_yaml(name, "{every: 1h}"))
    sent: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, args=(), kwargs=None, **o: sent.append((name, args, o)))
    s = scheduler()
    try:
        for name in ("a", "b", "c"):
            s.schedule[CHECK_PREFIX + name].last_run_at = datetime.now(UTC) - timedelta(hours=2)
        s._heap = None
        for _ in range(20):
            if s.tick() > 0 and not s.pending:
                break
        batches = [args[0] for name, args, _ in sent if name == "retrain.check_batch"]
        assert not [n for n, _, _ in sent if n == "retrain.check"], "no model is sent on its own"
        assert sorted(len(b) for b in batches) == [1, 2]
        models = sorted(m for b in batches for m, _ in b)
        assert models == ["a", "b", "c"]
        assert all(key.startswith(f"sched:{m}:") for b in batches for m, key in b)
        assert all(o["queue"] == "checks" for n, _, o in sent if n == "retrain.check_batch")
        assert not s.schedule[CHECK_PREFIX + "a"].is_due()[0], "the entry advanced to its next slot"
    finally:
        s.close()


def test_send_checks_one_task_per_model_when_batches_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args=(), kwargs=None, **o: sent.append((name, args, kwargs))
    )
    checks = [("a", "k-a"), ("b", "k-b"), ("c", "k-c")]
    assert send_checks(celery_app, checks, 1) == 3
    assert sent == [("retrain.check", (m,), {"request_key": k, "scheduled": True}) for m, k in checks]
    sent.clear()
    assert send_checks(celery_app, checks, 2) == 2
    assert [args for _, args, _ in sent] == [([["a", "k-a"], ["b", "k-b"]],), ([["c", "k-c"]],)]


def test_each_pool_process_computes_on_the_threads_it_is_given(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pyarrow as pa
    from threadpoolctl import threadpool_info

    from workers.app import THREADS_ENV, one_thread_per_process

    before = pa.cpu_count()
    try:
        monkeypatch.setenv(THREADS_ENV, "2")
        one_thread_per_process()
        assert pa.cpu_count() == 2
        assert all(p["num_threads"] <= 2 for p in threadpool_info())
        monkeypatch.setenv(THREADS_ENV, "many")
        one_thread_per_process()
        assert pa.cpu_count() == 1 and "is not a positive whole number; using 1" in caplog.text
    finally:
        pa.set_cpu_count(before)


def test_pool_processes_collect_young_objects_less_often_and_skip_the_startup_objects() -> None:
    import gc

    from celery.signals import worker_init, worker_process_init

    from workers.app import GC_YOUNG_THRESHOLD, fewer_young_collections, freeze_startup_objects

    connected = {getattr(r[1](), "__name__", None) for sig in (worker_init, worker_process_init) for r in sig.receivers}
    assert {"freeze_startup_objects", "fewer_young_collections"} <= connected
    before = gc.get_threshold()
    try:
        fewer_young_collections()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        freeze_startup_objects()
        assert gc.get_freeze_count() > 1000  # the imported modules at least
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_worker_threads_below_one_is_one_line_and_exit_2(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["worker", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
