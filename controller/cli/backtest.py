"""``retrainctl backtest``: every retraining policy's cost on a labelled history (see controller.backtest.replay)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from controller.cli.common import check_output, embedding_specs, progress
from controller.errors import DataError, UserError

if TYPE_CHECKING:
    from controller.backtest.pricing import BacktestResult
    from controller.core.policy import PolicyConfig


def load_policy(path: Path | None) -> PolicyConfig:
    """The backtest policy, with a YAML file's PolicyConfig fields on top (one-line ConfigError when invalid)."""
    from controller.backtest.replay import DEFAULT_POLICY
    from controller.config import read_yaml, validate
    from controller.core.policy import PolicyConfig

    if path is None:
        return DEFAULT_POLICY
    merged = DEFAULT_POLICY.model_dump()
    merged.update(read_yaml(path) or {})
    return validate(PolicyConfig, merged, str(path))


def render(result: BacktestResult, console: Console) -> None:
    table = Table(title=f"Backtest over {result.chunks} chunks ({result.task})", box=box.SIMPLE_HEAD)
    # short headers so the table fits an 80-column terminal; "$" is the cost in the input's money
    for col in ("policy", "retrains", "errors", "retrain $", "error $", "total $", "vs oracle"):
        width = 14 if col == "policy" else len(col)
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True, min_width=width)
    for p in result.policies:
        style = "bold" if p.name in ("controller", "oracle") else None
        table.add_row(
            p.name,
            str(p.retrains),
            f"{p.errors:,.0f}",
            f"{p.retrain_cost:,.0f}",
            f"{p.error_cost:,.0f}",
            f"{p.total_cost:,.0f}",
            f"{p.vs_oracle:.3f}",
            style=style,
        )
    console.print(table)


def backtest(
    data: Annotated[str, typer.Option("--data", help="CSV or Parquet file of labelled rows (a path or URL).")],
    target: Annotated[str, typer.Option("--target", help="The label column.")],
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk (one chunk = one period).")],
    initial_chunks: Annotated[int, typer.Option("--initial-chunks", help="Chunks the first model is fitted on.")],
    window: Annotated[int, typer.Option("--window", help="Chunks a retrain is fitted on.")],
    retrain_cost: Annotated[float, typer.Option("--retrain-cost", help="Money per retrain.")],
    error_cost: Annotated[
        float, typer.Option("--error-cost", help="Money per misclassified row (regression: per unit of abs. error).")
    ],
    time: Annotated[str | None, typer.Option("--time", help="Column to sort rows by; default: file order.")] = None,
    categorical: Annotated[
        str | None, typer.Option("--categorical", help="Comma-separated categorical columns (text columns always are).")
    ] = None,
    label_delay: Annotated[int, typer.Option("--label-delay", help="Chunks until a chunk's labels arrive.")] = 0,
    model: Annotated[str, typer.Option("--model", help="logistic or hgb.")] = "logistic",
    policy: Annotated[
        Path | None, typer.Option("--policy", help="YAML file of PolicyConfig fields for the controller.")
    ] = None,
    retire_at: Annotated[
        int | None, typer.Option("--retire-at", help="A planned retirement at this chunk (a model's retire_on).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    plot_to: Annotated[Path | None, typer.Option("--plot", help="Write cumulative cost per policy to a PNG.")] = None,
    embeddings: Annotated[
        list[str] | None,
        typer.Option("--embeddings", help="NAME=SPEC: feature columns (a,b or a glob emb_*) drift-tested as one."),
    ] = None,
) -> None:
    """Replay a labelled history under every retraining policy and compare their costs with the oracle."""
    from controller.backtest import run_backtest
    from controller.backtest.data import BacktestConfig, ModelKind, load_table, prepare
    from controller.backtest.plot import plot
    from detectors.embeddings import resolve_columns

    if model not in ("logistic", "hgb"):
        raise UserError(f"--model must be logistic or hgb, got {model!r}")
    kind: ModelKind = "logistic" if model == "logistic" else "hgb"
    specs = tuple(embedding_specs(embeddings).items())
    cfg = BacktestConfig(
        chunk_rows, initial_chunks, window, retrain_cost, error_cost, label_delay, kind, retire_at, specs
    )
    pol = load_policy(policy)
    if plot_to is not None:  # before minutes of fitting, not after
        if plot_to.suffix.lower() != ".png":
            raise UserError(f"--plot: {plot_to} must end in .png")
        check_output(plot_to, "--plot")
    cats = [c.strip() for c in (categorical or "").split(",") if c.strip()]
    print(f"reading {data}", file=sys.stderr, flush=True)
    stream = prepare(load_table(data), target, chunk_rows, time, cats, task_rows=initial_chunks * chunk_rows)
    for name, spec in specs:
        try:
            resolve_columns(stream.features.columns, spec, name)
        except ValueError as exc:
            raise DataError(f"--embeddings: {exc}") from None
    with progress("fitting and scoring candidate models") as report:
        result = run_backtest(stream, cfg, pol, report)
    if plot_to is not None:
        plot(result, plot_to)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        render(result, Console())


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` command to the main ``retrainctl`` app."""
    app.command("backtest")(backtest)
