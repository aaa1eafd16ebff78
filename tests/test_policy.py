"""Policy presets: they load, they validate, and they order from light to strict."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from controller.config import validate
from controller.core.decision import Action, Economics, ModelState, Reason, Signals, decide
from controller.core.economics import EconomicsConfig, retrain_cost
from controller.core.policy import PolicyConfig
from controller.errors import ConfigError

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "policies"


def preset(name: str) -> PolicyConfig:
    path = PRESETS / f"{name}.yaml"
    return validate(PolicyConfig, yaml.safe_load(path.read_text()), str(path))


def test_the_three_presets_validate() -> None:
    assert {p.stem for p in PRESETS.glob("*.yaml")} >= {"early", "growth", "enterprise"}
    for name in ("early", "growth", "enterprise"):
        assert isinstance(preset(name), PolicyConfig)


def test_presets_grow_stricter_with_the_stage() -> None:
    early, growth, enterprise = preset("early"), preset("growth"), preset("enterprise")
    assert early.min_roi < growth.min_roi < enterprise.min_roi
    assert early.cooldown_hours < growth.cooldown_hours < enterprise.cooldown_hours
    assert early.monthly_budget is None and growth.monthly_budget is not None
    assert early.approval_threshold is None
    assert growth.approval_threshold is not None and enterprise.approval_threshold is not None
    assert enterprise.approval_threshold < growth.approval_threshold
    assert enterprise.futility_window <= growth.futility_window <= early.futility_window


def test_the_same_evidence_triggers_early_and_waits_for_approval_in_enterprise() -> None:
    cfg = EconomicsConfig(value_per_point=2, traffic_per_day=50_000, compute_rate_per_hour=100, fixed_overhead=200)
    economics = Economics(cfg, retrain_cost(cfg, [1.0]), 0.8)  # 300 per retrain
    s = Signals("accuracy", 0.90, 0.86, "realized", current_low=0.855, current_high=0.865)
    now = datetime(2026, 11, 28, tzinfo=UTC)
    state = ModelState(owner="ana")
    assert decide(s, economics, state, preset("early"), now).action == Action.TRIGGER
    d = decide(s, economics, state, preset("enterprise"), now)
    assert d.action == Action.DEFER and Reason.NEEDS_APPROVAL in d.reasons


def test_a_misspelled_policy_key_is_one_config_error_line() -> None:
    with pytest.raises(ConfigError, match=r"early\.yaml: min_rio: unknown key"):
        validate(PolicyConfig, {"min_rio": 1.0}, "early.yaml")
