"""What a retrain schedule costs on an error matrix, and the cheapest schedule in hindsight (the oracle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.backtest.data import BacktestConfig
from controller.backtest.matrix import ErrorMatrix


@dataclass(frozen=True)
class PolicyResult:
    name: str
    retrain_chunks: tuple[int, ...]
    errors: float
    """Misclassified rows (regression: summed absolute error) over chunks K..T-1."""
    retrain_cost: float
    error_cost: float
    total_cost: float
    vs_oracle: float
    cumulative_cost: tuple[float, ...]
    """Total cost after each chunk K..T-1, for the plot."""

    @property
    def retrains(self) -> int:
        return len(self.retrain_chunks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retrain_chunks": list(self.retrain_chunks),
            "retrains": self.retrains,
            "errors": round(self.errors) if float(self.errors).is_integer() else self.errors,
            "retrain_cost": self.retrain_cost,
            "error_cost": self.error_cost,
            "total_cost": self.total_cost,
            "vs_oracle": self.vs_oracle,
        }


@dataclass(frozen=True)
class BacktestResult:
    chunks: int
    initial_chunks: int
    task: str
    policies: tuple[PolicyResult, ...]

    def policy(self, name: str) -> PolicyResult:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "policies": [p.to_dict() for p in self.policies]}


def serving_models(retrains: Sequence[int], initial_chunks: int, chunks: int) -> np.ndarray:
    """For each chunk K..T-1, the retrain point of the model serving it.

    >>> serving_models([7, 9], 5, 11).tolist()
    [5, 5, 7, 7, 9, 9]
    """
    out = np.full(chunks - initial_chunks, initial_chunks)
    for t in sorted(retrains):
        out[t - initial_chunks :] = t
    return out


def price(
    name: str, retrains: Sequence[int], matrix: ErrorMatrix, cfg: BacktestConfig, oracle_total: float | None = None
) -> PolicyResult:
    k, t_end = matrix.initial_chunks, matrix.chunks
    bad = [t for t in retrains if not k < t < t_end]
    if bad:
        raise ValueError(f"retrain chunks must be in ({k}, {t_end}), got {bad}")
    serving = serving_models(retrains, k, t_end)
    per_chunk = matrix.errors[serving, np.arange(k, t_end)]
    retrain_at = np.zeros(t_end - k)
    for t in retrains:
        retrain_at[t - k] += cfg.retrain_cost
    cumulative = np.cumsum(per_chunk * cfg.error_cost + retrain_at)
    errors = float(per_chunk.sum())
    total = float(cumulative[-1])
    ratio = total / oracle_total if oracle_total else (1.0 if total == 0 else math.inf)
    return PolicyResult(
        name,
        tuple(sorted(retrains)),
        errors,
        cfg.retrain_cost * len(retrains),
        errors * cfg.error_cost,
        total,
        ratio,
        tuple(float(v) for v in cumulative),
    )


def oracle_schedule(matrix: ErrorMatrix, retrain_cost: float, error_cost: float) -> list[int]:
    """The cheapest retrain schedule in hindsight (dynamic programming over retrain points).

    ``best[s]`` is the cheapest cost of chunks ``s..T-1`` when a model starts serving at ``s``:
    it serves until the next retrain ``u`` (or the end), then ``best[u]`` takes over.
    """
    k, t_end = matrix.initial_chunks, matrix.chunks
    best = np.zeros(t_end + 1)
    nxt = np.full(t_end + 1, t_end)
    for s in range(t_end - 1, k - 1, -1):
        run = np.cumsum(matrix.errors[s, s:] * error_cost)  # run[j]: serving chunks s..s+j
        # stopping before u = s+1..T: run[u-s-1] + (retrain + best[u] if u < T)
        follow = np.append(retrain_cost + best[s + 1 : t_end], 0.0)
        options = run + follow
        j = int(np.argmin(options))
        best[s], nxt[s] = options[j], s + 1 + j
    schedule, s = [], k
    while nxt[s] < t_end:
        s = int(nxt[s])
        schedule.append(s)
    return schedule
