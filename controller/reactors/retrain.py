"""One retrain, end to end: train a challenger, evaluate it against the champion, promote or reject.

The trainer is the one named in the model's config (never a tag). A retrain is claimed by a
conditional state change, so two workers cannot both run it; an outage releases it for the retry,
and a worker that died mid-way is caught by the lease (:func:`reclaim_retrains`). Every step is a
state in the store and a ``retrain.*`` tag, and the owner hears of the outcome by webhook.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from controller.adapters.datasource import load_window
from controller.adapters.registry.base import TrainingRecord, VersionInfo
from controller.adapters.trainers import import_trainer
from controller.config import ModelConfig
from controller.core.economics import EconomicsConfig
from controller.errors import GiveUp, RetryLater
from controller.reactors.baseline import build_baseline, features_of, metric_on, primary_metric
from controller.reactors.check import CHALLENGER
from controller.reactors.context import Context
from controller.reactors.metrics import counted_retrain
from detectors.performance import higher_is_better
from detectors.profile import ReferenceProfile


@dataclass(frozen=True)
class RetrainOutcome:
    retrain_id: int
    state: str
    challenger_version: str | None = None
    champion_metric: float | None = None
    challenger_metric: float | None = None
    skipped: bool = False


# the retrain
@counted_retrain
def run_retrain(ctx: Context, retrain_id: int) -> RetrainOutcome:
    """Train a challenger, evaluate it against the champion, promote it only if it is better."""
    store = ctx.store
    row = store.retrain(retrain_id)
    if not store.claim_retrain(retrain_id, ["queued"], "training"):
        return RetrainOutcome(retrain_id, row.state, row.challenger_version, skipped=True)
    cfg = ctx.model(row.model)
    try:
        return _retrain(ctx, cfg, retrain_id)
    except RetryLater:
        # An outage (MLflow, data source) is not the retrain's fault: release it for the retry.
        store.update_retrain(retrain_id, state="queued")
        raise
    except Exception as exc:
        store.update_retrain(retrain_id, state="failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        now = ctx.clock()
        _notify(ctx, cfg, retrain_id, "failed", {"retrain_id": retrain_id, "error": str(exc)[:500]}, now)
        raise


def reclaim_retrains(ctx: Context, now: datetime | None = None) -> list[int]:
    """Retrains whose worker died mid-way (older than the lease), queued again; their ids."""
    now = now or ctx.clock()
    return ctx.store.reclaim_stale_retrains(now - timedelta(hours=ctx.service.retrain_lease_hours), now)


def _event(kind: str, cfg: ModelConfig, now: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": kind,
        "model": cfg.name,
        "timestamp": now.isoformat(),
        "data": {"registered_model": cfg.registered_model, **data},
    }


def _notify(ctx: Context, cfg: ModelConfig, retrain_id: int, step: str, data: dict[str, Any], now: datetime) -> None:
    """Queue the owner's ``retrain.<step>`` webhook for this retrain (once per step)."""
    event = _event(f"retrain.{step}", cfg, now, data)
    ctx.store.enqueue(cfg.name, "webhook", f"webhook:retrain:{retrain_id}:{step}", event, now)


def _tag(
    ctx: Context, cfg: ModelConfig, retrain_id: int, role: str, version: str, tags: dict[str, str], now: datetime
) -> None:
    """Queue ``retrain.*`` tags for one version touched by this retrain (``role``: challenger or champion)."""
    payload = {"name": cfg.registered_model, "version": version, "tags": tags}
    ctx.store.enqueue(cfg.name, "mlflow_tags", f"tags:retrain:{retrain_id}:{role}", payload, now)


def _settle(
    ctx: Context,
    cfg: ModelConfig,
    retrain_id: int,
    challenger_version: str,
    metric: str,
    champion_metric: float | None,
    challenger_metric: float | None,
    **fields: Any,
) -> str:
    """Promote the challenger by alias only if it beats the champion; record the outcome; its state."""
    better = _better(challenger_metric, champion_metric, higher_is_better(metric))
    if better:
        ctx.registry.set_alias(cfg.registered_model, cfg.alias, challenger_version)
    state = "promoted" if better else "rejected"
    ctx.store.update_retrain(
        retrain_id,
        state=state,
        champion_metric=champion_metric,
        challenger_metric=challenger_metric,
        recovered=better,
        **fields,
    )
    return state


