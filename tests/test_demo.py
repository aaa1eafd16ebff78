"""`retrainctl demo` from a clean folder: four weeks, four sensible decisions, tags in MLflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.store.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN_")}
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = Store(f"sqlite:///{tmp_path / '.retrain' / 'audit.db'}")
    decisions = list(reversed(store.decisions("credit-risk")))
    assert [d.action for d in decisions] == ["DEFER", "DEFER", "TRIGGER", "VETO"]
    assert [d.signal_source for d in decisions[:3]] == ["realized", "estimated", "realized"]
    assert "drift_without_decay" in decisions[1].reasons
    assert "data_quality_failure" in decisions[3].reasons
    assert store.retrains("credit-risk")[0].state == "promoted"
    assert store.outbox_counts() == {"delivered": len(store.outbox_items())}
    received = re.search(r"Webhooks received and verified .*?: (\d+)", proc.stdout)
    # six retrain.* events, and the serving spike as cost.anomaly for the model and for its team
    assert received is not None and int(received.group(1)) == 8
    from datetime import date

    spikes = store.spend_anomalies(date(2026, 10, 1), date(2026, 11, 30))
    assert {(a.series, a.day) for a in spikes} == {
        ("model:credit-risk:serving", date(2026, 11, 12)),
        ("team:risk", date(2026, 11, 12)),
    }
    assert store.retrains("credit-risk")[0].cost_source == "billed"
    assert "ROI audit 2026-11" in proc.stdout and "(ledger)" in proc.stdout
    assert "failed signature verification" not in proc.stdout
    registry = MlflowRegistry(f"sqlite:///{tmp_path / '.retrain' / 'mlflow.db'}")
    v1, v2 = registry.version_tags("credit-risk", "1"), registry.version_tags("credit-risk", "2")
    assert v1["retrain.decision"] == "TRIGGER" and v1["retrain.metric_source"] == "realized"
    assert v2["retrain.challenger_status"] == "promoted" and v2["retrain.decision"] == "VETO"
    assert registry.resolve("credit-risk", "champion").version == "2"
    store.dispose()
