"""First Wasserstein distance divided by the reference's standard deviation (``wasserstein``)."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np

from detectors.stattests.base import Kind, Sample, StatTest, diffs, merged_cdfs

# Integer step ends below this stay exact as float64 (2**53).
_EXACT_UNITS = 1 << 53
# interleavings of at most this many pieces are kept (32 bytes a piece, four of them at most)
_KEPT_PLAN_SIZE = 100_000


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
        return wasserstein_distance(ref, cur) / max(ref.mean_std()[1], 0.001)


def wasserstein_distance(ref: Sample, cur: Sample) -> float:
    """The area between the two CDFs, as scipy's ``wasserstein_distance`` computes it.

    >>> a = Sample.from_values([0.0, 1.0, 1.0, 3.0], "numerical")
    >>> b = Sample.from_values([0.5, 2.0, 4.0], "numerical")
    >>> from scipy.stats import wasserstein_distance as scipy_w
    >>> bool(np.isclose(wasserstein_distance(a, b), scipy_w([0, 1, 1, 3], [0.5, 2, 4]), rtol=1e-14))
    True
    """
    if ref.n * cur.n < _EXACT_UNITS:
        if ref.mostly_distinct and cur.mostly_distinct:
            return _sorted_area(ref.expand(), cur.expand())
        # the window on the grid by preference: the reference keeps its running counts
        for grid, other in ((cur, ref), (ref, cur)):
            if grid.mostly_distinct:
                return _quantile_area(grid.expand(), other)
    v, f_ref, f_cur = merged_cdfs(ref, cur)
    return float(np.sum(np.abs(f_ref[:-1] - f_cur[:-1]) * np.diff(v)))


def _sorted_area(a: np.ndarray, x: np.ndarray) -> float:
    """The area between the quantile functions of two sorted arrays: each piece between
    consecutive step ends pairs one value of each, at positions and widths that depend on the two
    lengths alone (see :func:`_interleaving`)."""
    interleaving = _interleaving if len(a) + len(x) <= _KEPT_PLAN_SIZE else _interleaving.__wrapped__
    at_a, width_a, at_x, width_x = interleaving(len(a), len(x))
    gaps = x[at_a]
    np.subtract(a, gaps, out=gaps)
    np.abs(gaps, out=gaps)
    gaps *= width_a
    area = float(gaps.sum())
    gaps = a[at_x]
    np.subtract(gaps, x, out=gaps)
    np.abs(gaps, out=gaps)
    gaps *= width_x
    return (area + float(gaps.sum())) / (len(a) * len(x))


@lru_cache(maxsize=4)
def _interleaving(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How the quantile steps of n and of k equally weighted values interleave, in units of
    1 / (n k): a's step i ends at (i + 1) k, x's step j at (j + 1) n. For the piece closed by
    each of a's step ends, the index of x's value on it and its width; then the same for x.
    Kept for a few small size pairs: the columns of one window without nulls share theirs."""
    ends = np.arange(k, (n + 1) * k, k, dtype=np.int64)
    # x's step ends strictly before each of a's; float division is exact for these sizes
    at_a = ((ends - 1) / n).astype(np.int64)
    width_a = ends - np.maximum(ends - k, at_a * n)
    x_ends = np.arange(n, (k + 1) * n, n, dtype=np.int64)
    done = (x_ends / k).astype(np.int64)  # a's step ends at or before each of x's
    width_x = x_ends - np.maximum(x_ends - n, done * k)
    # ``done`` reaches n only on x's last piece, which has zero width
    at_x = np.minimum(done, n - 1)
    for arr in (at_a, width_a, at_x, width_x):
        arr.flags.writeable = False
    return at_a, width_a.astype(np.float64), at_x, width_x.astype(np.float64)


def _quantile_area(x: np.ndarray, other: Sample) -> float:
    """The area between the quantile functions of the sorted values ``x`` and of ``other``, which
    equals the area between the CDFs.

    Each of x's k values owns an equal share of probability, so in units of 1 / (n k) its quantile
    steps end at multiples of n, and where ``other``'s steps end among them is arithmetic: no
    merge sort. The area is summed over the pieces between consecutive step ends of either side,
    split by which side's step end closes the piece.
    """
    k = len(x)
    v, n, m = other.values, other.n, other.n_unique
    ends0 = other.cumulative() * k  # 0, then the end of each of other's steps
    ends = ends0[1:]
    # x's step ends strictly before each of other's; float division is exact for these sizes
    q = ((ends - 1) / n).astype(np.int64)
    # a piece closed by other's step j starts at its previous step end or x's last one, if later
    widths = q * n
    np.maximum(widths, ends0[:-1], out=widths)
    np.subtract(ends, widths, out=widths)
    gaps = x[q]
    np.subtract(v, gaps, out=gaps)
    np.abs(gaps, out=gaps)
    gaps *= widths
    area = float(gaps.sum())
    # a piece closed by x's step i starts at i n or at other's last step end, if later
    before = np.repeat(np.arange(m + 1), diffs(q, 0, k))  # other's step ends at or before (i + 1) n
    starts = ends0[before]
    steps = np.arange(0, k * n, n, dtype=np.int64)
    np.maximum(starts, steps, out=starts)
    steps += n
    widths = np.subtract(steps, starts, out=steps)
    # ``before`` reaches m only on x's last piece, which has zero width
    np.minimum(before, m - 1, out=before)
    gaps = v[before]
    np.subtract(gaps, x, out=gaps)
    np.abs(gaps, out=gaps)
    gaps *= widths
    area += float(gaps.sum())
    return area / (n * k)