def _retrain(ctx: Context, cfg: ModelConfig, retrain_id: int) -> RetrainOutcome:
    store, registry = ctx.store, ctx.registry
    if cfg.trainer is None:
        raise GiveUp(f"model {cfg.name} has no trainer in {cfg.source_file}")
    # Train on the data up to the decision that asked for this retrain, not up to whenever a
    # worker got to it: the same retrain gives the same challenger.
    as_of = store.retrain(retrain_id).created_at
    champion = registry.resolve(cfg.registered_model, cfg.alias)
    window = load_window(cfg, as_of, hours=cfg.trainer.window_hours)
    labeled = window.labeled.sort_values(cfg.data.time_column, kind="stable").reset_index(drop=True)
    if len(labeled) < max(2 * cfg.data.min_labeled_rows, 20):
        raise GiveUp(f"only {len(labeled)} labeled rows in the training window of {cfg.name}")
    baseline = registry.load_baseline(cfg.registered_model, champion.version)
    features = features_of(
        cfg, ReferenceProfile.from_bytes(baseline.profile).columns if baseline.profile else list(labeled.columns)
    )
    cut = int(len(labeled) * 0.7)
    train, holdout = labeled.iloc[:cut], labeled.iloc[cut:]
    metric = primary_metric(cfg)
    reuse = store.retrain(retrain_id).challenger_version
    if reuse is not None:
        return _promote_existing(ctx, cfg, retrain_id, champion, reuse, holdout, features, metric)
    trainer = import_trainer(cfg.trainer.callable)
    # The run is opened before training and its id recorded, so a bill tagged with it finds this
    # retrain (failed ones cost money too) and the trainer can tag the resources it starts.
    run_id = registry.start_run(cfg.registered_model)
    store.update_retrain(retrain_id, mlflow_run_id=run_id)
    params = dict(cfg.trainer.params)
    if _takes(trainer, "mlflow_run_id"):
        params["mlflow_run_id"] = run_id
    started = time.perf_counter()
    model = trainer(train, features=features, target=cfg.data.label_column, **params)
    seconds = time.perf_counter() - started
    new_baseline = build_baseline(cfg, model, train, holdout, features)
    record = TrainingRecord(
        model=model,
        baseline=new_baseline,
        params={
            "trainer": cfg.trainer.callable,
            **cfg.trainer.params,
            "train_rows": len(train),
            "holdout_rows": len(holdout),
        },
        metrics={f"holdout_{k}": v for k, v in new_baseline.metrics.items() if np.isfinite(v)},
        training_seconds=seconds,
        tags={
            "retrain.role": CHALLENGER,
            "retrain.retrain_id": str(retrain_id),
            "retrain.trained_from": f"v{champion.version}",
        },
    )
    challenger = registry.log_version(cfg.registered_model, record, run_id=run_id)
    registry.set_alias(cfg.registered_model, CHALLENGER, challenger.version)
    store.update_retrain(
        retrain_id,
        state="evaluating",
        mlflow_run_id=challenger.run_id,
        challenger_version=challenger.version,
        training_hours=seconds / 3600.0,
    )

    old = ctx.load_model(cfg.registered_model, champion.version)
    champ_metric = metric_on(cfg, old, holdout, features, metric)
    chall_metric = new_baseline.metrics.get(metric)
    econ: EconomicsConfig | None = cfg.economics
    row = store.retrain(retrain_id)
    actual = None
    anomaly = False
    if econ is not None:
        actual = seconds / 3600.0 * econ.compute_rate_per_hour + econ.labeling_cost_per_row * econ.labels_per_retrain
        actual += econ.fixed_overhead
        low, high = row.cost_low or 0.0, row.cost_high or float("inf")
        anomaly = actual > 1.5 * high or actual < low / 1.5
    state = _settle(
        ctx,
        cfg,
        retrain_id,
        challenger.version,
        metric,
        champ_metric,
        chall_metric,
        actual_cost=actual,
        cost_anomaly=anomaly,
        cost_source=None if actual is None else "runtime",
    )
    done = ctx.clock()
    data = {
        "retrain_id": retrain_id,
        "champion_version": champion.version,
        "challenger_version": challenger.version,
        "metric": metric,
        "champion_metric": champ_metric,
        "challenger_metric": chall_metric,
        "mlflow_run_id": challenger.run_id,
        "actual_cost": actual,
        "cost_estimate": row.cost_estimate,
    }
    _notify(ctx, cfg, retrain_id, "completed", data, done)
    _notify(ctx, cfg, retrain_id, state, data, done)
    if anomaly:
        _notify(
            ctx, cfg, retrain_id, "cost_anomaly", {**data, "cost_low": row.cost_low, "cost_high": row.cost_high}, done
        )
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    _tag(
        ctx,
        cfg,
        retrain_id,
        "challenger",
        challenger.version,
        {
            "retrain.challenger_status": state,
            "retrain.retrain_run_id": challenger.run_id or "",
            "retrain.challenger_metric": fmt(chall_metric),
            "retrain.champion_metric": fmt(champ_metric),
        },
        done,
    )
    _tag(
        ctx,
        cfg,
        retrain_id,
        "champion",
        champion.version,
        {
            "retrain.retrain_run_id": challenger.run_id or "",
            "retrain.challenger_status": f"{state}: v{challenger.version}",
        },
        done,
    )
    return RetrainOutcome(retrain_id, state, challenger.version, champ_metric, chall_metric)


def _promote_existing(
    ctx: Context,
    cfg: ModelConfig,
    retrain_id: int,
    champion: VersionInfo,
    version: str,
    holdout: pd.DataFrame,
    features: Sequence[str],
    metric: str,
) -> RetrainOutcome:
    """The reuse path: evaluate a registered version against the champion and promote it if better."""
    ctx.store.update_retrain(retrain_id, state="evaluating")
    champ = metric_on(cfg, ctx.load_model(cfg.registered_model, champion.version), holdout, features, metric)
    chall = metric_on(cfg, ctx.load_model(cfg.registered_model, version), holdout, features, metric)
    state = _settle(ctx, cfg, retrain_id, version, metric, champ, chall, actual_cost=0.0)
    done = ctx.clock()
    data = {
        "retrain_id": retrain_id,
        "champion_version": champion.version,
        "challenger_version": version,
        "metric": metric,
        "champion_metric": champ,
        "challenger_metric": chall,
        "reused": True,
    }
    _notify(ctx, cfg, retrain_id, state, data, done)
    _tag(
        ctx,
        cfg,
        retrain_id,
        "challenger",
        version,
        {"retrain.challenger_status": f"{state} (reused, no training)"},
        done,
    )
    return RetrainOutcome(retrain_id, state, version, champ, chall)


def _takes(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` accepts a keyword ``name`` (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _better(challenger: float | None, champion: float | None, higher: bool) -> bool:
    if challenger is None:
        return False
    if champion is None:
        return True
    return challenger > champion if higher else challenger < champion
