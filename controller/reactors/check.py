"""One check of one model: the thin reactor around the signal pipeline and the pure decision.

``run_check`` gathers everything (the version by alias, its baseline, the window, the detectors,
this check's reading: :mod:`controller.reactors.readings`), hands it to :mod:`controller.signals`
and :func:`controller.core.decision.decide`, and stores the check, its reading and its decision
together with their outbox items (MLflow tags, webhooks) and, on TRIGGER, the retrain to run
(:mod:`controller.reactors.retrain` runs it).

A check is idempotent: it carries a request key, and a redelivered task finds it done.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from controller.adapters.datasource import Window, load_window
from controller.adapters.registry.base import VersionInfo
from controller.adapters.store.records import ModelSnapshot, to_jsonable
from controller.adapters.store.tables import DecisionRow, RetrainRow
from controller.config import (
    ModelConfig,
)
from controller.core.decision import Action, Decision, ModelState, Signals, decide
from controller.core.policy import PolicyConfig
from controller.errors import DataError, GiveUp, UserError
from controller.reactors import readings
from controller.reactors.baseline import features_of, metric_on, primary_metric
from controller.reactors.components import component_outbox, component_signals
from controller.reactors.context import Context
from controller.reactors.costs import month_cost, months_over_value, running_cost
from controller.reactors.metrics import counted_check
from controller.signals import state as signal_state
from controller.signals.levels import Assessment
from detectors.drift import DriftOptions, detect_drift
from detectors.evidently_engine import run_evidently
from detectors.multivariate import domain_classifier_drift
from detectors.profile import ColumnsOf, CurrentWindow
from detectors.quality import check_quality

EVENT_OF = {Action.TRIGGER: "retrain.triggered", Action.DEFER: "retrain.deferred", Action.VETO: "retrain.vetoed"}


CHALLENGER = "challenger"


@dataclass(frozen=True)
class CheckOutcome:
    model: str
    check_id: int
    decision_id: int | None
    decision: Decision | None
    retrain_id: int | None = None
    skipped: bool = False
    version: str | None = None
    signals: dict[str, Any] = field(default_factory=dict)


def owner_of(cfg: ModelConfig, model_tags: dict[str, str]) -> str | None:
    """The config file wins (it is under the operator's control); the registry tag fills a gap."""
    return cfg.owner or model_tags.get("owner") or None


def _months_over_value(ctx: Context, cfg: ModelConfig, now: datetime, periods: int) -> int:
    """Consecutive recent months in which the model cost more than it earned: measured spend where
    the ledger has it, the config's running cost and retrain spend where it does not."""
    return months_over_value(ctx, cfg, now, periods)[0]


def cost_details(ctx: Context, cfg: ModelConfig, now: datetime) -> dict[str, str]:
    """Where the decision's money figures come from (``ledger`` or ``config``): the running cost per
    day and this month's cost behind the kill criteria."""
    per_day, running_source = running_cost(ctx, cfg, now)
    month = month_cost(ctx, cfg, now.year, now.month, now)
    return {
        "cost_source": month.source,
        "running_cost_per_day": f"{per_day:.2f}",
        "running_cost_source": running_source,
    }


def model_state(
    ctx: Context, cfg: ModelConfig, model_tags: dict[str, str], policy: PolicyConfig, now: datetime, snap: ModelSnapshot
) -> tuple[ModelState, int | None]:
    """The model's state from the snapshot (:func:`controller.signals.state.model_state`) and the id of
    an approval in force, to consume if the check triggers."""
    latest, veto, approval = snap.latest_decision, snap.veto, snap.approval
    state = signal_state.model_state(
        owner=owner_of(cfg, model_tags),
        has_cost_metadata=cfg.economics is not None,
        retrains=retrain_facts(snap.retrains),
        retrain_in_flight=snap.retrain_in_flight,
        latest_action=latest.action if latest else None,
        manual_veto=f"{veto.author}: {veto.reason}" if veto else None,
        manual_approval=f"{approval.author}: {approval.reason}" if approval else None,
        spent_this_month=snap.spent_this_month,
        team_spent_this_month=snap.team_spent_this_month,
        team_budget=ctx.service.team_budgets.get(cfg.team) if cfg.team else None,
        months_cost_over_value=_months_over_value(ctx, cfg, now, policy.kill_periods),
        retire_on=cfg.retire_on,
        now=now,
    )
    return state, (approval.id if approval else None)


def retrain_facts(retrains: Sequence[RetrainRow]) -> list[signal_state.RetrainFact]:
    """The store's retrains (newest first) as the decision sees them, oldest first."""
    return [signal_state.RetrainFact(r.created_at, r.state, r.recovered) for r in reversed(retrains)]


def billed_costs(retrains: Sequence[RetrainRow], recent: int = 20) -> list[float]:
    """What the newest retrains were billed, where the ledger has their bill (newest first)."""
    return [r.billed_cost for r in retrains[:recent] if r.cost_source == "billed" and r.billed_cost is not None]


def decision_tags(decision: Decision, signals: Signals, now: datetime) -> dict[str, str]:
    """The ``retrain.*`` tags people see on the model version in the MLflow UI."""
    n = decision.numbers

    def fmt(v: float | None, spec: str = ".4f") -> str:
        return "" if v is None or not np.isfinite(v) else format(v, spec)

    return {
        "retrain.decision": decision.action.value,
        "retrain.reason": ",".join(decision.reason_codes),
        "retrain.summary": decision.summary[:500],
        "retrain.checked_at": now.isoformat(timespec="seconds"),
        "retrain.drift_share": fmt(signals.drift_share, ".3f"),
        "retrain.metric": signals.metric,
        "retrain.metric_baseline": fmt(signals.baseline),
        "retrain.metric_now": fmt(signals.current),
        "retrain.metric_source": signals.source,
        "retrain.loss_per_day": fmt(n.loss_per_day, ".2f"),
        "retrain.net_value": fmt(n.net_value, ".2f"),
    }


@counted_check
def run_check(
    ctx: Context, model_name: str, request_key: str | None = None, now: datetime | None = None
) -> CheckOutcome:
    """Run one check of one model and store its decision (see the module docstring)."""
    cfg = ctx.model(model_name)
    now = now or ctx.clock()
    store = ctx.store
    model_row = (cfg.registered_model, cfg.owner, cfg.team, cfg.business_purpose)
    with store.one_connection():  # its three transactions on one checked-out connection
        check_id, already = store.start_check(cfg.name, now, request_key, model_row=model_row)
        if already:
            d = store.decision_for_check(check_id)
            return CheckOutcome(cfg.name, check_id, d.id if d else None, None, skipped=True)
        try:
            return _check(ctx, cfg, check_id, now)
        except (UserError, GiveUp, DataError) as exc:
            store.fail_check(check_id, str(exc), ctx.clock())
            raise
        except Exception as exc:
            store.fail_check(check_id, f"{type(exc).__name__}: {exc}", ctx.clock())
            raise


def _check(ctx: Context, cfg: ModelConfig, check_id: int, now: datetime) -> CheckOutcome:
    registry, store = ctx.registry, ctx.store
    policy = ctx.policy(cfg)
    version = registry.resolve(cfg.registered_model, cfg.alias)
    model_tags = registry.model_tags(cfg.registered_model)
    baseline = registry.load_baseline(cfg.registered_model, version.version)
    if baseline.profile is None:
        raise GiveUp(f"{cfg.registered_model} v{version.version} has no reference profile in its baseline")
    profile = ctx.profile(baseline)
    window = load_window(cfg, now, categories=True, cache=ctx.file_cache)
    rows = window.rows
    features = features_of(cfg, profile.all_columns)
    metric = primary_metric(cfg)
    # Everything the check reads about the model's past, in one transaction.
    snapshot = store.model_snapshot(cfg.name, cfg.team, now, metric=metric, history_limit=500)
    estimation_error = None

    signals_extra: dict[str, Any] = {"n_rows": len(rows), "version": version.version}
    if window.schema_changes:  # files of the window whose columns differ (a partition added a column, ...)
        signals_extra["schema_changes"] = list(window.schema_changes)
    # the features, read in place; each column read once, for quality, drift and scoring
    window_columns = CurrentWindow(ColumnsOf(rows, [c for c in features if c in rows.columns]))
    quality = check_quality(profile, window_columns)
    failures = tuple(quality.failures)
    drift_share, dataset_drift = None, False
    assessment = Assessment("none", baseline.metrics.get(metric), None)
    reading: dict[str, Any] = {"reading_source": "none"}
    if len(rows):
        if cfg.drift.engine == "evidently":
            # evidently itself, on the reference the profile keeps; its HTML goes to MLflow per check.
            run = run_evidently(profile, window_columns.dataframe(), cfg.drift)
            drift = run.report
            with tempfile.TemporaryDirectory() as tmp:
                run.save_html(Path(tmp) / "drift.html")
                html = (Path(tmp) / "drift.html").read_bytes()
            signals_extra["drift_report_run"] = registry.log_check_report(
                cfg.registered_model, version.version, check_id, {"drift.html": html}
            )
        else:
            drift = detect_drift(profile, window_columns, cfg.drift)
        drift_share, dataset_drift = drift.drift_share, drift.drifted
        signals_extra["drift"] = drift.to_dict()
        if cfg.multivariate_drift and profile.row_sample is not None and not failures and len(rows) >= 30:
            # Joint shifts whose margins look alike: a classifier told to separate the two windows.
            md = domain_classifier_drift(profile, window_columns.dataframe(), random_state=check_id)
            signals_extra["multivariate_drift"] = {
                "auc": md.auc,
                "threshold": md.threshold,
                "p_value": md.p_value,
                "drifted": md.drifted,
                "top_columns": [list(c) for c in md.top_columns],
            }
            dataset_drift = dataset_drift or md.drifted
        if not failures:
            if cfg.prediction_column in rows.columns and not cfg.proba_columns:
                pred, proba = rows[cfg.prediction_column].to_numpy(), None
            elif cfg.proba_columns and all(c in rows.columns for c in cfg.proba_columns):
                proba = rows[cfg.proba_columns].to_numpy()
                classes = ctx.load_model(cfg.registered_model, version.version).classes_
                pred = np.asarray(classes)[proba.argmax(axis=1)]
            else:
                pred, proba = ctx.score(
                    cfg.registered_model, version.version, rows, features, factorized=window_columns.factorized
                )
            assessment, reading, estimation_error = readings.performance(
                ctx, cfg, policy, version, window, baseline, pred, proba, metric, snapshot, now
            )
            if baseline.scores is not None and len(pred):
                options = DriftOptions(categorical=["prediction"] if cfg.task == "classification" else [])
                ref_pred = ctx.prediction_profile(cfg.registered_model, version.version, baseline, options)
                pdrift = detect_drift(ref_pred, pd.DataFrame({"prediction": pred}), options)
                signals_extra["prediction_drift"] = pdrift.to_dict()["columns"][0]
    if cfg.uses:
        signals_extra["components"] = component_signals(
            ctx, cfg, version, window, features, metric, signals_extra.get("drift")
        )
    signals = assessment.signals(
        metric,
        drift_share=drift_share,
        dataset_drift=dataset_drift,
        quality_failures=failures,
        n_rows=len(rows),
        **_reuse_candidate(ctx, cfg, version, window, features, metric, assessment.source),
    )
    state, approval_id = model_state(ctx, cfg, model_tags, policy, now, snapshot)
    hours = ctx.training_hours(cfg.registered_model, version.version)
    economics = signal_state.economics(
        cfg.economics, hours, retrain_facts(snapshot.retrains), billed=billed_costs(snapshot.retrains)
    )
    decision = decide(signals, economics, state, policy, now)

    retrain: dict[str, Any] | None = None
    if decision.action == Action.TRIGGER and decision.promote_version is not None:
        # Reuse: an existing version fits the current data; evaluate and promote it, no training.
        retrain = {
            "idempotency_key": f"retrain:{cfg.name}:check:{check_id}",
            "state": "queued",
            "cost_estimate": 0.0,
            "champion_version": version.version,
            "challenger_version": decision.promote_version,
        }
    elif decision.action == Action.TRIGGER and economics is not None:
        caps = {f"model:{cfg.name}": policy.monthly_budget}
        if cfg.team:
            caps[f"team:{cfg.team}"] = ctx.service.team_budgets.get(cfg.team)
        if not store.charge(caps, economics.cost.expected, now):
            # Another worker spent the budget between our read and our charge: decide again on the truth.
            spent = policy.monthly_budget or 0.0
            decision = decide(signals, economics, replace(state, spent_this_month=spent + 1e12), policy, now)
        else:
            retrain = {
                "idempotency_key": f"retrain:{cfg.name}:check:{check_id}",
                "state": "queued",
                "cost_estimate": economics.cost.expected,
                "cost_low": economics.cost.low,
                "cost_high": economics.cost.high,
                "champion_version": version.version,
                **readings.retrain_context(signals.window_fresh_share, decision.numbers.drop_points),
            }
            if approval_id is not None:
                store.consume_override(approval_id, now)
    decision = replace(decision, details={**decision.details, **cost_details(ctx, cfg, now)})
    fields = asdict(signals)
    signal_record = {**fields, **signals_extra, **reading}
    extra_tags = (
        {"retrain.drift_report_run": signals_extra["drift_report_run"]} if "drift_report_run" in signals_extra else {}
    )
    with_tags = bool(extra_tags) or tags_due(
        snapshot.latest_decision, decision, version.version, cfg.notify.digest_hours
    )
    outbox = _decision_outbox(cfg, version, decision, signals, check_id, now, extra_tags, with_tags)
    if ctx.service.mlflow_history:
        outbox.append(history_item(cfg, version.version, decision, signals, check_id, now))
    outbox += component_outbox(cfg, version, signals_extra.get("components", []), check_id, now)
    decision_id, retrain_id = store.finish_check(
        check_id,
        version.version,
        signal_record,
        decision,
        outbox,
        now,
        retrain=retrain,
        estimation_error=estimation_error,
    )
    return CheckOutcome(
        cfg.name, check_id, decision_id, decision, retrain_id, version=version.version, signals=signal_record
    )


def _reuse_candidate(
    ctx: Context,
    cfg: ModelConfig,
    champion: VersionInfo,
    window: Window,
    features: Sequence[str],
    metric: str,
    source: str,
) -> dict[str, Any]:
    """The ``challenger`` version's metric on the labeled current rows, for the decision's reuse check."""
    if source != "realized":
        return {}
    found = ctx.registry.find_alias(cfg.registered_model, CHALLENGER)
    if found is None or found.version == champion.version:
        return {}
    model = ctx.load_model(cfg.registered_model, found.version)
    value = metric_on(cfg, model, window.labeled, features, metric)
    return {} if value is None else {"challenger_version": found.version, "challenger_current": value}


def _decision_outbox(
    cfg: ModelConfig,
    version: VersionInfo,
    decision: Decision,
    signals: Signals,
    check_id: int,
    now: datetime,
    extra_tags: dict[str, str],
    with_tags: bool = True,
) -> list[tuple[str, str, dict[str, Any]]]:
    tags = {**decision_tags(decision, signals, now), **extra_tags}
    event = {
        "type": EVENT_OF[decision.action],
        "model": cfg.name,
        "timestamp": now.isoformat(),
        "data": {
            "registered_model": cfg.registered_model,
            "version": version.version,
            "owner": cfg.owner,
            "decision": decision.action.value,
            "reasons": decision.reason_codes,
            "summary": decision.summary,
            "signal_source": decision.signal_source,
            "numbers": to_jsonable(decision.numbers),
            "retry_after": decision.retry_after.isoformat() if decision.retry_after else None,
            "needs_approval": decision.needs_approval,
            "check_id": check_id,
            "details": decision.details,
        },
    }
    tag_item = (
        "mlflow_tags",
        f"tags:check:{check_id}",
        {"name": cfg.registered_model, "version": version.version, "tags": tags},
    )
    return (
        [tag_item, ("webhook", f"webhook:check:{check_id}", event)]
        if with_tags
        else [("webhook", f"webhook:check:{check_id}", event)]
    )


def history_item(
    cfg: ModelConfig, version: str, decision: Decision, signals: Signals, check_id: int, now: datetime
) -> tuple[str, str, dict[str, Any]]:
    """The outbox item that appends this check to the version's monitoring run in MLflow
    (``mlflow_history``): its drift share, metric and loss per day, delivered in batches."""
    values = {"drift_share": signals.drift_share, "loss_per_day": decision.numbers.loss_per_day}
    if signals.current is not None:
        values[f"{signals.metric}_{signals.source}"] = signals.current
    metrics = {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
    payload = {"name": cfg.registered_model, "version": version, "at": now.isoformat(), "step": check_id}
    return "mlflow_metrics", f"metrics:check:{check_id}", {**payload, "metrics": metrics}


def tags_due(previous: DecisionRow | None, decision: Decision, version: str, refresh_hours: float) -> bool:
    """Whether a check rewrites the version's ``retrain.*`` tags.

    Every decision changes some numbers (the metric, the loss per day), and an MLflow server takes
    only tens of tag writes a second: the tags are rewritten when the decision, its reasons or the
    version change, and otherwise at the first check of each ``refresh_hours`` period (UTC; 0:
    at every check). ``retrain.checked_at`` tells which check they show; the store has all.

    >>> from datetime import UTC
    >>> from controller.core.decision import Numbers, Reason
    >>> d = Decision(Action.DEFER, (Reason.WITHIN_TOLERANCE,), "s", Numbers(0, 0, 0, 0, 0, 0, None), "realized",
    ...              datetime(2026, 11, 28, 13, tzinfo=UTC))
    >>> prev = DecisionRow(action="DEFER", reasons=["within_tolerance"], version="3",
    ...                    decided_at=datetime(2026, 11, 28, 9, tzinfo=UTC))
    >>> tags_due(prev, d, "3", 24), tags_due(prev, d, "4", 24), tags_due(prev, d, "3", 2), tags_due(None, d, "3", 24)
    (False, True, True, True)
    """
    if previous is None or refresh_hours <= 0:
        return True
    if previous.action != decision.action.value or list(previous.reasons or []) != list(decision.reason_codes):
        return True
    if previous.version != version or previous.decided_at is None:
        return True
    period = refresh_hours * 3600.0
    return int(decision.decided_at.timestamp() // period) != int(previous.decided_at.timestamp() // period)
