"""The backtest's ``controller`` policy is the service's check: the same stream through ``run_check``.

A labelled stream is written as files (rows, and labels that arrive ``D`` days late); the service
checks it once a day with the clock set to each chunk, with a SQLite store and the in-memory
registry. Every retrain the service triggers is carried out as the backtest protocol does (the
last ``W`` labelled chunks, serving from the chunk it was decided at), and its outcome is recorded
once the new version's first chunk is labelled, as the replay records it. The service must take
the same action as the replay at every chunk.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.streams import make_stream
from controller.adapters.registry.base import Baseline, TrainingRecord
from controller.backtest.data import BacktestConfig, Stream, prepare
from controller.backtest.matrix import error_matrix, make_model, train_window
from controller.backtest.replay import day, replay
from controller.core.policy import PolicyConfig
from controller.reactors.check import run_check
from controller.reactors.context import Context
from controller.reactors.readings import SERVING_SINCE
from detectors.profile import build_profile
from tests.fakes import InMemoryRegistry

NAME = "m"


def _frame(stream: Stream) -> pd.DataFrame:
    """The stream as a production log: an id, a time within the chunk's day, the features."""
    n = len(stream.target)
    chunk = np.arange(n) // stream.chunk_rows
    offset = (np.arange(n) % stream.chunk_rows + 1) * (86_000 / (stream.chunk_rows + 1))
    out = stream.features.copy()
    out.insert(0, "ts", [day(int(c)) + timedelta(seconds=float(o)) for c, o in zip(chunk, offset, strict=True)])
    out.insert(0, "id", np.arange(n))
    return out


def _config(root: Path, cfg: BacktestConfig, policy: PolicyConfig, features: list[str]) -> Path:
    (root / "models").mkdir(parents=True)
    service = {"store_url": f"sqlite:///{root / 'audit.db'}", "cache_dir": None, "policy": policy.model_dump()}
    (root / "controller.yaml").write_text(yaml.safe_dump(service))
    model: dict[str, Any] = {
        "name": NAME,
        "registered_model": NAME,
        "owner": "backtest",
        "business_purpose": "the service replay test",
        "features": features,
        "data": {
            "source": {"kind": "files", "path": str(root / "rows.parquet")},
            "labels": {"kind": "files", "path": str(root / "labels.parquet")},
            "id_column": "id",
            "time_column": "ts",
            "label_column": "label",
            "window_hours": 24 * (cfg.label_delay + 1),
            "label_delay_hours": 24 * cfg.label_delay,
            "min_labeled_rows": 50,
        },
        "schedule": {"every": "1d"},
        "economics": {
            "metric": "accuracy",
            "value_per_point": 10.0 * cfg.error_cost,
            "traffic_per_day": cfg.chunk_rows,
            "compute_rate_per_hour": 0.0,
            "fixed_overhead": cfg.retrain_cost,
        },
        "trainer": {
            "callable": "controller.adapters.trainers:sklearn_classifier",
            "window_hours": 24 * (cfg.window + cfg.label_delay),
        },
    }
    (root / "models" / f"{NAME}.yaml").write_text(yaml.safe_dump(model))
    return root / "controller.yaml"


class Protocol:
    """Retrains as the backtest protocol makes them, registered as the service would see them."""

    def __init__(self, stream: Stream, cfg: BacktestConfig, registry: InMemoryRegistry) -> None:
        self.stream, self.cfg, self.registry = stream, cfg, registry
        self.models: dict[int, Any] = {}

    def fit(self, t: int) -> str:
        s = self.stream
        lo, hi = train_window(t, self.cfg.initial_chunks, self.cfg.window, self.cfg.label_delay)
        x, y = s.features.iloc[s.rows(lo, hi)], s.target[s.rows(lo, hi)]
        numeric = [c for c in s.features.columns if c not in s.categorical]
        model = make_model("logistic", s.task, s.categorical, numeric).fit(x, y)
        self.models[t] = model
        proba = model.predict_proba(x)
        classes = np.asarray(model.classes_)
        scores = pd.DataFrame({"y_true": y, "y_pred": classes[proba.argmax(axis=1)]})
        for i, c in enumerate(classes):
            scores[f"proba_{c}"] = proba[:, i]
        profile = build_profile(x, categorical=s.categorical)
        baseline = Baseline(profile.to_bytes(), profile.content_hash, {}, scores)
        tags = {SERVING_SINCE: day(t).isoformat()} if t == self.cfg.initial_chunks else {}
        v = self.registry.log_version(NAME, TrainingRecord(model, baseline, {}, {}, 60.0, tags))
        self.registry.set_alias(NAME, "champion", v.version)
        return v.version

    def errors(self, t: int, chunk: int) -> int:
        s = self.stream
        rows = s.rows(chunk, chunk + 1)
        return int((self.models[t].predict(s.features.iloc[rows]) != s.target[rows]).sum())


@pytest.mark.parametrize(
    ("kind", "seed", "cost", "delay"),
    [("abrupt", 2, 50.0, 0), ("gradual", 1, 50.0, 0), ("abrupt", 3, 50.0, 1), ("gradual", 3, 50.0, 1)],
)
def test_the_service_check_takes_the_replays_action_at_every_chunk(
    tmp_path: Path, kind: str, seed: int, cost: float, delay: int
) -> None:
    chunks, rows, k = 22, 300, 5
    stream = prepare(make_stream(kind, chunks=chunks, chunk_rows=rows, seed=seed), "label", rows)
    cfg = BacktestConfig(rows, k, 4, cost, 1.0, delay)
    policy = PolicyConfig()
    replayed = replay(
        error_matrix(stream, cfg), policy, retrain_cost=cost, error_cost=1.0, window=cfg.window, label_delay=delay
    )

    frame = _frame(stream)
    frame.to_parquet(tmp_path / "rows.parquet")
    pd.DataFrame({"id": frame["id"], "label": stream.target}).to_parquet(tmp_path / "labels.parquet")
    registry = InMemoryRegistry()
    path = _config(tmp_path, cfg, policy, list(stream.features.columns))
    ctx = Context.from_config(path, registry=registry, clock=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    protocol = Protocol(stream, cfg, registry)
    protocol.fit(k)
    served = [k]
    actions: list[str] = []
    for t in range(k + 1, chunks):
        for retrain in ctx.store.retrains(NAME, limit=50):  # outcomes become known as labels arrive
            r = int(retrain.challenger_version or 0)
            new = served.index(r) if r in served else None
            if retrain.recovered is None and new is not None and r <= t - 1 - delay:
                old = served[new - 1]
                ctx.store.update_retrain(retrain.id, recovered=protocol.errors(r, r) < protocol.errors(old, r))
        out = run_check(ctx, NAME, now=day(t))
        assert out.decision is not None
        actions.append(out.decision.action.value)
        if out.retrain_id is not None:
            version = protocol.fit(t)
            served.append(t)
            ctx.store.update_retrain(out.retrain_id, state="promoted", challenger_version=version)
            # the registry numbers versions 1, 2, ...: name them by their chunk for the outcomes above
            registry.models[NAME]["versions"][str(t)] = registry.models[NAME]["versions"].pop(version)
            registry.set_alias(NAME, "champion", str(t))
            ctx.store.update_retrain(out.retrain_id, challenger_version=str(t))
    assert actions == [d.action.value for d in replayed.decisions]
    assert served[1:] == replayed.retrains
    assert replayed.retrains, "the stream should make the controller retrain at least once"
