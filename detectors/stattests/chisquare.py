"""Pearson's chi-square test of the current counts against the scaled reference (``chisquare``)."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, aligned_counts


class ChiSquare(StatTest):
    """A category absent from the reference makes the statistic infinite and the p-value 0.

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> ChiSquare()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).drifted
    True
    """

    name: ClassVar[str] = "chisquare"
    display_name: ClassVar[str] = "chi-square p_value"
    kinds: ClassVar[tuple[Kind, ...]] = ("categorical",)
    default_threshold: ClassVar[float] = 0.05
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        _, rc, cc = aligned_counts(ref, cur)
        f_exp = rc * (cur.n / ref.n)
        return float(stats.chisquare(cc, f_exp)[1])
