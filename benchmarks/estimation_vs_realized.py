"""How close are label-free estimates to the realized metric, and how often do their intervals cover it?

Generated data, four scenarios, chunks of ``--chunk-rows`` rows (default 5,000):

- ``binary-covariate``: the inputs' means drift chunk by chunk, ``P(y | x)`` stays; a gradient-
  boosted classifier; CBPE (isotonic calibration when it helps).
- ``binary-concept``: the inputs stay, ``P(y | x)`` changes progressively (one feature's effect
  fades and flips); the same model and estimator. CBPE is blind to this by construction.
- ``multiclass-covariate``: three classes, drifting inputs, CBPE on the class probabilities.
- ``regression-covariate``: drifting inputs, heteroscedastic noise; the direct-loss estimator.

Per scenario and metric it prints the mean absolute error of the estimate against the realized
value per chunk, the share of chunks whose interval covers the realized value, the range of the
realized metric over the chunks (so an MAE can be read against how much there was to track),
and, for classifiers, the noise floor: the MAE of the *true* expected metric (computed from the
generator's ``P(y | x)``), which no estimator can beat because the realized metric is itself a
random draw. For the concept-drift scenario it also prints what the estimate misses: the realized
drop from the first to the last chunks against the estimated drop. For both binary scenarios it
runs the decay signal check by check on the realized and on the estimated accuracy (tolerance 2
points) and prints, per seed, the chunk where the CUSUM first fires and where the drop is first
significant and past the tolerance (what the controller would act on).

Run (about two minutes per seed on one busy core)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/estimation_vs_realized.py --seeds 0,1,2,3 --json bench.json

This measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.decay import decay_signal
from detectors.estimation import (
    CBPE,
    DirectLossEstimator,
    MetricEstimate,
    expected_binary_metrics,
    expected_multiclass_metrics,
)
from detectors.performance import MetricValue, baseline_metrics, realized_performance

D = 6
DECAY_TOLERANCE = 2.0
BINARY_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "pr_auc", "log_loss")


@dataclass
class Tally:
    """Estimates and realized values of one metric over the chunks of one scenario."""

    estimate: list[float] = field(default_factory=list)
    realized: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)
    oracle: list[float] = field(default_factory=list)
    estimates: list[MetricEstimate] = field(default_factory=list)
    realized_values: list[MetricValue] = field(default_factory=list)
    """Realized values with bootstrap intervals (only where the decay trace needs them)."""
    baselines: dict[str, float] = field(default_factory=dict)

    def add(self, est: MetricEstimate, realized: float, oracle: float | None = None) -> None:
        self.estimates.append(est)
        self.estimate.append(est.estimate)
        self.realized.append(realized)
        self.covered.append(bool(est.lower <= realized <= est.upper))
        if oracle is not None:
            self.oracle.append(oracle)

    def summary(self) -> dict[str, Any]:
        est, real = np.array(self.estimate), np.array(self.realized)
        out: dict[str, Any] = {
            "chunks": len(real),
            "mae": float(np.mean(np.abs(est - real))),
            "coverage": float(np.mean(self.covered)),
            "realized_min": float(real.min()),
            "realized_max": float(real.max()),
        }
        if self.oracle:
            out["noise_floor_mae"] = float(np.mean(np.abs(np.array(self.oracle) - real)))
        return out


def _logit_binary(X: np.ndarray, concept: float = 0.0) -> np.ndarray:
    # concept = 0: the reference relation; concept = 1: x1's effect has flipped sign.
    z = 2.0 * X[:, 0] - 1.5 * (1 - 2 * concept) * X[:, 1] + X[:, 2] * X[:, 3] + np.sin(2 * X[:, 4]) + 0.5 * X[:, 5]
    return np.asarray(1 / (1 + np.exp(-(z - 0.5))))


def _shift(c: int, n_chunks: int) -> np.ndarray:
    """The mean of the inputs at chunk c: a slow drift along a few features, up to ~0.8 sd."""
    t = c / max(n_chunks - 1, 1)
    return np.array([0.8 * t, -0.5 * t, 0.3 * np.sin(3 * t), 0.0, 0.4 * t, -0.3 * t])


@dataclass(frozen=True)
class Options:
    """Estimator settings, switchable to measure what each part of the interval buys."""

    calibration_boot: int = 40
    shift_correction: bool = True


def binary(n_chunks: int, chunk_rows: int, rng: np.random.Generator, concept: bool, opts: Options) -> dict[str, Tally]:
    def draw(n: int, mean: np.ndarray, drift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = rng.normal(size=(n, D)) + mean
        truth = _logit_binary(X, drift)
        return X, (rng.uniform(size=n) < truth).astype(int), truth

    X, y, _ = draw(60_000, np.zeros(D), 0.0)
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0).fit(X, y)
    X, y, _ = draw(50_000, np.zeros(D), 0.0)
    ref_score = model.predict_proba(X)[:, 1]
    cbpe = CBPE(metrics=BINARY_METRICS, n_calibration_boot=opts.calibration_boot).fit(ref_score, y)
    tallies = {m: Tally() for m in BINARY_METRICS}
    # Baselines as the controller uses them: realized on the reference, and the estimator's own
    # view of the reference for estimated figures.
    tallies["accuracy"].baselines = {
        "realized": baseline_metrics(y, proba=ref_score)["accuracy"],
        "estimated": cbpe.estimate(ref_score)["accuracy"].estimate,
    }
    for c in range(n_chunks):
        mean = np.zeros(D) if concept else _shift(c, n_chunks)
        drift = 0.6 * c / max(n_chunks - 1, 1) if concept else 0.0
        X, y, truth = draw(chunk_rows, mean, drift)
        score = model.predict_proba(X)[:, 1]
        est = cbpe.estimate(score)
        real = baseline_metrics(y, proba=score)
        # The truth's expected metric: the best any label-free estimate could do on this chunk.
        ideal = expected_binary_metrics(score, truth, (score >= 0.5).astype(np.int64))
        for m in BINARY_METRICS:
            tallies[m].add(est[m], real[m], ideal[m])
        acc = realized_performance(y, proba=score, metrics=["accuracy"], n_boot=200, seed=c).metrics["accuracy"]
        tallies["accuracy"].realized_values.append(acc)
    return tallies


def decay_trace(
    values: list[MetricValue] | list[MetricEstimate], baseline: float, source: str, tolerance: float
) -> dict[str, int | None]:
    """Run the decay signal check by check: when does the CUSUM fire, when is the drop actionable,
    and at the alarm, which chunk did the forecast name for crossing the tolerance?"""
    first_change = first_actionable = forecast_at_alarm = None
    history: list[float] = []
    for c, current in enumerate(values):
        sig = decay_signal("accuracy", baseline, current, source, history, tolerance)  # type: ignore[arg-type]
        if sig.change_detected and first_change is None:
            first_change = c
            if sig.forecast_periods_to_tolerance is not None:
                forecast_at_alarm = c + int(np.ceil(sig.forecast_periods_to_tolerance))
        if sig.significant and (sig.drop_points or 0.0) >= tolerance and first_actionable is None:
            first_actionable = c
        if sig.current is not None:
            history.append(sig.current)
    return {"first_change": first_change, "forecast_at_alarm": forecast_at_alarm, "first_actionable": first_actionable}


def multiclass(n_chunks: int, chunk_rows: int, rng: np.random.Generator, opts: Options) -> dict[str, Tally]:
    weights = rng.normal(size=(D, 3)) * 1.2

    def draw(n: int, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = rng.normal(size=(n, D)) + mean
        z = X @ weights + 0.8 * np.column_stack([X[:, 0] * X[:, 1], np.sin(2 * X[:, 2]), np.zeros(n)])
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        y = np.minimum((rng.uniform(size=(n, 1)) > p.cumsum(axis=1)).sum(axis=1), 2)
        return X, y, p

    metrics = ("roc_auc", "accuracy", "f1", "log_loss")
    X, y, _ = draw(60_000, np.zeros(D))
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0).fit(X, y)
    X, y, _ = draw(50_000, np.zeros(D))
    cbpe = CBPE(metrics=metrics, n_calibration_boot=opts.calibration_boot).fit(model.predict_proba(X), y)
    tallies = {m: Tally() for m in metrics}
    for c in range(n_chunks):
        X, y, truth = draw(chunk_rows, _shift(c, n_chunks))
        proba = model.predict_proba(X)
        est = cbpe.estimate(proba)
        real = baseline_metrics(y, proba=proba, classes=[0, 1, 2])
        ideal = expected_multiclass_metrics(proba, truth, proba.argmax(axis=1))
        for m in metrics:
            tallies[m].add(est[m], real[m], ideal[m])
    return tallies


def regression(n_chunks: int, chunk_rows: int, rng: np.random.Generator, opts: Options) -> dict[str, Tally]:
    def draw(n: int, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = rng.normal(size=(n, D)) + mean
        f = 2 * X[:, 0] + np.sin(2 * X[:, 1]) + X[:, 2] * X[:, 3]
        return X, f + rng.normal(0, 0.3 + 0.5 * np.abs(X[:, 4]), size=n)

    X, y = draw(30_000, np.zeros(D))
    model = HistGradientBoostingRegressor(random_state=0).fit(X, y)
    X, y = draw(30_000, np.zeros(D))
    dle = DirectLossEstimator(shift_correction=opts.shift_correction).fit(X, y, model.predict(X))
    tallies = {m: Tally() for m in ("mae", "rmse")}
    for c in range(n_chunks):
        X, y = draw(chunk_rows, _shift(c, n_chunks))
        pred = model.predict(X)
        est = dle.estimate(X, pred)
        real = baseline_metrics(y, pred, task="regression")
        for m in tallies:
            tallies[m].add(est[m], real[m])
    return tallies


def concept_misses(tallies: dict[str, Tally], tail: int) -> dict[str, dict[str, float]]:
    """Drop from the first to the last ``tail`` chunks: realized against estimated."""
    out = {}
    for m in ("roc_auc", "accuracy"):
        t = tallies[m]
        real = float(np.mean(t.realized[:tail]) - np.mean(t.realized[-tail:]))
        est = float(np.mean(t.estimate[:tail]) - np.mean(t.estimate[-tail:]))
        out[m] = {"realized_drop": real, "estimated_drop": est, "missed_drop": real - est}
    return out


def _chunks(found: list[int | None]) -> str:
    return ", ".join("never" if c is None else str(c) for c in found)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=40, help="chunks per scenario")
    parser.add_argument("--chunk-rows", type=int, default=5000)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; chunks of all seeds are pooled")
    parser.add_argument(
        "--scenarios", default="binary-covariate,binary-concept,multiclass-covariate,regression-covariate"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--calibration-boot", type=int, default=40, help="CBPE: bootstrap calibration maps (0 = none)")
    parser.add_argument("--no-shift-correction", action="store_true", help="direct-loss estimator without it")
    args = parser.parse_args(argv)
    opts = Options(args.calibration_boot, not args.no_shift_correction)

    runs: dict[str, Callable[[np.random.Generator], dict[str, Tally]]] = {
        "binary-covariate": lambda r: binary(args.chunks, args.chunk_rows, r, False, opts),
        "binary-concept": lambda r: binary(args.chunks, args.chunk_rows, r, True, opts),
        "multiclass-covariate": lambda r: multiclass(args.chunks, args.chunk_rows, r, opts),
        "regression-covariate": lambda r: regression(args.chunks, args.chunk_rows, r, opts),
    }
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    results: dict[str, Any] = {
        "chunk_rows": args.chunk_rows,
        "chunks_per_seed": args.chunks,
        "seeds": seeds,
        "options": {"calibration_boot": opts.calibration_boot, "shift_correction": opts.shift_correction},
    }
    print(f"chunks of {args.chunk_rows} rows, {args.chunks} chunks per scenario and seed, seeds {seeds}, 90% intervals")
    print(f"{'scenario':22} {'metric':10} {'MAE':>8} {'floor':>8} {'coverage':>9} {'realized range':>18}")
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        started = time.perf_counter()
        per_seed = [runs[name](np.random.default_rng(seed)) for seed in seeds]
        tallies = {m: Tally() for m in per_seed[0]}
        for one in per_seed:
            for m, t in one.items():
                tallies[m].estimate += t.estimate
                tallies[m].realized += t.realized
                tallies[m].covered += t.covered
                tallies[m].oracle += t.oracle
        summary = {m: t.summary() for m, t in tallies.items()}
        results[name] = {"metrics": summary, "seconds": round(time.perf_counter() - started, 1)}
        for m, s in summary.items():
            floor = f"{s['noise_floor_mae']:.4f}" if "noise_floor_mae" in s else "-"
            span = f"{s['realized_min']:.3f}..{s['realized_max']:.3f}"
            print(f"{name:22} {m:10} {s['mae']:8.4f} {floor:>8} {s['coverage']:9.0%} {span:>18}")
        if name.startswith("binary"):
            traces = [
                {
                    source: decay_trace(
                        one["accuracy"].realized_values if source == "realized" else one["accuracy"].estimates,
                        one["accuracy"].baselines[source],
                        source,
                        DECAY_TOLERANCE,
                    )
                    for source in ("realized", "estimated")
                }
                for one in per_seed
            ]
            results[name]["decay_traces"] = traces
            for source in ("realized", "estimated"):
                changes = [t[source]["first_change"] for t in traces]
                forecasts = [t[source]["forecast_at_alarm"] for t in traces]
                actionable = [t[source]["first_actionable"] for t in traces]
                print(
                    f"  decay signal on {source} accuracy (tolerance {DECAY_TOLERANCE:g} points), per seed: "
                    f"CUSUM alarm at chunk {_chunks(changes)}; forecast (at the alarm) of the crossing: chunk "
                    f"{_chunks(forecasts)}; significant drop past tolerance at chunk {_chunks(actionable)}"
                )
        if name == "binary-concept":
            each = [concept_misses(one, tail=max(1, args.chunks // 5)) for one in per_seed]
            misses = {m: {k: float(np.mean([e[m][k] for e in each])) for k in each[0][m]} for m in each[0]}
            results[name]["misses"] = misses
            for m, v in misses.items():
                print(
                    f"  concept drift, {m} (mean over seeds): realized fell {v['realized_drop']:.4f} from the "
                    f"first to the last fifth of chunks, the estimate fell {v['estimated_drop']:.4f}: "
                    f"it missed {v['missed_drop']:.4f}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    with threadpool_limits(1):
        main()
