"""Trainers shipped with the controller. A model's config names its trainer as ``module:function``.

A trainer is called as ``fn(train, features=[...], target="label", **params)`` with the labeled
training rows and returns a fitted scikit-learn estimator (``predict``, and ``predict_proba``
for classifiers). Only config files name trainers: code is never taken from an MLflow tag.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from controller.errors import UserError

Trainer = Callable[..., Any]


def import_trainer(path: str) -> Trainer:
    """Import ``package.module:function``; a clear UserError when it does not exist."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"trainer {path!r}: cannot import module {module_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"trainer {path!r}: {module_name} has no function {attr!r}")
    return fn


def _split(train: pd.DataFrame, features: Sequence[str]) -> tuple[list[str], list[str]]:
    numeric = [
        c for c in features if pd.api.types.is_numeric_dtype(train[c]) and not pd.api.types.is_bool_dtype(train[c])
    ]
    categorical = [c for c in features if c not in numeric]
    return numeric, categorical


def _encoder(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )


def sklearn_classifier(
    train: pd.DataFrame,
    features: Sequence[str],
    target: str,
    model: str = "logistic",
    C: float = 1.0,
    max_iter: int = 1000,
    random_state: int = 0,
) -> Pipeline:
    """One-hot for categoricals, scaling for numbers, then LogisticRegression (or HGB)."""
    numeric, categorical = _split(train, features)
    clf: Any
    if model == "hgb":
        clf = HistGradientBoostingClassifier(random_state=random_state)
    else:
        clf = LogisticRegression(C=C, max_iter=max_iter)
    pipe = Pipeline([("encode", _encoder(numeric, categorical)), ("model", clf)])
    return pipe.fit(train[list(features)], train[target])


def sklearn_regressor(
    train: pd.DataFrame,
    features: Sequence[str],
    target: str,
    model: str = "ridge",
    alpha: float = 1.0,
    random_state: int = 0,
) -> Pipeline:
    """Scaling and one-hot, then Ridge (or HGB) regression."""
    numeric, categorical = _split(train, features)
    reg: Any = HistGradientBoostingRegressor(random_state=random_state) if model == "hgb" else Ridge(alpha=alpha)
    pipe = Pipeline([("encode", _encoder(numeric, categorical)), ("model", reg)])
    return pipe.fit(train[list(features)], train[target])
