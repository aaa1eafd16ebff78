"""History in MLflow (``mlflow_history``): each check's figures appended to a monitoring run per
model version, through the outbox, batched per version; against the in-memory twin and a real
MLflow store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.adapters.registry.base import MonitoringPoint
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.store.tables import OutboxRow
from controller.errors import GiveUp, RetryLater
from controller.reactors.check import run_check
from controller.reactors.outbox import deliver_outbox
from tests.fakes import InMemoryRegistry
from tests.helpers import T0, make_rows
from tests.test_service import WEEK, _setup


def test_each_check_appends_its_figures_in_one_batch_per_version(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    ctx.service = ctx.service.model_copy(update={"mlflow_history": True})
    first = run_check(ctx, "m1")
    second = run_check(ctx, "m1", now=T0 + WEEK + timedelta(hours=6))
    with ctx.store.session() as s:
        kinds = sorted(s.scalars(sa.select(OutboxRow.kind)))
    assert kinds.count("mlflow_metrics") == 2  # one item per check, beside its tags and webhook
    registry = ctx.registry
    assert isinstance(registry, InMemoryRegistry)
    report = deliver_outbox(ctx, now=T0 + WEEK + timedelta(hours=7))
    assert report.dead == 0
    points = registry.monitoring["m1/1"]
    assert [p.step for p in points] == [first.check_id, second.check_id]
    assert points[0].metrics["accuracy_realized"] == pytest.approx(first.signals["current"])
    assert points[0].metrics["drift_share"] == pytest.approx(first.signals["drift_share"])
    assert first.decision is not None
    assert points[0].metrics["loss_per_day"] == pytest.approx(first.decision.numbers.loss_per_day)
    assert ctx.store.outbox_counts().get("pending", 0) == 0


def test_off_by_default(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    run_check(ctx, "m1")
    with ctx.store.session() as s:
        assert "mlflow_metrics" not in set(s.scalars(sa.select(OutboxRow.kind)))


class _Failing(InMemoryRegistry):
    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def log_monitoring(self, name: str, version: str, points: object) -> str:  # type: ignore[override]
        raise self.exc


@pytest.mark.parametrize(("exc", "status"), [(RetryLater("MLflow down"), "pending"), (GiveUp("gone"), "dead")])
def test_an_outage_retries_the_batch_and_a_permanent_failure_dead_letters_it(
    tmp_path: Path, exc: Exception, status: str
) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    ctx.service = ctx.service.model_copy(update={"mlflow_history": True})
    run_check(ctx, "m1")
    ctx.registry = _Failing(exc)
    deliver_outbox(ctx)
    with ctx.store.session() as s:
        item = s.scalars(sa.select(OutboxRow).where(OutboxRow.kind == "mlflow_metrics")).one()
        assert (item.status, item.attempts) == (status, 1)


def test_monitoring_run_in_a_real_mlflow_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    at = datetime(2026, 11, 1, tzinfo=UTC)
    reg = MlflowRegistry(uri, artifact_root=str(tmp_path / "artifacts"))
    run_a = reg.log_monitoring("churn", "3", [MonitoringPoint(at, 1, {"drift_share": 0.1, "loss_per_day": 5.0})])
    # a second process finds the same run (searched by its tag, not cached)
    other = MlflowRegistry(uri, artifact_root=str(tmp_path / "artifacts"))
    points = [MonitoringPoint(at + timedelta(hours=h), 1 + h, {"drift_share": 0.1 * h}) for h in range(1, 4)]
    assert other.log_monitoring("churn", "3", points) == run_a
    assert other.log_monitoring("churn", "4", points[:1]) != run_a
    history = other.client.get_metric_history(run_a, "drift_share")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.1), (2, 0.1), (3, 0.2), (4, 0.3)]
    assert history[1].timestamp == int((at + timedelta(hours=1)).timestamp() * 1000)
    run = other.client.get_run(run_a)
    assert run.data.tags["retrain.monitoring"] == "churn/3" and run.info.run_name == "monitoring-churn-v3"
