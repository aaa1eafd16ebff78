"""Data-quality checks of a current window against the reference profile.

A quality failure means the pipeline is broken (a column gone, emptied, retyped, re-encoded),
not that the world moved: the controller VETOes a retrain on failure, so a benign covariate
shift must pass. Each failure is one short sentence for people, such as
``column 'x' null share 0.01 -> 0.97``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.profile import CurrentColumn, CurrentWindow, ReferenceProfile, as_window


@dataclass(frozen=True)
class ColumnQuality:
    """What the quality check saw in one reference column."""

    column: str
    present: bool
    null_share_ref: float
    null_share_cur: float | None
    type_ref: str
    type_cur: str | None
    unseen_share: float | None
    n_unique_cur: int | None  # exact for categorical columns; for numbers only 0, 1 or 2 (= "several")


@dataclass(frozen=True)
class QualityReport:
    """``ok`` is False when there is at least one failure."""

    ok: bool
    failures: tuple[str, ...]
    columns: tuple[ColumnQuality, ...]
    n_rows: int


def check_quality(
    profile: ReferenceProfile,
    current: pd.DataFrame | CurrentWindow,
    *,
    min_rows: int = 1,
    max_null_increase: float = 0.2,
    max_unseen_share: float = 0.5,
    constant_min_rows: int = 100,
    allow_new_columns: bool = True,
) -> QualityReport:
    """Check ``current`` against ``profile``.

    Failures: fewer than ``min_rows`` rows; a reference column missing; a column's null share up
    by more than ``max_null_increase`` (absolute); a changed type (numerical -> categorical...);
    a categorical column whose rows are mostly (``max_unseen_share``) categories the reference
    never had (a re-encoding); a column that varied in the reference but is constant in a window
    of at least ``constant_min_rows`` rows (a default filled in). New columns fail only with
    ``allow_new_columns=False``. ``current`` may be a :class:`~detectors.profile.CurrentWindow`
    shared with :func:`~detectors.drift.detect_drift`, which then reads each column once.

    >>> from detectors.profile import build_profile
    >>> ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "b"]})
    >>> check_quality(build_profile(ref), ref.assign(x=[None, None, None, 1.0])).failures
    ("column 'x' null share 0.00 -> 0.75",)
    >>> check_quality(build_profile(ref), ref.drop(columns="c")).failures
    ("column 'c' missing",)
    """
    window = as_window(current)
    frame = window.frame
    failures: list[str] = []
    n = len(frame)
    if n < min_rows:
        failures.append(f"{n} rows" if n == 0 else f"{n} rows (at least {min_rows} needed)")
    cols: list[ColumnQuality] = []
    for ref in profile.column_profiles:
        if ref.name not in frame.columns:
            failures.append(f"column '{ref.name}' missing")
            cols.append(ColumnQuality(ref.name, False, ref.null_share, None, ref.kind, None, None, None))
            continue
        col = window.column(ref.name)
        null_cur = col.n_null / n if n else 0.0
        if n and null_cur - ref.null_share > max_null_increase:
            failures.append(f"column '{ref.name}' null share {ref.null_share:.2f} -> {null_cur:.2f}")
        cur_kind = _observed_kind(ref.kind, ref.family, col)
        unseen_share: float | None = None
        n_unique: int | None = None
        if cur_kind is not None and cur_kind != ref.kind:
            failures.append(f"column '{ref.name}' type changed {ref.kind} -> {cur_kind}")
        elif n and null_cur < 1.0:
            if ref.kind == "categorical":
                cur = col.labels
                n_unique, n_valid, first = cur.n_unique, cur.n, cur.values[0] if cur.n else None
                known = set(ref.sample.values.tolist())
                unseen = sum(c for v, c in zip(cur.values.tolist(), cur.counts.tolist(), strict=True) if v not in known)
                unseen_share = unseen / cur.n if cur.n else 0.0
                if unseen_share > max_unseen_share:
                    failures.append(f"column '{ref.name}' {unseen_share:.0%} of values are unseen categories")
            else:
                # constancy needs only the range, not the distinct values: no sort of a long column
                arr = col.finite
                n_valid = len(arr)
                n_unique = (1 if arr.min() == arr.max() else 2) if n_valid else 0
                first = float(arr[0]) if n_valid else None
            if ref.n_unique > 1 and n_unique == 1 and n_valid >= constant_min_rows:
                value = first.item() if isinstance(first, np.generic) else first
                failures.append(f"column '{ref.name}' became constant ({value!r})")
        cols.append(ColumnQuality(ref.name, True, ref.null_share, null_cur if n else None, ref.kind, cur_kind,
                                  unseen_share, n_unique))  # fmt: skip
    if not allow_new_columns:
        failures.extend(f"column '{c}' is new" for c in frame.columns if c not in profile)
    return QualityReport(not failures, tuple(failures), tuple(cols), n)


def _observed_kind(ref_kind: str, ref_family: str, col: CurrentColumn) -> str | None:
    """The kind the current column has, or None when it cannot tell (all null)."""
    if col.n_null == col.n_rows:
        return None
    if ref_kind == "numerical":
        return col.inferred_kind
    # a categorical column declared over numbers stays categorical while its family holds
    return "categorical" if col.family == ref_family or ref_family == "other" else "numerical"
