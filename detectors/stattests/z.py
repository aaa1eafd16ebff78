"""Two-proportion Z-test (``z``): the share of the first (smallest) value, one against the rest."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy.stats import norm

from detectors.stattests.base import Kind, Sample, StatTest, aligned_counts


class ZTest(StatTest):
    """Evidently's choice for binary columns in small references.

    >>> ref = Sample.from_values([True] * 60 + [False] * 40, "categorical")
    >>> round(ZTest()(ref, Sample.from_values([True] * 30 + [False] * 70, "categorical")).score, 6)
    2e-05
    """

    name: ClassVar[str] = "z"
    display_name: ClassVar[str] = "Z-test p_value"
    kinds: ClassVar[tuple[Kind, ...]] = ("categorical",)
    default_threshold: ClassVar[float] = 0.05
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        if ref.n_unique == 1 and cur.n_unique == 1 and ref.values[0] == cur.values[0]:
            return 1.0
        keys, rc, cc = aligned_counts(ref, cur)
        first = int(np.argmin(keys)) if ref.kind == "numerical" else keys.tolist().index(_first_label(keys.tolist()))
        # evidently codes the first sorted value as 0 and every other value as 1
        n1, n2 = ref.n, cur.n
        p1 = float(n1 - rc[first]) / n1
        p2 = float(n2 - cc[first]) / n2
        pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
        with np.errstate(all="ignore"):
            z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        p = 2 * (1 - norm.cdf(np.abs(z)))
        return float(p) if not math.isnan(p) else math.nan


def _first_label(labels: list[object]) -> object:
    """Evidently's first label is the smallest; labels of mixed types cannot be ordered, so they
    are ordered by their text instead of failing."""
    try:
        return sorted(labels)[0]  # type: ignore[type-var]
    except TypeError:
        return sorted(labels, key=str)[0]
