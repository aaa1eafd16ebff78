"""The numpy scorer gives what scikit-learn gives, or steps aside."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from controller.adapters.scoring import LinearScorer, Scorer, sklearn_scores
from controller.adapters.trainers import sklearn_classifier

FEATURES = ["x0", "x1", "x2", "c0", "c1"]


def _frame(n: int, seed: int, classes: int = 2, cats: tuple[str, ...] = ("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(0, 1, (n, 3)), columns=["x0", "x1", "x2"])
    df["c0"] = rng.choice(list(cats), n)
    df["c1"] = rng.choice(["u", "v"], n)
    logit = df["x0"] - df["x1"] + (df["c0"] == "a") * 0.8
    df["label"] = np.digitize(logit + rng.normal(0, 0.5, n), np.linspace(-1, 1, classes - 1))
    return df


@pytest.mark.parametrize("classes", [2, 3])
def test_matches_scikit_learn_with_unseen_categories(classes: int) -> None:
    model = sklearn_classifier(_frame(2000, 0, classes), FEATURES, "label")
    window = _frame(3000, 1, classes, cats=("a", "b", "c", "new"))  # "new" was never trained on
    scorer = Scorer(model)
    assert scorer.fast is not None
    pred, proba = scorer(window, FEATURES)
    want_pred, want_proba = sklearn_scores(model, window, FEATURES)
    assert scorer.verified and scorer.fast is not None
    np.testing.assert_array_equal(pred, want_pred)
    assert want_proba is not None and proba is not None
    np.testing.assert_allclose(proba, want_proba, rtol=0, atol=1e-12)


def test_string_labels_and_only_numbers_or_only_categories() -> None:
    df = _frame(1500, 2)
    df["label"] = np.where(df["label"] == 1, "yes", "no")
    for numeric, categorical in ((["x0", "x1"], []), ([], ["c0", "c1"])):
        steps = []
        if numeric:
            steps.append(("num", StandardScaler(with_mean=False), numeric))
        if categorical:
            steps.append(("cat", OneHotEncoder(handle_unknown="ignore"), categorical))
        model = Pipeline([("encode", ColumnTransformer(steps)), ("model", LogisticRegression())])
        model.fit(df[numeric + categorical], df["label"])
        fast = LinearScorer.from_model(model)
        assert fast is not None
        got = fast.scores(df)
        assert got is not None
        want = sklearn_scores(model, df, numeric + categorical)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12)


def test_other_models_and_encoders_go_through_scikit_learn() -> None:
    df = _frame(800, 3)
    hgb = sklearn_classifier(df, FEATURES, "label", model="hgb")
    assert LinearScorer.from_model(hgb) is None
    passthrough = Pipeline(
        [
            (
                "encode",
                ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["c0"])], remainder="passthrough"),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(df[[*FEATURES[:3], "c0"]], df["label"])
    assert LinearScorer.from_model(passthrough) is None
    dropped = Pipeline(
        [("encode", ColumnTransformer([("cat", OneHotEncoder(drop="first"), ["c0"])])), ("model", LogisticRegression())]
    ).fit(df[["c0"]], df["label"])
    assert LinearScorer.from_model(dropped) is None
    assert LinearScorer.from_model(LogisticRegression().fit(df[["x0"]], df["label"])) is None
    scorer = Scorer(hgb)
    np.testing.assert_array_equal(scorer(df, FEATURES)[0], sklearn_scores(hgb, df, FEATURES)[0])


def test_missing_numbers_get_scikit_learns_own_error() -> None:
    model = sklearn_classifier(_frame(500, 4), FEATURES, "label")
    window = _frame(300, 5)
    window.loc[7, "x1"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Scorer(model)(window, FEATURES)


def test_a_scorer_that_does_not_reproduce_the_model_is_dropped_at_its_first_window() -> None:
    model = sklearn_classifier(_frame(1000, 6), FEATURES, "label")
    scorer = Scorer(model)
    assert scorer.fast is not None
    scorer.fast = replace(scorer.fast, intercept=scorer.fast.intercept + 0.5)  # a wrong parameter
    window = _frame(500, 7)
    pred, proba = scorer(window, FEATURES)
    assert scorer.fast is None
    want_pred, want_proba = sklearn_scores(model, window, FEATURES)
    np.testing.assert_array_equal(pred, want_pred)
    np.testing.assert_array_equal(proba, want_proba)


def test_the_checks_own_factorization_of_text_columns_gives_the_same_scores() -> None:
    from detectors.profile import CurrentWindow

    model = sklearn_classifier(_frame(2000, 0), FEATURES, "label")
    window = _frame(3000, 2, cats=("a", "b", "c", "new"))
    window.loc[::7, "c1"] = None  # nulls and an unseen category both get no category weight
    want_pred, want_proba = sklearn_scores(model, window, FEATURES)
    columns = CurrentWindow(window[FEATURES])
    scorer = Scorer(model)
    pred, proba = scorer(window, FEATURES, columns.factorized)
    assert scorer.verified and scorer.fast is not None
    assert columns.column("c0").factorized is not None, "the codes came from the window"
    np.testing.assert_array_equal(pred, want_pred)
    assert proba is not None and want_proba is not None
    np.testing.assert_allclose(proba, want_proba, rtol=0, atol=1e-12)
    short = CurrentWindow(window[FEATURES].iloc[:10])  # codes of another length are not used
    assert np.array_equal(scorer(window, FEATURES, short.factorized)[0], want_pred)


def test_category_positions_are_pandas_own_lookup() -> None:
    from controller.adapters.scoring import _positions

    index = pd.Index(["a", "b", "c"])
    for labels in (["c", "new", "a"], ["b"], [], ["a", 1], [None, "a"]):
        values = np.array(labels, dtype=object)
        np.testing.assert_array_equal(_positions(index, values), index.get_indexer(values))
    numbers = pd.Index([1, 2, 3])
    np.testing.assert_array_equal(_positions(numbers, np.array([3, 9])), [2, -1])
