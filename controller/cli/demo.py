"""``retrainctl demo``: the whole loop on generated data, with no services."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.cli.common import ConfigOpt, console


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its data, stores and MLflow.")] = Path(".retrain"),
    config: ConfigOpt = None,
) -> None:
    """Train, register, monitor and retrain a model on four generated production windows."""
    from controller.demo import run_demo

    run_demo(config or Path("configs/controller.yaml"), workdir, console())


def register(app: typer.Typer) -> None:
    app.command()(demo)
