"""First Wasserstein distance divided by the reference's standard deviation (``wasserstein``)."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest


class Wasserstein(StatTest):
    """Evidently's default for numbers with more than 5 values in large references.

    The norm is floored at 0.001 (evidently's guard for constant references).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 2000), "numerical")
    >>> round(Wasserstein()(ref, Sample.from_values(rng.normal(0.5, 1, 2000), "numerical")).score, 2)
    0.53
    """

    name: ClassVar[str] = "wasserstein"
    display_name: ClassVar[str] = "Wasserstein distance (normed)"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = False
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        norm = max(ref.mean_std()[1], 0.001)
        # counts as weights give the same distance as the expanded samples, without expanding
        return float(stats.wasserstein_distance(ref.values, cur.values, ref.counts, cur.counts)) / norm
