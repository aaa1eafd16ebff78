"""The signal pipeline (controller/signals): readings in, the decision's performance signals out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
import pytest

from controller.signals.levels import Estimated, Measured, Timing, VersionFacts, assess, format_changes, parse_changes
from controller.signals.measure import LabelFree, accuracy_se, fit_label_free, measure, usable_estimate

T0 = datetime(2026, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)
DAILY = Timing(period_days=1.0, label_delay_days=0.0, train_window_days=7.0)


class Point(NamedTuple):
    version: str | None
    source: str | None
    metric_value: float | None
    metric_se: float | None
    rows_from: datetime | None
    change_at: str | None = None
    metric_estimate: float | None = None


def readings(version: str, start: int, accuracies: list[float], se: float = 0.004) -> list[Point]:
    return [Point(version, "realized", a, se, T0 + (start + i) * DAY) for i, a in enumerate(accuracies)]


def test_decay_changes_regimes_and_window_freshness_come_from_the_readings() -> None:
    # one point a day for three days, then a jump of eight points: a change, dated at the jump
    history = readings("1", 0, [0.90, 0.89, 0.88, 0.80])
    a = assess(
        higher_is_better=True,
        now=T0 + 5 * DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=history,
        measured=Measured(0.79, 0.004, 5000, T0 + 4 * DAY),
        estimated=None,
        timing=DAILY,
    )
    assert a.changes == (T0 + 3 * DAY,)
    assert a.decay_points_per_day == pytest.approx(1.0)  # 90, 89, 88 before the break; 80, 79 after it
    assert a.regime_days == pytest.approx(5.0)  # one change in five days
    assert a.window_fresh_share == pytest.approx(2 / 7)  # two of the trainer's seven days postdate it
    assert a.fresh_window_in_days == pytest.approx(5.0)
    assert a.regime_remaining == ()  # no regime seen whole yet
    # the level of the day just served, read since the change: day 3 (80) carried a day forward by
    # the decay, and day 4 (79)
    assert a.source == "realized" and a.current == pytest.approx(0.79, abs=1e-9) and a.pooled == 2
    assert a.baseline == pytest.approx(0.90)  # the version's first reading: the only fresh level


def test_a_second_change_gives_the_regime_it_closed() -> None:
    history = [*readings("1", 0, [0.90, 0.89, 0.88]), Point("1", "realized", 0.80, 0.004, T0 + 3 * DAY, "x")]
    history[-1] = history[-1]._replace(change_at=format_changes([T0 + 3 * DAY]))
    a = assess(
        higher_is_better=True,
        now=T0 + 5 * DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=history,
        measured=Measured(0.90, 0.004, 5000, T0 + 4 * DAY),  # and back: a fall counts as a change too
        estimated=None,
        timing=DAILY,
    )
    assert a.changes == (T0 + 4 * DAY,)
    # the regime from day 3 to day 4 lasted one day; the current one is one day old: it may end now
    assert a.regime_remaining == pytest.approx((0.0,))


def test_the_fresh_level_is_the_median_of_clean_versions_and_a_stale_one_is_left_out() -> None:
    history = [*readings("1", 0, [0.90, 0.89, 0.88]), *readings("2", 3, [0.94, 0.93]), *readings("3", 5, [0.70])]
    versions = {
        "1": VersionFacts("1", T0),
        "2": VersionFacts("2", T0 + 3 * DAY),
        "3": VersionFacts("3", T0 + 5 * DAY, clean=False),  # trained on a window with a change inside
    }
    a = assess(
        higher_is_better=True,
        now=T0 + 7 * DAY,
        serving=VersionFacts("4", T0 + 6 * DAY),
        versions=versions,
        history=history,
        measured=Measured(0.92, 0.004, 5000, T0 + 6 * DAY),
        estimated=None,
        timing=DAILY,
    )
    assert a.fresh_levels == 3  # versions 1, 2 and the serving one; not 3
    assert a.baseline == pytest.approx(0.92)  # median of 90, 94 and 92 (decay taken out of 1 and 2)


def test_a_version_whose_first_reading_stands_off_its_holdout_started_after_a_change() -> None:
    """Onboarding a version into data that already moved: its own registered baseline tells."""
    a = assess(
        higher_is_better=True,
        now=T0 + 7 * DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=[],
        measured=Measured(0.60, 0.007, 3000, T0),
        estimated=None,
        timing=Timing(7.0, 0.0, 7.0),
        registered_baseline=0.88,
    )
    assert a.changes == (T0,) and a.baseline == pytest.approx(0.88) and a.current == pytest.approx(0.60)
    same = assess(
        higher_is_better=True,
        now=T0 + 7 * DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=[],
        measured=Measured(0.875, 0.007, 3000, T0),
        estimated=None,
        timing=Timing(7.0, 0.0, 7.0),
        registered_baseline=0.88,
    )
    assert same.changes == () and same.baseline == pytest.approx((0.88 + 0.875) / 2)


def test_before_its_first_label_a_version_is_read_from_the_estimates_change() -> None:
    history = readings("1", 0, [0.90, 0.90, 0.90])
    stale = VersionFacts("2", T0 + 3 * DAY, clean=False, residual_points=2.0)
    a = assess(
        higher_is_better=True,
        now=T0 + 4 * DAY,
        serving=stale,
        versions={"1": VersionFacts("1", T0)},
        history=history,
        measured=None,
        estimated=Estimated(0.85, 0.84, 0.86, reference=0.88),  # three points below its reference
        timing=DAILY,
    )
    # the fresh level (90), less the two points its stale window leaves, less the estimate's three
    assert a.source == "estimated" and a.current == pytest.approx(0.85) and a.baseline == pytest.approx(0.90)
    assert (a.current_low, a.current_high) == (pytest.approx(0.84), pytest.approx(0.86))
    nothing = assess(
        higher_is_better=True,
        now=T0 + DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=[],
        measured=None,
        estimated=Estimated(0.85, 0.84, 0.86, reference=0.88),
        timing=DAILY,
    )
    assert nothing.source == "estimated" and nothing.baseline == pytest.approx(0.88)  # its own view of the reference


def test_lower_is_better_metrics_read_the_same_way_up() -> None:
    history = [Point("1", "realized", m, 0.02, T0 + i * DAY) for i, m in enumerate([2.0, 2.1, 2.2])]
    a = assess(
        higher_is_better=False,
        now=T0 + 4 * DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=history,
        measured=Measured(2.3, 0.02, 1000, T0 + 3 * DAY),
        estimated=None,
        timing=DAILY,
    )
    assert a.decay_points_per_day == pytest.approx(10.0)  # 0.1 of MAE a day is ten points
    # readings of 2.0, 2.1, 2.2 and 2.3, each carried to the day just served (day 3) by the decay
    assert a.current == pytest.approx(2.3) and a.current_low < 2.3 < a.current_high  # type: ignore[operator]


def test_changes_round_trip_through_the_stored_text() -> None:
    times = [T0 + DAY, T0]
    assert parse_changes(format_changes(times)) == sorted(times) and parse_changes(None) == []


def test_accuracy_standard_error_gives_the_coverage_it_claims() -> None:
    rng = np.random.default_rng(0)
    for n, p in ((500, 0.9), (10_000, 0.75)):
        hits = rng.binomial(n, p, size=4_000) / n
        half = 1.6449 * np.array([accuracy_se(h, n) for h in hits])
        coverage = np.mean(np.abs(hits - p) <= half)
        assert 0.88 <= coverage <= 0.92


def test_measure_gives_each_metric_its_error() -> None:
    y = np.array([0, 1] * 300)
    pred = y.copy()
    pred[:60] = 1 - pred[:60]
    value, se = measure("classification", "accuracy", y, pred, None)  # type: ignore[misc]
    assert value == pytest.approx(0.9) and se == pytest.approx(accuracy_se(0.9, 600))
    errors = np.r_[np.ones(200), 3 * np.ones(200)]
    mae, mae_err = measure("regression", "mae", np.zeros(400), errors, None)  # type: ignore[misc]
    assert mae == pytest.approx(2.0) and mae_err == pytest.approx(np.std(errors, ddof=1) / 20)
    assert measure("classification", "accuracy", y[:5], pred[:5], None, min_rows=10) is None


@pytest.mark.parametrize("k", [2, 3])
def test_the_point_estimate_is_the_full_estimates_value(k: int) -> None:
    """What a check scores against realized labels is CBPE's own expected value, without its interval."""
    import pandas as pd

    rng = np.random.default_rng(k)
    ref = rng.dirichlet(np.ones(k), size=2_000)
    ref_y = np.array([rng.choice(k, p=p) for p in ref])
    scores = pd.DataFrame({"y_true": ref_y, "y_pred": ref.argmax(axis=1)})
    for c in range(k):
        scores[f"proba_{c}"] = ref[:, c]
    cur = rng.dirichlet(np.ones(k) * 0.7, size=3_000)
    pred = cur.argmax(axis=1)
    for metric in ("accuracy", "f1", "roc_auc"):
        label_free = fit_label_free("classification", metric, scores)
        assert isinstance(label_free, LabelFree)
        full = label_free.estimate(pred, cur)
        assert full is not None and label_free.point(pred, cur) == pytest.approx(full.value, abs=1e-12)


def test_an_estimate_that_missed_before_is_widened_or_dropped() -> None:
    est = Estimated(0.85, 0.84, 0.86, 0.88)
    kept, trust = usable_estimate(est, [0.01, 0.01], tolerance_points=5.0)
    assert kept is not None and trust == pytest.approx(0.92) and kept.lower == pytest.approx(0.83)
    assert usable_estimate(est, [0.08] * 10, tolerance_points=5.0) == (None, 0.0)


def test_when_labels_stall_the_level_moves_as_far_as_the_estimate_moved() -> None:
    history = [p._replace(metric_estimate=0.905) for p in readings("1", 0, [0.90, 0.90, 0.90])]
    a = assess(
        higher_is_better=True,
        now=T0 + 5 * DAY,
        serving=VersionFacts("1", T0),
        versions={},
        history=history,
        measured=None,  # no new labelled row since day 2
        estimated=Estimated(0.875, 0.87, 0.88, reference=0.91),
        timing=DAILY,
    )
    # the readings' level (90) moved by the estimate's change since the last reading (90.5 -> 87.5)
    assert a.source == "estimated" and a.current == pytest.approx(0.87) and a.baseline == pytest.approx(0.90)
    assert a.current_low < 0.87 < a.current_high  # type: ignore[operator]
