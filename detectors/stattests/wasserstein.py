"""First Wasserstein distance divided by the reference's standard deviation (``wasserstein``)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors.stattests.base import Kind, Sample, StatTest, merged_cdfs


class Wasserstein(StatTest):
    """Evidently's default for numbers with more than 5 values in large references.

    The norm is floored at 0.001 (evidently's guard for constant references).

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
        # the area between the two CDFs, as scipy computes it, on the merged distinct values
        v, f_ref, f_cur = merged_cdfs(ref, cur)
        return float(np.sum(np.abs(f_ref[:-1] - f_cur[:-1]) * np.diff(v))) / norm
