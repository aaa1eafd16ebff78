"""Economics: the cost of a retrain, the value of performance, recovery odds and governance."""

from __future__ import annotations

import pytest

from controller.core.economics import (
    EconomicsConfig,
    build_economics,
    loss_per_day,
    net_value_per_day,
    recovery_probability,
    retrain_cost,
)
from controller.core.forecasts import change_point, decay_rate, precision_weighted, regime_days, regime_remaining
from controller.core.governance import governance_violations

CFG = EconomicsConfig(
    value_per_point=1.5,
    traffic_per_day=20_000,
    compute_rate_per_hour=12.0,
    default_training_hours=2.0,
    labeling_cost_per_row=0.05,
    labels_per_retrain=1000,
    fixed_overhead=40.0,
)


def test_cost_without_history_comes_from_the_config_with_a_wide_interval() -> None:
    c = retrain_cost(CFG)
    assert not c.from_history
    assert (c.compute, c.labeling, c.overhead) == (24.0, 50.0, 40.0)
    assert c.expected == pytest.approx(114.0)
    assert (c.low, c.high) == (pytest.approx(12 + 90), pytest.approx(48 + 90))


def test_cost_from_past_training_runs_uses_their_mean_and_spread() -> None:
    c = retrain_cost(CFG, [1.0, 1.2, 0.8, float("nan"), -3.0])
    assert c.from_history and c.training_hours == pytest.approx(1.0)
    assert c.expected == pytest.approx(12.0 + 90.0)
    assert c.low < c.expected < c.high
    assert c.low >= 90.0  # never below the fixed part


def test_a_single_past_run_still_gets_an_interval() -> None:
    c = retrain_cost(CFG, [3.0])
    assert c.low < c.expected < c.high


def test_loss_per_day_is_value_per_point_times_traffic_and_never_negative() -> None:
    assert loss_per_day(CFG, 2.0) == pytest.approx(2.0 * 1.5 * 20)
    assert loss_per_day(CFG, -1.0) == 0.0


def test_recovery_probability_follows_the_history_and_keeps_the_prior_without_it() -> None:
    assert recovery_probability([]) == 0.8
    assert recovery_probability([], prior=0.5) == 0.5
    wins, losses = recovery_probability([True] * 6), recovery_probability([False] * 6)
    assert losses < 0.5 < 0.8 < wins < 1.0
    assert recovery_probability([True, False]) == pytest.approx((1.6 + 1) / 4)
    # a stronger prior moves less
    assert recovery_probability([False] * 3, strength=20) > recovery_probability([False] * 3, strength=2)


@pytest.mark.parametrize(("prior", "strength"), [(-0.1, 2.0), (1.1, 2.0), (0.5, 0.0)])
def test_recovery_probability_rejects_bad_priors(prior: float, strength: float) -> None:
    with pytest.raises(ValueError, match=r"prior|strength"):
        recovery_probability([True], prior=prior, strength=strength)


def test_build_economics_combines_cost_and_recovery() -> None:
    cost, p = build_economics(CFG, [2.0, 2.0], [False, False, False])
    assert cost.expected == pytest.approx(24.0 + 90.0)
    assert p == pytest.approx(1.6 / 5)


def test_net_value_per_day_needs_a_stated_revenue() -> None:
    assert net_value_per_day(CFG) is None
    rich = CFG.model_copy(update={"revenue_per_day": 500.0, "serving_cost_per_day": 120.0})
    assert net_value_per_day(rich) == pytest.approx(380.0)


def test_decay_rate_is_pooled_within_versions_and_never_negative() -> None:
    # two versions at different levels, both flat: no decay, although their levels differ
    assert decay_rate([[1.0, 1.0, 1.0], [9.0, 9.0, 9.0, 9.0]]) == 0.0
    assert decay_rate([[3.0, 2.0, 1.0]]) == 0.0
    assert decay_rate([[0.0, 2.0, 4.0, 6.0]]) == pytest.approx(2.0)
    # only the first max_age periods count: a late break in the data is not decay
    assert decay_rate([[0.0, 0.0, 0.0, 50.0]], max_age=3) == 0.0
    assert decay_rate([[1.0], [2.0, 3.0]]) is None


