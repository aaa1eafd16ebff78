"""``retrainctl estimate`` and ``retrainctl performance``: performance from the command line.

``estimate`` fits a label-free estimator on the reference file (CBPE when ``--proba`` columns are
given, the direct-loss estimator for a regression model otherwise) and estimates each chunk of
the current file; where the current file has the target, each chunk also shows the realized
value and the estimate's error, so one can see how far the estimate is to be trusted.
``performance`` computes realized metrics with bootstrap intervals on the labeled rows.

Data files are Parquet or CSV (by extension); rows whose target is empty count as not labeled yet.
Bad input (a missing or unreadable file, an unknown column, a bad option) prints one
``error: ...`` line on stderr and exits with code 2.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller.cli.common import progress
from controller.errors import DataError, UserError

if TYPE_CHECKING:
    import pandas as pd

    from detectors.estimation import MetricEstimate

CurrentOpt = Annotated[
    str, typer.Option("--current", help="Current window (Parquet or CSV; a path or an s3://, gs://, abfs:// URL).")
]


TargetOpt = Annotated[str, typer.Option("--target", help="The label column.")]


PredOpt = Annotated[str, typer.Option("--pred", help="The model's prediction column (class label or value).")]


ProbaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--proba",
        help="Score column(s). One column: probability of the positive class (the larger label). "
        "Several: one per class, in the sorted order of the labels.",
    ),
]


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


ConfidenceOpt = Annotated[float, typer.Option(help="Interval coverage, e.g. 0.9.", min=0.5, max=0.999)]


def register(app: typer.Typer) -> None:
    """Add ``estimate`` and ``performance`` to the ``retrainctl`` app."""
    app.command("estimate")(estimate_command)
    app.command("performance")(performance_command)


def _require(frame: pd.DataFrame, columns: list[str], what: str, path: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:20]))
        raise DataError(f"{what} file {path} has no column(s) {', '.join(missing)} (it has {have})")


def _fail(exc: Exception) -> typer.Exit:
    print(f"error: {exc}", file=sys.stderr)
    return typer.Exit(UserError.exit_code)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _metric_list(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not text:
        return default
    return tuple(part.strip() for part in text.split(",") if part.strip())


def estimate_command(
    reference: Annotated[
        str, typer.Option("--reference", help="Labeled reference data (Parquet or CSV; a path or URL).")
    ],
    current: CurrentOpt,
    target: TargetOpt,
    pred: PredOpt,
    proba: ProbaOpt = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk of the current file.", min=1)] = 5000,
    metrics: Annotated[
        str | None,
        typer.Option(help="Comma-separated metrics (default: roc_auc,accuracy,f1 or mae,rmse)."),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(help="Regression: comma-separated feature columns for the loss model (default: all others)."),
    ] = None,
    min_labels: Annotated[
        int, typer.Option("--min-labels", help="Labeled rows a chunk needs for a realized value.", min=1)
    ] = 100,
    confidence: ConfidenceOpt = 0.9,
    as_json: JsonOpt = False,
) -> None:
    """Estimate performance per chunk of CURRENT without labels; show realized values where labels exist."""
    try:
        result = _estimate(
            reference, current, target, pred, proba or [], chunk_rows, metrics, features, min_labels, confidence
        )
    except (UserError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result, allow_nan=False))
        return
    _print_estimates(result)


def _estimate(
    reference: str,
    current: str,
    target: str,
    pred: str,
    proba: list[str],
    chunk_rows: int,
    metrics: str | None,
    features: str | None,
    min_labels: int,
    confidence: float,
) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from controller.adapters.datasource import read_frame
    from detectors.estimation import CBPE, DirectLossEstimator
    from detectors.performance import realized_performance

    ref = read_frame(reference, "reference")
    cur = read_frame(current, "current")
    _require(ref, [target, pred, *proba], "reference", reference)
    _require(cur, [pred, *proba], "current", current)
    ref = ref[ref[target].notna()]
    if ref.empty:
        raise DataError(f"reference file {reference}: column {target} has no labels")
    task = "classification" if proba else "regression"
    names: tuple[str, ...]
    if task == "classification":
        names = _metric_list(metrics, ("roc_auc", "accuracy", "f1"))
        classes = sorted(pd.unique(ref[target]).tolist())
        ref_scores = ref[proba].to_numpy(dtype=np.float64)
        if len(proba) == 1:
            ref_scores = ref_scores[:, 0]
            if len(classes) > 2:
                raise DataError(f"one --proba column but the target {target} has {len(classes)} classes")
        elif len(proba) != len(classes):
            raise DataError(f"{len(proba)} --proba columns but the target {target} has {len(classes)} classes")
        cbpe = CBPE(metrics=names, confidence=confidence).fit(ref_scores, ref[target].to_numpy(), classes=classes)
        feature_cols: list[str] = []
    else:
        names = _metric_list(metrics, ("mae", "rmse"))
        feature_cols = (
            list(_metric_list(features, ()))
            if features
            else [c for c in ref.columns if c not in (target, pred) and c in cur.columns]
        )
        _require(ref, feature_cols, "reference", reference)
        _require(cur, feature_cols, "current", current)
        dle = DirectLossEstimator(metrics=names, confidence=confidence).fit(
            ref[feature_cols], ref[target].to_numpy(dtype=np.float64), ref[pred].to_numpy(dtype=np.float64)
        )
    has_target = target in cur.columns
    chunks = []
    starts = range(0, len(cur), chunk_rows)
    with progress(f"estimating {len(starts)} chunks") as report:
        for done, start in enumerate(starts, 1):
            part = cur.iloc[start : start + chunk_rows]
            est: dict[str, MetricEstimate]
            if task == "classification":
                scores = part[proba].to_numpy(dtype=np.float64)
                est = cbpe.estimate(scores[:, 0] if len(proba) == 1 else scores, part[pred].to_numpy())
            else:
                est = dle.estimate(part[feature_cols], part[pred].to_numpy(dtype=np.float64))
            realized: dict[str, float | None] = {}
            if has_target:
                rep = realized_performance(
                    part[target].to_numpy(),
                    part[pred].to_numpy(),
                    None if task == "regression" else (scores[:, 0] if len(proba) == 1 else scores),
                    task=task,  # type: ignore[arg-type]
                    metrics=list(names),
                    n_boot=0,
                    min_samples=min_labels,
                    classes=classes if task == "classification" else None,
                )
                realized = {m: rep.metrics[m].value for m in names}
                n_labeled: int | None = rep.n_labeled
            else:
                n_labeled = None
            row: dict[str, Any] = {}
            for m in names:
                e = est[m]
                r = realized.get(m)
                row[m] = {
                    "estimate": _finite(e.estimate),
                    "lower": _finite(e.lower),
                    "upper": _finite(e.upper),
                    "realized": r,
                    "error": None if r is None or not math.isfinite(e.estimate) else float(e.estimate - r),
                }
            chunks.append({"start": start, "end": start + len(part), "n_labeled": n_labeled, "metrics": row})
            report(done, len(starts))
    return {"task": task, "confidence": confidence, "chunks": chunks, "summary": _summary(chunks, names)}


def _summary(chunks: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """Per metric, over chunks with a realized value: mean absolute error and interval coverage."""
    import numpy as np

    out: dict[str, Any] = {}
    for m in names:
        rows = [c["metrics"][m] for c in chunks if c["metrics"][m]["error"] is not None]
        covered = [r["lower"] <= r["realized"] <= r["upper"] for r in rows if r["lower"] is not None]
        out[m] = {
            "chunks_with_realized": len(rows),
            "mean_abs_error": float(np.mean([abs(r["error"]) for r in rows])) if rows else None,
            "interval_coverage": float(np.mean(covered)) if covered else None,
        }
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _print_estimates(result: dict[str, Any]) -> None:
    con = Console(highlight=False, width=120)
    table = Table(title=f"Estimated performance ({result['task']}, {result['confidence']:.0%} intervals)")
    for col in ("rows", "metric", "estimate", "interval", "realized", "error"):
        table.add_column(col, justify="left" if col in ("rows", "metric") else "right")
    for chunk in result["chunks"]:
        for m, v in chunk["metrics"].items():
            interval = f"[{_fmt(v['lower'])}, {_fmt(v['upper'])}]"
            table.add_row(
                f"{chunk['start']}-{chunk['end']}",
                m,
                _fmt(v["estimate"]),
                interval,
                _fmt(v["realized"]),
                _fmt(v["error"]),
            )
    con.print(table)
    for m, s in result["summary"].items():
        if s["chunks_with_realized"]:
            cov = "-" if s["interval_coverage"] is None else f"{s['interval_coverage']:.0%}"
            con.print(
                f"{m}: mean |estimate - realized| = {s['mean_abs_error']:.4f} over {s['chunks_with_realized']} "
                f"chunk(s); the interval covered the realized value in {cov}"
            )


def performance_command(
    current: CurrentOpt,
    target: TargetOpt,
    pred: PredOpt,
    proba: ProbaOpt = None,
    task: Annotated[str, typer.Option(help="classification or regression (default: classification).")] = (
        "classification"
    ),
    metrics: Annotated[
        str | None, typer.Option(help="Comma-separated metrics (default: all the inputs allow).")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap replicates.", min=0)] = 200,
    min_samples: Annotated[
        int, typer.Option("--min-samples", help="Labeled rows below which a metric is 'insufficient'.", min=1)
    ] = 200,
    n_total: Annotated[
        int | None, typer.Option("--n-total", help="Window size, when the file holds only the labeled rows.", min=1)
    ] = None,
    confidence: ConfidenceOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Realized metrics of CURRENT (rows with a label) with bootstrap intervals."""
    import numpy as np
    import pandas as pd

    from controller.adapters.datasource import read_frame
    from detectors.performance import realized_performance

    try:
        if task not in ("classification", "regression"):
            raise UserError(f"--task must be classification or regression, got {task!r}")
        cur = read_frame(current, "current")
        cols = [target, pred, *(proba or [])]
        _require(cur, cols, "current", current)
        scores = None
        if proba:
            scores = cur[proba].to_numpy(dtype=np.float64)
            scores = scores[:, 0] if len(proba) == 1 else scores
        labels = cur[target].to_numpy()
        classes = sorted(pd.unique(cur[target].dropna()).tolist()) if task == "classification" and proba else None
        if classes is not None and len(proba or []) > 1 and len(classes) != len(proba or []):
            raise DataError(f"{len(proba or [])} --proba columns but the labeled rows have {len(classes)} classes")
        report = realized_performance(
            labels,
            cur[pred].to_numpy(),
            scores,
            task=task,  # type: ignore[arg-type]
            metrics=list(_metric_list(metrics, ())) or None,
            n_boot=n_boot,
            confidence=confidence,
            min_samples=min_samples,
            seed=seed,
            classes=classes if classes is not None and len(classes) > 1 else None,
            n_total=n_total,
        )
    except (UserError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), allow_nan=False))
        return
    con = Console(highlight=False, width=120)
    table = Table(
        title=f"Realized performance: {report.n_labeled} labeled of {report.n_total} rows "
        f"({report.coverage:.0%}), {report.confidence:.0%} bootstrap intervals"
    )
    for col in ("metric", "value", "interval", "status"):
        table.add_column(col, justify="left" if col in ("metric", "status") else "right")
    for name, m in report.metrics.items():
        table.add_row(name, _fmt(m.value), f"[{_fmt(m.lower)}, {_fmt(m.upper)}]", m.status)
    con.print(table)
