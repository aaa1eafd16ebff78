"""Governance rules every watched model must meet: an owner, a purpose, cost metadata, budgets.
"""

from __future__ import annotations

from controller.core.economics import EconomicsConfig


def governance_violations(
    owner: str | None,
    business_purpose: str | None,
    economics: EconomicsConfig | None,
    *,
    team: str | None = None,
    require_team: bool = False,
    monthly_spend: float | None = None,
    monthly_budget: float | None = None,
    months_cost_over_value: int = 0,
    kill_periods: int | None = None,
) -> list[str]:
    """Every governance rule a watched model breaks, one sentence each (empty = compliant).

    The rules: a named owner, a stated business purpose, cost metadata (cost transparency before
    anything runs), a team when the platform requires one, spend within the monthly budget, and not
    costing more than it earns for ``kill_periods`` months.

    >>> governance_violations("ana", "churn offers", None)
    ['no cost metadata: add an economics section (value per point, traffic, compute rate)']
    >>> governance_violations(" ", None, None, monthly_spend=120.0, monthly_budget=100.0)[0]
    'no owner: set owner in the model config or the registered-model tag'
    """
    out: list[str] = []
    if not (owner or "").strip():
        out.append("no owner: set owner in the model config or the registered-model tag")
    if not (business_purpose or "").strip():
        out.append("no business purpose: set business_purpose in the model config or the registered-model tag")
    if economics is None:
        out.append("no cost metadata: add an economics section (value per point, traffic, compute rate)")
    if require_team and not (team or "").strip():
        out.append("no team: set team in the model config (team budgets need it)")
    if monthly_spend is not None and monthly_budget is not None and monthly_spend > monthly_budget:
        out.append(f"over budget: spent {monthly_spend:,.2f} this month against a budget of {monthly_budget:,.2f}")
    if kill_periods is not None and months_cost_over_value >= kill_periods:
        out.append(
            f"costs more than it earns for {months_cost_over_value} months (limit {kill_periods}): consider retiring it"
        )
    return out
