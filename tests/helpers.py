"""Builders shared by the foundation tests: a small generated model and its configs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def make_rows(n: int, start: datetime, seed: int, flip: bool = False, shift: float = 0.0) -> pd.DataFrame:
    """Rows with two informative numbers, one noise number and a category; label by a logistic rule."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(0, 1, n)
    noise = rng.normal(shift, 1, n)
    color = rng.choice(["red", "green", "blue"], n)
    logit = 2.0 * x1 + (-2.0 if flip else 2.0) * x2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 86400 * 7 - 1, n))]
    return pd.DataFrame(
        {
            "id": np.arange(n) + seed * 1_000_000,
            "timestamp": ts,
            "x1": x1,
            "x2": x2,
            "noise": noise,
            "color": color,
            "label": y,
        }
    )


def write_configs(root: Path, data_glob: str, labels: str | None = None, **model: Any) -> Path:
    """A controller.yaml and one model file under ``root``; returns the controller.yaml path."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    service = {
        "store_url": f"sqlite:///{root / 'audit.db'}",
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_root": str(root / "artifacts"),
        "cache_dir": str(root / "cache"),
        "policy": {"cooldown_hours": 0, "monthly_budget": 10_000},
    }
    (root / "controller.yaml").write_text(yaml.safe_dump(service))
    data: dict[str, Any] = {
        "source": {"kind": "files", "path": str(root / data_glob)},  # model paths are relative to models/
        "min_labeled_rows": 200,
        "window_hours": 168,
    }
    if labels:
        data["labels"] = {"kind": "files", "path": str(root / labels)}
    cfg: dict[str, Any] = {
        "name": "m1",
        "registered_model": "m1",
        "owner": "team-a@example.com",
        "team": "a",
        "business_purpose": "test",
        "data": data,
        "economics": {
            "metric": "accuracy",
            "value_per_point": 5.0,
            "traffic_per_day": 100_000,
            "compute_rate_per_hour": 2.0,
            "fixed_overhead": 100,
        },
        "trainer": {"callable": "controller.adapters.trainers:sklearn_classifier", "window_hours": 168},
        "drift": {"categorical": ["color"]},
    }
    cfg.update(model)
    (root / "models" / "m1.yaml").write_text(yaml.safe_dump(cfg))
    return root / "controller.yaml"
