"""The service's Prometheus instruments: what checks and retrains did, counted where they run.

Names follow Prometheus' conventions: a ``retrain_`` prefix, base units (seconds), ``_total`` on
counters. No series is per model: labels take only a bounded set of values (outcomes, actions,
reason codes, retrain states), so a fleet of any size makes the same few series.

Celery's prefork pool runs checks in child processes: with ``PROMETHEUS_MULTIPROC_DIR`` set
before the process starts, prometheus_client keeps each process's values in that folder and an
exporter adds them up (``retrainctl worker --metrics-port``, or the console's ``/metrics``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter, Histogram

from controller.errors import RetryLater

CHECKS = Counter("retrain_checks_total", "Checks run, by outcome (done, failed, retry, skipped).", ["outcome"])
DECISIONS = Counter(
    "retrain_decisions_total", "Decisions made, by action and reason code (one per reason).", ["action", "reason"]
)
CHECK_SECONDS = Histogram(
    "retrain_check_duration_seconds",
    "Wall time of one check, from opening it to storing its decision.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
RETRAINS = Counter("retrain_retrains_total", "Retrains that ended a run, by the state they reached.", ["state"])


class _CheckOutcome(Protocol):
    @property
    def skipped(self) -> bool: ...
    @property
    def decision(self) -> Any: ...


class _RetrainOutcome(Protocol):
    @property
    def skipped(self) -> bool: ...
    @property
    def state(self) -> str: ...


C = TypeVar("C", bound=_CheckOutcome)
R = TypeVar("R", bound=_RetrainOutcome)


def counted_check(run: Callable[..., C]) -> Callable[..., C]:
    """Count a check function's outcome and time it; its decision counts once per reason code."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> C:
        started = time.perf_counter()
        try:
            outcome = run(*args, **kwargs)
        except RetryLater:
            CHECKS.labels("retry").inc()
            raise
        except Exception:
            CHECKS.labels("failed").inc()
            CHECK_SECONDS.observe(time.perf_counter() - started)
            raise
        if outcome.skipped:
            CHECKS.labels("skipped").inc()
            return outcome
        CHECKS.labels("done").inc()
        CHECK_SECONDS.observe(time.perf_counter() - started)
        decision = outcome.decision
        if decision is not None:
            for reason in decision.reason_codes or ["none"]:
                DECISIONS.labels(decision.action.value, reason).inc()
        return outcome

    return wrapper


def counted_retrain(run: Callable[..., R]) -> Callable[..., R]:
    """Count the state a retrain run ends in (``failed`` when it raises, ``queued`` on an outage)."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        try:
            outcome = run(*args, **kwargs)
        except RetryLater:
            RETRAINS.labels("queued").inc()
            raise
        except Exception:
            RETRAINS.labels("failed").inc()
            raise
        if not outcome.skipped:
            RETRAINS.labels(outcome.state).inc()
        return outcome

    return wrapper
