"""G-test, the log-likelihood ratio version of chi-square (``g_test``): drift when ``p < 0.1``."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, aligned_counts


class GTest(StatTest):
    """Evidently compares raw reference counts, which scipy rejects unless both windows have the
    same size; expected counts are scaled to the current window's size here, which gives the same
    p-value when sizes agree and a valid one when they differ.

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> GTest()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).drifted
    True
    """

    name: ClassVar[str] = "g_test"
    display_name: ClassVar[str] = "g_test"
    kinds: ClassVar[tuple[Kind, ...]] = ("categorical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        _, rc, cc = aligned_counts(ref, cur)
        return float(stats.power_divergence(cc, rc * (cur.n / ref.n), lambda_="log-likelihood")[1])
