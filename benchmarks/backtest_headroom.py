"""Headroom of the backtest bar: the best any policy could do on the cells the controller misses.

The suite (``benchmarks/backtest_suite.py``) misses three of its twelve cells on seed 1: abrupt
drift at R=5000, gradual drift at R=50 and gradual drift at R=5000. This benchmark measures, on
several seeds, whether a policy that decides from what is known at the time could meet the bar
there. It gives policies more than the controller has:

- **abrupt, R=5000**: the retrain a perfect change detector would take, at the first chunk whose
  training window lies wholly after the first change. Its gain over never retraining is split into
  what it recovers while the regime it learned lasts, and what it gains or loses after the next
  change, which nothing before that change can know.
- **gradual, R=50**: a renewal rule that is handed the stream's true decay and fresh level,
  measured in hindsight on the whole error matrix. It retrains when the serving version's level
  (its recent chunks weighed against the decay line, like the controller's replay) reaches the
  renewal threshold ``b L``, with ``L = sqrt(2 R / b)`` and ``b`` the decay in money per chunk per
  chunk. Thresholds from 0.6 to 1.3 x ``L`` and
  1 to 8 pooled chunks are swept, and the best variant is also chosen per seed, in hindsight. All
  are compared with the best periodic policy, itself chosen in hindsight.
- **gradual, R=5000**: the best single retrain in hindsight, and its gain per unit of cost.

    .venv/bin/python benchmarks/backtest_headroom.py                 # seeds 1 to 8
    .venv/bin/python benchmarks/backtest_headroom.py --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.streams import StreamKind, abrupt_changes, make_stream
from controller.backtest.baselines import PERIODS, drift_schedule, periodic_schedule
from controller.backtest.data import BacktestConfig, prepare
from controller.backtest.matrix import ErrorMatrix, error_matrix
from controller.backtest.pricing import oracle_schedule, price
from controller.backtest.replay import BACKTEST_POLICY, controller_schedule
from controller.core.forecasts import precision_weighted

CHUNKS, ROWS, INITIAL, WINDOW = 60, 500, 5, 4
"""The suite's full-length streams and protocol (no label delay, error cost 1 per row)."""
THRESHOLDS = tuple(round(0.6 + 0.05 * i, 2) for i in range(15))
"""Renewal thresholds swept, as multiples of the renewal cycle ``L``."""
POOLS = (1, 2, 4, 8)
"""Chunks pooled into the serving version's level."""


def fitted(kind: StreamKind, seed: int, cost: float) -> tuple[ErrorMatrix, BacktestConfig]:
    """The stream's error matrix (fitted once per stream: it does not depend on the cost) and the config."""
    cfg = BacktestConfig(ROWS, INITIAL, WINDOW, cost, 1.0, 0)
    return _matrix(kind, seed), cfg


@functools.cache
def _matrix(kind: StreamKind, seed: int) -> ErrorMatrix:
    stream = prepare(make_stream(kind, chunks=CHUNKS, chunk_rows=ROWS, seed=seed), "label", ROWS)
    cfg = BacktestConfig(ROWS, INITIAL, WINDOW, 1.0, 1.0, 0)
    return error_matrix(stream, cfg, BACKTEST_POLICY.drift_share_threshold)


class Pricer:
    """Every schedule's total cost on one matrix, as a ratio to the hindsight oracle's."""

    def __init__(self, matrix: ErrorMatrix, cfg: BacktestConfig) -> None:
        self.matrix, self.cfg = matrix, cfg
        self.oracle = oracle_schedule(matrix, cfg.retrain_cost, cfg.error_cost)
        self.oracle_total = self.total(self.oracle)

    def total(self, schedule: Sequence[int]) -> float:
        return price("policy", list(schedule), self.matrix, self.cfg).total_cost

    def ratio(self, schedule: Sequence[int]) -> float:
        return self.total(schedule) / self.oracle_total

    def best_periodic(self) -> tuple[str, float]:
        k, t_end = self.matrix.initial_chunks, self.matrix.chunks
        return min(((f"periodic-{p}", self.ratio(periodic_schedule(p, k, t_end))) for p in PERIODS), key=lambda x: x[1])

    def controller(self) -> float:
        return self.ratio(controller_schedule(self.matrix, self.cfg, BACKTEST_POLICY))


