"""Energy distance (evidently's ``ed``): drift when strictly above 0.1."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest


class EnergyDistance(StatTest):
    """Not normalized: the threshold is in the column's own units.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 300), "numerical")
    >>> EnergyDistance()(ref, Sample.from_values(rng.normal(1, 1, 300), "numerical")).drifted
    True
    """

    name: ClassVar[str] = "ed"
    display_name: ClassVar[str] = "Energy-distance"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = False
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        return float(stats.energy_distance(ref.values, cur.values, ref.counts, cur.counts))
