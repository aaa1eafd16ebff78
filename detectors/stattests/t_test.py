"""Student's two-sample t-test with pooled variance (``t_test``): drift when ``p < 0.05``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest


class TTest(StatTest):
    """Computed from means and variances, which the counts give exactly, so the raw samples are
    never expanded.

    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 300), "numerical")
    >>> TTest()(ref, Sample.from_values(rng.normal(0.5, 1, 300), "numerical")).drifted
    True
    """

    name: ClassVar[str] = "t_test"
    display_name: ClassVar[str] = "t_test"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.05
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        m1, s1 = ref.mean_std()
        m2, s2 = cur.mean_std()
        # ttest_ind uses the sample (ddof=1) standard deviation
        sd1 = s1 * np.sqrt(ref.n / (ref.n - 1)) if ref.n > 1 else np.nan
        sd2 = s2 * np.sqrt(cur.n / (cur.n - 1)) if cur.n > 1 else np.nan
        return float(stats.ttest_ind_from_stats(m1, sd1, ref.n, m2, sd2, cur.n).pvalue)
