"""The backtest: what each retraining policy would have cost on a labelled history.

Protocol (DESIGN.md): rows in time order are cut into chunks of ``chunk_rows`` rows (a trailing
partial chunk is dropped); the first model is fitted on chunks ``[0, K)`` and serves from chunk
``K`` for free; a retrain "at t" fits on the last ``W`` chunks whose labels have arrived before
``t`` (chunks ``[t - D - W, t - D)`` with a label delay of ``D`` chunks) and serves from chunk
``t``; cost = retrain cost x retrains + error cost x misclassified rows (regression: x absolute
error) over chunks ``K..T-1``.

Every retrain point ``t`` gives one deterministic model, so the backtest fits each candidate once,
scores it on every later chunk (an ``O(T^2)`` error matrix) and prices any schedule from that
matrix. The policies compared on the same matrix:

- ``never``: the first model serves throughout;
- ``periodic-k``: a retrain every ``k`` chunks;
- ``drift-only``: a retrain whenever the inputs of the last chunk drifted from the serving model's
  training window (dataset drift verdict);
- ``perf-threshold``: a retrain whenever the last labelled chunk's error is 20 % above the serving
  model's first labelled chunk;
- ``controller``: :func:`controller.decision.decide` with the given policy, fed what the service
  would have known at each chunk (realized errors of labelled chunks, drift share, the outcomes
  of past retrains);
- ``oracle``: the cheapest schedule in hindsight, by dynamic programming over the matrix.
"""

from __future__ import annotations

from controller.backtest.baselines import PERIODS, drift_schedule, perf_threshold_schedule, periodic_schedule
from controller.backtest.data import BacktestConfig, Progress, Stream, load_table, prepare
from controller.backtest.matrix import ErrorMatrix, error_matrix
from controller.backtest.pricing import BacktestResult, PolicyResult, oracle_schedule, price
from controller.backtest.replay import DEFAULT_POLICY, replay
from controller.core.policy import PolicyConfig

__all__ = [
    "DEFAULT_POLICY",
    "BacktestConfig",
    "BacktestResult",
    "ErrorMatrix",
    "PolicyResult",
    "Stream",
    "compare",
    "error_matrix",
    "load_table",
    "prepare",
    "run_backtest",
]


def run_backtest(
    stream: Stream,
    cfg: BacktestConfig,
    policy: PolicyConfig = DEFAULT_POLICY,
    progress: Progress | None = None,
) -> BacktestResult:
    """Every policy's cost on the same stream, and its ratio to the hindsight oracle."""
    matrix = error_matrix(stream, cfg, policy.drift_share_threshold, progress)
    return compare(matrix, cfg, policy, stream.task)


def compare(matrix: ErrorMatrix, cfg: BacktestConfig, policy: PolicyConfig, task: str) -> BacktestResult:
    """Price every policy on one error matrix (the matrix does not depend on the costs)."""
    k, t_end = matrix.initial_chunks, matrix.chunks
    oracle = price("oracle", oracle_schedule(matrix, cfg.retrain_cost, cfg.error_cost), matrix, cfg)
    schedules: list[tuple[str, list[int]]] = [("never", [])]
    schedules += [(f"periodic-{p}", periodic_schedule(p, k, t_end)) for p in PERIODS]
    schedules += [
        ("drift-only", drift_schedule(matrix)),
        ("perf-threshold", perf_threshold_schedule(matrix, cfg.label_delay)),
        (
            "controller",
            replay(
                matrix,
                policy,
                retrain_cost=cfg.retrain_cost,
                error_cost=cfg.error_cost,
                window=cfg.window,
                label_delay=cfg.label_delay,
                task=task,
                retire_at=cfg.retire_at,
            ).retrains,
        ),
    ]
    results = [price(name, sched, matrix, cfg, oracle.total_cost) for name, sched in schedules]
    oracle = price("oracle", oracle.retrain_chunks, matrix, cfg, oracle.total_cost)
    return BacktestResult(t_end, k, task, (*results, oracle))
