"""The decision rules, one behaviour per test, with hand-checked numbers."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.decision import Action, Economics, ModelState, Reason, Signals, decide
from controller.core.economics import EconomicsConfig, retrain_cost
from controller.core.policy import PolicyConfig

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
# one accuracy point is worth 2 per 1,000 predictions at 50,000 a day: 100 a day per point
CFG = EconomicsConfig(value_per_point=2, traffic_per_day=50_000, compute_rate_per_hour=100, default_training_hours=1)
POLICY = PolicyConfig()


def econ(cost_hours: float = 1.0, p: float = 0.8, cfg: EconomicsConfig = CFG) -> Economics:
    return Economics(cfg, retrain_cost(cfg, [cost_hours]), p)


def sig(current: float = 0.87, baseline: float = 0.90, **kw: object) -> Signals:
    """Accuracy ``current`` against ``baseline``, realized, with a tight interval around it."""
    base: dict[str, object] = {"current_low": current - 0.005, "current_high": current + 0.005}
    base.update(kw)
    return Signals("accuracy", baseline, current, "realized", **base)  # type: ignore[arg-type]


STATE = ModelState(owner="ana")


def test_a_paying_drop_triggers_with_its_numbers() -> None:
    d = decide(sig(), econ(), STATE, POLICY, NOW)
    assert d.action == Action.TRIGGER
    assert d.reasons == (Reason.PAYS,)
    n = d.numbers
    assert n.drop_points == pytest.approx(3.0)
    assert n.loss_per_day == pytest.approx(300.0)
    assert n.retrain_cost == pytest.approx(100.0)
    assert n.expected_recovery == pytest.approx(0.8 * 300 * 30)
    assert n.net_value == pytest.approx(0.8 * 300 * 30 - 100)
    assert n.roi == pytest.approx((7200 - 100) / 100)
    assert d.retry_after is None and not d.needs_approval


def test_too_expensive_defers_and_says_which_drop_would_flip_it() -> None:
    expensive = econ(cost_hours=100.0)  # 10,000 per retrain; needs 20,000 recovered at min_roi 1
    d = decide(sig(), expensive, STATE, POLICY, NOW)
    assert d.action == Action.DEFER and d.reasons == (Reason.NOT_WORTH_IT,)
    flip = d.numbers.flip_drop_points
    assert flip is not None
    assert flip == pytest.approx(20_000 / (100 * 0.8 * 30))
    assert f"triggers when the drop reaches {flip:.2f} points" in d.summary
    assert d.retry_after == NOW + timedelta(hours=POLICY.defer_recheck_hours)
    # the statement holds: just above the flip point it triggers, just below it does not
    above = decide(sig(current=0.90 - (flip + 0.01) / 100), expensive, STATE, POLICY, NOW)
    below = decide(sig(current=0.90 - (flip - 0.01) / 100), expensive, STATE, POLICY, NOW)
    assert (above.action, below.action) == (Action.TRIGGER, Action.DEFER)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"owner": None}, Reason.NO_OWNER),
        ({"owner": "  "}, Reason.NO_OWNER),
        ({"has_cost_metadata": False}, Reason.NO_COST_METADATA),
        ({"retrain_in_flight": True}, Reason.RETRAIN_RUNNING),
        ({"manual_veto": "bob: data contract change pending"}, Reason.MANUAL_VETO),
        ({"recent_recoveries": (True, False, False, False)}, Reason.FUTILE),
        ({"months_cost_over_value": 3}, Reason.KILL_CRITERIA),
        ({"spent_this_month": 950.0}, Reason.BUDGET_EXHAUSTED),
        ({"team_budget": 500.0, "team_spent_this_month": 450.0}, Reason.BUDGET_EXHAUSTED),
    ],
)
def test_each_veto_beats_a_paying_trigger(change: dict[str, object], reason: Reason) -> None:
    policy = POLICY.model_copy(update={"monthly_budget": 1000.0})
    assert decide(sig(), econ(), STATE, policy, NOW).action == Action.TRIGGER
    d = decide(sig(), econ(), replace(STATE, **change), policy, NOW)  # type: ignore[arg-type]
    assert d.action == Action.VETO
    assert reason in d.reasons
    assert d.summary.startswith("Must not retrain:")


def test_a_data_quality_failure_vetoes_and_names_the_failures() -> None:
    d = decide(sig(quality_failures=("null share of age 40%",)), econ(), STATE, POLICY, NOW)
    assert d.action == Action.VETO and d.reasons == (Reason.DATA_QUALITY,)
    assert "null share of age 40%" in d.summary


def test_no_cost_metadata_vetoes_even_without_economics() -> None:
    d = decide(sig(), None, STATE, POLICY, NOW)
    assert d.action == Action.VETO and Reason.NO_COST_METADATA in d.reasons


def test_futility_needs_the_whole_window_to_fail() -> None:
    one_success = replace(STATE, recent_recoveries=(False, True, False))
    assert decide(sig(), econ(), one_success, POLICY, NOW).action == Action.TRIGGER


def test_manual_approval_triggers_a_retrain_that_does_not_pay_but_not_a_vetoed_one() -> None:
    approved = replace(STATE, manual_approval="ana: quarterly refresh")
    d = decide(sig(current=0.899), econ(cost_hours=1000), approved, POLICY, NOW)
    assert d.action == Action.TRIGGER and d.reasons == (Reason.MANUAL_APPROVAL,)
    assert decide(sig(), econ(), replace(approved, retrain_in_flight=True), POLICY, NOW).action == Action.VETO


def test_cooldown_defers_until_it_ends() -> None:
    state = replace(STATE, last_retrain_at=NOW - timedelta(hours=5))
    d = decide(sig(), econ(), state, POLICY, NOW)
    assert d.action == Action.DEFER and d.reasons == (Reason.COOLDOWN,)
    assert d.retry_after == NOW + timedelta(hours=19)
    later = replace(STATE, last_retrain_at=NOW - timedelta(hours=25))
    assert decide(sig(), econ(), later, POLICY, NOW).action == Action.TRIGGER


def test_drift_without_a_performance_figure_defers() -> None:
    s = Signals("accuracy", 0.9, None, "none", drift_share=0.8, dataset_drift=True)
    d = decide(s, econ(), STATE, POLICY, NOW)
    assert d.action == Action.DEFER
    assert d.reasons == (Reason.NO_EVIDENCE, Reason.DRIFT_ONLY)


def test_a_drop_inside_the_tolerance_defers() -> None:
    d = decide(sig(current=0.895, dataset_drift=True), econ(), STATE, POLICY, NOW)
    assert d.action == Action.DEFER and d.reasons == (Reason.WITHIN_TOLERANCE, Reason.DRIFT_ONLY)
    assert d.summary.startswith("Inputs drifted but")


def test_a_drop_whose_interval_reaches_the_baseline_defers() -> None:
    d = decide(sig(current_high=0.91), econ(), STATE, POLICY, NOW)
    assert d.action == Action.DEFER and d.reasons == (Reason.NOT_SIGNIFICANT,)


def test_an_error_metric_drops_when_it_rises() -> None:
    mae = EconomicsConfig(
        metric="mae", higher_is_better=False, value_per_point=2, traffic_per_day=50_000, compute_rate_per_hour=100
    )
    s = Signals("mae", 0.50, 0.55, "realized", current_low=0.54, current_high=0.56)
    d = decide(s, econ(cfg=mae), STATE, POLICY, NOW)
    assert d.numbers.drop_points == pytest.approx(5.0)
    assert d.action == Action.TRIGGER


def test_above_the_approval_threshold_a_paying_retrain_waits_for_the_owner() -> None:
    policy = POLICY.model_copy(update={"approval_threshold": 50.0})
    d = decide(sig(), econ(), STATE, policy, NOW)
    assert d.action == Action.DEFER and d.needs_approval
    assert d.reasons == (Reason.PAYS, Reason.NEEDS_APPROVAL)


def test_hysteresis_asks_more_after_a_defer() -> None:
    # recovery 0.8 x 100 x 30 x drop; cost 100; at min_roi 1 the bare rule needs 200: drop 0.0834 points
    policy = POLICY.model_copy(update={"tolerance_points": 0.0, "hysteresis": 0.5})
    s = sig(current=0.90 - 0.0009, current_high=0.8991 - 0.0001)
    assert decide(s, econ(), STATE, policy, NOW).action == Action.TRIGGER
    assert decide(s, econ(), replace(STATE, last_action=Action.DEFER), policy, NOW).action == Action.DEFER


def test_a_planned_retirement_and_an_expected_change_shorten_the_horizon() -> None:
    assert decide(sig(), econ(), replace(STATE, remaining_days=4.0), POLICY, NOW).numbers.horizon_days == 4.0
    # the next change comes after an exponential time of mean 7 days: the value lasts 7 (1 - e^(-30/7)) days
    expected = decide(sig(regime_days=7.0), econ(), STATE, POLICY, NOW).numbers.horizon_days
    assert expected == pytest.approx(7.0 * (1.0 - math.exp(-30.0 / 7.0)))
    short = decide(sig(current=0.89), econ(cost_hours=4), replace(STATE, remaining_days=1.0), POLICY, NOW)
    assert short.action == Action.DEFER and short.reasons == (Reason.NOT_WORTH_IT,)


def test_a_forecast_change_prices_the_expected_life_not_the_mean() -> None:
    # a retrain pays 0.8 x 300/day x L against 2 x 1,500: it needs L >= 12.5 days. A mean regime of 15 days
    # capped at 30 gives an expected life of 15 (1 - e^-2) = 13 days (pays); at a 16-day horizon,
    # 15 (1 - e^(-16/15)) = 9.8 days (does not), though both the mean and the horizon exceed 12.5
    pays = decide(sig(regime_days=15.0), econ(cost_hours=15), STATE, POLICY, NOW)
    assert pays.action == Action.TRIGGER and pays.numbers.horizon_days == pytest.approx(15.0 * (1 - math.exp(-2.0)))
    short = POLICY.model_copy(update={"horizon_days": 16.0})
    declined = decide(sig(regime_days=15.0), econ(cost_hours=15), STATE, short, NOW)
    assert declined.action == Action.DEFER and declined.reasons == (Reason.NOT_WORTH_IT,)
    assert decide(sig(), econ(cost_hours=15), STATE, short, NOW).action == Action.TRIGGER


def test_past_regimes_that_outlasted_the_current_one_replace_the_exponential_wait() -> None:
    # the same retrain as above needs L >= 12.5 days: a mean regime of 15 days pays (13 days expected), but
    # if the regimes seen so far ended 6 or 10 days past the current one's age, it lasts 8 days and does not
    declined = decide(sig(regime_days=15.0, regime_remaining=(6.0, 10.0)), econ(cost_hours=15), STATE, POLICY, NOW)
    assert declined.action == Action.DEFER and declined.reasons == (Reason.NOT_WORTH_IT,)
    assert declined.numbers.horizon_days == pytest.approx(8.0)
    # each counts at most the cycle: 40 and 10 days at a 30-day horizon give 20
    long = decide(sig(regime_days=15.0, regime_remaining=(40.0, 10.0)), econ(cost_hours=15), STATE, POLICY, NOW)
    assert long.action == Action.TRIGGER and long.numbers.horizon_days == pytest.approx(20.0)
    # a regime seen to last exactly the current one's age says it may end now: nothing left to recover
    ending = decide(sig(regime_days=15.0, regime_remaining=(0.0,)), econ(cost_hours=15), STATE, POLICY, NOW)
    assert ending.action == Action.DEFER and ending.reasons == (Reason.NOT_WORTH_IT,)
    assert ending.numbers.horizon_days == 0.0


def test_with_decaying_models_a_small_drop_waits_for_the_renewal_point() -> None:
    # fresh models lose 0.2 points a day: 20/day per day; at cost 1,000 the cycle is sqrt(2 x 1000 / 20) = 10
    # days and a retrain is due once the loss one day ahead reaches 20 x 10 = 200/day (2 points), that is
    # at a measured drop of 1.8 points; it pays from 1.25 points
    policy = POLICY.model_copy(update={"min_roi": 0.0})
    early = decide(sig(current=0.885, decay_points_per_day=0.2), econ(cost_hours=10), STATE, policy, NOW)
    assert early.action == Action.DEFER and early.reasons == (Reason.RETRAIN_LATER,)
    assert early.numbers.horizon_days == pytest.approx(10.0)
    assert early.numbers.flip_drop_points == pytest.approx(1.8)
    due = decide(sig(current=0.881, decay_points_per_day=0.2), econ(cost_hours=10), STATE, policy, NOW)
    assert due.action == Action.TRIGGER
    # the flip point the DEFER states holds
    above = decide(sig(current=0.90 - 0.0181, decay_points_per_day=0.2), econ(cost_hours=10), STATE, policy, NOW)
    below = decide(sig(current=0.90 - 0.0179, decay_points_per_day=0.2), econ(cost_hours=10), STATE, policy, NOW)
    assert (above.action, below.action) == (Action.TRIGGER, Action.DEFER)


def test_the_drop_is_priced_one_day_ahead_with_the_decay() -> None:
    # a drop of 3 points on models that lose 0.5 a day: tomorrow's loss is 350/day (today's: 300/day)
    d = decide(
        sig(decay_points_per_day=0.5), econ(cost_hours=1), STATE, POLICY.model_copy(update={"horizon_days": 1.0}), NOW
    )
    assert d.numbers.loss_per_day == pytest.approx(300.0)
    assert d.numbers.expected_recovery == pytest.approx(0.8 * 350.0 * 1.0)


def test_a_stale_training_window_defers_until_it_is_fresh() -> None:
    s = sig(current=0.60, window_fresh_share=0.25, fresh_window_in_days=1.0)
    d = decide(s, econ(cost_hours=50), STATE, POLICY, NOW)
    assert d.action == Action.DEFER and d.reasons == (Reason.WINDOW_NOT_FRESH,)
    assert d.retry_after == NOW + timedelta(days=1)
    later = replace(s, window_fresh_share=1.0, fresh_window_in_days=0.0)
    fresh = decide(later, econ(cost_hours=50), STATE, POLICY, NOW)
    assert fresh.action == Action.TRIGGER


def test_a_registered_version_that_fits_the_current_data_is_promoted_instead() -> None:
    d = decide(sig(challenger_version="7", challenger_current=0.897), econ(), STATE, POLICY, NOW)
    assert d.action == Action.TRIGGER and d.promote_version == "7"
    assert Reason.REUSE_VERSION in d.reasons
    worse = decide(sig(challenger_version="7", challenger_current=0.85), econ(), STATE, POLICY, NOW)
    assert worse.promote_version is None and worse.reasons == (Reason.PAYS,)
