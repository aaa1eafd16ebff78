"""Properties of the decay signal and trust bookkeeping over generated inputs (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.decay import decay_signal, select_current, trust_weight
from detectors.estimation import MetricEstimate

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
errors = st.lists(st.floats(min_value=0.0, max_value=0.2, allow_nan=False), max_size=30)


@given(baseline=unit, value=unit, half=st.floats(0.0, 0.1), higher=st.booleans(), tol=st.floats(0.0, 20.0))
@settings(max_examples=200, deadline=None)
def test_a_significant_drop_is_always_a_drop_on_the_bad_side(
    baseline: float, value: float, half: float, higher: bool, tol: float
) -> None:
    est = MetricEstimate(value, value - half, value + half)
    sig = decay_signal("m", baseline, est, "estimated", [], tol, higher_is_better=higher)
    assert sig.drop_points is not None
    if sig.significant:
        assert sig.drop_points > 0
    if sig.forecast_periods_to_tolerance == 0.0:
        assert sig.drop_points >= tol


@given(past=errors, extra=st.floats(0.0, 0.2), tol=st.floats(0.1, 20.0))
@settings(max_examples=200, deadline=None)
def test_trust_stays_in_unit_interval_and_a_bigger_miss_never_raises_it(
    past: list[float], extra: float, tol: float
) -> None:
    w = trust_weight(past, tol)
    assert 0.0 <= w <= 1.0
    assert trust_weight([*past, extra], tol) <= trust_weight([*past, 0.0], tol)


@given(past=errors, value=unit, half=st.floats(0.0, 0.05))
@settings(max_examples=200, deadline=None)
def test_a_discounted_estimate_is_never_narrower_than_the_raw_one(past: list[float], value: float, half: float) -> None:
    est = MetricEstimate(value, value - half, value + half)
    cur, source, _ = select_current(None, est, past_abs_errors=past, tolerance_points=50.0, min_trust=0.0)
    assert source == "estimated" and isinstance(cur, MetricEstimate)
    assert cur.lower <= est.lower and cur.upper >= est.upper and cur.estimate == est.estimate
