"""Mann-Whitney U rank test (``mannw``), one-sided ``less`` as in evidently: drift when ``p < 0.05``."""

from __future__ import annotations

from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest


class MannWhitney(StatTest):
    """Evidently tests the alternative "reference is stochastically less than current", so only
    an upward shift of the current window counts as drift.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 300), "numerical")
    >>> MannWhitney()(ref, Sample.from_values(rng.normal(1, 1, 300), "numerical")).drifted
    True
    """

    name: ClassVar[str] = "mannw"
    display_name: ClassVar[str] = "Mann-Whitney U-rank test"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.05
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        return float(stats.mannwhitneyu(x=ref.expand(), y=cur.expand(), alternative="less")[1])
