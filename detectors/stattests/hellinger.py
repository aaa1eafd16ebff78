"""Hellinger distance (``hellinger``): drift when ``>= 0.1``."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from detectors.stattests.base import Kind, Sample, StatTest, aligned_counts, sturges_edges


class Hellinger(StatTest):
    """Per category for categorical columns; for numbers, Sturges bins over the distinct values
    of both samples (evidently bins the distinct values, not the observations).

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> round(Hellinger()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).score, 4)
    0.2265
    """

    name: ClassVar[str] = "hellinger"
    display_name: ClassVar[str] = "Hellinger distance"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical", "categorical")
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = False
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        keys, rc, cc = aligned_counts(ref, cur)
        if ref.kind == "categorical":
            overlap = float(np.sum(np.sqrt((rc / ref.n) * (cc / cur.n))))
        else:
            # evidently counts the distinct values of both windows; a sketch stands for more
            # values than it holds, so use the distinct counts it records (disjoint windows assumed)
            sketched = ref.distinct is not None or cur.distinct is not None
            n_keys = ref.n_distinct + cur.n_distinct if sketched else len(keys)
            bins = sturges_edges(float(keys[0]), float(keys[-1]), n_keys, ref.integer and cur.integer)
            h1 = np.histogram(ref.values, bins=bins, weights=ref.counts, density=True)[0]
            h2 = np.histogram(cur.values, bins=bins, weights=cur.counts, density=True)[0]
            bin_width = (bins.max() - bins.min()) / (len(bins) - 1)
            overlap = float(np.sum(np.sqrt(h1 * h2) * bin_width))
        return math.sqrt(1 - float(np.clip(overlap, 0, 1)))
