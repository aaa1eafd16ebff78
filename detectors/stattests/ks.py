"""Two-sample Kolmogorov-Smirnov test (evidently ``ks``): p-value, drift when ``p <= 0.05``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, merged_cdfs

# scipy's ks_2samp switches from the exact distribution to the asymptotic one above this size.
_SCIPY_MAX_EXACT_N = 10_000


def ks_statistic(ref: Sample, cur: Sample) -> float:
    """The two-sided KS statistic from distinct values and counts, as ks_2samp computes it.

    Both empirical CDFs are step functions that only move at the samples' values, so the largest
    gap is found on the merged distinct values: no need to expand the raw data.
    """
    v, f_ref, f_cur = merged_cdfs(ref, cur)
    last = np.append(np.diff(v) != 0, True)  # where a value occurs twice, its last position
    diffs = f_ref[last] - f_cur[last]
    return float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))


class KS(StatTest):
    """Kolmogorov-Smirnov, exact p-values for small samples and Smirnov's asymptotics above.

    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 500), "numerical")
    >>> KS()(ref, Sample.from_values(rng.normal(0.5, 1, 500), "numerical")).drifted
    True
    >>> KS()(ref, ref).score
    1.0
    """

    name: ClassVar[str] = "ks"
    display_name: ClassVar[str] = "K-S p_value"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.05
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        if max(ref.n, cur.n) <= _SCIPY_MAX_EXACT_N:
            return float(stats.ks_2samp(ref.expand(), cur.expand()).pvalue)
        d = ks_statistic(ref, cur)
        m, n = sorted([float(ref.n), float(cur.n)], reverse=True)
        return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
