"""Total variation distance with a permutation p-value (evidently's ``TVD``): drift when ``p < 0.1``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors.stattests.base import Kind, Sample, StatTest, aligned_counts

_ITERATIONS = 1000


class TVD(StatTest):
    """The p-value is the share of 1000 random relabellings whose TVD reaches the observed one.

    Evidently shuffles the raw rows; a relabelling of counts is a multivariate hypergeometric
    draw, which has the same distribution and costs O(categories) instead of O(rows). The
    p-value therefore matches evidently's in distribution, not bit for bit: within 0.06 (three
    standard errors of the difference of two 1000-draw estimates), see docs/drift.md.

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> TVD()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).score
    0.0
    """

    name: ClassVar[str] = "TVD"
    display_name: ClassVar[str] = "Total-Variation-Distance"
    kinds: ClassVar[tuple[Kind, ...]] = ("categorical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        _, rc, cc = aligned_counts(ref, cur)
        observed = 0.5 * np.sum(np.abs(rc / ref.n - cc / cur.n))
        rng = np.random.default_rng(0)  # seeded, so a check is reproducible
        total = rc + cc
        perm_ref = rng.multivariate_hypergeometric(total, ref.n, size=_ITERATIONS)
        perm_cur = total - perm_ref
        tvds = 0.5 * np.abs(perm_ref / ref.n - perm_cur / cur.n).sum(axis=1)
        # evidently's comparison, exact in floating point: mathematically tied TVDs count or not
        # depending on rounding, in evidently as here, which is part of the documented tolerance
        return float(np.mean(observed <= tvds))
