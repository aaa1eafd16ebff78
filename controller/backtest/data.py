"""The backtest's input: a labelled table in time order, validated and cut into chunks; its settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from controller.errors import DataError, UserError

ModelKind = Literal["logistic", "hgb"]


Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while the candidate models are fitted and scored."""


@dataclass(frozen=True)
class BacktestConfig:
    """The backtest's knobs, in chunks and money (see the module docstring)."""

    chunk_rows: int
    initial_chunks: int
    window: int
    retrain_cost: float
    error_cost: float
    label_delay: int = 0
    model: ModelKind = "logistic"
    retire_at: int | None = None
    """A planned retirement at this chunk (the model config's ``retire_on``); None: open-ended."""
    embeddings: tuple[tuple[str, str], ...] = ()
    """(name, spec) pairs: groups of feature columns the drift policies test as one embedding each."""

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise UserError(f"--chunk-rows must be at least 1, got {self.chunk_rows}")
        if self.initial_chunks < 1:
            raise UserError(f"--initial-chunks must be at least 1, got {self.initial_chunks}")
        if self.window < 1:
            raise UserError(f"--window must be at least 1, got {self.window}")
        if not (math.isfinite(self.retrain_cost) and self.retrain_cost >= 0):
            raise UserError(f"--retrain-cost must be a non-negative number, got {self.retrain_cost}")
        if not (math.isfinite(self.error_cost) and self.error_cost >= 0):
            raise UserError(f"--error-cost must be a non-negative number, got {self.error_cost}")
        if not 0 <= self.label_delay < self.initial_chunks:
            raise UserError(
                f"--label-delay must be in [0, --initial-chunks), got {self.label_delay}: "
                "a retrain needs at least one labelled chunk"
            )
        if self.retire_at is not None and self.retire_at <= self.initial_chunks:
            raise UserError(f"--retire-at must come after --initial-chunks={self.initial_chunks}, got {self.retire_at}")
        if self.model not in ("logistic", "hgb"):
            raise UserError(f"--model must be logistic or hgb, got {self.model!r}")


@dataclass(frozen=True)
class Stream:
    """The prepared input: features and target in time order, cut into chunks."""

    features: pd.DataFrame
    target: np.ndarray
    categorical: tuple[str, ...]
    task: Literal["classification", "regression"]
    chunk_rows: int
    chunks: int

    def rows(self, start: int, stop: int) -> slice:
        return slice(start * self.chunk_rows, stop * self.chunk_rows)


def prepare(
    data: pd.DataFrame,
    target: str,
    chunk_rows: int,
    time_column: str | None = None,
    categorical: Sequence[str] = (),
    task_rows: int | None = None,
) -> Stream:
    """Validate and order the data; raise a one-line :class:`DataError` for anything unusable.

    ``task_rows``: the task (classification, or regression for a numeric target with more than 20
    distinct values) is decided on these first rows only, the ones the first model is fitted on.
    """
    if target not in data.columns:
        raise DataError(f"target column {target!r} not found; columns are: {', '.join(map(str, data.columns))}")
    if time_column is not None:
        if time_column not in data.columns:
            raise DataError(f"time column {time_column!r} not found; columns are: {', '.join(map(str, data.columns))}")
        data = data.sort_values(time_column, kind="stable")
    missing = [c for c in categorical if c not in data.columns]
    if missing:
        raise DataError(f"categorical column(s) not found: {', '.join(missing)}")
    if data[target].isna().any():
        raise DataError(f"target column {target!r} has {int(data[target].isna().sum())} missing values")
    features = data.drop(columns=[c for c in (target, time_column) if c is not None]).reset_index(drop=True)
    if features.shape[1] == 0:
        raise DataError("no feature columns left besides the target and time columns")
    cats = list(dict.fromkeys([*categorical, *(c for c in features.columns if not is_numeric(features[c]))]))
    for c in cats:
        features[c] = features[c].astype(str)
    y_raw = data[target].to_numpy()
    # the task is read off the rows the first model sees: what comes later must not decide it
    seen = pd.Series(y_raw[:task_rows] if task_rows is not None else y_raw)
    if is_numeric(data[target]) and seen.nunique() > 20 and not pd.api.types.is_bool_dtype(data[target]):
        task: Literal["classification", "regression"] = "regression"
        y = y_raw.astype(float)
    else:
        task = "classification"
        y = y_raw.astype(str)
    chunks = len(features) // chunk_rows
    return Stream(features, y, tuple(cats), task, chunk_rows, chunks)


def is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def make_model(kind: ModelKind, task: str, categorical: Sequence[str], numeric: Sequence[str]) -> Pipeline:
    """The estimator a retrain fits: one-hot categoricals and scaled numbers, then the learner."""
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
            # production data has gaps: a median fill keeps a missing number from failing the fit
            ("num", Pipeline([("fill", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), list(numeric)),
        ]
    )
    learner: BaseEstimator
    if kind == "logistic":
        learner = LogisticRegression(max_iter=1000) if task == "classification" else Ridge()
    else:
        learner = (
            HistGradientBoostingClassifier(random_state=0)
            if task == "classification"
            else HistGradientBoostingRegressor(random_state=0)
        )
    return Pipeline([("encode", encode), ("learn", learner)])


def load_table(location: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (a path, or a URL of one object); a missing or unreadable file is
    a one-line DataError."""
    from controller.adapters.objectstore import local_copy

    with local_copy(location, "data file") as path:
        return _load_table(path)


def _load_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read as {'Parquet' if path.suffix == '.parquet' else 'CSV'} ({exc})") from None
