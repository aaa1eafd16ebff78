"""The headroom benchmark's own yardsticks: the hindsight decay and the renewal rule it prices."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from benchmarks.backtest_headroom import renewal_schedule, seed_list, true_decay
from benchmarks.streams import abrupt_changes, make_stream
from controller.backtest.baselines import periodic_schedule
from controller.backtest.data import BacktestConfig
from controller.backtest.matrix import ErrorMatrix


def steady_decay(t_end: int = 40, k: int = 5, rows: int = 500, fresh: float = 10.0, slope: float = 1.0) -> ErrorMatrix:
    """Every version starts at ``fresh`` % errors and loses ``slope`` points per chunk, without noise."""
    ages = np.arange(t_end)[None, :] - np.arange(t_end)[:, None]
    errors = np.where(ages >= 0, rows * (fresh + slope * ages) / 100.0, np.nan)
    return ErrorMatrix(errors, errors.copy(), np.zeros((t_end, t_end)), np.zeros((t_end, t_end), dtype=bool), k, rows)


def test_true_decay_reads_the_slope_and_the_fresh_level():
    b, fresh, var = true_decay(steady_decay(fresh=12.0, slope=1.5))
    assert (b, fresh, var) == pytest.approx((1.5, 12.0, 0.0))


@pytest.mark.parametrize(
    "cost, threshold, every",
    [(35.0, 1.0, 4), (45.0, 1.0, 5), (100.0, 1.0, 7), (100.0, 0.6, 4)],
)
def test_renewal_rule_retrains_at_the_renewal_cycle_of_a_steady_decay(cost, threshold, every):
    # one point over a chunk of 500 rows is 5 errors, so the cycle L = sqrt(2 R / (5 b)) is 3.74
    # chunks at R=35, 4.24 at R=45 and 6.32 at R=100; the rule retrains once the drop one chunk
    # ahead, b (age + 1), reaches threshold x b L: every ceil(threshold x L) chunks
    cfg = BacktestConfig(500, 5, 4, cost, 1.0, 0)
    assert renewal_schedule(steady_decay(), cfg, threshold, 4) == periodic_schedule(every, 5, 40)


def test_abrupt_changes_are_where_the_stream_switches():
    assert abrupt_changes(30) == (10, 20)
    frame = make_stream("abrupt", chunks=30, chunk_rows=400, seed=3)
    x = frame[[c for c in frame.columns if c.startswith("x")]].to_numpy()
    y = frame["label"].to_numpy()
    first, second = abrupt_changes(30)
    rows = slice(0, first * 400)
    model = LogisticRegression().fit(x[rows], y[rows])
    errors = (model.predict(x) != y).reshape(30, 400).mean(axis=1)
    # a model of the first concept is right until the switch and wrong from it on
    assert errors[first - 1] < 0.25 < errors[first]
    # the second switch is to a concept new to the model of the second one
    rows = slice(first * 400, second * 400)
    model = LogisticRegression().fit(x[rows], y[rows])
    errors = (model.predict(x) != y).reshape(30, 400).mean(axis=1)
    assert errors[second - 1] < 0.25 < errors[second]


def test_seed_list_reads_ranges_and_lists():
    assert seed_list("2-4") == [2, 3, 4]
    assert seed_list("1,5") == [1, 5]
    with pytest.raises(SystemExit, match="--seeds"):
        seed_list("one")
