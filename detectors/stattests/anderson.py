"""k-sample Anderson-Darling test (``anderson``): drift when ``p < 0.1``."""

from __future__ import annotations

import warnings
from typing import ClassVar

from scipy import stats

from detectors.stattests.base import Kind, Sample, StatTest, TestNotApplicable


class Anderson(StatTest):
    """scipy caps the p-value to [0.001, 0.25]; so does this test, as in evidently.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = Sample.from_values(rng.normal(0, 1, 300), "numerical")
    >>> Anderson()(ref, Sample.from_values(rng.normal(1, 1, 300), "numerical")).score
    0.001
    """

    name: ClassVar[str] = "anderson"
    display_name: ClassVar[str] = "Anderson-Darling"
    kinds: ClassVar[tuple[Kind, ...]] = ("numerical",)
    default_threshold: ClassVar[float] = 0.1
    is_pvalue: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False

    def score(self, ref: Sample, cur: Sample) -> float:
        if len(set(ref.values.tolist()) | set(cur.values.tolist())) < 2:
            raise TestNotApplicable("anderson needs at least two distinct values")
        with warnings.catch_warnings():
            # the p-value cap warning is part of the documented behaviour, not news
            warnings.simplefilter("ignore")
            return float(stats.anderson_ksamp([ref.expand(), cur.expand()])[2])
