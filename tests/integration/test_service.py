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

from controller.store import CheckRow, DecisionRow, OutboxRow, RetrainRow
from tests.integration.conftest import World, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.mlflow_server, pytest.mark.slow]


def count(world: World, query: sa.Select[tuple[int]]) -> int:
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
    assert run.data.params["trainer"] == "controller.trainers:sklearn_classifier"
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
