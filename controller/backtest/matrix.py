"""The error matrix: every candidate model fitted once and scored on every chunk it could serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier

from controller.backtest.data import BacktestConfig, ModelKind, Progress, Stream, make_model
from controller.errors import DataError
from detectors.drift import DriftOptions, detect_drift


def train_window(t: int, initial_chunks: int, window: int, label_delay: int) -> tuple[int, int]:
    """Chunks ``[start, stop)`` a model serving from chunk ``t`` is fitted on.

    >>> train_window(5, 5, 3, 0), train_window(9, 5, 3, 2), train_window(6, 5, 8, 1)
    ((0, 5), (4, 7), (0, 5))
    """
    if t == initial_chunks:
        return 0, initial_chunks
    stop = t - label_delay
    return max(0, stop - window), stop


@dataclass(frozen=True)
class ErrorMatrix:
    """``errors[s, c]``: summed error of the model that starts serving at ``s`` on chunk ``c >= s``.

    Row ``K`` is the first model; rows ``K+1..T-1`` are retrains. ``squares`` holds the summed
    squared per-row errors, for intervals; ``drift[s, c]`` the share of drifted columns of chunk
    ``c`` against model ``s``'s training window (only ``c = t - 1`` for decisions at ``t`` is used).
    """

    errors: np.ndarray
    squares: np.ndarray
    drift_share: np.ndarray
    dataset_drift: np.ndarray
    initial_chunks: int
    chunk_rows: int
    proba: dict[int, np.ndarray] = field(default_factory=dict)
    """Classification: model ``s``'s class probabilities on rows of chunks ``s..T-1``, for label-free estimates."""
    reference: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Classification: model ``s``'s probabilities and the labels on its training window (CBPE's reference)."""
    label_free: dict[int, Any] = field(default_factory=dict, compare=False)
    """The replay's fitted estimator per model (a cache: the matrix is priced at several costs)."""
    estimates: dict[tuple[int, int], Any] = field(default_factory=dict, compare=False)
    """The replay's estimate per (model, chunk) (a cache, as above)."""

    @property
    def chunks(self) -> int:
        return int(self.errors.shape[1])


def error_matrix(
    stream: Stream, cfg: BacktestConfig, drift_threshold: float = 0.5, progress: Progress | None = None
) -> ErrorMatrix:
    """Fit every candidate model once and score it on every chunk it could serve."""
    k, t_end = cfg.initial_chunks, stream.chunks
    if t_end <= k:
        raise DataError(
            f"{len(stream.features)} rows make {t_end} chunks of {cfg.chunk_rows}: need more than "
            f"--initial-chunks={k} (lower --chunk-rows or --initial-chunks)"
        )
    errors = np.full((t_end, t_end), np.nan)
    squares = np.full((t_end, t_end), np.nan)
    drift_share = np.full((t_end, t_end), np.nan)
    dataset_drift = np.zeros((t_end, t_end), dtype=bool)
    proba: dict[int, np.ndarray] = {}
    reference: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    numeric = [c for c in stream.features.columns if c not in stream.categorical]
    starts = range(k, t_end)
    for i, s in enumerate(starts):
        lo, hi = train_window(s, k, cfg.window, cfg.label_delay)
        x_train, y_train = stream.features.iloc[stream.rows(lo, hi)], stream.target[stream.rows(lo, hi)]
        model = _fit(cfg.model, stream, x_train, y_train, numeric)
        x_rest = stream.features.iloc[stream.rows(s, t_end)]
        pred = model.predict(x_rest)
        if stream.task == "classification" and len(getattr(model, "classes_", ())) >= 2:
            proba[s] = model.predict_proba(x_rest)
            reference[s] = (model.predict_proba(x_train), y_train)
        y_rest = stream.target[stream.rows(s, t_end)]
        if stream.task == "classification":
            per_row = (pred != y_rest).astype(float)
        else:
            per_row = np.abs(pred.astype(float) - y_rest)
        per_chunk = per_row.reshape(t_end - s, cfg.chunk_rows)
        errors[s, s:] = per_chunk.sum(axis=1)
        squares[s, s:] = (per_chunk**2).sum(axis=1)
        # the decision at t+1 looks at chunk t's inputs against the model serving at t
        for c in range(s, t_end - 1):
            chunk = stream.features.iloc[stream.rows(c, c + 1)]
            share, drifted = _drift(x_train, chunk, stream, drift_threshold, dict(cfg.embeddings))
            drift_share[s, c], dataset_drift[s, c] = share, drifted
        if progress is not None:
            progress(i + 1, len(starts))
    return ErrorMatrix(errors, squares, drift_share, dataset_drift, k, cfg.chunk_rows, proba, reference)


def _fit(kind: ModelKind, stream: Stream, x: pd.DataFrame, y: np.ndarray, numeric: list[str]) -> Any:
    if stream.task == "classification" and len(np.unique(y)) < 2:
        # one class in the window: predict it (a real trainer would fail or do the same)
        return DummyClassifier(strategy="most_frequent").fit(x, y)
    return make_model(kind, stream.task, stream.categorical, numeric).fit(x, y)


def _drift(
    reference: pd.DataFrame, current: pd.DataFrame, stream: Stream, threshold: float, embeddings: dict[str, str]
) -> tuple[float, bool]:
    """Share of drifted columns and the dataset verdict of the service's drift detector (each
    embedding counts as one column there, as in a check)."""
    options = DriftOptions(categorical=stream.categorical, drift_share=threshold, embeddings=embeddings)
    report = detect_drift(reference, current, options)
    return float(report.drift_share), bool(report.drifted)
