"""The check tasks in-process: a batch checks each model under its own lock and request key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.helpers import T0, make_rows
from tests.test_service import _setup
from workers import tasks
from workers.locks import model_lock
from workers.schedule import ModelsWatcher

pytestmark = pytest.mark.redis


@pytest.fixture
def worker(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """This process as a worker: a context with models m1 (good data) and m2 (a missing file)."""
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    doc = yaml.safe_load((tmp_path / "models" / "m1.yaml").read_text())
    doc |= {"name": "m2", "data": {**doc["data"], "source": {"kind": "files", "path": str(tmp_path / "nope.parquet")}}}
    (tmp_path / "models" / "m2.yaml").write_text(yaml.safe_dump(doc))
    ctx.reload_models()
    client = redis.Redis.from_url(redis_url)
    monkeypatch.setattr(tasks, "_process", tasks._Process(os.getpid(), ctx, ModelsWatcher(tmp_path / "models"), client))
    calls: dict[str, list[Any]] = {"retrain": [], "kick": [], "handed_off": []}
    monkeypatch.setattr(tasks.retrain, "delay", lambda rid: calls["retrain"].append(rid))
    monkeypatch.setattr(tasks, "kick_delivery", lambda c: calls["kick"].append(c))
    monkeypatch.setattr(tasks.check, "apply_async", lambda args, kwargs, **o: calls["handed_off"].append((args, o)))
    yield calls
    client.close()


def test_a_batch_checks_each_model_once_and_a_failure_does_not_stop_it(worker: dict[str, list[Any]]) -> None:
    ctx = tasks.process().ctx
    batch = [["m2", "k-m2"], ["ghost", "k-ghost"], ["m1", "k-m1"]]
    first = tasks.check_batch(batch)
    assert first == {"checked": 1, "skipped": 0, "handed_off": 0, "failed": 1, "unknown": 1}
    assert ctx.store.last_check("m1")[1:] == ("done", "k-m1")
    assert ctx.store.last_check("m2")[1] == "failed" and "nope.parquet" in ctx.store.checks("m2")[0].error
    assert len(worker["kick"]) == 1, "one outbox delivery queued for the whole batch"
    again = tasks.check_batch(batch)  # delivered twice: the finished check is not redone
    assert again["checked"] == 0 and again["skipped"] == 1
    assert len(ctx.store.decisions("m1")) == 1


def test_a_model_whose_lock_is_held_is_handed_to_a_single_check(worker: dict[str, list[Any]]) -> None:
    p = tasks.process()
    with model_lock(p.redis, "m1", 30):
        out = tasks.check_batch([["m1", "k-1"]])
    assert out["handed_off"] == 1 and out["checked"] == 0
    ((args, options),) = worker["handed_off"]
    assert args == ("m1",) and options["countdown"] > 0
    assert p.ctx.store.last_check("m1") is None, "nothing was started under another's lock"


def test_a_recently_checked_model_is_skipped_by_a_later_slot(worker: dict[str, list[Any]]) -> None:
    ctx = tasks.process().ctx
    tasks.check_batch([["m1", "manual"]])
    out = tasks.check_batch([["m1", "sched:m1:next"]])
    assert out["skipped"] == 1 and len(ctx.store.decisions("m1")) == 1
