"""Kullback-Leibler divergence of reference from current (``kl_div``): drift when ``>= 0.1``."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, binned_percents


class KLDiv(StatTest):
    """``scipy.stats.entropy(ref, cur)`` over evidently's bins, empty bins filled.

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> round(KLDiv()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).score, 4)
    0.2231
    """

    name: ClassVar[str] = "kl_div"
    display_name: ClassVar[str] = "Kullback-Leibler divergence"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical", "categorical")
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = False
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        rp, cp = binned_percents(ref, cur, fill_zeroes=True)
        return float(stats.entropy(rp, cp))