def test_change_point_finds_the_latest_jump_beyond_noise_and_decay() -> None:
    assert change_point([0.0, 0.4, -0.3, 10.0, 10.2, 20.0], noise=0.5) == 5
    assert change_point([0.0, 0.4, -0.3, 1.0], noise=0.5) is None
    assert change_point([0.0, 3.0, 6.0, 9.0], noise=0.5, decay=3.0) is None
    assert change_point([], noise=1.0) is None
    # a fall back beyond the noise is a change only when asked for (a concept that came back)
    assert change_point([0.0, 10.0, 10.2, 0.3], noise=0.5) == 1
    assert change_point([0.0, 10.0, 10.2, 0.3], noise=0.5, falls=True) == 3
    assert change_point([3.0, 2.5, 3.1, 1.0], noise=0.5, falls=True) is None


def test_regime_days_counts_the_open_regime_as_exposure() -> None:
    assert regime_days([], now=30.0) is None
    assert regime_days([10.0, 20.0], now=30.0) == pytest.approx(15.0)
    assert regime_days([10.0, 20.0, 40.0], now=30.0, since=5.0) == pytest.approx(12.5)


def test_regime_remaining_reads_the_past_regimes_that_outlasted_the_current_age() -> None:
    assert regime_remaining([], now=30.0) == () and regime_remaining([10.0], now=30.0) == ()
    # regimes of 10 and 4 days; the current one is 3 days old: 7 or 1 days left
    assert regime_remaining([5.0, 15.0, 19.0], now=22.0) == (7.0, 1.0)
    # at 5 days old it has outlasted the short one; at 12, both: they say nothing
    assert regime_remaining([5.0, 15.0, 19.0], now=24.0) == (5.0,)
    assert regime_remaining([5.0, 15.0, 19.0], now=31.0) == ()
    # as old as the long one was: that one says the regime may end now (0 days left), not nothing
    assert regime_remaining([5.0, 15.0, 19.0], now=29.0) == (0.0,)
    # a change not yet reached does not count
    assert regime_remaining([5.0, 15.0, 40.0], now=20.0) == (5.0,)


def test_precision_weighting_leans_on_the_sharper_of_measurement_and_forecast() -> None:
    # a measurement four times as noisy as the forecast moves the estimate a fifth of the way to it
    assert precision_weighted(10.0, 4.0, 5.0, 1.0) == pytest.approx(6.0)
    assert precision_weighted(10.0, 1.0, 5.0, 4.0) == pytest.approx(9.0)
    for measured_var in (0.01, 0.5, 1.0, 8.0, 100.0):
        combined = precision_weighted(10.0, measured_var, 5.0, 1.0)
        assert 5.0 < combined < 10.0
    # the noisier the measurement, the closer to the forecast
    assert precision_weighted(10.0, 8.0, 5.0, 1.0) < precision_weighted(10.0, 0.5, 5.0, 1.0)
    assert precision_weighted(10.0, 0.0, 5.0, 1.0) == 10.0 and precision_weighted(10.0, 1.0, 5.0, 0.0) == 5.0


def test_a_compliant_model_breaks_no_governance_rule() -> None:
    assert governance_violations("ana", "churn offers", CFG, team="risk", require_team=True) == []


def test_every_governance_rule_is_reported() -> None:
    found = governance_violations(
        None,
        "",
        None,
        team=None,
        require_team=True,
        monthly_spend=1200.0,
        monthly_budget=1000.0,
        months_cost_over_value=4,
        kill_periods=3,
    )
    assert [v.split(":")[0] for v in found] == [
        "no owner",
        "no business purpose",
        "no cost metadata",
        "no team",
        "over budget",
        "costs more than it earns for 4 months (limit 3)",
    ]
    assert "1,200.00" in found[4]
