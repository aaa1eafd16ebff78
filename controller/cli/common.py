"""What every ``retrainctl`` command shares: its options, its console and its number formats.

Imports only the standard library, Typer and Rich, so that ``retrainctl --help`` starts at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from controller.errors import UserError

if TYPE_CHECKING:
    from controller.adapters.store.store import Store
    from controller.config import ModelConfig, ServiceConfig
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


def store_context(config: Path | None) -> tuple[ServiceConfig, dict[str, ModelConfig], Store]:
    """The config, the model files and the audit store, for commands that read only the store
    (no MLflow, no statistics: they start at once)."""
    from controller.adapters.store.store import Store
    from controller.config import load_models, load_service_config

    service = load_service_config(config)
    store = Store(service.store_url)
    store.migrate_if_needed()
    return service, load_models(service), store


def known_model(models: dict[str, ModelConfig], name: str) -> ModelConfig:
    if name not in models:
        raise UserError(f"unknown model {name!r} (configured: {', '.join(sorted(models)) or 'none'})")
    return models[name]


@contextmanager
def progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A ``report(done, total)`` for long work, shown on stderr: a live bar on a terminal, and a
    plain line at every tenth of the way (and at the end) when stderr is a file or a pipe."""
    err = Console(stderr=True)
    started = time.perf_counter()
    if err.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(what, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    shown = [-1]

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > shown[0] or done == total:
            shown[0] = tenth
            elapsed = time.perf_counter() - started
            print(f"{what}: {done}/{total} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    yield report


LARGE_ROWS = 200_000
"""Inputs of at least this many rows get a line on stderr per step of the work (seconds each)."""


def step(message: str, rows: int | None = None) -> None:
    """One line on stderr saying what a long command does next (only for large inputs when ``rows``
    is given, so a quick run stays quiet)."""
    if rows is None or rows >= LARGE_ROWS:
        print(message, file=sys.stderr, flush=True)


def check_output(path: Path, option: str) -> None:
    """Fail before the work when ``path`` could not be written (its folder missing, no permission)."""
    import os

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{option}: folder {folder} does not exist")
    if path.is_dir():
        raise UserError(f"{option}: {path} is a folder, not a file")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option}: cannot write {path} (permission denied)")


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