def gain(matrix: ErrorMatrix, old: int, new: int, chunks: slice) -> float:
    """Errors the version starting at ``new`` saves over version ``old`` on ``chunks``."""
    return float((matrix.errors[old, chunks] - matrix.errors[new, chunks]).sum())


# ---------------------------------------------------------------- abrupt, R=5000


def abrupt_row(seed: int, cost: float) -> list[str]:
    matrix, cfg = fitted("abrupt", seed, cost)
    pricer = Pricer(matrix, cfg)
    first, second = abrupt_changes(CHUNKS)
    at = first + WINDOW  # the first retrain whose training window postdates the change
    within = gain(matrix, INITIAL, at, slice(at, second)) * cfg.error_cost
    after = gain(matrix, INITIAL, at, slice(second, CHUNKS)) * cfg.error_cost
    return [
        str(seed),
        ",".join(map(str, pricer.oracle)) or "-",
        f"{pricer.ratio([]):.3f}",
        f"{pricer.controller():.3f}",
        f"{pricer.ratio([at]):.3f}",
        f"{within:,.0f} ({within / cost:.2f} R)",
        f"{after:+,.0f}",
    ]


# ---------------------------------------------------------------- gradual, R=50


def true_decay(matrix: ErrorMatrix, ages: int = 8) -> tuple[float, float, float]:
    """In hindsight: the mean decay (points per chunk) of fresh versions over their first ``ages``
    chunks, and the mean and variance of their first chunk's level (points)."""
    k, t_end, n = matrix.initial_chunks, matrix.chunks, matrix.chunk_rows
    slopes = [
        np.polyfit(np.arange(ages), 100.0 * matrix.errors[t, t : t + ages] / n, 1)[0]
        for t in range(k + 1, t_end - ages)
    ]
    firsts = [100.0 * matrix.errors[t, t] / n for t in range(k + 1, t_end)]
    return float(np.mean(slopes)), float(np.mean(firsts)), float(np.var(firsts))


def renewal_schedule(
    matrix: ErrorMatrix,
    cfg: BacktestConfig,
    threshold: float,
    pool: int,
    truth: tuple[float, float, float] | None = None,
) -> list[int]:
    """Retrain when the serving version's expected drop one chunk ahead reaches ``threshold x b L``.

    ``b`` and the fresh level come from :func:`true_decay` (hindsight); the level is the last
    ``pool`` chunks, decay taken out, carried to the last chunk and weighed by precision against
    the decay line. Classification errors only. ``truth``: :func:`true_decay` of the matrix, when
    the caller already has it (a sweep prices many variants on one matrix).
    """
    k, t_end, n = matrix.initial_chunks, matrix.chunks, matrix.chunk_rows
    b, fresh, fresh_var = truth if truth is not None else true_decay(matrix)
    point_per_chunk = n / 100.0 * cfg.error_cost  # one point of error rate over one chunk
    cycle = math.sqrt(2.0 * cfg.retrain_cost / (b * point_per_chunk))
    serving, out = k, []
    for t in range(k + 1, t_end):
        levels = 100.0 * matrix.errors[serving, serving:t] / n
        age = len(levels) - 1
        recent = levels[-pool:]
        measured = float(np.mean(recent - b * np.arange(age + 1)[-pool:])) + b * age
        measured_var = fresh * (100.0 - fresh) / n / len(recent)
        level = precision_weighted(measured, measured_var, fresh + b * age, fresh_var)
        if level - fresh + b >= threshold * b * cycle:
            out.append(t)
            serving = t
    return out


