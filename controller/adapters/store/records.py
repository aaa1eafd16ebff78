"""What the store hands out: light records of a model's history, read in one transaction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from controller.adapters.store.tables import DecisionRow, OverrideRow, RetrainRow


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes and floats (inf/nan become None) as plain JSON values."""
    kind = type(value)
    # the plain types first, by exact type: a check's signals hold a few hundred of them
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if kind is list:
        return [to_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


class CheckPoint(NamedTuple):
    """The few fields of a finished check that the next checks read (see ``Store.check_history``):
    its reading of the serving version and the changes it dated. A named tuple, made up to 500
    times per check (cheaper to make than a frozen dataclass)."""

    started_at: datetime
    version: str | None
    metric_value: float | None
    source: str | None
    baseline: float | None
    change_at: str | None
    metric: str | None = None
    metric_se: float | None = None
    rows_from: datetime | None = None
    rows_to: datetime | None = None
    metric_estimate: float | None = None


class CheckSummary(NamedTuple):
    """A check's headline fields, without its signals (what ``retrainctl status`` shows)."""

    model: str
    status: str
    metric: str | None
    metric_value: float | None
    metric_source: str | None
    drift_share: float | None


IN_FLIGHT = ("queued", "training", "evaluating")


@dataclass(frozen=True)
class ModelSnapshot:
    """What a check reads about one model's history, in one transaction (see ``Store.model_snapshot``)."""

    retrains: list[RetrainRow]
    latest_decision: DecisionRow | None
    veto: OverrideRow | None
    approval: OverrideRow | None
    retrain_in_flight: bool
    spent_this_month: float
    team_spent_this_month: float
    history: list[CheckPoint] = field(default_factory=list)  # finished checks, newest first
    estimation_errors: list[float] = field(default_factory=list)  # of ``metric``, newest first

    def metric_series(self, metric: str, version: str | None = None, limit: int = 50) -> list[tuple[datetime, float]]:
        """``Store.metric_series`` over the snapshot's history: ``(check time, value)``, oldest first."""
        points = [
            (c.started_at, float(c.metric_value))
            for c in self.history
            if c.metric == metric and c.metric_value is not None and (version is None or c.version == version)
        ]
        return list(reversed(points[:limit]))


class FleetRecord(NamedTuple):
    """A model's newest decision with the figures of the check that made it, and the status of its
    newest check (which may have failed since): see ``Store.fleet``."""

    model: str
    version: str | None
    action: str | None
    reasons: list[str] | None
    summary: str | None
    numbers: dict[str, Any] | None
    signal_source: str | None
    decided_at: datetime | None
    metric: str | None
    metric_value: float | None
    metric_baseline: float | None
    drift_share: float | None
    check_status: str | None


class TimelinePoint(NamedTuple):
    """One check of a model's timeline, with its decision when it made one (see ``Store.timeline``)."""

    check_id: int
    started_at: datetime
    status: str
    version: str | None
    metric: str | None
    metric_value: float | None
    metric_source: str | None
    metric_baseline: float | None
    metric_low: float | None
    metric_high: float | None
    drift_share: float | None
    action: str | None
    loss_per_day: float | None


class LastRetrain(NamedTuple):
    """When a model's newest retrain was created and its state (see ``Store.last_retrains``)."""

    model: str
    created_at: datetime
    state: str


class RetrainCost(NamedTuple):
    """What one retrain cost: its estimate and, once billed, its actual cost (see ``Store.retrain_costs``)."""

    model: str
    created_at: datetime
    state: str
    cost_estimate: float | None
    actual_cost: float | None
    cost_anomaly: bool


class CheckSpan(NamedTuple):
    """How long a model has been checked (see ``Store.check_spans``)."""

    model: str
    first: datetime
    last: datetime
    checks: int
