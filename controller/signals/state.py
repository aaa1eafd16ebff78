"""From what the store knows about a model to its ``ModelState`` and ``Economics``: the same
functions for the service's check and the backtest's replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.core.decision import Action, Economics, ModelState
from controller.core.economics import EconomicsConfig, recovery_probability, retrain_cost


@dataclass(frozen=True)
class RetrainFact:
    """One past retrain as the decision sees it (newest last in the sequences below)."""

    created_at: datetime
    state: str
    recovered: bool | None


def model_state(
    *,
    owner: str | None,
    has_cost_metadata: bool,
    retrains: Sequence[RetrainFact],
    retrain_in_flight: bool = False,
    latest_action: str | None = None,
    manual_veto: str | None = None,
    manual_approval: str | None = None,
    spent_this_month: float = 0.0,
    team_spent_this_month: float = 0.0,
    team_budget: float | None = None,
    months_cost_over_value: int = 0,
    retire_on: datetime | None = None,
    now: datetime | None = None,
) -> ModelState:
    """The model's state at decision time; ``retrains`` oldest first. A planned retirement
    (``retire_on``, with the decision's ``now``) bounds the days a retrain's value counts."""
    return ModelState(
        owner=owner,
        has_cost_metadata=has_cost_metadata,
        retrain_in_flight=retrain_in_flight,
        last_retrain_at=max((r.created_at for r in retrains if r.state != "failed"), default=None),
        spent_this_month=spent_this_month,
        team_spent_this_month=team_spent_this_month,
        team_budget=team_budget,
        recent_recoveries=tuple(bool(r.recovered) for r in retrains if r.recovered is not None),
        last_action=Action(latest_action) if latest_action else None,
        manual_veto=manual_veto,
        manual_approval=manual_approval,
        months_cost_over_value=months_cost_over_value,
        remaining_days=remaining_days(retire_on, now),
    )


def economics(
    config: EconomicsConfig | None,
    training_hours: Sequence[float],
    retrains: Sequence[RetrainFact],
    recent: int = 20,
    billed: Sequence[float] = (),
) -> Economics | None:
    """The retrain cost estimate (past bills where the ledger has them, else past training hours)
    and the chance a retrain recovers (the outcomes of the ``recent`` newest retrains); None without
    cost metadata."""
    if config is None:
        return None
    outcomes = [bool(r.recovered) for r in retrains[-recent:] if r.recovered is not None]
    cost = retrain_cost(config, training_hours, past_billed=billed)
    return Economics(config, cost, recovery_probability(outcomes))


def remaining_days(retire_on: datetime | None, now: datetime | None) -> float | None:
    """Days until a planned retirement (never negative); None without one."""
    if retire_on is None or now is None:
        return None
    return max((retire_on - now).total_seconds() / 86400.0, 0.0)
