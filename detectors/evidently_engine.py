"""The evidently engine: runs evidently's DataDriftPreset itself and maps its result onto the
same :class:`~detectors.drift.DriftReport` the native engine returns.

Column statuses (missing, all-null, changed type...) come from the native pre-check, and only
testable columns are handed to evidently, because one such column makes evidently fail the
whole report. If evidently still fails, the columns are retried one by one so that only the
failing column is marked ``error``. A reference given as a profile is rebuilt with
:meth:`ReferenceProfile.to_frame` (exact for exactly kept columns).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.drift import ColumnDrift, DriftOptions, DriftReport, detect_drift, finalize
from detectors.profile import ReferenceProfile, build_profile
from detectors.stattests import STATTESTS

_BY_DISPLAY = {cls.display_name: cls for cls in STATTESTS.values()}


@dataclass(frozen=True)
class EvidentlyRun:
    """The mapped report, and evidently's snapshots (for HTML) when it ran."""

    report: DriftReport
    snapshots: tuple[Any, ...]

    def html(self) -> str:
        """Evidently's HTML report, e.g. to log as an MLflow artifact. After a column-by-column
        retry there is one snapshot per column; their reports are concatenated."""
        if not self.snapshots:
            return "<html><body>No column could be tested by evidently.</body></html>"
        return "\n".join(snap.get_html_str(as_iframe=False) for snap in self.snapshots)

    def save_html(self, path: str | Path) -> None:
        Path(path).write_text(self.html(), encoding="utf-8")


def run_evidently(
    reference: pd.DataFrame | ReferenceProfile, current: pd.DataFrame, options: DriftOptions
) -> EvidentlyRun:
    """Run evidently on the testable columns; everything else keeps its native status."""
    native_opts = options.model_copy(update={"engine": "native"})
    if isinstance(reference, ReferenceProfile):
        profile, ref_df = reference, reference.to_frame()
    else:
        cat = [c for c in options.categorical if c in reference.columns]
        cols = None if options.columns is None else [c for c in options.columns if c in reference.columns]
        profile, ref_df = build_profile(reference, categorical=cat, columns=cols), reference
    pre = detect_drift(profile, current, native_opts)
    testable = [c for c in pre.columns if c.status in ("ok", "constant") and c.score is not None]
    kinds = {c.column: c.kind for c in testable}
    scores: dict[str, tuple[float, str, float]] = {}
    snapshots: list[Any] = []
    failed: dict[str, str] = {}
    if testable:
        try:
            snap = _run(ref_df, current, kinds, options)
            snapshots.append(snap)
            scores.update(_parse(snap))
        except Exception:  # evidently fails a whole report for one column: retry column by column
            for col, kind in kinds.items():
                try:
                    snap = _run(ref_df, current, {col: kind}, options)
                    snapshots.append(snap)
                    scores.update(_parse(snap))
                except Exception as exc:
                    failed[col] = f"{type(exc).__name__}: {exc}"
    results: list[ColumnDrift] = []
    for c in pre.columns:
        if c.column in scores:
            score, test_name, threshold = scores[c.column]
            test = STATTESTS[test_name](threshold)
            results.append(replace(c, test=test_name, score=score, threshold=threshold, drifted=test.drifted(score),
                                   p_adjusted=None, is_pvalue=test.is_pvalue))  # fmt: skip
        elif c.column in failed:
            results.append(replace(c, score=None, drifted=None, status="error", message=failed[c.column]))
        else:
            results.append(c)
    return EvidentlyRun(finalize(results, options, engine="evidently"), tuple(snapshots))


def _run(ref: pd.DataFrame, cur: pd.DataFrame, kinds: Mapping[str, str], options: DriftOptions) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = list(kinds)
    definition = DataDefinition(
        numerical_columns=[c for c in cols if kinds[c] == "numerical"],
        categorical_columns=[c for c in cols if kinds[c] == "categorical"],
    )
    per_column_method = {c: t for c, t in options.per_column_stattest.items() if c in kinds}
    per_column_threshold = {c: t for c, t in options.per_column_threshold.items() if c in kinds}
    preset = DataDriftPreset(
        columns=cols,
        drift_share=options.drift_share,
        method=options.stattest,
        num_method=options.per_type_stattest.get("numerical"),
        cat_method=options.per_type_stattest.get("categorical"),
        per_column_method=per_column_method or None,
        threshold=options.stattest_threshold,
        num_threshold=options.per_type_threshold.get("numerical"),
        cat_threshold=options.per_type_threshold.get("categorical"),
        per_column_threshold=per_column_threshold or None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evidently's own deprecation and runtime chatter
        return Report([preset]).run(
            current_data=Dataset.from_pandas(cur[cols], data_definition=definition),
            reference_data=Dataset.from_pandas(ref[cols], data_definition=definition),
        )


def _parse(snapshot: Any) -> dict[str, tuple[float, str, float]]:
    """Column -> (score, test name, threshold) from evidently's ValueDrift metrics."""
    out: dict[str, tuple[float, str, float]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        method = config["method"]
        cls = _BY_DISPLAY.get(method) or STATTESTS[method]
        out[config["column"]] = (float(metric["value"]), cls.name, float(config["threshold"]))
    return out