def gradual_fast(seeds: Sequence[int], cost: float, console: Console) -> None:
    table = new_table(
        f"gradual drift, R={cost:g}: a renewal rule told the true decay, against periodic in hindsight",
        ("seed", "best periodic", "controller", "rule at L, 4 chunks", "best rule for this seed", "beats periodic"),
    )
    sweeps: dict[tuple[float, int], list[bool]] = {}
    for seed in seeds:
        started = time.perf_counter()
        matrix, cfg = fitted("gradual", seed, cost)
        pricer = Pricer(matrix, cfg)
        name, periodic = pricer.best_periodic()
        truth = true_decay(matrix)
        ratios = {
            (x, pool): pricer.ratio(renewal_schedule(matrix, cfg, x, pool, truth)) for x in THRESHOLDS for pool in POOLS
        }
        for key, r in ratios.items():
            sweeps.setdefault(key, []).append(r < periodic)
        best = min(ratios, key=ratios.__getitem__)
        table.add_row(
            str(seed),
            f"{periodic:.4f} ({name})",
            f"{pricer.controller():.4f}",
            f"{ratios[(1.0, 4)]:.4f}",
            f"{ratios[best]:.4f} ({best[0]:g} L, {best[1]})",
            "yes" if ratios[best] < periodic else "NO",
        )
        print(f"gradual R={cost:g} seed {seed}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    console.print(table)
    wins = max(sum(v) for v in sweeps.values())
    champions = [f"{x:g} L, {p}" for (x, p), v in sweeps.items() if sum(v) == wins]
    console.print(
        f"One rule for every seed: the best of the {len(sweeps)} variants beats the best periodic policy on "
        f"{wins} of {len(seeds)} seeds ({'; '.join(champions[:4])})."
    )


# ---------------------------------------------------------------- gradual, R=5000


def gradual_slow_row(seed: int, cost: float) -> list[str]:
    matrix, cfg = fitted("gradual", seed, cost)
    pricer = Pricer(matrix, cfg)
    k, t_end = matrix.initial_chunks, matrix.chunks
    gains = {t: gain(matrix, k, t, slice(t, t_end)) * cfg.error_cost for t in range(k + 1, t_end)}
    best = max(gains, key=gains.__getitem__)
    drift = drift_schedule(matrix)
    return [
        str(seed),
        ",".join(map(str, pricer.oracle)) or "-",
        f"{best} ({gains[best] / cost:.2f} R)",
        f"{pricer.ratio([]):.3f}",
        f"{pricer.controller():.3f}",
        f"{pricer.ratio(drift):.3f} ({len(drift)})",
    ]


def new_table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def per_seed(
    title: str, columns: Sequence[str], rows: Sequence[tuple[str, Callable[[], list[str]]]], console: Console
) -> None:
    """Print a table of one row per seed, each row's time on stderr (the progress of a long run)."""
    table = new_table(title, columns)
    for label, row in rows:
        started = time.perf_counter()
        table.add_row(*row())
        print(f"{label}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    console.print(table)


def seed_list(text: str) -> list[int]:
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds: give a range like 1-8 or a list like 1,2,3, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-8", help="a range (1-8) or a list (1,2,3)")
    args = parser.parse_args()
    seeds = seed_list(args.seeds)
    console = Console(width=160)
    console.print(
        f"streams of {CHUNKS} chunks x {ROWS} rows, seeds {args.seeds}; initial {INITIAL} chunks, window {WINDOW}, "
        "label delay 0; error cost 1 per misclassified row; logistic model"
    )

    per_seed(
        "abrupt drift, R=5000: a perfect change detector's retrain, against never retraining",
        (
            "seed",
            "oracle retrains",
            "never",
            "controller",
            "retrain at change + W",
            "gain in its regime",
            "gain after the next change",
        ),
        [(f"abrupt R=5000 seed {seed}", lambda seed=seed: abrupt_row(seed, 5000.0)) for seed in seeds],
        console,
    )
    gradual_fast(seeds, 50.0, console)
    per_seed(
        "gradual drift, R=5000: the best single retrain in hindsight",
        ("seed", "oracle retrains", "best single retrain (gain)", "never", "controller", "drift-only (retrains)"),
        [(f"gradual R=5000 seed {seed}", lambda seed=seed: gradual_slow_row(seed, 5000.0)) for seed in seeds],
        console,
    )


if __name__ == "__main__":
    main()
