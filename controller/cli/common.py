"""What every ``retrainctl`` command shares: its options, its console and its number formats.

Imports only the standard library, Typer and Rich, so that ``retrainctl --help`` starts at once.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from controller.errors import UserError

if TYPE_CHECKING:
    from controller.reactors.context import Context

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="controller.yaml (default: $RETRAIN_CONFIG or configs/controller.yaml)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=max(Console().width, 120))


def context(config: Path | None) -> Context:
    """The full context: config, store (migrated) and the MLflow registry."""
    from controller.reactors.context import Context

    return Context.from_config(config)


def money(v: float | None) -> str:
    if v is None:
        return "-"
    if v != v or v in (float("inf"), float("-inf")):
        return "inf" if v == float("inf") else "-"
    return f"{v:,.0f}"


def num(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def parse_time(text: str, option: str = "--now") -> datetime:
    from datetime import UTC

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option}: not an ISO time: {text!r} (e.g. 2026-11-28T12:00:00+00:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def embedding_specs(values: list[str] | None) -> dict[str, str]:
    """``NAME=SPEC`` flags as a mapping; a malformed or repeated name is a user error."""
    specs: dict[str, str] = {}
    for value in values or []:
        name, sep, spec = value.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise UserError(f"--embeddings: expected NAME=SPEC (a list column, columns a,b or a glob), got {value!r}")
        if name.strip() in specs:
            raise UserError(f"--embeddings: {name.strip()!r} named twice")
        specs[name.strip()] = spec.strip()
    return specs
