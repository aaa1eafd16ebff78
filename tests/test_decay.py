"""Decay signal: drop and significance, CUSUM on the series, forecast, and the trust bookkeeping."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from controller.core.decision import Signals
from detectors.decay import cusum, decay_signal, estimation_error, select_current, trust_weight
from detectors.estimation import MetricEstimate
from detectors.performance import MetricValue


def test_drop_is_signed_so_positive_is_worse_for_both_directions() -> None:
    acc = decay_signal("accuracy", 0.90, MetricValue(0.85, 0.84, 0.86, 5000, "ok"), "realized", [], 1.0)
    assert acc.drop_points == pytest.approx(5.0) and acc.significant
    mae = decay_signal("mae", 2.0, MetricEstimate(2.5, 2.4, 2.6), "estimated", [], 10.0, higher_is_better=False)
    assert mae.drop_points == pytest.approx(50.0) and mae.significant
    better = decay_signal("mae", 2.0, MetricEstimate(1.5, 1.4, 1.6), "estimated", [], 10.0, higher_is_better=False)
    assert better.drop_points == pytest.approx(-50.0) and not better.significant


def test_interval_reaching_baseline_is_not_significant_and_p_value_agrees() -> None:
    wide = decay_signal("accuracy", 0.90, MetricValue(0.88, 0.85, 0.91, 300, "ok"), "realized", [], 1.0)
    narrow = decay_signal("accuracy", 0.90, MetricValue(0.88, 0.875, 0.885, 5000, "ok"), "realized", [], 1.0)
    assert not wide.significant and narrow.significant
    assert wide.p_value is not None and narrow.p_value is not None
    assert narrow.p_value < 0.05 < wide.p_value


def test_insufficient_current_gives_source_none_for_the_controller() -> None:
    sig = decay_signal("accuracy", 0.9, MetricValue(None, None, None, 20, "insufficient"), "realized", [0.9], 1.0)
    fields = sig.to_signal_fields()
    assert fields["source"] == "none" and fields["current"] is None and not sig.significant


def test_to_signal_fields_builds_the_controllers_signals() -> None:
    sig = decay_signal("roc_auc", 0.85, MetricEstimate(0.80, 0.79, 0.81), "estimated", [0.85, 0.83], 2.0)
    s = Signals(**sig.to_signal_fields(), drift_share=0.4)
    assert (s.metric, s.source, s.current, s.current_low, s.current_high) == ("roc_auc", "estimated", 0.8, 0.79, 0.81)
    assert set(sig.to_signal_fields()) == {"metric", "baseline", "current", "source", "current_low", "current_high"}


def test_cusum_fires_on_a_slow_slide_that_no_single_check_calls_significant() -> None:
    rng = np.random.default_rng(0)
    noise = 0.5  # points
    slide = np.concatenate([np.zeros(10), np.linspace(0.2, 2.0, 10)]) + rng.normal(0, noise, 20)
    # Each point alone is within 2 noise-sd of 0 for most of the slide ...
    assert np.mean(slide[10:15] < 2 * noise) >= 0.6
    res = cusum(slide, noise)
    assert res.detected and res.index is not None and res.index >= 10
    # In control, 30 checks raise a false alarm rarely (one-sided ARL0 of k=0.5, h=5 is ~900 checks).
    false_alarms = np.mean([cusum(rng.normal(0, noise, 30), noise).detected for _ in range(300)])
    assert false_alarms < 0.06


def test_forecast_counts_periods_to_tolerance_on_a_linear_slide() -> None:
    history = [0.90 - 0.005 * i for i in range(8)]  # 0.5 points per check
    current = MetricEstimate(0.86, 0.855, 0.865)
    sig = decay_signal("accuracy", 0.90, current, "estimated", history, 6.0, period_hours=12)
    assert sig.slope_points_per_period == pytest.approx(0.5, abs=0.05)
    assert sig.forecast_periods_to_tolerance is not None and sig.forecast_hours_to_tolerance is not None
    assert sig.forecast_periods_to_tolerance == pytest.approx(4.0, abs=1.0)
    assert sig.forecast_hours_to_tolerance == pytest.approx(12 * sig.forecast_periods_to_tolerance)
    flat = decay_signal("accuracy", 0.90, MetricEstimate(0.899, 0.89, 0.91), "estimated", [0.9] * 8, 6.0)
    assert flat.forecast_periods_to_tolerance is None
    past = decay_signal("accuracy", 0.90, MetricEstimate(0.80, 0.79, 0.81), "estimated", [0.85], 6.0)
    assert past.forecast_periods_to_tolerance == 0.0


def test_estimation_error_and_trust_weight() -> None:
    assert estimation_error(MetricEstimate(0.8, 0.7, 0.9), MetricValue(None, None, None, 10, "insufficient")) is None
    assert estimation_error(MetricEstimate(0.8, 0.7, 0.9), MetricValue(0.75, 0.7, 0.8, 900, "ok")) == pytest.approx(
        0.05
    )
    good = trust_weight([0.002] * 20, tolerance_points=1.0)
    bad = trust_weight([0.02] * 20, tolerance_points=1.0)
    assert 0.7 < good <= 1.0 and bad == 0.0
    # Trust falls monotonically with error and never leaves [0, 1].
    weights = [trust_weight([e] * 10, 1.0) for e in np.linspace(0, 0.05, 11)]
    assert all(a >= b for a, b in pairwise(weights)) and min(weights) >= 0 and max(weights) <= 1


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="source"):
        decay_signal("accuracy", 0.9, None, "guessed", [], 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance"):
        decay_signal("accuracy", 0.9, None, "realized", [], -1.0)


def test_select_current_prefers_realized_and_discounts_an_untrusted_estimate() -> None:
    realized = MetricValue(0.80, 0.78, 0.82, 900, "ok")
    est = MetricEstimate(0.85, 0.845, 0.855)
    assert select_current(realized, est) == (realized, "realized", 1.0)
    scarce = MetricValue(None, None, None, 40, "insufficient")
    cur, source, trust = select_current(scarce, est)
    assert (cur, source, trust) == (est, "estimated", 1.0)
    # An estimate that missed by ~1.5 points before no longer calls a 1-point drop significant.
    past = [0.015, 0.012, 0.018]
    cur, source, trust = select_current(scarce, est, past_abs_errors=past, tolerance_points=5.0)
    assert source == "estimated" and 0 < trust < 1 and isinstance(cur, MetricEstimate)
    sig = decay_signal("accuracy", 0.865, cur, source, [], 5.0)
    assert not sig.significant
    assert decay_signal("accuracy", 0.865, est, "estimated", [], 5.0).significant
    # An estimate that misses by more than the tolerance is not used at all.
    assert select_current(scarce, est, past_abs_errors=[0.08] * 10, tolerance_points=5.0)[:2] == (None, "none")
