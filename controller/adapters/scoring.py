"""Scoring a window with the model: scikit-learn, or the same linear model in a few numpy lines.

A check scores every row of its window (10,000 rows is typical). For the most common production
pipeline, ``ColumnTransformer(StandardScaler, OneHotEncoder) -> LogisticRegression`` (what
``controller.trainers.sklearn_classifier`` trains), scikit-learn spends most of that time on
validating and copying the frame and on one-hot encoding strings. :class:`LinearScorer` computes
the same decision function straight from the fitted parameters: the scaled numbers times their
weights, plus one weight looked up per category. It is used only after it has reproduced the
pipeline's own probabilities on the first rows it scores; any other model, or any input it would
treat differently (missing numbers, which scikit-learn rejects), goes through scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

VERIFY_ROWS = 256


Factorized = Callable[[str], "tuple[np.ndarray, np.ndarray] | None"]
"""A column's ``pd.factorize`` (codes, labels) by name, or None when the caller has none for it."""


def sklearn_scores(model: Any, df: pd.DataFrame, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and (for classifiers) class probabilities of ``model`` on ``df``."""
    if df.empty:
        return np.array([]), None
    X = df[list(features)]
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        # What Pipeline.predict and predict_proba each do, with the inputs transformed once.
        model, X = model.steps[-1][1], model[:-1].transform(X)
    pred = np.asarray(model.predict(X))
    proba = np.asarray(model.predict_proba(X)) if hasattr(model, "predict_proba") else None
    return pred, proba


@dataclass(frozen=True)
class LinearScorer:
    """``Pipeline([ColumnTransformer([StandardScaler, OneHotEncoder]), LogisticRegression])`` as arrays."""

    numeric: tuple[str, ...]
    mean: np.ndarray  # per numeric column (0 when the scaler does not centre)
    scale: np.ndarray  # per numeric column (1 when it does not scale)
    numeric_weights: np.ndarray  # (n_numeric, n_outputs)
    categorical: tuple[tuple[str, pd.Index, np.ndarray], ...]  # column, categories, weights (n_cat + 1, k)
    intercept: np.ndarray  # (n_outputs,)
    classes: np.ndarray

    @classmethod
    def from_model(cls, model: Any) -> LinearScorer | None:
        """The scorer of ``model``, or None when it is not a pipeline of that exact shape."""
        if not (isinstance(model, Pipeline) and len(model.steps) == 2):
            return None
        encode, clf = model.steps[0][1], model.steps[1][1]
        if not isinstance(encode, ColumnTransformer) or type(clf) is not LogisticRegression:
            return None
        if encode.remainder != "drop":
            return None
        coef = np.asarray(clf.coef_, dtype=np.float64).T  # (n_features_out, n_outputs)
        numeric: list[str] = []
        means: list[np.ndarray] = []
        scales: list[np.ndarray] = []
        num_rows: list[np.ndarray] = []
        categorical: list[tuple[str, pd.Index, np.ndarray]] = []
        at = 0
        for _, step, columns in encode.transformers_:
            if step == "drop" or len(columns) == 0:
                continue
            if not all(isinstance(c, str) for c in columns):
                return None
            if type(step) is StandardScaler:
                n = len(columns)
                numeric.extend(columns)
                means.append(step.mean_ if step.with_mean else np.zeros(n))
                scales.append(step.scale_ if step.with_std else np.ones(n))
                num_rows.append(coef[at : at + n])
                at += n
            elif type(step) is OneHotEncoder and _plain_one_hot(step):
                for column, cats in zip(columns, step.categories_, strict=True):
                    index = pd.Index(cats)
                    if index.hasnans or not index.is_unique:
                        return None
                    # row -1 (an unseen category) gets zero weight, as handle_unknown="ignore" does
                    weights = np.vstack([coef[at : at + len(cats)], np.zeros((1, coef.shape[1]))])
                    categorical.append((column, index, weights))
                    at += len(cats)
            else:
                return None
        if at != coef.shape[0]:
            return None
        k = coef.shape[1]
        return cls(
            numeric=tuple(numeric),
            mean=np.concatenate(means) if means else np.zeros(0),
            scale=np.concatenate(scales) if scales else np.ones(0),
            numeric_weights=np.vstack(num_rows) if num_rows else np.zeros((0, k)),
            categorical=tuple(categorical),
            intercept=np.asarray(clf.intercept_, dtype=np.float64),
            classes=np.asarray(clf.classes_),
        )

    def decision(self, df: pd.DataFrame, factorized: Factorized | None = None) -> np.ndarray | None:
        """The decision function (n_rows, n_outputs); None when a number is missing.

        ``factorized(column)``: the column's ``pd.factorize`` (codes, labels) when the caller has
        it already (a check's quality and drift tests factorize every text column), so the
        categories are looked up once per label instead of once per row."""
        z = np.broadcast_to(self.intercept, (len(df), len(self.intercept))).copy()
        if self.numeric:
            # column by column: a window read with a block per column (split_blocks) would
            # otherwise be interleaved row by row, five times slower
            x = np.empty((len(df), len(self.numeric)), dtype=np.float64)
            for j, column in enumerate(self.numeric):
                x[:, j] = df[column].to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(x).any():
                return None  # scikit-learn refuses missing numbers: let it say so
            np.subtract(x, self.mean, out=x)  # in place: the same values as (x - mean) / scale,
            np.divide(x, self.scale, out=x)  # without two more matrices of the window's size
            z += x @ self.numeric_weights
        for column, index, weights in self.categorical:
            known = factorized(column) if factorized is not None else None
            if known is not None and len(known[0]) == len(df):
                codes, labels = known
                rows = np.append(_positions(index, labels), -1)[codes]  # a null (-1) stays -1: zero weight
            else:
                rows = index.get_indexer(df[column].to_numpy())
            z += weights[rows]
        return z

    def scores(self, df: pd.DataFrame, factorized: Factorized | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        z = self.decision(df, factorized)
        if z is None:
            return None
        if len(self.classes) == 2:
            p1 = expit(z[:, 0])
            proba = np.column_stack([1.0 - p1, p1])
            pred = self.classes[(z[:, 0] > 0).astype(int)]
        else:
            proba = softmax(z, axis=1)
            pred = self.classes[proba.argmax(axis=1)]
        return pred, proba


def _positions(index: pd.Index, labels: np.ndarray) -> np.ndarray:
    """``index.get_indexer(labels)`` (-1 for a label not in it): through a dict when both hold a
    few strings (a window's categories), where building pandas' hash table costs 40 times more."""
    if len(labels) <= 256 and index.dtype == object:
        keys, wanted = index.tolist(), labels.tolist()
        if all(type(v) is str for v in keys) and all(type(v) is str for v in wanted):
            at = {v: i for i, v in enumerate(keys)}
            return np.array([at.get(v, -1) for v in wanted], dtype=np.intp)
    return index.get_indexer(labels)


def _plain_one_hot(enc: OneHotEncoder) -> bool:
    """One column per category, unseen categories ignored, nothing dropped or grouped."""
    return (
        enc.handle_unknown == "ignore"
        and enc.drop is None
        and getattr(enc, "infrequent_categories_", None) is None
        and enc.min_frequency is None
        and enc.max_categories is None
    )


class Scorer:
    """Scores with :class:`LinearScorer` where it applies and has matched scikit-learn, else with
    scikit-learn. One per model version and process."""

    def __init__(self, model: Any, tolerance: float = 1e-9) -> None:
        self.model = model
        self.fast = LinearScorer.from_model(model)
        self.tolerance = tolerance
        self.verified = False

    def __call__(
        self, df: pd.DataFrame, features: Sequence[str], factorized: Factorized | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.fast is None or df.empty:
            return sklearn_scores(self.model, df, features)
        if not self.verified:
            head = df.iloc[:VERIFY_ROWS]
            got, want = self.fast.scores(head), sklearn_scores(self.model, head, features)
            if got is None:
                return sklearn_scores(self.model, df, features)
            if (
                want[1] is None
                or not np.array_equal(got[0], want[0])
                or not np.allclose(got[1], want[1], rtol=0, atol=self.tolerance)
            ):
                self.fast = None  # it does not reproduce this model: never use it again
                return sklearn_scores(self.model, df, features)
            self.verified = True
        out = self.fast.scores(df, factorized)
        return out if out is not None else sklearn_scores(self.model, df, features)
