"""The backtest's plot: how far each policy's cost runs above the oracle's, chunk by chunk.

One panel per policy (the controller first), each on its own scale, so that a policy far above the
others (periodic-1 on a stable stream) does not flatten them, and two policies whose lines coincide
are still told apart. In each panel: the policy's cumulative cost minus the oracle's, its retrains
as marks on the line, the oracle's retrains as grey ticks along the bottom, and its total against
the oracle in the title.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from controller.backtest.pricing import BacktestResult
from controller.errors import UserError


def plot(result: BacktestResult, out: Path) -> None:
    """Each policy's cost above the oracle over the chunks, with its retrains marked, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    oracle = result.policy("oracle")
    others = sorted((p for p in result.policies if p.name != "oracle"), key=lambda p: p.name != "controller")
    x = np.arange(result.initial_chunks, result.chunks)
    cols = 3
    rows = math.ceil(len(others) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), sharex=True, squeeze=False)
    for ax, p in zip(axes.flat, others, strict=False):
        gap = np.asarray(p.cumulative_cost) - np.asarray(oracle.cumulative_cost)
        main = p.name == "controller"
        ax.plot(x, gap, color="tab:red" if main else "tab:blue", linewidth=2.0 if main else 1.2)
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        floor = 0.01 * max(oracle.total_cost, 1.0)  # a policy on the oracle's line shows a flat line, not rounding
        if float(np.ptp(gap)) < floor:
            ax.set_ylim(float(gap.min()) - floor, float(gap.max()) + floor)
        marks = [t - result.initial_chunks for t in p.retrain_chunks]
        ax.plot(x[marks], gap[marks], "o", markersize=4, color="black", label="retrain")
        for t in oracle.retrain_chunks:
            ax.axvline(t, ymax=0.06, color="0.5", linewidth=1.5)
        ax.set_title(f"{p.name}: {p.total_cost:,.0f} ({p.vs_oracle:.3f} x oracle, {p.retrains} retrains)", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(others) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("chunk", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("cost above oracle", fontsize=8)
    fig.suptitle(
        f"Cost above the oracle ({oracle.total_cost:,.0f}, {oracle.retrains} retrains: grey ticks); dots: retrains",
        fontsize=10,
    )
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=110)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the plot ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
