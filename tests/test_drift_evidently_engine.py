"""The evidently engine: evidently's own numbers in our result type, robust to bad columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from detectors.drift import DriftOptions, detect_drift
from detectors.evidently_engine import run_evidently
from detectors.profile import build_profile


def _windows() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 800), "k": np.full(800, 2.0), "c": rng.choice(["a", "b"], 800),
                        "dead": np.full(800, np.nan), "gone": rng.normal(0, 1, 800)})  # fmt: skip
    cur = pd.DataFrame({"x": rng.normal(0.5, 1, 700), "k": np.full(700, 2.0), "c": rng.choice(["a", "b"], 700),
                        "dead": np.full(700, np.nan)})  # fmt: skip
    return ref, cur


def test_evidently_engine_equals_native_and_keeps_statuses(tmp_path: Path) -> None:
    ref, cur = _windows()
    options = DriftOptions(engine="evidently")
    ev = run_evidently(ref, cur, options).report
    native = detect_drift(ref, cur, DriftOptions())
    assert ev.engine == "evidently" and native.engine == "native"
    assert [(c.column, c.test, c.status, c.drifted) for c in ev.columns] == [
        (c.column, c.test, c.status, c.drifted) for c in native.columns
    ]
    assert {c.column: c.status for c in ev.columns}["dead"] == "all_null"
    assert {c.column: c.status for c in ev.columns}["gone"] == "missing_in_current"
    run = run_evidently(build_profile(ref), cur, options)  # from a profile: rebuilt exactly
    assert run.report.to_dict() == ev.to_dict()
    run.save_html(tmp_path / "r.html")
    assert "<html" in (tmp_path / "r.html").read_text()[:5000].lower()


def test_a_column_evidently_cannot_test_fails_alone() -> None:
    ref, cur = _windows()
    # evidently's anderson raises on a constant column, which would fail its whole report
    options = DriftOptions(engine="evidently", per_column_stattest={"k": "anderson"}, columns=("x", "k", "c"))
    r = run_evidently(ref, cur, options).report
    by = {c.column: c for c in r.columns}
    assert by["k"].drifted is None and by["k"].status == "constant"
    assert by["x"].drifted is True and by["c"].drifted is not None


def test_evidently_failing_on_one_column_is_retried_column_by_column() -> None:
    ref, cur = _windows()
    # evidently's g_test rejects windows of different sizes (800 vs 700); the native one does not
    options = DriftOptions(per_column_stattest={"c": "g_test"}, columns=("x", "k", "c"))
    native = detect_drift(ref, cur, options)
    assert native.column("c").drifted is not None
    r = run_evidently(ref, cur, options.model_copy(update={"engine": "evidently"})).report
    c = r.column("c")
    assert c.status == "error" and c.drifted is None and c.message
    assert r.column("x").drifted is True and r.column("k").drifted is False
    assert r.n_columns == 2


def test_the_native_function_refuses_the_evidently_engine_instead_of_ignoring_it() -> None:
    ref, cur = _windows()
    try:
        detect_drift(ref, cur, DriftOptions(engine="evidently"))
    except ValueError as exc:
        assert "run_evidently" in str(exc)
    else:
        raise AssertionError("detect_drift ran the native engine for engine='evidently'")
