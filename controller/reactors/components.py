"""Shared components in a model's check: a new version validated on the model's own window, and
drift in the component's output reported as an upstream cause.

A model declares what it is built on (``uses:`` in its config). At each of its checks, for each
component:

- the component's ``alias`` is resolved; a version other than the one in use is a **new version**,
  and it is validated on this model's labeled rows: the component's old and new versions
  re-encode the rows' ``inputs``, the model (unchanged) is scored on each encoding, and a linear
  probe is fitted (out of fold) on each encoding alone. ``controller.core.components`` turns the
  four numbers into adopt, keep or retrain on top. Only what the window holds is used: the
  measurement says how this model would fare on its own current rows, not on the component's
  benchmark;
- the embedding the component produces for this model (``embedding``) is looked up in this
  check's drift report: drift there, or a new version, is recorded as ``upstream component changed
  or drifted`` on this model. Every model built on the component reports it, so one cause shows
  behind several decaying models (``retrainctl audit`` lists them by component).

The results go into the check's signal record (``components``), into one ``component.validated``
webhook per validated new version, and into the model version's tags
(``retrain.component.<name>``, ``retrain.upstream``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from controller.adapters.datasource import Window
from controller.adapters.registry.base import VersionInfo
from controller.config import ComponentUse, ModelConfig
from controller.core.components import component_verdict
from controller.errors import GiveUp
from controller.reactors.baseline import _proba_for_metrics, metric_on
from controller.reactors.context import Context
from detectors.embeddings import linear_probe, resolve_columns
from detectors.performance import higher_is_better, realized_performance

COMPONENT_TAG = "retrain.component"
UPSTREAM = "upstream component changed or drifted"
NUMBERS = ("metric", "model_in_use", "model_candidate", "probe_in_use", "probe_candidate", "n_rows")


def component_signals(
    ctx: Context,
    cfg: ModelConfig,
    version: VersionInfo,
    window: Window,
    features: Sequence[str],
    metric: str,
    drift: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """One record per component the model uses (see the module docstring)."""
    embeddings = {e["name"]: e for e in (drift or {}).get("embeddings", [])}
    records = []
    for use in cfg.uses:
        record: dict[str, Any] = {"component": use.component, "in_use": use.version, "embedding": use.embedding}
        try:
            record["marked"] = ctx.registry.model_tags(use.component).get(COMPONENT_TAG) == "true"
            newest = ctx.registry.find_alias(use.component, use.alias)
        except GiveUp as exc:  # the component is gone from the registry: say so, check the rest
            records.append({**record, "status": "missing", "message": str(exc), "upstream": None})
            continue
        record["newest"] = newest.version if newest is not None else None
        changed = newest is not None and newest.version != use.version
        output = embeddings.get(use.embedding) if use.embedding else None
        if output is not None:
            record["embedding_drift"] = output
        drifted = bool(output and output.get("drifted"))
        record["upstream"] = UPSTREAM if changed or drifted else None
        record["status"] = "new_version" if changed else "drifted" if drifted else "ok"
        if changed and newest is not None:
            record["validation"] = _validate(ctx, cfg, version, use, newest.version, window, features, metric)
        records.append(record)
    return records


def _validate(
    ctx: Context,
    cfg: ModelConfig,
    version: VersionInfo,
    use: ComponentUse,
    candidate: str,
    window: Window,
    features: Sequence[str],
    metric: str,
) -> dict[str, Any]:
    """The model's metric and a linear probe's with each component version, on its labeled rows."""
    rows = window.labeled
    out: dict[str, Any] = {"candidate": candidate, "metric": metric, "n_rows": len(rows)}
    if use.embedding is None or not use.inputs:
        return {**out, "status": "skipped", "message": "uses needs 'embedding' and 'inputs' to validate a version"}
    missing = [c for c in use.inputs if c not in rows.columns]
    if missing:
        return {**out, "status": "skipped", "message": f"input column(s) not in the window: {', '.join(missing)}"}
    if len(rows) < cfg.data.min_labeled_rows:
        return {**out, "status": "skipped", "message": f"{len(rows)} labeled rows (< {cfg.data.min_labeled_rows})"}
    try:
        columns = resolve_columns(rows.columns, cfg.drift.embeddings[use.embedding], use.embedding)
    except ValueError as exc:
        return {**out, "status": "skipped", "message": str(exc)}
    encoded = {v: _encode(ctx.load_model(use.component, v), rows[list(use.inputs)]) for v in (use.version, candidate)}
    model = ctx.load_model(cfg.registered_model, version.version)
    values = {v: _metric_with(cfg, model, rows, columns, e, features, metric) for v, e in encoded.items()}
    y = rows[cfg.data.label_column].to_numpy()
    probes = {v: _probe(cfg, e, y, metric) for v, e in encoded.items()}
    in_use = values[use.version]
    if in_use is None:
        return {**out, "status": "skipped", "message": "the model cannot be scored with the version in use"}
    verdict = component_verdict(
        use.component, use.version, candidate, metric, in_use, values[candidate], probes[use.version],
        probes[candidate], higher_is_better=higher_is_better(metric), tolerance=use.tolerance,
    )  # fmt: skip
    return {
        **out,
        "status": "ok",
        "model_in_use": in_use,
        "model_candidate": values[candidate],
        "probe_in_use": probes[use.version],
        "probe_candidate": probes[candidate],
        "verdict": verdict.action.value,
        "summary": verdict.summary,
    }


def _encode(component: Any, inputs: pd.DataFrame) -> np.ndarray:
    """A component version's output for the rows: ``transform`` (scikit-learn encoders), else
    ``predict`` (an MLflow pyfunc model), as an (n, d) float array."""
    method = component.transform if hasattr(component, "transform") else component.predict
    out = np.asarray(method(inputs))
    if out.dtype == object:  # one vector per row
        out = np.stack([np.asarray(v, dtype=np.float64) for v in out])
    return np.asarray(out, dtype=np.float64).reshape(len(inputs), -1)


def _metric_with(
    cfg: ModelConfig,
    model: Any,
    rows: pd.DataFrame,
    columns: Sequence[str],
    encoded: np.ndarray,
    features: Sequence[str],
    metric: str,
) -> float | None:
    """The model's metric on ``rows`` with the embedding columns replaced by ``encoded``; None
    when the model cannot read it (another dimension)."""
    swapped = rows.copy()
    if len(columns) == 1 and encoded.shape[1] != 1:
        swapped[columns[0]] = list(encoded)
    elif encoded.shape[1] == len(columns):
        swapped[list(columns)] = encoded
    else:
        return None
    try:
        return metric_on(cfg, model, swapped, features, metric)
    except ValueError:  # e.g. a list column of another length
        return None


def _probe(cfg: ModelConfig, encoded: np.ndarray, y: np.ndarray, metric: str) -> float | None:
    pred, proba = linear_probe(encoded, y, cfg.task)
    rep = realized_performance(y, pred, _proba_for_metrics(proba), task=cfg.task, metrics=[metric], n_boot=0,
                               min_samples=1)  # fmt: skip
    return rep.metrics[metric].value


def component_outbox(
    cfg: ModelConfig, version: VersionInfo, records: list[dict[str, Any]], check_id: int, now: datetime
) -> list[tuple[str, str, dict[str, Any]]]:
    """A ``component.validated`` webhook per validated new version, and the version's tags."""
    items: list[tuple[str, str, dict[str, Any]]] = []
    tags: dict[str, str] = {}
    upstream = [r for r in records if r.get("upstream")]
    if upstream:
        tags["retrain.upstream"] = "; ".join(f"{r['component']} v{r['newest'] or r['in_use']}: {r['status']}"
                                             for r in upstream)  # fmt: skip
    for r in records:
        validation = r.get("validation") or {}
        if validation.get("status") != "ok":
            continue
        tags[f"retrain.component.{r['component']}"] = f"{validation['verdict']} v{validation['candidate']}"
        # the same envelope as a decision's event, so a receiver routes both by model and owner
        data = {"registered_model": cfg.registered_model, "version": version.version, "owner": cfg.owner,
                "component": r["component"], "in_use": r["in_use"], "candidate": validation["candidate"],
                "decision": validation["verdict"], "summary": validation["summary"], "cause": UPSTREAM,
                "numbers": {k: validation[k] for k in NUMBERS}, "check_id": check_id}  # fmt: skip
        event = {"type": "component.validated", "model": cfg.name, "timestamp": now.isoformat(), "data": data}
        items.append(("webhook", f"webhook:component:{check_id}:{r['component']}", event))
    if tags:
        payload = {"name": cfg.registered_model, "version": version.version, "tags": tags}
        items.append(("mlflow_tags", f"tags:components:{check_id}", payload))
    return items


def dependents(models: dict[str, ModelConfig], component: str) -> list[ModelConfig]:
    """The watched models built on ``component``, by name."""
    return [cfg for _, cfg in sorted(models.items()) if any(u.component == component for u in cfg.uses)]
