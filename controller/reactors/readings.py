"""The check's side of the signal pipeline: what one check measures of the serving version, and the
facts of the model's versions, handed to :mod:`controller.signals` (which the backtest's replay
feeds the same way).

A check reads each labelled row of the serving version once: its realized reading is the metric on
the rows it served whose labels arrived since the previous reading (``rows_from`` .. ``rows_to``:
the newest row whose label is trusted, ``data.label_delay_hours`` old). Before the version has any
such row, the label-free estimate on the rows it served in the last check period stands in. A
version serves from the decision that created it (rows before are its training data); a version
the controller did not create serves from its registration, when that is not after the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from controller.adapters.datasource import Window, utc_times
from controller.adapters.registry.base import Baseline, VersionInfo
from controller.adapters.store.records import CheckPoint, ModelSnapshot
from controller.config import ModelConfig
from controller.core.decision import window_residual
from controller.core.policy import PolicyConfig
from controller.errors import DataError
from controller.reactors.context import Context
from controller.signals.levels import Assessment, Estimated, Measured, Timing, VersionFacts, assess, format_changes
from controller.signals.measure import LabelFree, fit_label_free, measure, usable_estimate
from detectors.performance import higher_is_better


def timing_of(cfg: ModelConfig) -> Timing:
    """The model's clock: its check period, label delay and the labelled part of a training window."""
    cron = cfg.schedule.cron_expr
    if cron is not None:
        first = cron.next_after(datetime(2001, 1, 1, tzinfo=UTC))
        second = cron.next_after(first) if first is not None else None
        period = (second - first).total_seconds() if first is not None and second is not None else 86400.0
    else:
        period = cfg.schedule.seconds or 3600.0
    delay = cfg.data.label_delay_hours / 24.0
    window = (cfg.trainer.window_hours if cfg.trainer and cfg.trainer.window_hours else cfg.data.window_hours) / 24.0
    return Timing(period_days=period / 86400.0, label_delay_days=delay, train_window_days=max(window - delay, 1e-9))


def version_facts(
    snapshot: ModelSnapshot, history: Sequence[CheckPoint], serving: VersionInfo, now: datetime, fallback: datetime
) -> tuple[VersionFacts, dict[str, VersionFacts]]:
    """The serving version's facts and every known version's, from the retrains that made them."""
    facts: dict[str, VersionFacts] = {}
    for r in reversed(snapshot.retrains):  # oldest first: a version promoted again keeps its newest retrain
        if r.challenger_version and r.state == "promoted":
            share = r.fresh_share
            facts[r.challenger_version] = VersionFacts(
                r.challenger_version,
                r.created_at,
                clean=share is None or share >= 1.0,
                residual_points=r.residual_points or 0.0,
            )
    if serving.version not in facts:
        seen = [c.rows_from for c in history if c.version == serving.version and c.rows_from is not None]
        facts[serving.version] = VersionFacts(serving.version, serving_since(serving) or min(seen, default=fallback))
    return facts[serving.version], facts


SERVING_SINCE = "retrain.serving_since"
"""Model-version tag: when a version the controller did not promote started serving (ISO 8601)."""


