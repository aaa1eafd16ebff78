"""The retraining policy: the rules a platform team sets for when a retrain may run.

A policy is validated once, at load time, and is then an immutable value passed down to
``controller.decision.decide``. Every field carries its unit in its name or its description.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PolicyConfig(BaseModel):
    """Decision rules for one model (defaults come from ``configs/controller.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_roi: float = Field(
        1.0, ge=0, description="Trigger only when (recovered value - cost) / cost reaches this ratio."
    )
    min_net_value: float = Field(0.0, description="Trigger only when recovered value - cost reaches this (money).")
    horizon_days: float = Field(30.0, gt=0, description="Days over which the value a retrain recovers is counted.")
    tolerance_points: float = Field(
        1.0, ge=0, description="A metric drop (in points, 1 point = 0.01) below this is noise."
    )
    drift_share_threshold: float = Field(
        0.5, gt=0, le=1, description="Share of drifted columns at which the dataset counts as drifted."
    )
    monthly_budget: float | None = Field(
        None, ge=0, description="Money this model may spend on retrains per calendar month; none = no cap."
    )
    cooldown_hours: float = Field(24.0, ge=0, description="Minimum hours between two retrains of a model.")
    hysteresis: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="After a DEFER, the ROI must beat min_roi by this fraction to trigger (no flip-flop).",
    )
    defer_recheck_hours: float = Field(6.0, gt=0, description="When a DEFER asks to be re-checked.")
    approval_threshold: float | None = Field(
        None, ge=0, description="A retrain whose cost estimate is above this waits for the owner's approval."
    )
    futility_window: int = Field(
        3, ge=1, description="Veto when this many most recent retrains in a row did not recover the metric."
    )
    kill_periods: int = Field(
        3, ge=1, description="Recommend retirement after this many months of costing more than earning."
    )
    idle_traffic_per_day: float = Field(
        0.0,
        ge=0,
        description="A model with serving spend and fewer predictions a day than this is idle (ROI audit: scale it "
        "down); 0: never idle.",
    )
    spend_anomaly_sensitivity: float = Field(
        4.0,
        gt=0,
        description="Robust standard deviations of a spend series' own noise a day must exceed to be a spend anomaly.",
    )
    require_owner: bool = Field(True, description="Veto a model that has no owner.")
    require_cost_metadata: bool = Field(True, description="Veto a model with no cost metadata.")
