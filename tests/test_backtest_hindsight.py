"""No hindsight: a decision at chunk t sees only chunks up to t and the labels the delay allows.

Cutting a stream after chunk N never changes a decision before N: the same stream, the same costs
and label delay, cut and whole, give the controller the same retrains before N.
"""

from __future__ import annotations

import pytest

from benchmarks.streams import make_stream
from controller.backtest.data import BacktestConfig, prepare
from controller.backtest.matrix import error_matrix
from controller.backtest.replay import replay
from controller.core.policy import PolicyConfig

CHUNKS, ROWS, K = 36, 300, 5


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0, 1])
@pytest.mark.parametrize(("kind", "seed"), [("abrupt", 2), ("gradual", 1), ("recurring", 3), ("none", 4)])
def test_cutting_the_stream_never_changes_an_earlier_decision(kind: str, seed: int, delay: int) -> None:
    data = make_stream(kind, chunks=CHUNKS, chunk_rows=ROWS, seed=seed)
    whole = error_matrix(prepare(data, "label", ROWS), BacktestConfig(ROWS, K, 4, 50.0, 1.0, delay))
    for cut in (14, 24):
        part = error_matrix(
            prepare(data.iloc[: cut * ROWS], "label", ROWS), BacktestConfig(ROWS, K, 4, 50.0, 1.0, delay)
        )
        for cost in (50.0, 500.0, 5000.0):
            runs = [
                replay(m, PolicyConfig(), retrain_cost=cost, error_cost=1.0, window=4, label_delay=delay)
                for m in (whole, part)
            ]
            before = [[t for t in r.retrains if t < cut] for r in runs]
            assert before[0] == before[1], f"cut after {cut}, R={cost}"
            actions = [[d.action for d in r.decisions[: cut - K - 1]] for r in runs]
            assert actions[0] == actions[1]


def test_the_task_is_decided_on_the_first_chunks_only() -> None:
    """A target that only later shows more than 20 distinct values is still read as classes."""
    data = make_stream("none", chunks=10, chunk_rows=100, seed=1)
    data["label"] = data["label"].astype(float)
    data.loc[data.index >= 800, "label"] = range(200)  # many values, but only in the last chunks
    assert prepare(data, "label", 100, task_rows=500).task == "classification"
    assert prepare(data, "label", 100).task == "regression"