def serving_since(version: VersionInfo) -> datetime | None:
    """When the version started serving, by its tag; None when it has none (every row counts)."""
    text = version.tags.get(SERVING_SINCE)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(
            f"{version.name} v{version.version}: tag {SERVING_SINCE}={text!r} is not an ISO time "
            "(e.g. 2026-11-30T00:00:00+00:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def performance(
    ctx: Context,
    cfg: ModelConfig,
    policy: PolicyConfig,
    version: VersionInfo,
    window: Window,
    baseline: Baseline,
    pred: np.ndarray,
    proba: np.ndarray | None,
    metric: str,
    snapshot: ModelSnapshot,
    now: datetime,
) -> tuple[Assessment, dict[str, Any], tuple[str, float, float] | None]:
    """The check's assessment, the fields it stores with the check, and its estimation error
    ``(metric, estimated, realized)`` when both figures exist for the same rows."""
    timing = timing_of(cfg)
    history = list(reversed(snapshot.history))  # oldest first
    rows = window.rows
    times = utc_times(rows[cfg.data.time_column]) if len(rows) else pd.Series([], dtype="datetime64[ns, UTC]")
    serving, versions = version_facts(snapshot, history, version, now, window.start)
    start = pd.Timestamp(serving.started_at)
    previous = max((c.rows_to for c in history if c.version == version.version and c.rows_to is not None), default=None)
    labels = rows[cfg.data.label_column]
    new = labels.notna().to_numpy() & (times >= start).to_numpy()
    if previous is not None:
        new &= (times > pd.Timestamp(previous)).to_numpy()
    rows_from = max([serving.started_at, window.start, *([previous] if previous is not None else [])])
    rows_to = now - timedelta(hours=cfg.data.label_delay_hours)
    label_free = _label_free(ctx, cfg, version.version, baseline, metric)
    measured = None
    point = None
    estimation_error = None
    past_errors = list(snapshot.estimation_errors)
    if new.any():
        got = measure(
            cfg.task, metric, labels.to_numpy()[new], pred[new], None if proba is None else proba[new],
            min_rows=cfg.data.min_labeled_rows,
        )  # fmt: skip
        if got is not None:
            measured = Measured(got[0], got[1], int(new.sum()), rows_from)
            point = None if label_free is None else label_free.point(pred[new], _rows(proba, new), rows.loc[new])
            if point is not None:
                estimation_error = (metric, point, measured.value)
                past_errors = [abs(point - measured.value), *past_errors][:20]
    estimated = None
    if label_free is not None:
        recent = (times >= max(start, pd.Timestamp(now - timedelta(days=timing.period_days)))).to_numpy()
        if recent.any():
            estimated = label_free.estimate(pred[recent], _rows(proba, recent), rows.loc[recent])
    estimated, trust = usable_estimate(estimated, past_errors, policy.tolerance_points)
    a = assess(
        higher_is_better=higher_is_better(metric),
        now=now,
        serving=serving,
        versions=versions,
        history=history,
        measured=measured,
        estimated=estimated,
        timing=timing,
        registered_baseline=baseline.metrics.get(metric),
    )
    reading: Measured | Estimated | None = measured if measured is not None else estimated
    record = {
        "reading": None if reading is None else reading.value,
        "reading_source": "realized" if measured is not None else ("estimated" if estimated is not None else "none"),
        "reading_se": None if measured is None else measured.se,
        "rows_from": None if measured is None else measured.rows_from,
        "rows_to": None if measured is None else rows_to,
        "reading_estimate": point if measured is not None else None,
        "n_labeled": int(new.sum()),
        "coverage": window.coverage,
        "estimate_trust": trust,
        "change_at": format_changes(a.changes),
        "fresh_levels": a.fresh_levels,
        "pooled_readings": a.pooled,
        "serving_since": serving.started_at,
    }
    return a, record, estimation_error


def retrain_context(share: float | None, drop_points: float) -> dict[str, float | None]:
    """What a new retrain keeps of the decision: its window's freshness and the residual it expects."""
    return {"fresh_share": share, "residual_points": window_residual(share) * max(drop_points, 0.0)}


def _rows(proba: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if proba is None else proba[mask]


def _label_free(ctx: Context, cfg: ModelConfig, version: str, baseline: Baseline, metric: str) -> LabelFree | None:
    """The version's label-free estimator, fitted once per process (and machine) on its reference scores."""
    key = (cfg.registered_model, version, metric)
    if key not in ctx.label_free:
        ctx.label_free[key] = None if baseline.scores is None else fit_label_free(cfg.task, metric, baseline.scores)
    return ctx.label_free[key]
