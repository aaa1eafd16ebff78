"""Binned sketches of numerical samples: what a profile keeps of a column with many distinct values.

``sketch_bins`` equal-width bins between the sample's 0.1% and 99.9% quantiles, each kept as (mean
of its values, count), with the values outside that range kept exactly. Every sketched value moves
by less than one bin width. A current window is reduced on the reference's bins
(:func:`bin_values`), so identical windows still compare as identical.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from detectors.stattests.base import Sample

# quantiles bounding the sketch's bins: the tails outside them are kept exactly, so a long tail
# cannot stretch the bins and blur the body of the distribution
_SKETCH_QUANTILES = (0.001, 0.999)


def sketch_sample(sample: Sample, bins: int) -> tuple[float, float, Sample]:
    """Bin a large numerical sample: the sketch's range, and the binned sample."""
    cum = np.cumsum(sample.counts)
    lo_rank, hi_rank = (np.ceil(q * sample.n) for q in _SKETCH_QUANTILES)
    lo = float(sample.values[np.searchsorted(cum, lo_rank)])
    hi = float(sample.values[min(np.searchsorted(cum, hi_rank), len(cum) - 1)])
    binned = bin_values(sample.values, sample.counts, lo, hi, bins, sample.integer)
    return lo, hi, replace(binned, distinct=sample.n_unique)


def bin_values(
    values: np.ndarray, weights: np.ndarray | None, lo: float, hi: float, bins: int, integer: bool
) -> Sample:
    """Values inside [lo, hi] become (bin mean, count) pairs; values outside are kept exactly."""
    inside = (values >= lo) & (values <= hi)
    x_in = values[inside]
    w_in = None if weights is None else weights[inside]
    scale = bins / (hi - lo) if hi > lo else 0.0
    idx = np.minimum(((x_in - lo) * scale).astype(np.int64), bins - 1)
    counts = np.bincount(idx, weights=w_in, minlength=bins)
    sums = np.bincount(idx, weights=x_in if w_in is None else x_in * w_in, minlength=bins)
    used = counts > 0
    means = sums[used] / counts[used]
    # a bin mean is within its bin, so means keep the bins' order; clip rounding at the edges
    means = np.clip(means, lo, hi)
    outside = values[~inside]
    if weights is None:
        out_vals, out_counts = np.unique(outside, return_counts=True)
    else:
        out_vals, out_counts = outside, weights[~inside]
    all_vals = np.concatenate([means, out_vals])
    all_counts = np.concatenate([counts[used].astype(np.int64), out_counts.astype(np.int64)])
    order = np.argsort(all_vals, kind="stable")
    merged_vals, inverse = np.unique(all_vals[order], return_inverse=True)
    merged_counts = np.bincount(inverse, weights=all_counts[order]).astype(np.int64)
    return Sample(merged_vals, merged_counts, "numerical", integer)


def reduce_numbers(values: np.ndarray, max_exact: int, bins: int) -> tuple[Sample, float, float]:
    """A float64 array kept exactly (at most ``max_exact`` distinct values) or as a sketch of
    ``bins`` bins: the sample and the sketch's range (NaN, NaN when kept exactly)."""
    sample = Sample.from_numbers(values, False)
    if sample.n_unique <= max_exact:
        return sample, float("nan"), float("nan")
    lo, hi, sketched = sketch_sample(sample, bins)
    return sketched, lo, hi


def reduce_like(values: np.ndarray, lo: float, hi: float, bins: int) -> Sample:
    """A current float64 array reduced the way :func:`reduce_numbers` kept the reference: binned on
    its bins when it is a sketch, so identical windows give identical samples."""
    if np.isnan(lo):
        return Sample.from_numbers(values, False)
    return bin_values(values, None, lo, hi, bins, False)
