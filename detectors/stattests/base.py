"""The shared base of every statistical drift test.

A test sees two :class:`Sample` objects, the reference and the current window, each reduced to
its distinct values and their counts (nulls and infinities already removed, as evidently does).
That reduction is what a :class:`~detectors.profile.ReferenceProfile` stores, so a test runs the
same way from raw data and from a stored profile.

A subclass fills in :meth:`StatTest.score` and its class attributes; the base validates the
threshold, applies the direction of the verdict, and returns a frozen :class:`TestResult`.

Errors: a test raises :class:`TestNotApplicable` (a ``ValueError``) when the data cannot be
tested that way (a two-category test on three categories, say); the caller turns it into a
column status instead of failing the whole report.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.stattests.catalog import Kind

# a sample with at most this many observations per distinct value is "mostly distinct": its
# sorted raw values are kept (they cost at most this times its distinct values), and the
# Wasserstein distance walks them instead of merging CDFs
MOSTLY_DISTINCT = 2


class TestNotApplicable(ValueError):
    """The data cannot be tested this way; the message says why."""

    __test__ = False  # not a pytest test class, despite the name


@dataclass(frozen=True, eq=False)
class Sample:
    """A column reduced to sorted distinct values and their counts.

    ``values`` holds float64 for numerical columns and Python objects (labels) for categorical
    ones; ``integer`` records that the original values were integers, which changes numpy's
    automatic bin widths and so must be kept for parity with evidently.
    """

    values: np.ndarray
    counts: np.ndarray
    kind: Kind
    integer: bool = False
    # distinct raw values this sample stands for, when it is a sketch (None: exactly n_unique)
    distinct: int | None = None
    n: int = field(init=False)
    _moments: list[tuple[float, float]] = field(init=False, default_factory=list, repr=False)
    _expanded: list[np.ndarray] = field(init=False, default_factory=list, repr=False)
    _cumulative: list[np.ndarray] = field(init=False, default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if len(self.values) != len(self.counts):
            raise ValueError("values and counts must have the same length")
        object.__setattr__(self, "n", int(self.counts.sum()))

    @classmethod
    def from_values(cls, data: Sequence[Any] | np.ndarray | pd.Series, kind: Kind) -> Sample:
        """Reduce raw values, dropping nulls and (for numbers) infinities.

        >>> Sample.from_values([3.0, 1.0, None, 3.0, float("inf")], "numerical").counts.tolist()
        [1, 2]
        """
        series = data if isinstance(data, pd.Series) else pd.Series(data)
        if kind == "numerical":
            return cls.from_numbers(finite_floats(series), is_integer_column(series))
        return cls.from_labels(*label_counts(series))

    @classmethod
    def from_numbers(cls, arr: np.ndarray, integer: bool) -> Sample:
        """Reduce finite float64 values (``integer``: they came from an integer column)."""
        if integer and len(arr) > 50_000:
            lo, hi = int(arr.min()), int(arr.max())
            if hi - lo <= 4 * len(arr):
                # integers in a modest range: counting beats sorting by an order of magnitude
                counts = np.bincount((arr - lo).astype(np.int64), minlength=hi - lo + 1)
                present = np.flatnonzero(counts)
                return cls((present + lo).astype(np.float64), counts[present], "numerical", integer)
        if len(arr) > 50_000 and len(np.unique(arr[:5_000])) < 1_000:
            # few distinct values in a long column: hashing beats sorting several times over
            vc = pd.Series(arr, copy=False).value_counts(sort=False)
            keys = vc.index.to_numpy(dtype=np.float64)
            order = np.argsort(keys)
            return cls(keys[order], vc.to_numpy(dtype=np.int64)[order], "numerical", integer)
        ordered = np.sort(arr)
        sample = cls(*runs(ordered), "numerical", integer)
        if sample.mostly_distinct:  # what expand() would rebuild and keep
            ordered.flags.writeable = False
            sample._expanded.append(ordered)
        return sample

    @classmethod
    def from_labels(cls, keys: list[Any], counts: np.ndarray) -> Sample:
        """A categorical sample from raw labels (made plain) and their counts."""
        labels = np.empty(len(keys), dtype=object)
        labels[:] = [plain_label(v) for v in keys]
        return cls(labels, counts, "categorical")

    def expand(self) -> np.ndarray:
        """The raw values again (sorted, read-only), for tests that need every observation; kept
        when the sample is mostly distinct (then it is at most twice as long as the sample)."""
        if self._expanded:
            return self._expanded[0]
        expanded = np.repeat(self.values, self.counts)
        expanded.flags.writeable = False
        if self.mostly_distinct:
            self._expanded.append(expanded)
        return expanded

    @property
    def mostly_distinct(self) -> bool:
        return self.n <= MOSTLY_DISTINCT * self.n_unique

    def cumulative(self) -> np.ndarray:
        """0, then the running total of the counts (read-only; computed once, as profiles are
        compared with many windows)."""
        if not self._cumulative:
            total = np.zeros(len(self.counts) + 1, dtype=np.int64)
            np.cumsum(self.counts, out=total[1:])
            total.flags.writeable = False
            self._cumulative.append(total)
        return self._cumulative[0]

    @property
    def n_unique(self) -> int:
        return len(self.values)

    @property
    def n_distinct(self) -> int:
        """Distinct raw values: exact for exact samples, recorded or estimated for sketches."""
        return self.n_unique if self.distinct is None else self.distinct

    def mean_std(self) -> tuple[float, float]:
        """Mean and population standard deviation (numpy's ``std`` with ddof=0), computed once."""
        if not self._moments:
            # elementwise sums, not np.dot: a BLAS call can wake a thread pool, which on a busy
            # machine costs milliseconds per call
            w = self.counts / self.n
            mean = float((w * self.values).sum())
            self._moments.append((mean, math.sqrt(float((w * (self.values - mean) ** 2).sum()))))
        return self._moments[0]


def runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array and how often each occurs (``np.unique`` without its
    sort, for callers that sorted already).

    >>> [a.tolist() for a in runs(np.array([1.0, 1.0, 2.0, 5.0, 5.0, 5.0]))]
    [[1.0, 2.0, 5.0], [2, 1, 3]]
    """
    n = len(ordered)
    if n == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    return ordered[first], diffs(first, None, n)


def diffs(a: np.ndarray, before: int | None, after: int | None) -> np.ndarray:
    """``np.diff(a, prepend=before, append=after)`` of a non-empty int64 array (None: no such end),
    without ``np.diff``'s broadcasting, which costs more than the subtraction on short arrays.

    >>> diffs(np.array([2, 5, 6]), -1, 10).tolist()
    [3, 3, 1, 4]
    """
    lead = int(before is not None)
    out = np.empty(len(a) - 1 + lead + (after is not None), dtype=np.int64)
    if before is not None:
        out[0] = a[0] - before
    np.subtract(a[1:], a[:-1], out=out[lead : lead + len(a) - 1])
    if after is not None:
        out[-1] = after - a[-1]
    return out


def finite_floats(series: pd.Series) -> np.ndarray:
    """A column's finite values as float64, in row order (nulls and infinities dropped)."""
    arr = series.to_numpy(dtype="float64", na_value=np.nan)
    finite = np.isfinite(arr)
    return arr if finite.all() else arr[finite]


def is_integer_column(series: pd.Series) -> bool:
    """Integers (booleans excluded), which changes numpy's automatic bin widths."""
    return pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def label_counts(series: pd.Series) -> tuple[list[Any], np.ndarray]:
    """Non-null labels in order of first appearance, with their counts: ``value_counts`` with
    ``sort=False``, or the same from a factorization where that is cheaper."""
    factorized = factorize_labels(series)
    if factorized is not None:
        return counts_of(*factorized)
    small = _small_integer_counts(series)
    if small is not None:
        return small
    try:
        counts_s = series.value_counts(dropna=True, sort=False)
    except TypeError:  # unhashable values (lists, dicts): compare them by their text
        return label_counts(series.map(lambda v: v if v is None else str(v)))
    return list(counts_s.index), counts_s.to_numpy(dtype=np.int64)


def _small_integer_counts(series: pd.Series, span: int = 4096) -> tuple[list[Any], np.ndarray] | None:
    """:func:`label_counts` of a numpy integer column whose values lie within ``span`` of each
    other (a classifier's predicted classes): counted by ``bincount``, in order of first
    appearance as ``value_counts(sort=False)`` gives them. None for anything else."""
    if not (isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu") or len(series) == 0:
        return None
    arr = series.to_numpy()
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo >= span or hi > np.iinfo(np.intp).max:
        return None
    # widened first (int8's -128..127 less -128 would wrap); then counted as categorical codes are
    return counts_of(*_renumbered(arr.astype(np.intp) - lo, np.arange(lo, hi + 1)))


def factorize_labels(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``pd.factorize`` of an object column: codes (-1 for nulls) and labels in order of first
    appearance; None for other dtypes and for unhashable values. (Objects only: there it costs a
    third of ``value_counts`` on a short window, and yields the nulls and the first value too;
    numbers and booleans count faster with ``value_counts``.)

    A categorical column of text gives what its values as objects would give, from its codes
    (no hashing): its categories in order of first appearance, the unused ones left out."""
    if isinstance(series.dtype, pd.CategoricalDtype) and series.dtype.categories.dtype.kind == "O":
        return _renumbered(np.asarray(series.array.codes), series.dtype.categories.to_numpy())
    if not (isinstance(series.dtype, np.dtype) and series.dtype.kind == "O"):
        return None
    try:
        return pd.factorize(series.to_numpy(), use_na_sentinel=True)
    except TypeError:
        return None


def _renumbered(codes: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categorical codes (-1 for nulls) renumbered by first appearance, as ``pd.factorize`` numbers
    the values, with the categories that occur, in that order."""
    n, k = len(codes), len(categories)
    if n and k:
        # The usual case, a Parquet dictionary: categories numbered in order of first appearance,
        # all of them used. Then each new code is one more than the largest before it.
        seen = np.maximum.accumulate(codes.astype(np.intp))
        if seen[-1] == k - 1 and seen[0] <= 0 and bool(np.all(seen[1:] - seen[:-1] <= 1)):
            return codes.astype(np.intp), categories
    first = np.full(k + 1, n, dtype=np.intp)  # the extra last entry takes the nulls' (-1) rows
    first[codes[::-1]] = np.arange(n - 1, -1, -1)  # the last write wins: each category's first row
    used = np.flatnonzero(first[:k] < n)
    order = used[np.argsort(first[used], kind="stable")]
    renumber = np.full(k + 1, -1, dtype=np.intp)  # the extra last entry maps -1 to -1
    renumber[order] = np.arange(len(order))
    return renumber[codes], categories[order]


def counts_of(codes: np.ndarray, uniques: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """The labels of a factorization and how often each occurs."""
    return uniques.tolist(), np.bincount(codes + 1, minlength=len(uniques) + 1)[1:].astype(np.int64)


def plain_label(value: Any) -> Hashable:
    """Labels as plain Python scalars (numpy scalars unwrapped, anything else, such as a
    timestamp, as its text), so they compare and serialize the same in every window."""
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64 | np.timedelta64):
        value = value.item()
    return value if isinstance(value, str | int | float | bool) else str(value)


def aligned_counts(ref: Sample, cur: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of both samples' values and each sample's count per value (0 where absent)."""
    if ref.kind == "numerical":
        keys = np.union1d(ref.values, cur.values)
        rc = np.zeros(len(keys), dtype=np.int64)
        cc = np.zeros(len(keys), dtype=np.int64)
        rc[np.searchsorted(keys, ref.values)] = ref.counts
        cc[np.searchsorted(keys, cur.values)] = cur.counts
        return keys, rc, cc
    index: dict[Hashable, int] = {}
    for v in list(ref.values) + list(cur.values):
        index.setdefault(v, len(index))
    keys_obj = np.empty(len(index), dtype=object)
    keys_obj[:] = list(index)
    rc = np.zeros(len(index), dtype=np.int64)
    cc = np.zeros(len(index), dtype=np.int64)
    rc[[index[v] for v in ref.values]] = ref.counts
    cc[[index[v] for v in cur.values]] = cur.counts
    return keys_obj, rc, cc


def merged_cdfs(ref: Sample, cur: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both empirical CDFs on the merged sorted support: (points, F_ref, F_cur), right-continuous.

    The two value arrays are already sorted, so a stable sort of their concatenation is a
    linear-time merge (timsort finds the two runs). Where a value occurs in both samples only its
    last position carries both CDFs' full step; callers that need that take ``np.diff != 0``.
    """
    v = np.concatenate([ref.values, cur.values])
    order = np.argsort(v, kind="stable")
    v = v[order]
    wr = np.concatenate([ref.counts, np.zeros(len(cur.values), np.int64)])[order]
    wc = np.concatenate([np.zeros(len(ref.values), np.int64), cur.counts])[order]
    return v, np.cumsum(wr) / ref.n, np.cumsum(wc) / cur.n


def sturges_edges(lo: float, hi: float, size: int, integer: bool) -> np.ndarray:
    """``np.histogram_bin_edges(data, "sturges")`` from the data's min, max and size alone.

    Mirrors numpy's own arithmetic step by step (including its integer-width rule), so the edges
    are bit-identical without materializing the data.

    >>> sturges_edges(0.0, 1.0, 7, False).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> ints = np.arange(1000) % 4
    >>> bool(np.array_equal(sturges_edges(0.0, 3.0, 1000, True), np.histogram_bin_edges(ints, "sturges")))
    True
    """
    first, last = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
    width = (hi - lo) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=np.float64)


def binned_percents(ref: Sample, cur: Sample, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: Sturges bins over both samples for numbers with more than
    20 distinct reference values, else one bin per value; optionally replace empty bins by a tiny
    share (as evidently does, so logs stay finite)."""
    if ref.kind == "numerical" and ref.n_unique > 20:
        lo = min(ref.values[0], cur.values[0])
        hi = max(ref.values[-1], cur.values[-1])
        edges = sturges_edges(lo, hi, ref.n + cur.n, ref.integer and cur.integer)
        rp = np.histogram(ref.values, edges, weights=ref.counts)[0] / ref.n
        cp = np.histogram(cur.values, edges, weights=cur.counts)[0] / cur.n
    else:
        _, rc, cc = aligned_counts(ref, cur)
        rp = rc / ref.n
        cp = cc / cur.n
    if fill_zeroes:
        rp = _fill_zeroes(rp)
        cp = _fill_zeroes(cp)
    return rp, cp


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    smallest = p[p != 0].min()
    out = p.copy()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


@dataclass(frozen=True)
class TestResult:
    """One test's outcome: the score, the threshold it was held against, and the verdict."""

    __test__: ClassVar[bool] = False

    test: str
    score: float
    threshold: float
    drifted: bool


class StatTest(ABC):
    """A drift test between a reference and a current sample.

    Subclasses set ``name`` (evidently's name), ``kinds`` (column kinds it accepts),
    ``default_threshold``, ``is_pvalue`` (True: drift when the score is below the threshold;
    False: a distance, drift when at or above it) and ``inclusive`` (whether equality counts as
    drift, which differs between evidently's tests), then implement :meth:`score`.
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    kinds: ClassVar[tuple[Kind, ...]]
    default_threshold: ClassVar[float]
    is_pvalue: ClassVar[bool]
    inclusive: ClassVar[bool]

    def __init__(self, threshold: float | None = None) -> None:
        if threshold is not None:
            threshold = float(threshold)
            if not math.isfinite(threshold) or threshold < 0:
                raise ValueError(f"{self.name}: threshold must be a finite number >= 0, got {threshold}")
            if self.is_pvalue and not 0 < threshold <= 1:
                raise ValueError(f"{self.name}: a p-value threshold must be in (0, 1], got {threshold}")
        self.threshold = self.default_threshold if threshold is None else threshold

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.threshold == other.threshold

    def __hash__(self) -> int:
        return hash((type(self), self.threshold))

    @abstractmethod
    def score(self, ref: Sample, cur: Sample) -> float:
        """The p-value or distance between the two samples."""

    def drifted(self, score: float) -> bool:
        """The verdict for a score; NaN never counts as drift, as in evidently."""
        if self.is_pvalue:
            return bool(score <= self.threshold) if self.inclusive else bool(score < self.threshold)
        return bool(score >= self.threshold) if self.inclusive else bool(score > self.threshold)

    def __call__(self, ref: Sample, cur: Sample) -> TestResult:
        # No check of ``kinds`` here: like evidently, the automatic choice runs categorical tests
        # on low-cardinality numbers; ``kinds`` only limits what a user may name in a config.
        if ref.n == 0 or cur.n == 0:
            raise TestNotApplicable(f"{self.name} needs at least one value on each side")
        with np.errstate(all="ignore"):
            value = float(self.score(ref, cur))
        return TestResult(self.name, value, self.threshold, self.drifted(value))
