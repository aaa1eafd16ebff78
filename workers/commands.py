"""``retrainctl worker`` and ``retrainctl beat``: the Celery processes of the service.

Registered with ``retrainctl`` through the ``retrainctl.commands`` entry point (this package builds
on the controller, never the other way round); ``python -m workers.commands`` runs them alone.
Both validate the config (one clear line on error), export it for their child processes and
migrate the store once before handing over to Celery.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from controller.cli.common import ConfigOpt
from controller.errors import UserError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LogOpt = Annotated[str, typer.Option("--loglevel", "-l", help="Celery log level.")]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _prepare(config: Path | None, loglevel: str, migrate: bool) -> str:
    """Validate the config (one clear line on error), export it for child processes, migrate."""
    if loglevel.upper() not in LEVELS:
        raise UserError(f"--loglevel must be one of {', '.join(LEVELS)}, got {loglevel!r}")
    from controller.config import ENV_PREFIX, load_models, load_service_config

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
    metrics_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Serve Prometheus metrics of every worker process on this port (0: off)."),
    ] = 0,
) -> None:
    """Run a Celery worker for checks, retrains and outbox delivery."""
    from workers.app import QUEUES

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in QUEUES]
    if unknown or not wanted:
        raise UserError(f"--queues: unknown queue(s) {', '.join(unknown) or '(none)'}; use {', '.join(QUEUES)}")
    level = _prepare(config, loglevel, migrate=True)
    if metrics_port:
        export_metrics(metrics_port)
    from workers.app import THREADS_ENV
    from workers.app import app as celery_app

    os.environ[THREADS_ENV] = str(threads)  # read by each pool process as it starts
    argv = ["worker", "-Q", ",".join(wanted), "-c", str(concurrency), "-l", level]
    if hostname:
        argv += ["-n", hostname]
    celery_app.worker_main(argv)


def export_metrics(port: int) -> None:
    """Serve the counters of this process and of every pool process it forks, added up.

    prometheus_client keeps each process's values in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh
    temporary folder unless set) when that variable is set before it is first imported, which is
    why this runs before the worker imports its tasks; values a previous run left there are
    removed first, as the client's documentation asks."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="retrain-metrics-")
        os.environ[MULTIPROC_ENV] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        raise UserError(f"--metrics-port: cannot listen on port {port}: {exc.strerror or exc}") from None


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


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``beat`` to ``retrainctl`` (the ``retrainctl.commands`` entry point)."""
    app.command("worker")(worker)
    app.command("beat")(beat)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the worker commands alone; user errors exit 2 with one line, outages 75."""
    from controller.cli import run as run_cli

    cli = typer.Typer(name="retrainctl", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    register(cli)
    return run_cli(argv, application=cli)


if __name__ == "__main__":
    sys.exit(run())
