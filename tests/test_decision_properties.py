"""Properties of the decision over random inputs (issue 5, item 7)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.decision import Action, Economics, ModelState, Signals, decide
from controller.core.economics import EconomicsConfig, retrain_cost
from controller.core.policy import PolicyConfig

NOW = datetime(2026, 11, 28, tzinfo=UTC)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

money = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)
share = st.floats(min_value=0.0, max_value=1.0)
maybe = st.one_of(st.none(), st.floats(min_value=0.0, max_value=60.0))


@st.composite
def signals(draw: Any) -> Signals:
    baseline = draw(st.floats(min_value=0.5, max_value=1.0))
    current = draw(st.floats(min_value=0.0, max_value=1.0))
    half = draw(st.floats(min_value=0.0, max_value=0.05))
    return Signals(
        "accuracy",
        baseline,
        current,
        draw(st.sampled_from(["realized", "estimated"])),
        current_low=current - half,
        current_high=current + half,
        drift_share=draw(share),
        dataset_drift=draw(st.booleans()),
        decay_points_per_day=draw(st.one_of(st.none(), st.floats(min_value=0.0, max_value=5.0))),
        window_fresh_share=draw(st.one_of(st.none(), share)),
        fresh_window_in_days=draw(maybe),
        regime_days=draw(maybe),
        regime_remaining=tuple(draw(st.lists(st.floats(min_value=0.0, max_value=60.0), max_size=3))),
        challenger_version=draw(st.one_of(st.none(), st.just("3"))),
        challenger_current=draw(st.floats(min_value=0.0, max_value=1.0)),
    )


@st.composite
def configs(draw: Any) -> EconomicsConfig:
    return EconomicsConfig(
        value_per_point=draw(st.floats(min_value=0.0, max_value=50.0)),
        traffic_per_day=draw(st.floats(min_value=0.0, max_value=1e6)),
        compute_rate_per_hour=draw(st.floats(min_value=0.0, max_value=500.0)),
        fixed_overhead=draw(st.floats(min_value=0.0, max_value=1000.0)),
    )


@st.composite
def states(draw: Any) -> ModelState:
    return ModelState(
        owner="ana",
        last_retrain_at=draw(st.one_of(st.none(), st.just(NOW - timedelta(hours=100)))),
        spent_this_month=draw(money),
        recent_recoveries=tuple(draw(st.lists(st.booleans(), max_size=4))),
        last_action=draw(st.one_of(st.none(), st.sampled_from(list(Action)))),
        remaining_days=draw(maybe),
    )


@st.composite
def policies(draw: Any) -> PolicyConfig:
    return PolicyConfig(
        min_roi=draw(st.floats(min_value=0.0, max_value=3.0)),
        min_net_value=draw(st.floats(min_value=0.0, max_value=1000.0)),
        horizon_days=draw(st.floats(min_value=1.0, max_value=90.0)),
        tolerance_points=draw(st.floats(min_value=0.0, max_value=3.0)),
        hysteresis=draw(st.floats(min_value=0.0, max_value=0.5)),
        monthly_budget=draw(st.one_of(st.none(), st.floats(min_value=0.0, max_value=2e5))),
        approval_threshold=draw(st.one_of(st.none(), money)),
        futility_window=draw(st.integers(min_value=1, max_value=4)),
    )


def economics(cfg: EconomicsConfig, hours: float, p: float) -> Economics:
    return Economics(cfg, retrain_cost(cfg, [hours]), p)


@SETTINGS
@given(signals(), configs(), states(), policies(), st.floats(0.01, 100.0), st.floats(0.0, 500.0), share)
def test_more_retraining_cost_never_turns_defer_into_trigger(
    s: Signals, cfg: EconomicsConfig, state: ModelState, policy: PolicyConfig, hours: float, extra: float, p: float
) -> None:
    cheap = decide(s, economics(cfg, hours, p), state, policy, NOW)
    dear = decide(s, economics(cfg, hours + extra, p), state, policy, NOW)
    if cheap.action == Action.DEFER:
        assert dear.action != Action.TRIGGER, (cheap.summary, dear.summary)


@SETTINGS
@given(signals(), configs(), states(), policies(), st.floats(0.01, 100.0), st.floats(1.0, 100.0), share)
def test_more_value_never_turns_trigger_into_defer(
    s: Signals, cfg: EconomicsConfig, state: ModelState, policy: PolicyConfig, hours: float, factor: float, p: float
) -> None:
    low = decide(s, economics(cfg, hours, p), state, policy, NOW)
    richer = cfg.model_copy(update={"value_per_point": cfg.value_per_point * factor})
    high = decide(s, economics(richer, hours, p), state, policy, NOW)
    if low.action == Action.TRIGGER:
        assert high.action == Action.TRIGGER, (low.summary, high.summary)


@SETTINGS
@given(
    st.lists(st.tuples(signals(), st.floats(0.01, 50.0)), min_size=1, max_size=40),
    configs(),
    policies(),
    st.floats(0.0, 5e4),
    st.floats(0.0, 5e4),
)
def test_no_sequence_of_decisions_exceeds_a_budget(
    checks: list[tuple[Signals, float]], cfg: EconomicsConfig, policy: PolicyConfig, budget: float, team: float
) -> None:
    """Charge every TRIGGER's estimate as the service does; neither the model's nor the team's spend passes its cap."""
    policy = policy.model_copy(update={"monthly_budget": budget, "approval_threshold": None})
    state = ModelState(owner="ana", team_budget=team)
    for day, (s, hours) in enumerate(checks):
        d = decide(s, economics(cfg, hours, 0.9), state, policy, NOW + timedelta(days=day % 28))
        if d.action == Action.TRIGGER:
            cost = d.numbers.retrain_cost
            state = replace(
                state,
                spent_this_month=state.spent_this_month + cost,
                team_spent_this_month=state.team_spent_this_month + cost,
                last_retrain_at=NOW + timedelta(days=day % 28),
                last_action=Action.TRIGGER,
            )
        else:
            state = replace(state, last_action=d.action)
        assert state.spent_this_month <= budget + 1e-9
        assert state.team_spent_this_month <= team + 1e-9


VETO_CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("owner", {"owner": None}),
    ("metadata", {"has_cost_metadata": False}),
    ("running", {"retrain_in_flight": True}),
    ("manual", {"manual_veto": "bob: frozen for audit"}),
    ("futile", {"recent_recoveries": (False,) * 5}),
    ("kill", {"months_cost_over_value": 12}),
    ("budget", {"spent_this_month": 1e12}),
]


@SETTINGS
@given(signals(), configs(), states(), policies(), st.floats(0.01, 100.0), st.sampled_from(VETO_CHANGES), st.booleans())
def test_a_veto_reason_always_wins_over_a_trigger(
    s: Signals,
    cfg: EconomicsConfig,
    state: ModelState,
    policy: PolicyConfig,
    hours: float,
    change: tuple[str, dict[str, Any]],
    approved: bool,
) -> None:
    policy = policy.model_copy(update={"monthly_budget": policy.monthly_budget or 1e9})
    state = replace(state, manual_approval="ana: go" if approved else None)
    before = decide(s, economics(cfg, hours, 0.8), state, policy, NOW)
    if before.action != Action.TRIGGER:
        return
    after = decide(s, economics(cfg, hours, 0.8), replace(state, **change[1]), policy, NOW)
    assert after.action == Action.VETO, (change[0], after.summary)
    quality = decide(replace(s, quality_failures=("schema changed",)), economics(cfg, hours, 0.8), state, policy, NOW)
    assert quality.action == Action.VETO
