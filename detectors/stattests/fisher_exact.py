"""Fisher's exact test on the 2x2 table of a binary column (``fisher_exact``): drift when ``p < 0.1``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, TestNotApplicable, aligned_counts


class FisherExact(StatTest):
    """Only for columns with at most two values. Evidently also demands equally long samples;
    the 2x2 table does not need that, so this test accepts any sizes.

    >>> ref = Sample.from_values(["a"] * 50 + ["b"] * 50, "categorical")
    >>> FisherExact()(ref, Sample.from_values(["a"] * 80 + ["b"] * 20, "categorical")).drifted
    True
    """

    name: ClassVar[str] = "fisher_exact"
    display_name: ClassVar[str] = "Fisher's Exact test"
    kinds: ClassVar[tuple[Kind, ...]] = ("categorical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        _, rc, cc = aligned_counts(ref, cur)
        if len(rc) > 2:
            raise TestNotApplicable(f"fisher_exact needs a binary column, found {len(rc)} values")
        if len(rc) == 1:
            rc, cc = np.append(rc, 0), np.append(cc, 0)
        return float(stats.fisher_exact(np.array([[cc[1], cc[0]], [rc[1], rc[0]]]))[1])
