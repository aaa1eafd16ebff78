"""A model version's baseline: the reference profile of its training inputs, its metrics and scores
on a labeled holdout; and the helpers that score a model on labeled rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from controller.adapters.registry.base import Baseline
from controller.adapters.scoring import sklearn_scores
from controller.config import (
    ModelConfig,
)
from detectors.performance import baseline_metrics, realized_performance
from detectors.profile import build_profile


# helpers shared by checks, retrains and the demo
def features_of(cfg: ModelConfig, columns: Sequence[str]) -> list[str]:
    """The model's input columns: from config, else every column that is not bookkeeping."""
    if cfg.features:
        return list(cfg.features)
    skip = {cfg.data.id_column, cfg.data.time_column, cfg.data.label_column, cfg.prediction_column, cfg.target}
    skip.update(cfg.proba_columns)
    return [c for c in columns if c not in skip]


def primary_metric(cfg: ModelConfig) -> str:
    if cfg.economics is not None:
        return cfg.economics.metric
    return "accuracy" if cfg.task == "classification" else "mae"


def scores_frame(y_true: Any, pred: np.ndarray, proba: np.ndarray | None, classes: Sequence[Any]) -> pd.DataFrame:
    out = pd.DataFrame({"y_true": np.asarray(y_true), "y_pred": pred})
    if proba is not None:
        for i, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, i]
    return out


def _proba_for_metrics(proba: np.ndarray | None) -> np.ndarray | None:
    """Binary problems use the positive-class column; multiclass the full matrix."""
    return None if proba is None else _positive(proba)


def _positive(proba: np.ndarray) -> np.ndarray:
    return proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba


def build_baseline(
    cfg: ModelConfig, model: Any, reference: pd.DataFrame, holdout: pd.DataFrame, features: Sequence[str]
) -> Baseline:
    """Reference profile of the training inputs, metrics and scores on a labeled holdout."""
    profile = build_profile(reference[list(features)], categorical=tuple(cfg.drift.categorical),
                            embeddings=cfg.drift.embeddings, text=cfg.drift.text)  # fmt: skip
    pred, proba = sklearn_scores(model, holdout, features)
    y = holdout[cfg.data.label_column].to_numpy()
    classes = list(getattr(model, "classes_", []))
    metrics = baseline_metrics(y, pred, _proba_for_metrics(proba), cfg.task)
    scores = scores_frame(y, pred, proba, classes)
    if cfg.task == "regression":
        # The direct-loss estimator learns the error from the inputs, so the reference keeps them.
        scores = pd.concat([holdout[list(features)].reset_index(drop=True), scores], axis=1)
        scores = scores.sample(n=min(len(scores), 20_000), random_state=0) if len(scores) > 20_000 else scores
    return Baseline(profile.to_bytes(), profile.content_hash, metrics, scores)


def metric_on(cfg: ModelConfig, model: Any, rows: pd.DataFrame, features: Sequence[str], metric: str) -> float | None:
    pred, proba = sklearn_scores(model, rows, features)
    rep = realized_performance(
        rows[cfg.data.label_column].to_numpy(),
        pred,
        _proba_for_metrics(proba),
        task=cfg.task,
        metrics=[metric],
        n_boot=0,
        min_samples=1,
    )
    return rep.metrics[metric].value
