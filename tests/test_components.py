"""Shared components: a new version reaches every model built on it, each validates it on its own
window (adopt, keep or retrain on top), and drift in the component's output shows on every
dependent as an upstream cause.

The component is made here: a linear encoder from six raw inputs to a 4-component embedding (a
scikit-learn model whose ``predict`` encodes, so that MLflow's sklearn flavour stores it);
three watched models read the embedding (their label depends on it) and declare
``uses: [{component: enc, version: 1, embedding: e, inputs: [r0..r5]}]``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from controller.adapters.registry.base import Baseline, Registry, TrainingRecord
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.trainers import sklearn_classifier
from controller.cli import app
from controller.config import ModelConfig
from controller.core.components import ComponentAction
from controller.errors import ConfigError, UserError
from controller.reactors.baseline import build_baseline
from controller.reactors.check import run_check
from controller.reactors.components import UPSTREAM
from controller.reactors.context import Context
from controller.reactors.dependents import validate_component
from controller.reactors.outbox import deliver_outbox
from tests.fakes import InMemoryRegistry
from tests.helpers import T0, write_configs

WEEK = timedelta(days=7)
RAW = [f"r{i}" for i in range(6)]
EMB = [f"e_{i}" for i in range(4)]
MODELS = ("m1", "m2", "m3")
W1 = np.random.default_rng(100).normal(size=(6, 4))


def Encoder(weights: np.ndarray) -> LinearRegression:
    """A component version: raw inputs -> embedding, a linear map as a scikit-learn model whose
    ``predict`` gives the embedding (MLflow stores and loads it with its sklearn flavour)."""
    raw = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 6)), columns=RAW)
    return LinearRegression(fit_intercept=False).fit(raw, raw.to_numpy() @ weights)


def rows(n: int, start: Any, seed: int, encoder: LinearRegression, raw_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    raw = rng.normal(raw_shift, 1, size=(n, 6))
    emb = Encoder(W1).predict(pd.DataFrame(raw, columns=RAW))  # what the label depends on: the world, as v1 saw it
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * emb[:, 0] - 2.0 * emb[:, 1])))).astype(int)
    served = encoder.predict(pd.DataFrame(raw, columns=RAW))  # what the pipeline wrote: the version in use
    ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 86400 * 7 - 1, n))]
    frame = pd.DataFrame({"id": np.arange(n) + seed * 1_000_000, "timestamp": ts, "label": y})
    return frame.assign(**{c: raw[:, i] for i, c in enumerate(RAW)}, **{c: served[:, i] for i, c in enumerate(EMB)})


def setup(tmp_path: Path, week: pd.DataFrame, candidate: np.ndarray | None, real_mlflow: bool = False) -> Context:
    """Three dependents of ``enc`` v1 (trained, registered); ``enc`` v2 = ``candidate`` as its champion.
    ``real_mlflow``: a local MLflow store (SQLite registry, file artifacts) instead of the in-memory twin."""
    (tmp_path / "data").mkdir()
    week.drop(columns="label").to_parquet(tmp_path / "data" / "current.parquet")
    week[["id", "label"]].to_parquet(tmp_path / "labels.parquet")
    uses = [{"component": "enc", "version": "1", "embedding": "e", "inputs": RAW}]
    path = write_configs(tmp_path, "data/*.parquet", labels="labels.parquet", features=EMB,
                         drift={"embeddings": {"e": "e_*"}}, uses=uses)  # fmt: skip
    first = yaml.safe_load((tmp_path / "models" / "m1.yaml").read_text())
    for name in MODELS[1:]:
        (tmp_path / "models" / f"{name}.yaml").write_text(yaml.safe_dump({**first, "name": name,
                                                                           "registered_model": name}))  # fmt: skip
    registry: Registry = InMemoryRegistry()
    if real_mlflow:
        registry = MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "artifacts"))
    no_baseline = Baseline(None, None, {}, None)  # a component is not watched: it has no baseline
    registry.log_version("enc", TrainingRecord(Encoder(W1), no_baseline, {}, {}, 60.0))
    registry.set_model_tags("enc", {"retrain.component": "true"})
    registry.set_alias("enc", "champion", "1")
    if candidate is not None:
        v2 = registry.log_version("enc", TrainingRecord(Encoder(candidate), no_baseline, {}, {}, 60.0))
        registry.set_alias("enc", "champion", v2.version)
    ctx = Context.from_config(path, registry=registry, clock=lambda: T0 + WEEK)
    ref = rows(4000, T0 - 2 * WEEK, seed=10, encoder=Encoder(W1))
    for i, name in enumerate(MODELS):
        cfg = ctx.model(name)
        clf = sklearn_classifier(ref.iloc[:3000], features=EMB, target="label", random_state=i)
        baseline = build_baseline(cfg, clf, ref.iloc[:3000], ref.iloc[3000:], EMB)
        v = registry.log_version(name, TrainingRecord(clf, baseline, {}, {}, 3600.0))
        registry.set_alias(name, "champion", v.version)
    return ctx


def _validation(outcome: Any) -> dict[str, Any]:
    (record,) = outcome.signals["components"]
    return dict(record["validation"])


@pytest.mark.parametrize("real_mlflow", [False, True], ids=["memory", "mlflow"])
def test_a_new_component_version_reaches_every_dependent(tmp_path: Path, real_mlflow: bool) -> None:
    # v2 encodes the same information in another basis: every model reads it wrong as it is
    rotation = np.linalg.qr(np.random.default_rng(5).normal(size=(4, 4)))[0]
    ctx = setup(tmp_path, rows(3000, T0, seed=11, encoder=Encoder(W1)), W1 @ rotation, real_mlflow)
    outcomes = validate_component(ctx, "enc")
    assert [o.model for o in outcomes] == list(MODELS)
    for o in outcomes:
        (record,) = o.signals["components"]
        assert (record["in_use"], record["newest"], record["status"], record["upstream"]) == ("1", "2", "new_version",
                                                                                              UPSTREAM)  # fmt: skip
        v = record["validation"]
        assert v["verdict"] == ComponentAction.RETRAIN_ON_TOP, v
        assert v["model_candidate"] < v["model_in_use"] - 0.1  # the model as trained reads v2 wrong
        assert abs(v["probe_candidate"] - v["probe_in_use"]) < 0.02  # v2 carries the same information
    events = [i.payload for i in ctx.store.outbox_items() if i.payload.get("type") == "component.validated"]
    assert sorted(e["model"] for e in events) == list(MODELS)
    assert {e["data"]["decision"] for e in events} == {"retrain_on_top"}
    assert all("retrain this model on top of v2" in e["data"]["summary"] for e in events)
    deliver_outbox(ctx)
    for name in MODELS:
        tags = ctx.registry.version_tags(name, "1")
        assert tags["retrain.component.enc"] == "retrain_on_top v2"
        assert tags["retrain.upstream"] == "enc v2: new_version"
    # the same version again: the checks are already done (request keys), nothing is validated twice
    assert all(o.skipped for o in validate_component(ctx, "enc"))


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (W1 + 1e-3 * np.random.default_rng(6).normal(size=(6, 4)), ComponentAction.ADOPT),  # a refresh
        (np.column_stack([np.zeros((6, 2)), W1[:, 2:]]), ComponentAction.KEEP),  # drops what the label needs
    ],
)
def test_the_verdict_says_what_the_new_version_means(
    tmp_path: Path, candidate: np.ndarray, expected: ComponentAction
) -> None:
    ctx = setup(tmp_path, rows(3000, T0, seed=11, encoder=Encoder(W1)), candidate)
    v = _validation(run_check(ctx, "m1"))
    assert v["verdict"] == expected, v
    if expected == ComponentAction.KEEP:
        assert v["probe_candidate"] < v["probe_in_use"] - 0.05 and "keep v1" in v["summary"]


def test_drift_in_the_component_output_is_reported_on_every_dependent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no new version; the inputs moved, so the embeddings the component writes moved too
    ctx = setup(tmp_path, rows(3000, T0, seed=11, encoder=Encoder(W1), raw_shift=0.8), None)
    for name in MODELS:
        out = run_check(ctx, name)
        (record,) = out.signals["components"]
        assert record["status"] == "drifted" and record["upstream"] == UPSTREAM and "validation" not in record
        assert record["embedding_drift"]["drifted"] is True and record["embedding_drift"]["method"] == "model"
        assert out.signals["drift"]["embeddings"][0]["name"] == "e"
    assert [c["column"] for c in out.signals["drift"]["columns"]] == []  # the embedding is not four columns

    monkeypatch.setattr("controller.cli.models.context", lambda config: ctx)  # the in-memory registry
    result = CliRunner().invoke(app, ["audit", "--json"])
    assert result.exit_code == 0, result.output
    (component,) = json.loads(result.stdout)["components"]
    assert component["component"] == "enc" and component["marked"] is True and component["newest"] == "1"
    assert [(d["model"], d["in_use"], d["upstream"]) for d in component["dependents"]] == [
        (name, "1", UPSTREAM) for name in MODELS
    ]
    table = CliRunner().invoke(app, ["audit"])
    assert "Shared components" in table.stdout and table.stdout.count(UPSTREAM[:20]) == 3


def test_a_stable_component_says_nothing(tmp_path: Path) -> None:
    ctx = setup(tmp_path, rows(3000, T0, seed=11, encoder=Encoder(W1)), None)
    (record,) = run_check(ctx, "m1").signals["components"]
    assert (record["status"], record["upstream"], record["embedding_drift"]["drifted"]) == ("ok", None, False)
    assert not [i for i in ctx.store.outbox_items() if i.dedupe_key.startswith(("tags:components", "webhook:comp"))]


def test_uses_is_validated_with_the_config(tmp_path: Path) -> None:
    base = {"name": "m", "registered_model": "m", "data": {"source": {"kind": "files", "path": "x"}}}
    ok = ModelConfig.model_validate({**base, "drift": {"embeddings": {"e": "e_*"}},
                                     "uses": [{"component": "enc", "version": 3, "embedding": "e"}]})  # fmt: skip
    assert ok.uses[0].version == "3" and ok.uses[0].alias == "champion"
    with pytest.raises(ValueError, match=r"'x' is not in drift\.embeddings"):
        ModelConfig.model_validate({**base, "uses": [{"component": "enc", "version": "1", "embedding": "x"}]})
    with pytest.raises(ValueError, match="listed twice"):
        ModelConfig.model_validate({**base, "uses": [{"component": "enc", "version": "1"}] * 2})
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**base, "uses": [{"component": "enc"}]}))
    from controller.config import load_model_config

    with pytest.raises(ConfigError, match=r"uses\.0\.version"):
        load_model_config(tmp_path / "m.yaml")


def test_validating_a_component_nobody_uses_is_a_user_error(tmp_path: Path) -> None:
    ctx = setup(tmp_path, rows(500, T0, seed=11, encoder=Encoder(W1)), None)
    with pytest.raises(UserError, match="no watched model uses component 'other'"):
        validate_component(ctx, "other")
