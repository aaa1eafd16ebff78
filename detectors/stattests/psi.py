"""Population Stability Index (``psi``): a distance, drift when ``psi >= 0.1``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors.stattests.base import Kind, Sample, StatTest, binned_percents


class PSI(StatTest):
    """Sum of ``(ref - cur) * ln(ref / cur)`` over evidently's bins, empty bins filled.

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> round(PSI()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).score, 4)
    0.4159
    """

    name: ClassVar[str] = "psi"
    display_name: ClassVar[str] = "PSI"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical", "categorical")
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = False
    inclusive: ClassVar[bool] = True

    def score(self, ref: Sample, cur: Sample) -> float:
        rp, cp = binned_percents(ref, cur, fill_zeroes=True)
        return float(np.sum((rp - cp) * np.log(rp / cp)))
