"""``/metrics``: the store's state as gauges, read at each scrape, beside the process counters.

State gauges (they go up and down, so they are read from the store, not counted):
``retrain_outbox_items{status}``, ``retrain_models{decision}``, ``retrain_models_check_failing``,
``retrain_team_spend_this_month{team}``, ``retrain_team_budget{team}`` and
``retrain_team_budget_left{team}`` (money in the teams' currency). Per-model series
(``retrain_model_loss_per_day``, ``retrain_model_drift_share``) are opt-in
(``console.metrics_per_model``) and bounded to the ``console.metrics_max_models`` models with
the most money at stake.

The counters and the check-duration histogram (:mod:`controller.reactors.metrics`) come from
this process, or, with ``PROMETHEUS_MULTIPROC_DIR`` set, from every process writing there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

import controller.reactors.metrics  # noqa: F401  (registers the counters: a scrape shows them from 0)
from controller.adapters.store.store import Store
from controller.adapters.store.tables import month_of
from controller.web.views import Fleet, FleetRow, fleet_rows

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class StoreCollector:
    """Gauges of the audit store's state, computed at collection time."""

    def __init__(self, fleet: Fleet, store: Store, clock: Callable[[], datetime]) -> None:
        self.fleet, self.store, self.clock = fleet, store, clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        outbox = GaugeMetricFamily("retrain_outbox_items", "Outbox items by status.", labels=["status"])
        counts = self.store.outbox_counts()
        for status in sorted({"pending", "dead", *counts}):
            outbox.add_metric([status], counts.get(status, 0))
        yield outbox
        rows = fleet_rows(self.fleet, self.store, now)
        models = GaugeMetricFamily("retrain_models", "Watched models by their newest decision.", labels=["decision"])
        by_decision: dict[str, int] = {"TRIGGER": 0, "DEFER": 0, "VETO": 0, "none": 0}
        for r in rows:
            by_decision[r.decision or "none"] = by_decision.get(r.decision or "none", 0) + 1
        for decision, n in sorted(by_decision.items()):
            models.add_metric([decision], n)
        yield models
        yield GaugeMetricFamily(
            "retrain_models_check_failing",
            "Watched models whose newest check failed.",
            value=sum(r.last_check_status == "failed" for r in rows),
        )
        yield from self._teams(now)
        if self.fleet.service.console.metrics_per_model:
            yield from self._per_model(rows[: self.fleet.service.console.metrics_max_models])

    def _teams(self, now: datetime) -> Iterator[Metric]:
        month = month_of(now)
        spend = self.store.spend_by_scope([month])
        teams = sorted({c.team for c in self.fleet.models.values() if c.team} | set(self.fleet.service.team_budgets))
        spent = GaugeMetricFamily(
            "retrain_team_spend_this_month", "Retrain spend charged to the team this calendar month.", labels=["team"]
        )
        budget = GaugeMetricFamily("retrain_team_budget", "The team's monthly budget.", labels=["team"])
        left = GaugeMetricFamily(
            "retrain_team_budget_left", "The team's budget not yet spent this month.", labels=["team"]
        )
        for team in teams:
            amount = spend.get((f"team:{team}", month), 0.0)
            spent.add_metric([team], amount)
            cap = self.fleet.service.team_budgets.get(team)
            if cap is not None:
                budget.add_metric([team], cap)
                left.add_metric([team], cap - amount)
        yield from (spent, budget, left)

    @staticmethod
    def _per_model(rows: list[FleetRow]) -> Iterator[Metric]:
        loss = GaugeMetricFamily(
            "retrain_model_loss_per_day", "Expected loss per day of the newest decision.", labels=["model"]
        )
        drift = GaugeMetricFamily(
            "retrain_model_drift_share", "Share of drifted columns in the newest check.", labels=["model"]
        )
        for r in rows:
            if r.loss_per_day is not None:
                loss.add_metric([r.model], r.loss_per_day)
            if r.drift_share is not None:
                drift.add_metric([r.model], r.drift_share)
        yield from (loss, drift)


def exposition(collector: StoreCollector) -> bytes:
    """The text of ``/metrics``: the store's gauges and the process (or multiprocess) counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    return generate_latest(registry)
