"""The monitoring run of ``mlflow_history`` on a real MLflow server (HTTP), as a deployment has it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.adapters.registry.base import MonitoringPoint
from controller.adapters.registry.mlflow import MlflowRegistry
from tests.integration.conftest import MlflowServer

pytestmark = [pytest.mark.mlflow_server, pytest.mark.slow]


def test_checks_become_metric_history_of_one_run_per_version(mlflow_server: MlflowServer) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    points = [MonitoringPoint(at + timedelta(hours=6 * i), 10 + i, {"loss_per_day": 100.0 * i}) for i in range(1200)]
    reg = MlflowRegistry(mlflow_server.url)
    run_id = reg.log_monitoring("fraud", "7", points)  # 1,200 metrics: two log_batch calls
    assert MlflowRegistry(mlflow_server.url).log_monitoring("fraud", "7", points[:0]) == run_id
    history = reg.client.get_metric_history(run_id, "loss_per_day")
    assert len(history) == 1200 and history[-1].step == 1209 and history[-1].value == 119_900.0
