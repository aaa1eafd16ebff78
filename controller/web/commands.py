"""``retrainctl serve`` (the web console) and ``retrainctl console token`` (a new bearer token).

Added to ``retrainctl`` through the ``retrainctl.commands`` entry point, as the workers' commands
are: the command line and the console sit side by side and neither imports the other. Like every
command module, this one imports only Typer, Rich and the standard library until a command runs.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from controller.errors import UserError

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="controller.yaml (default: $RETRAIN_CONFIG or configs/controller.yaml)"),
]

ROLES = ("viewer", "owner", "admin")


def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Serve the console: fleet, model, costs, savings and governance pages, the JSON API and /metrics."""
    import uvicorn

    from controller.reactors.context import Context
    from controller.web.app import create_app

    ctx = Context.from_config(config)
    app = create_app(ctx)
    # What was imported so far (the MLflow, pandas and scikit-learn stacks) lives as long as the
    # process: kept out of the collector, a full collection no longer walks it during a request.
    gc.freeze()
    mode = (
        "read-only (no tokens configured)"
        if not ctx.service.console.tokens
        else f"{len(ctx.service.console.tokens)} token(s)"
    )
    Console(highlight=False, soft_wrap=True).print(
        f"console on http://{host}:{port}/ ({len(ctx.models)} model(s), {mode}); API reference at /api"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)
    except OSError as exc:
        raise UserError(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def token(
    name: Annotated[str, typer.Argument(help="Whose token: recorded as the author of its actions.")],
    role: Annotated[str, typer.Option(help="viewer, owner (its team's models) or admin.")] = "viewer",
    team: Annotated[str | None, typer.Option(help="The team an owner token acts for.")] = None,
) -> None:
    """Print a new token (give it to its holder) and the entry with its hash for controller.yaml."""
    from controller.web.auth import new_token

    if role not in ROLES:
        raise UserError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "owner" and not team:
        raise UserError("--team is needed for an owner token: it may act on that team's models only")
    if not name.strip():
        raise UserError("NAME must not be empty: it is recorded as the author of the token's actions")
    raw, digest = new_token()
    entry = (
        f"    - {{name: {name.strip()}, role: {role}" + (f", team: {team}" if team else "") + f", sha256: {digest}}}"
    )
    print(f"token (shown once; give it to {name.strip()}): {raw}")
    print("add under console.tokens in controller.yaml:")
    print("console:\n  tokens:\n" + entry)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``console token`` to ``retrainctl`` (the ``retrainctl.commands`` entry point)."""
    app.command()(serve)
    group = typer.Typer(help="The web console's tokens.", no_args_is_help=True)
    group.command("token")(token)
    app.add_typer(group, name="console")
