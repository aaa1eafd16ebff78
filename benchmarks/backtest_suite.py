"""Decision-quality benchmark: the backtest on generated streams, at several retraining costs and seeds.

For every stream kind (no concept drift but a harmless input shift, abrupt, gradual, recurring) and
seed it fits the candidate models once, then prices every policy at each retraining cost. A *cell*
is one (stream, seed, cost). Per cell it prints the controller's cost against the hindsight oracle
and against the best *fixed* policy chosen in hindsight for that cell (the cheapest of never,
periodic-1/2/4/8 and drift-only), and checks the bar:

- on every cell the controller costs at most 1.05 x the best fixed policy for that cell;
- over all cells its mean cost against the oracle is below every fixed policy's mean.

The controller runs the service's own check (``controller.backtest.replay``) with the policy the
service ships (``PolicyConfig()`` defaults) unless ``--policy`` names a YAML file of policy fields.

    .venv/bin/python benchmarks/backtest_suite.py                    # seeds 1-8, the published figures
    .venv/bin/python benchmarks/backtest_suite.py --seeds 1 --quick  # a smoke test
    .venv/bin/python benchmarks/backtest_suite.py --label-delay 1    # labels one chunk late
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.streams import KINDS, make_stream
from controller.backtest import compare
from controller.backtest.data import BacktestConfig, prepare
from controller.backtest.matrix import error_matrix
from controller.core.policy import PolicyConfig

FIXED = ("never", "periodic-1", "periodic-2", "periodic-4", "periodic-8", "drift-only")
BAR = 1.05


def seed_list(text: str) -> list[int]:
    """``1-8`` or ``1,3,5``.

    >>> seed_list("1-3"), seed_list("2,5")
    ([1, 2, 3], [2, 5])
    """
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: --seeds must look like 1-8 or 1,3,5, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 chunks of 300 rows instead of 60 of 500")
    parser.add_argument("--costs", default="50,500,5000", help="retraining costs (error cost is 1 per row)")
    parser.add_argument("--label-delay", type=int, default=0)
    parser.add_argument("--seeds", default="1-8")
    parser.add_argument("--policy", type=Path, help="YAML file of PolicyConfig fields (default: the shipped defaults)")
    parser.add_argument("--json", type=Path, help="also write every cell as JSON here")
    args = parser.parse_args()
    seeds = seed_list(args.seeds)
    chunks, rows = (30, 300) if args.quick else (60, 500)
    costs = [float(c) for c in args.costs.split(",")]
    policy = PolicyConfig()
    if args.policy is not None:
        from controller.cli.backtest import load_policy

        policy = load_policy(args.policy)
    console, err = Console(width=160), Console(stderr=True)
    console.print(
        f"streams of {chunks} chunks x {rows} rows, seeds {args.seeds}; initial 5 chunks, window 4, "
        f"label delay {args.label_delay}; error cost 1 per misclassified row; logistic model; "
        f"policy: {'the shipped defaults' if args.policy is None else args.policy}"
    )
    cells: list[dict[str, object]] = []
    started = time.perf_counter()
    for kind in KINDS:
        for seed in seeds:
            stream = prepare(make_stream(kind, chunks=chunks, chunk_rows=rows, seed=seed), "label", rows)
            base = BacktestConfig(rows, 5, 4, costs[0], 1.0, args.label_delay)
            t = time.perf_counter()
            matrix = error_matrix(stream, base, policy.drift_share_threshold)
            for cost in costs:
                cfg = BacktestConfig(rows, 5, 4, cost, 1.0, args.label_delay)
                r = compare(matrix, cfg, policy, stream.task)
                ratios = {p.name: p.vs_oracle for p in r.policies}
                best = min(FIXED, key=lambda name: ratios[name])
                ctrl = ratios["controller"]
                cells.append(
                    {
                        "stream": kind,
                        "seed": seed,
                        "cost": cost,
                        "controller": ctrl,
                        "best_fixed": best,
                        "best_fixed_ratio": ratios[best],
                        "vs_best_fixed": ctrl / ratios[best],
                        "pass": ctrl <= BAR * ratios[best] + 1e-12,
                        "retrains": r.policy("controller").retrains,
                        "oracle_retrains": r.policy("oracle").retrains,
                        **{name: ratios[name] for name in FIXED},
                    }
                )
            err.print(f"{kind} seed {seed}: {time.perf_counter() - t:.1f} s", highlight=False)
    _print(console, cells, costs)
    console.print(f"{len(cells)} cells in {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(cells, indent=1))
    sys.exit(0)


def _print(console: Console, cells: list[dict[str, object]], costs: list[float]) -> None:
    table = Table(title=f"controller against the bar (<= {BAR} x the best fixed policy of each cell)")
    for col in ("stream", "R", "seed", "ctrl/oracle", "best fixed (in hindsight)", "ctrl/best", "retrains c/o", "pass"):
        table.add_column(col, justify="right", no_wrap=True)
    for c in cells:
        table.add_row(
            str(c["stream"]),
            f"{c['cost']:g}",
            str(c["seed"]),
            f"{c['controller']:.3f}",
            f"{c['best_fixed']} {c['best_fixed_ratio']:.3f}",
            f"{c['vs_best_fixed']:.3f}",
            f"{c['retrains']}/{c['oracle_retrains']}",
            "yes" if c["pass"] else "NO",
        )
    console.print(table)
    means = Table(title="mean cost against the oracle over all cells, and per stream")
    means.add_column("policy")
    groups = ["all", *dict.fromkeys(str(c["stream"]) for c in cells)]
    for g in groups:
        means.add_column(g, justify="right")
    for name in ("controller", *FIXED):
        row = []
        for g in groups:
            vals = [float(c[name]) for c in cells if g == "all" or c["stream"] == g]  # type: ignore[arg-type]
            row.append(f"{np.mean(vals):.4f}")
        means.add_row(name, *row)
    console.print(means)
    passed = sum(bool(c["pass"]) for c in cells)
    ctrl_mean = np.mean([float(c["controller"]) for c in cells])  # type: ignore[arg-type]
    below = all(ctrl_mean < np.mean([float(c[n]) for c in cells]) for n in FIXED)  # type: ignore[arg-type]
    worst = max(cells, key=lambda c: float(c["vs_best_fixed"]))  # type: ignore[arg-type]
    console.print(
        f"bar: {passed} of {len(cells)} cells within {BAR} x the best fixed policy; controller mean "
        f"{ctrl_mean:.4f} x the oracle, {'below' if below else 'NOT below'} every fixed policy's mean; "
        f"worst cell {worst['stream']} seed {worst['seed']} R={worst['cost']:g}: "
        f"{float(worst['vs_best_fixed']):.3f} x {worst['best_fixed']}"  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
