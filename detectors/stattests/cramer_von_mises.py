"""Two-sample Cramér-von Mises test (``cramer_von_mises``): drift when ``p <= 0.1``."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, TestNotApplicable


class CramerVonMises(StatTest):
    """Exact p-values up to 20 observations a side, asymptotic above (evidently vendors the same
    algorithm as scipy's ``cramervonmises_2samp``).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 300), "numerical")
    >>> CramerVonMises()(ref, Sample.from_values(rng.normal(1, 1, 300), "numerical")).drifted
    True
    """

    name: ClassVar[str] = "cramer_von_mises"
    display_name: ClassVar[str] = "Cramer-von Mises"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        if ref.n <= 1 or cur.n <= 1:
            raise TestNotApplicable("cramer_von_mises needs at least two values on each side")
        return float(stats.cramervonmises_2samp(ref.expand(), cur.expand()).pvalue)
