"""Prediction drift and multivariate drift by a domain classifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.drift import detect_prediction_drift
from detectors.multivariate import domain_classifier_drift
from detectors.profile import build_profile


def test_prediction_drift_on_scores_and_labels() -> None:
    rng = np.random.default_rng(0)
    ref_scores = pd.Series(rng.beta(2, 5, 3000), name="proba")
    same = detect_prediction_drift(ref_scores, pd.Series(rng.beta(2, 5, 3000), name="proba"))
    moved = detect_prediction_drift(ref_scores, pd.Series(rng.beta(3, 4, 3000), name="proba"))
    assert (same.test, same.drifted, moved.drifted) == ("wasserstein", False, True)
    labels = pd.Series(rng.choice([0, 1], 3000, p=[0.8, 0.2]), name="label")
    flipped = pd.Series(rng.choice([0, 1], 3000, p=[0.5, 0.5]), name="label")
    res = detect_prediction_drift(labels, flipped, categorical=True)
    assert (res.kind, res.test, res.drifted) == ("categorical", "jensenshannon", True)
    # from a stored profile column, as the controller does
    profile = build_profile(pd.DataFrame({"proba": ref_scores}))
    assert detect_prediction_drift(profile, pd.Series(rng.beta(3, 4, 3000), name="proba")).drifted is True


def _correlated(n: int, rho: float, rng: np.random.Generator) -> pd.DataFrame:
    u = rng.normal(size=n)
    v = rho * u + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return pd.DataFrame({"u": u, "v": v, "city": rng.choice(["a", "b", "c"], n)})


def test_domain_classifier_sees_a_joint_shift_that_no_column_shows() -> None:
    rng = np.random.default_rng(1)
    ref, same, joint = _correlated(800, 0.0, rng), _correlated(800, 0.0, rng), _correlated(800, 0.9, rng)
    from detectors.drift import detect_drift

    assert detect_drift(ref, joint).n_drifted == 0  # the margins are unchanged
    fast = {"n_permutations": 9, "alpha": 0.1, "max_rows": 800}
    calm = domain_classifier_drift(ref, same, categorical=("city",), **fast)
    alarm = domain_classifier_drift(ref, joint, categorical=("city",), **fast)
    assert calm.drifted is False and calm.auc < calm.threshold + 0.05
    assert alarm.drifted is True and alarm.auc > alarm.threshold and alarm.p_value == pytest.approx(0.1)
    assert len(alarm.null_aucs) == 9 and all(0.3 < a < 0.7 for a in alarm.null_aucs)
    assert alarm.top_columns[0][0] in {"u", "v"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"n_permutations": 0}, "n_permutations"),
        ({"columns": ["nope"]}, "not in both windows: nope"),
    ],
)
def test_domain_classifier_rejects_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    df = pd.DataFrame({"u": np.arange(20.0)})
    with pytest.raises(ValueError, match=message):
        domain_classifier_drift(df, df, **kwargs)  # type: ignore[arg-type]


def test_domain_classifier_runs_from_a_stored_profile() -> None:
    from detectors.profile import ReferenceProfile

    rng = np.random.default_rng(2)
    ref, joint = _correlated(3000, 0.0, rng), _correlated(800, 0.9, rng)
    profile = ReferenceProfile.from_bytes(build_profile(ref, categorical=("city",), sample_rows=800).to_bytes())
    assert profile.row_sample is not None and profile.row_sample.shape == (800, 3)
    assert profile.row_sample["city"].isin(["a", "b", "c"]).all()
    fast = {"n_permutations": 9, "alpha": 0.1, "max_rows": 800}
    from_profile = domain_classifier_drift(profile, joint, **fast)
    from_rows = domain_classifier_drift(profile.row_sample, joint, categorical=("city",), **fast)
    assert from_profile == from_rows and from_profile.drifted is True
    with pytest.raises(ValueError, match="no row sample"):
        domain_classifier_drift(build_profile(ref, sample_rows=0), joint)
