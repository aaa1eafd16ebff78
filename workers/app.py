"""The Celery app: Redis broker and result backend, three queues, late acknowledgement.

Queues: ``checks`` (model checks and the level-triggered tick), ``training`` (retrains; route
them to bigger machines) and ``notify`` (outbox delivery: MLflow tags and webhooks).

Every task is idempotent (a check carries a request key, a retrain is claimed by a conditional
state change, outbox items are leased), so messages are acknowledged only after the task ran
(``acks_late``) and a message whose worker died is delivered again (``reject_on_worker_lost``,
and the Redis visibility timeout for a worker killed outright).

The service settings come from ``$RETRAIN_CONFIG`` (or ``configs/controller.yaml``); the worker
and beat commands set that variable before they start.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import pyarrow as pa
from celery import Celery
from celery.signals import worker_init, worker_process_init
from kombu import Queue
from threadpoolctl import threadpool_limits

from controller.config import DEFAULT_CONFIG, ENV_PREFIX, ServiceConfig, load_service_config

CHECKS, TRAINING, NOTIFY = "checks", "training", "notify"
QUEUES = (CHECKS, TRAINING, NOTIFY)
VISIBILITY_ENV = f"{ENV_PREFIX}VISIBILITY_TIMEOUT"
"""Seconds before Redis hands an unacknowledged message to another worker (default one hour).

It must exceed the longest retrain, or a long retrain is delivered twice (harmless, since the
retrain is claimed once, but wasteful); tests lower it to see a killed worker's task redone soon.
"""


THREADS_ENV = f"{ENV_PREFIX}WORKER_THREADS"

NAMESPACE_ENV = f"{ENV_PREFIX}REDIS_NAMESPACE"
"""Prefix of every Redis key the service uses (queues, results, locks), so that several
deployments, or several test runs, can share one Redis database. Empty by default."""


def redis_key(name: str) -> str:
    """``name`` in this process's Redis namespace."""
    namespace = os.environ.get(NAMESPACE_ENV, "")
    return f"{namespace}:{name}" if namespace else name


def service_settings() -> ServiceConfig:
    """The service config of this process; defaults when no config file exists."""
    path = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if path is None and not Path(DEFAULT_CONFIG).is_file():
        return ServiceConfig()
    return load_service_config(path)


def configure(app: Celery, service: ServiceConfig) -> Celery:
    visibility = float(os.environ.get(VISIBILITY_ENV, "3600"))
    namespace = os.environ.get(NAMESPACE_ENV, "")
    prefix = {"global_keyprefix": f"{namespace}:"} if namespace else {}
    app.conf.update(
        broker_url=service.broker_url,
        result_backend=service.result_backend,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue=CHECKS,
        task_routes={
            "retrain.check": {"queue": CHECKS},
            "retrain.check_batch": {"queue": CHECKS},
            "retrain.tick": {"queue": CHECKS},
            "retrain.retrain": {"queue": TRAINING},
            "retrain.deliver": {"queue": NOTIFY},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        # A sweep every few seconds finds messages whose worker died once the timeout passed.
        broker_transport_options={
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 2)),
            "unacked_restore_throttle": 1,
            **prefix,
        },
        result_backend_transport_options={"visibility_timeout": visibility, **prefix},
        worker_hijack_root_logger=False,
        beat_max_loop_interval=5,
    )
    return app


@worker_process_init.connect
def one_thread_per_process(**_: object) -> None:
    """Each pool process computes on one thread (numpy's BLAS, pyarrow): the pool already runs one
    process per core, and threads on top of it fight over the same cores. ``retrainctl worker
    --threads`` (``RETRAIN_WORKER_THREADS``) sets another count, for a training worker say."""
    raw = os.environ.get(THREADS_ENV, "1")
    threads = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    if str(threads) != raw.strip():
        logging.getLogger(__name__).warning("%s=%r is not a positive whole number; using 1", THREADS_ENV, raw)
    threadpool_limits(threads)
    pa.set_cpu_count(threads)


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation in a pool process (Python's
default: 700). A check allocates some hundred thousand objects and drops them within tens of
milliseconds; at 700, the ones alive at each of its many young collections were promoted until
only a full collection, a scan of every object the process holds (about 600,000 with 1,000
models' baselines and scorers: 0.6 s), freed them. Measured in one process over 1,000 models:
0.4-1.6 ms of collection per warm check at the default, 0.03-0.2 ms at this threshold, and no
full collection in 2,000 checks."""


@worker_init.connect
def freeze_startup_objects(**_: object) -> None:
    """Before the pool forks: what the worker process holds now (modules, config) lives as long
    as it does, so collections in the pool processes need not scan it (and, left untouched, its
    memory stays shared with them)."""
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def fewer_young_collections(**_: object) -> None:
    """See :data:`GC_YOUNG_THRESHOLD`; the older generations keep Python's proportions."""
    middle, old = gc.get_threshold()[1:]
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


app = configure(Celery("retrain", include=["workers.tasks"]), service_settings())
