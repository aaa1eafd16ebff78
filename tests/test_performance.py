"""Realized metrics: agreement with scikit-learn, honest intervals, late and partial labels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from detectors.performance import baseline_metrics, class_codes, join_labels, realized_performance


def _binary(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    p[: n // 5] = np.round(p[: n // 5], 1)  # ties exercise the tie handling of AUC and AP
    y = (rng.uniform(size=n) < p).astype(int)
    return p, y


def test_binary_point_values_match_sklearn() -> None:
    p, y = _binary(3000)
    pred = (p >= 0.5).astype(int)
    got = baseline_metrics(y, proba=p)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p))


def test_multiclass_point_values_match_sklearn_with_string_labels() -> None:
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=2000)
    y_idx = np.array([rng.choice(3, p=row) for row in proba])
    classes = ["bird", "cat", "dog"]
    y = np.array(classes, dtype=object)[y_idx]
    got = baseline_metrics(y, proba=proba, classes=classes)
    pred = proba.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_idx, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y_idx, pred, average="macro"))
    assert got["precision"] == pytest.approx(skm.precision_score(y_idx, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y_idx, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_idx, proba, multi_class="ovr"))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(np.eye(3)[y_idx], proba))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_idx, proba))
    assert got["recall[cat]"] == pytest.approx(skm.recall_score(y_idx, pred, average=None)[1])


def test_regression_point_values_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 2, size=1000)
    pred = y + rng.normal(0, 1, size=1000)
    got = baseline_metrics(y, pred, task="regression")
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_bootstrap_interval_covers_the_truth_at_about_its_level() -> None:
    # The true accuracy of "predict 1 when p >= 0.5" with p ~ U(0, 1) is 0.75.
    hits = 0
    for seed in range(60):
        p, y = _binary(1000, seed=100 + seed)
        m = realized_performance(y, proba=p, metrics=["accuracy"], n_boot=200, seed=seed).metrics["accuracy"]
        assert m.lower is not None and m.upper is not None
        hits += m.lower <= 0.75 <= m.upper
    assert 0.78 <= hits / 60 <= 0.98


def test_ten_percent_of_labels_is_wide_or_insufficient_never_falsely_precise() -> None:
    p, y = _binary(5000)
    full = realized_performance(y, proba=p, min_samples=200).metrics["accuracy"]
    y_late = y.astype(float)
    y_late[np.random.default_rng(3).uniform(size=5000) > 0.1] = np.nan  # 10% of labels arrived
    part = realized_performance(y_late, proba=p, min_samples=200)
    assert part.coverage == pytest.approx(0.1, abs=0.02)
    m = part.metrics["accuracy"]
    assert m.status == "ok" and m.lower is not None and m.upper is not None
    assert full.lower is not None and full.upper is not None
    assert (m.upper - m.lower) > 2.5 * (full.upper - full.lower)
    scarce = realized_performance(y_late, proba=p, min_samples=1000).metrics["accuracy"]
    assert scarce.status == "insufficient" and scarce.value is None and scarce.lower is None


def test_n_total_sets_coverage_when_only_labeled_rows_are_passed() -> None:
    p, y = _binary(400)
    rep = realized_performance(y, proba=p, n_total=1000, n_boot=20)
    assert rep.n_labeled == 400 and rep.coverage == pytest.approx(0.4)
    with pytest.raises(ValueError, match="n_total"):
        realized_performance(y, proba=p, n_total=10)


def test_single_class_window_reports_auc_as_insufficient_not_a_number() -> None:
    p = np.linspace(0.01, 0.99, 300)
    rep = realized_performance(np.ones(300, dtype=int), proba=p, n_boot=50)
    assert rep.metrics["roc_auc"].status == "insufficient"
    assert rep.metrics["accuracy"].status == "ok"


def test_rejects_bad_arguments() -> None:
    p, y = _binary(300)
    with pytest.raises(ValueError, match="unknown metric"):
        realized_performance(y, proba=p, metrics=["nonsense"])
    with pytest.raises(ValueError, match="probabilities"):
        realized_performance(y, y_pred=(p > 0.5).astype(int), metrics=["roc_auc"])
    with pytest.raises(ValueError, match="rows"):
        realized_performance(y[:10], proba=p)
    with pytest.raises(ValueError, match="task"):
        realized_performance(y, proba=p, task="ranking")  # type: ignore[arg-type]


def test_join_labels_respects_arrival_time_and_delay() -> None:
    t0 = pd.Timestamp("2026-11-01")
    preds = pd.DataFrame({"id": [1, 2, 3, 4], "ts": [t0, t0, t0 + timedelta(days=6), t0 + timedelta(days=6)]})
    labels = pd.DataFrame(
        {"id": [1, 2, 3, 3], "target": [1, 0, 1, 0], "arrived": [t0 + timedelta(days=2), t0 + timedelta(days=9)] * 2}
    )
    as_of = t0 + timedelta(days=7)
    got = join_labels(preds, labels, as_of=as_of, label_time_col="arrived")
    assert got["target"].tolist()[:3] == [1.0, pytest.approx(np.nan, nan_ok=True), 1.0]
    delayed = join_labels(
        preds, labels, as_of=as_of, label_time_col="arrived", prediction_time_col="ts", label_delay=timedelta(days=3)
    )
    assert delayed["target"].notna().tolist() == [True, False, False, False]


def test_a_window_with_no_labels_yet_is_insufficient_not_an_error() -> None:
    y = np.full(500, np.nan)
    rep = realized_performance(y, y_pred=np.array(["yes"] * 500, dtype=object), min_samples=200)
    assert rep.n_labeled == 0 and rep.coverage == 0.0
    assert {m.status for m in rep.metrics.values()} == {"insufficient"} and "accuracy" in rep.metrics
    with pytest.raises(ValueError, match="unknown metric"):
        realized_performance(y, y_pred=np.zeros(500), metrics=["nonsense"])


def test_class_codes_match_a_dict_lookup_whatever_the_value_types() -> None:
    cases: list[tuple[list[Any], list[Any]]] = [
        ([0, 1, 1, 0], [0, 1]),
        ([0.0, 1.0, 1.0], [0, 1]),
        ([True, False, True], [0, 1]),  # equal to a class, another type: the dict decides
        (["b", "a", "c"], ["a", "b", "c"]),
        ([], ["a", "b"]),
    ]
    for values, classes in cases:
        code = {c: i for i, c in enumerate(classes)}
        assert class_codes(np.array(values, dtype=object), classes).tolist() == [code[v] for v in values]
        assert class_codes(values, classes).dtype == np.int64
    with pytest.raises(KeyError) as err:
        class_codes(np.array(["a", "z"]), ["a", "b"])
    assert err.value.args[0] == "z"
