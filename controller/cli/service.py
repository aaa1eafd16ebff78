"""The service commands of ``retrainctl``: ``worker``, ``beat``, ``run-once`` and ``deliver``.

``controller.cli`` adds them with :func:`register`; ``python -m controller.cli.service`` runs them
on their own. ``worker`` and ``beat`` hand over to Celery after validating the config and
migrating the store once; ``run-once`` and ``deliver`` work in-process without Redis or workers
(for cron users and for draining the outbox by hand).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from controller.config import ENV_PREFIX, load_models, load_service_config
from controller.errors import GiveUp, RetryLater, UserError
from controller.reactors.outbox import DeliveryReport, deliver_outbox

if TYPE_CHECKING:
    from controller.reactors.context import Context


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="controller.yaml (default: $RETRAIN_CONFIG or configs/controller.yaml)"),
]


LogOpt = Annotated[str, typer.Option("--loglevel", "-l", help="Celery log level.")]


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _prepare(config: Path | None, loglevel: str, migrate: bool) -> str:
    """Validate the config (one clear line on error), export it for child processes, migrate."""
    if loglevel.upper() not in LEVELS:
        raise UserError(f"--loglevel must be one of {', '.join(LEVELS)}, got {loglevel!r}")
    path = str(config) if config is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    service = load_service_config(path)
    load_models(service)
    if service.source_file:
        os.environ[f"{ENV_PREFIX}CONFIG"] = str(Path(service.source_file).resolve())
    if migrate:
        from controller.adapters.store.store import Store

        store = Store(service.store_url)
        store.migrate()
        store.dispose()
    from workers.app import app as celery_app
    from workers.app import configure

    configure(celery_app, service)
    return loglevel.upper()


def worker(
    config: ConfigOpt = None,
    queues: Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated: checks, training, notify.")] = (
        "checks,training,notify"
    ),
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Worker processes.")] = 2,
    hostname: Annotated[str | None, typer.Option("--hostname", "-n", help="Celery node name.")] = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="Compute threads per worker process (numpy, pyarrow).")
    ] = 1,
    loglevel: LogOpt = "INFO",
) -> None:
    """Run a Celery worker for checks, retrains and outbox delivery."""
    from workers.app import QUEUES

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in QUEUES]
    if unknown or not wanted:
        raise UserError(f"--queues: unknown queue(s) {', '.join(unknown) or '(none)'}; use {', '.join(QUEUES)}")
    level = _prepare(config, loglevel, migrate=True)
    from workers.app import THREADS_ENV
    from workers.app import app as celery_app

    os.environ[THREADS_ENV] = str(threads)  # read by each pool process as it starts
    argv = ["worker", "-Q", ",".join(wanted), "-c", str(concurrency), "-l", level]
    if hostname:
        argv += ["-n", hostname]
    celery_app.worker_main(argv)


def beat(
    config: ConfigOpt = None,
    tick_seconds: Annotated[
        float, typer.Option(min=1, help="Level-triggered timer: check every due model this often.")
    ] = 60.0,
    deliver_seconds: Annotated[float, typer.Option(min=1, help="Drain the outbox this often.")] = 10.0,
    lock_seconds: Annotated[
        float,
        typer.Option(min=1, help="Leader lock expiry: a standby beat takes over this long after the active one died."),
    ] = 30.0,
    loglevel: LogOpt = "INFO",
) -> None:
    """Run Celery beat with one entry per model; only one beat is active at a time (Redis lock)."""
    level = _prepare(config, loglevel, migrate=True)
    from workers.app import app as celery_app

    celery_app.conf.retrain_tick_seconds = tick_seconds
    celery_app.conf.retrain_deliver_seconds = deliver_seconds
    celery_app.conf.retrain_beat_lock_seconds = lock_seconds
    celery_app.start(["beat", "-S", "workers.schedule:ConfigScheduler", "-l", level])


def run_once(
    config: ConfigOpt = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")] = None,
    retrain: Annotated[bool, typer.Option(help="Run triggered retrains in-process.")] = True,
    deliver: Annotated[bool, typer.Option(help="Deliver the outbox (tags, webhooks) at the end.")] = True,
) -> None:
    """Run every due check in-process, once (for cron, without workers); exit 1 if a check failed."""
    from controller.reactors.check import run_check
    from controller.reactors.context import Context
    from controller.reactors.retrain import reclaim_retrains, run_retrain
    from controller.reactors.schedule import due_checks
    from workers.schedule import slot_key

    ctx = Context.from_config(config)
    reclaimed = reclaim_retrains(ctx)
    unknown = [m for m in model or [] if m not in ctx.models]
    if unknown:
        raise UserError(f"--model: unknown model(s) {', '.join(unknown)}; configured: {', '.join(sorted(ctx.models))}")
    out = Console(highlight=False, soft_wrap=True)
    now = ctx.clock()
    due = [m for m in due_checks(ctx, now) if not model or m in model]
    failed = 0
    for retrain_id in reclaimed if retrain else []:
        # A retrain an earlier run left half-done (its process died) is redone before new checks.
        try:
            out.print(f"retrain {retrain_id} (reclaimed): {run_retrain(ctx, retrain_id).state}")
        except (RetryLater, GiveUp, UserError) as exc:
            failed += 1
            out.print(f"retrain {retrain_id} (reclaimed) failed: {exc}")
    for name in due:
        try:
            outcome = run_check(ctx, name, request_key=slot_key(ctx.models[name], now))
        except (RetryLater, GiveUp, UserError) as exc:
            failed += 1
            out.print(f"{name}: check failed: {exc}")
            continue
        action = outcome.decision.action.value if outcome.decision else "already done"
        out.print(f"{name}: {action}" + (f" ({outcome.decision.summary})" if outcome.decision else ""))
        if retrain and outcome.retrain_id is not None:
            try:
                r = run_retrain(ctx, outcome.retrain_id)
                out.print(f"{name}: retrain {outcome.retrain_id} {r.state}")
            except (RetryLater, GiveUp, UserError) as exc:
                failed += 1
                out.print(f"{name}: retrain {outcome.retrain_id} failed: {exc}")
    if deliver:
        report = _drain(ctx)
        out.print(
            f"outbox: {report.delivered} delivered, {report.failed} to retry, {report.dead} dead, "
            f"{report.suppressed} suppressed"
        )
    out.print(f"{len(due)} due, {len(due) - failed} checked, {failed} failed")
    if failed:
        raise typer.Exit(1)


def deliver(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Items per batch.")] = 100,
) -> None:
    """Deliver every due outbox item (MLflow tags, webhooks) now, in-process."""
    from controller.reactors.context import Context

    ctx = Context.from_config(config)
    report = _drain(ctx, limit)
    counts = ctx.store.outbox_counts()
    Console(highlight=False, soft_wrap=True).print(
        f"{report.delivered} delivered, {report.failed} to retry, {report.dead} dead, {report.suppressed} suppressed; "
        f"outbox now: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty")
    )


def _drain(ctx: Context, limit: int = 100) -> DeliveryReport:
    total = DeliveryReport()
    while True:
        report = deliver_outbox(ctx, limit=limit)
        total += report
        if report.delivered + report.failed + report.dead + report.suppressed < limit:
            return total


def register(app: typer.Typer) -> None:
    """Add ``worker``, ``beat``, ``run-once`` and ``deliver`` to ``retrainctl``."""
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("run-once")(run_once)
    app.command("deliver")(deliver)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the service commands alone; user errors exit 2 with one line, outages 75."""
    from controller.cli import run as run_cli

    cli = typer.Typer(name="retrainctl", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    register(cli)
    return run_cli(argv, application=cli)


if __name__ == "__main__":
    sys.exit(run())
