"""The fixed policies the controller is compared with: never, periodic, drift-only, perf-threshold.
"""

from __future__ import annotations

from controller.backtest.matrix import ErrorMatrix

PERIODS = (1, 2, 4, 8)


PERF_THRESHOLD = 0.2
"""perf-threshold retrains when the error per row is this fraction above the model's first chunk."""


def periodic_schedule(every: int, initial_chunks: int, chunks: int) -> list[int]:
    return list(range(initial_chunks + every, chunks, every))


def drift_schedule(matrix: ErrorMatrix) -> list[int]:
    """Retrain at t when chunk t-1 drifted from the serving model's training window."""
    k, serving, out = matrix.initial_chunks, matrix.initial_chunks, []
    for t in range(k + 1, matrix.chunks):
        if matrix.dataset_drift[serving, t - 1]:
            out.append(t)
            serving = t
    return out


def _labelled_last(t: int, label_delay: int) -> int:
    """The last chunk whose labels have arrived when deciding at the start of chunk ``t``."""
    return t - 1 - label_delay


def perf_threshold_schedule(matrix: ErrorMatrix, label_delay: int, threshold: float = PERF_THRESHOLD) -> list[int]:
    """Retrain when the last labelled chunk's error is ``threshold`` above the model's first chunk."""
    k, serving, out = matrix.initial_chunks, matrix.initial_chunks, []
    for t in range(k + 1, matrix.chunks):
        last = _labelled_last(t, label_delay)
        if last <= serving:
            continue  # the serving model has at most its first chunk labelled: nothing to compare yet
        first, now = matrix.errors[serving, serving], matrix.errors[serving, last]
        if now > first * (1 + threshold):
            out.append(t)
            serving = t
    return out
