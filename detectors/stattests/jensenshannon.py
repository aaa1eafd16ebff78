"""Jensen-Shannon distance (``jensenshannon``, natural log): drift when ``>= 0.1``."""

from __future__ import annotations

from typing import ClassVar

from scipy.spatial import distance

from detectors.stattests.base import Kind, Sample, StatTest, binned_percents


class JensenShannon(StatTest):
    """Evidently's default for large references (categories, and numbers with few values).

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> round(JensenShannon()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).score, 4)
    0.2251
    """

    name: ClassVar[str] = "jensenshannon"
    display_name: ClassVar[str] = "Jensen-Shannon distance"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical", "categorical")
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = False
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        rp, cp = binned_percents(ref, cur, fill_zeroes=False)
        return float(distance.jensenshannon(rp, cp))
