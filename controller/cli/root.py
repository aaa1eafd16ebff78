"""The ``retrainctl`` application: its commands, gathered from their modules, and its exit codes.

Every command module imports only Typer, Rich and the standard library at import time and its own
heavy dependencies when it runs, so ``retrainctl --help`` starts at once. Packages that run on top
of the controller (the Celery workers) add their commands through the ``retrainctl.commands``
entry point group: a function that takes the Typer app.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

import typer

from controller.cli import backtest, config, costs, demo, drift, models, performance, service
from controller.errors import GiveUp, RetryLater, UserError

ENTRY_POINTS = "retrainctl.commands"

app = typer.Typer(
    name="retrainctl",
    help="Decide when a production ML model should be retrained, and prove the decision paid.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for module in (demo, models, config, drift, performance, backtest, service, costs):
    module.register(app)
for plugin in entry_points(group=ENTRY_POINTS):
    plugin.load()(app)


def run(argv: Sequence[str] | None = None, application: typer.Typer | None = None) -> int:
    """Run the CLI; returns the exit code (user errors: 2, temporary failures: 75, never a traceback)."""
    cli = application or app
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        code = cli(args=list(argv) if argv is not None else None, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return 130
    except (UserError, GiveUp) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except RetryLater as exc:
        print(f"temporarily unavailable: {exc}", file=sys.stderr)
        return 75
    except typer.TyperException as exc:  # usage errors: Typer bundles its own click
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return int(exc.exit_code)
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run())
