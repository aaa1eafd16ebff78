"""The service against the real things: Postgres, Redis, an MLflow server, Celery worker and beat
processes, and a receiver that verifies signatures with the ``standardwebhooks`` package."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from controller.adapters.store.tables import CheckRow, DecisionRow, OutboxRow, RetrainRow
from tests.integration.conftest import World, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.mlflow_server, pytest.mark.slow]


def count(world: World, query: sa.Select[int]) -> int:
    with world.store.session() as s:
        return int(s.scalar(query) or 0)


def outbox_pending(world: World) -> int:
    return count(world, sa.select(sa.func.count()).where(OutboxRow.status == "pending"))


def test_duplicated_task_gives_one_retrain_run_end_to_end(world: World) -> None:
    cfg = world.add_model("credit", kind="concept")
    world.worker("w1")
    app = world.celery()
    key = "sched:credit:dup-test"
    first = app.send_task("retrain.check", args=["credit"], kwargs={"request_key": key})
    second = app.send_task("retrain.check", args=["credit"], kwargs={"request_key": key})
    results = [first.get(timeout=120), second.get(timeout=120)]
    assert sorted(r["skipped"] for r in results) == [False, True]
    (ran,) = [r for r in results if not r["skipped"]]
    assert ran["decision"] == "TRIGGER" and ran["retrain_id"] is not None

    def finished() -> RetrainRow | None:
        row = world.store.retrain(ran["retrain_id"])
        return row if row.state in ("promoted", "rejected", "failed") else None

    retrain = wait_until("the retrain to finish", finished, 120)
    assert retrain.state in ("promoted", "rejected"), retrain.error
    again = app.send_task("retrain.retrain", args=[retrain.id]).get(timeout=60)
    assert again["skipped"] is True

    assert count(world, sa.select(sa.func.count()).select_from(CheckRow).where(CheckRow.request_key == key)) == 1
    assert count(world, sa.select(sa.func.count()).select_from(DecisionRow)) == 1
    assert count(world, sa.select(sa.func.count()).select_from(RetrainRow)) == 1
    assert retrain.mlflow_run_id and retrain.challenger_version and retrain.actual_cost is not None
    assert retrain.challenger_metric is not None and retrain.champion_metric is not None

    wait_until("the outbox to drain", lambda: outbox_pending(world) == 0, 60)
    client = MlflowClient(tracking_uri=world.mlflow.url, registry_uri=world.mlflow.url)
    champion_tags = client.get_model_version(cfg.registered_model, retrain.champion_version or "1").tags
    assert champion_tags["retrain.decision"] == "TRIGGER"
    assert champion_tags["retrain.challenger_status"] == f"{retrain.state}: v{retrain.challenger_version}"
    challenger = client.get_model_version(cfg.registered_model, retrain.challenger_version)
    assert challenger.tags["retrain.challenger_status"] == retrain.state
    run = client.get_run(retrain.mlflow_run_id)
    assert run.data.params["trainer"] == "controller.adapters.trainers:sklearn_classifier"
    assert any(k.startswith("holdout_") for k in run.data.metrics)
    aliases = client.get_registered_model(cfg.registered_model).aliases
    assert aliases["challenger"] == retrain.challenger_version
    assert (aliases["champion"] == retrain.challenger_version) == (retrain.state == "promoted")

    types = Counter(e["type"] for e in world.receiver.events)
    assert types == Counter(["retrain.triggered", "retrain.completed", f"retrain.{retrain.state}"]) + Counter(
        [e["type"] for e in world.receiver.events if e["type"] == "retrain.cost_anomaly"]
    )
    assert len(set(world.receiver.ids)) == len(world.receiver.ids)
    assert world.receiver.rejected == 0


def test_worker_killed_mid_check_leaves_a_check_that_is_redone_once(world: World) -> None:
    world.add_model("steady", kind="none")
    first = world.worker("victim", queues="checks", concurrency=1)
    app = world.celery()
    key = "sched:steady:kill-test"
    app.send_task("retrain.check", args=["steady"], kwargs={"request_key": key})

    def running() -> CheckRow | None:
        rows = [c for c in world.store.checks("steady") if c.request_key == key]
        return rows[0] if rows and rows[0].status == "running" else None

    started = wait_until("the check to start", running, 90, every=0.01)
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, as when a machine dies
    first.wait(timeout=10)
    killed_at = time.monotonic()
    (left,) = world.store.checks("steady")
    assert left.status == "running" and left.id == started.id
    assert world.store.decision_for_check(left.id) is None

    world.worker("rescuer", queues="checks", concurrency=1)

    def done() -> CheckRow | None:
        rows = world.store.checks("steady")
        return rows[0] if rows and rows[0].status == "done" else None

    redone = wait_until("the redelivered check to finish", done, 90)
    assert time.monotonic() - killed_at > 5, "redelivered only after the visibility timeout"
    assert redone.id == started.id and redone.request_key == key
    assert redone.started_at > started.started_at
    assert len(world.store.checks("steady")) == 1
    assert len(world.store.decisions("steady")) == 1
    assert "rescuer@" in world.log("rescuer") and "retrain.check" in world.log("rescuer")


def test_receiver_returning_500_gets_every_event_once_it_recovers(world: World) -> None:
    """Beat alone drives this: its timer checks every model, its deliver entry drains the outbox."""
    world.add_model("alpha", kind="none", seed=1)
    world.add_model("beta", kind="concept", seed=2)
    world.receiver.fail_next(8)
    world.worker("w1", concurrency=2)
    beats = ["--tick-seconds", "3", "--deliver-seconds", "1", "--lock-seconds", "6"]
    world.start("beat", *beats, ready="beat: Starting", log_name="beat-1.log")
    world.start("beat", *beats, ready="beat: Starting", log_name="beat-2.log")

    def webhooks_settled() -> bool:
        with world.store.session() as s:
            rows = s.execute(sa.select(OutboxRow.kind, OutboxRow.status)).all()
        retrain_done = all(r.state in ("promoted", "rejected", "failed") for r in world.store.retrains())
        return bool(rows) and retrain_done and all(st != "pending" for _, st in rows) and len(rows) >= 7

    wait_until("every outbox item to be delivered", webhooks_settled, 150, every=0.5)
    # a model file added while everything runs is picked up by beat and the workers, no restart
    world.add_model("gamma", kind="none", seed=3)
    wait_until("a decision for the new model", lambda: world.store.decisions("gamma"), 60, every=0.5)
    wait_until("its webhook", lambda: any(e["model"] == "gamma" for e in world.receiver.events), 30)

    def webhook_rows() -> list[OutboxRow]:
        with world.store.session() as s:
            return list(s.execute(sa.select(OutboxRow).where(OutboxRow.kind == "webhook")).scalars().all())

    # the receiver has an event a moment before its deliverer marks the item delivered in the store
    settled = ("delivered", "suppressed")
    wait_until("every webhook marked", lambda: all(h.status in settled for h in webhook_rows()), 30, every=0.2)
    hooks = webhook_rows()
    sent = [h for h in hooks if h.status == "delivered"]
    assert sent and all(h.status in settled for h in hooks)
    assert world.receiver.failed_on_purpose == 8 and world.receiver.rejected == 0
    assert len(world.receiver.ids) == len(set(world.receiver.ids)) == len(sent)
    assert {e["model"] for e in world.receiver.events} == {"alpha", "beta", "gamma"}
    kinds = Counter(e["type"] for e in world.receiver.events)
    assert kinds["retrain.triggered"] == 1 and kinds["retrain.completed"] == 1
    failed_attempts = [n for n in world.store.notifications(limit=500) if n.status_code == 500]
    assert len(failed_attempts) == 8
    assert max(h.attempts for h in sent) >= 2

    # one decision per model per slot, although two beats ran and the timer fired many times
    for model in ("alpha", "beta", "gamma"):
        assert len(world.store.decisions(model)) == 1
    active = ["this beat is active" in world.log(f"beat-{i}") for i in (1, 2)]
    standby = ["standing by" in world.log(f"beat-{i}") for i in (1, 2)]
    assert sorted(active) == [False, True] and standby == [not a for a in active]


def test_mlflow_server_stopped_and_restarted_gets_every_tag(world: World) -> None:
    """Runs last in this file: it stops the session's MLflow server and starts it again."""
    cfgs = [world.add_model(name, kind="none", seed=i) for i, name in enumerate(("north", "south"))]
    world.worker("checker", queues="checks", concurrency=2)
    app = world.celery()
    results = [app.send_task("retrain.check", args=[c.name], kwargs={"request_key": f"k-{c.name}"}) for c in cfgs]
    decided = [r.get(timeout=120) for r in results]
    assert all(d["decision"] in ("DEFER", "VETO", "TRIGGER") for d in decided)

    def tag_items() -> list[OutboxRow]:
        with world.store.session() as s:
            return list(s.scalars(sa.select(OutboxRow).where(OutboxRow.kind == "mlflow_tags")))

    assert len(tag_items()) == 2 and all(i.status == "pending" for i in tag_items())
    world.mlflow.stop()
    try:
        world.worker("notifier", queues="notify", concurrency=1)
        world.start(
            "beat", "--tick-seconds", "3600", "--deliver-seconds", "1", ready="beat: Starting", log_name="beat.log"
        )

        def failing() -> bool:
            items = tag_items()
            return all(i.attempts >= 2 and i.status == "pending" for i in items)

        wait_until("tag deliveries to fail while MLflow is down", failing, 60, every=0.5)
        errors = [n for n in world.store.notifications(limit=200) if n.event_type == "mlflow_tags"]
        assert errors and not any(n.ok for n in errors)
        assert all("unreachable" in (n.error or "") or "Connection" in (n.error or "") for n in errors)
        # webhooks do not wait for MLflow
        assert wait_until("the webhooks", lambda: len(world.receiver.events) == 2, 30)
    finally:
        world.mlflow.start()
    wait_until("every tag to be delivered", lambda: all(i.status == "delivered" for i in tag_items()), 120, every=0.5)
    client = MlflowClient(tracking_uri=world.mlflow.url, registry_uri=world.mlflow.url)
    for cfg, d in zip(cfgs, decided, strict=True):
        tags = client.get_model_version(cfg.registered_model, "1").tags
        assert tags["retrain.decision"] == d["decision"]
        assert tags["retrain.checked_at"] and tags["retrain.reason"] is not None
    assert all(i.attempts >= 3 for i in tag_items())
    assert sorted(n.ok for n in world.store.notifications(limit=500) if n.event_type == "mlflow_tags")[-2:] == [
        True,
        True,
    ]
