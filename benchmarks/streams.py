"""Synthetic labelled streams with known drift, for the backtest and its benchmark.

Each generator returns a DataFrame in time order: numeric columns ``x0..x{d-1}``, one categorical
column ``segment`` and a binary ``label``. The label follows a logistic concept ``w . x + b[segment]``
with some label noise; drift changes the concept (what a retrain can fix) and, in some streams, the
input distribution (what a drift detector sees).

- ``none``: one concept throughout, but a harmless shift of the inputs: drift alarms fire, the
  model stays right, so retraining never pays.
- ``abrupt``: the concept switches to an unrelated one at fixed points.
- ``gradual``: the concept rotates a little with every chunk.
- ``recurring``: two concepts alternate, each holding for a fixed number of chunks.

>>> df = make_stream("abrupt", chunks=4, chunk_rows=5, seed=0)
>>> df.shape, list(df.columns)[-2:]
((20, 7), ['segment', 'label'])
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

StreamKind = Literal["none", "abrupt", "gradual", "recurring"]


KINDS: tuple[StreamKind, ...] = ("none", "abrupt", "gradual", "recurring")


_SEGMENTS = ("a", "b", "c")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def abrupt_changes(chunks: int) -> tuple[int, int]:
    """The chunks at which the ``abrupt`` stream's concept switches: one third and two thirds in.

    >>> abrupt_changes(60)
    (20, 40)
    """
    return chunks // 3, 2 * chunks // 3


def _concepts(kind: StreamKind, chunks: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """One weight vector per chunk (shape chunks x dims), each of norm ``scale``."""
    scale = 3.0  # a sharp boundary: about 8 % errors from the concept itself before label noise
    first = _unit(rng.normal(size=dims))
    if kind == "none":
        return np.tile(first * scale, (chunks, 1))
    if kind == "gradual":
        # rotate in the plane of two orthonormal directions, a full half-turn over the stream
        other = rng.normal(size=dims)
        other = _unit(other - other @ first * first)
        angles = np.linspace(0.0, np.pi, chunks)
        return scale * (np.cos(angles)[:, None] * first + np.sin(angles)[:, None] * other)
    second = _unit(-first + 0.5 * _unit(rng.normal(size=dims)))
    if kind == "recurring":
        period = max(chunks // 5, 1)
        use_second = (np.arange(chunks) // period) % 2 == 1
        return scale * np.where(use_second[:, None], second, first)
    # abrupt: two switches, at one third and two thirds of the stream, each to a fresh concept
    third = _unit(rng.normal(size=dims))
    out = np.empty((chunks, dims))
    cut1, cut2 = abrupt_changes(chunks)
    out[:cut1], out[cut1:cut2], out[cut2:] = first, second, third
    return scale * out


def make_stream(
    kind: StreamKind,
    chunks: int = 60,
    chunk_rows: int = 500,
    dims: int = 5,
    noise: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """A stream of ``chunks x chunk_rows`` rows of the given drift kind (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stream kind {kind!r}; use one of {', '.join(KINDS)}")
    if chunks < 1 or chunk_rows < 1 or dims < 1 or not 0 <= noise < 0.5:
        raise ValueError("chunks, chunk_rows and dims must be positive and noise in [0, 0.5)")
    rng = np.random.default_rng(seed)
    weights = _concepts(kind, chunks, dims, rng)
    seg_effect = rng.normal(scale=1.0, size=len(_SEGMENTS))
    n = chunks * chunk_rows
    chunk_of_row = np.repeat(np.arange(chunks), chunk_rows)
    x = rng.normal(size=(n, dims))
    if kind in ("none", "abrupt"):
        # the inputs move too: along x[-1] by up to two standard deviations over the stream
        x[:, -1] += 2.0 * chunk_of_row / max(chunks - 1, 1)
        if kind == "none":
            # keep the shifted feature out of the concept, so the shift is harmless
            weights[:, -1] = 0.0
    seg = rng.integers(0, len(_SEGMENTS), size=n)
    logit = np.einsum("ij,ij->i", x, weights[chunk_of_row]) + seg_effect[seg]
    y = (logit + rng.logistic(scale=0.3, size=n) > 0).astype(int)
    flip = rng.random(n) < noise
    y = np.where(flip, 1 - y, y)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(dims)])
    frame["segment"] = np.array(_SEGMENTS)[seg]
    frame["label"] = y
    return frame
