"""The backtest's plot: each policy's cost over time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from controller.backtest.pricing import BacktestResult
from controller.errors import UserError


def plot(result: BacktestResult, out: Path) -> None:
    """Cumulative cost of every policy over the chunks, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    x = np.arange(result.initial_chunks, result.chunks)
    for p in result.policies:
        bold = p.name in ("controller", "oracle")
        label = f"{p.name} ({p.total_cost:,.0f})"
        ax.plot(x, p.cumulative_cost, label=label, linewidth=2.5 if bold else 1.0, alpha=1.0 if bold else 0.7)
    ax.set_xlabel("chunk")
    ax.set_ylabel("cumulative cost")
    ax.set_title("Retraining policies: cumulative cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the plot ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
