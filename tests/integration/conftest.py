"""Fixtures for the integration tests: a real MLflow server, real Celery workers and beats on the
machine's Redis, the audit store on the machine's Postgres, and a verifying webhook receiver.

Nothing here skips: a missing service fails the test (the Redis and Postgres fixtures are the
lead's, in ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from controller.adapters.receiver import Receiver, start_receiver
from controller.adapters.registry.base import TrainingRecord
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.store.store import Store
from controller.adapters.trainers import import_trainer
from controller.adapters.webhooks import new_secret
from controller.config import ModelConfig, load_models, load_service_config
from controller.reactors.baseline import build_baseline, features_of

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SECRET_ENV = "IT_WEBHOOK_SECRET"
WEEK = timedelta(days=7)
ROWS = 3000
# MLflow's own client retries for minutes by default; the outbox retries instead.
CHILD_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "RETRAIN_VISIBILITY_TIMEOUT": "8",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class MlflowServer:
    """``mlflow server`` on SQLite in its own process group; can be stopped and started again."""

    def __init__(self, folder: Path, artifacts: str | None = None, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.artifacts = artifacts or str(folder / "artifacts")  # a folder, or a bucket URL (s3://...)
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "mlflow-server.log"

    def start(self, timeout: float = 120.0) -> None:
        cmd = [
            str(Path(PYTHON).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination",
            self.artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **self.env}
            )
        wait_until(f"the MLflow server (log: {self.log})", self.healthy, timeout, every=0.5)

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {self.proc.returncode}; see {self.log}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc, signal.SIGTERM)
            self.proc = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    secret = new_secret()
    monkeypatch.setenv(SECRET_ENV, secret)
    rx = start_receiver(secret)
    yield rx
    rx.stop()


REGIONS = ["north", "south", "east", "west", "central"]


def applications(rng: np.random.Generator, start: datetime, n: int, kind: str, first_id: int) -> pd.DataFrame:
    """Credit applications with default labels; ``concept`` flips how debt matters."""
    income = rng.lognormal(10.8, 0.35, n)
    debt = rng.beta(2.0, 5.0, n)
    tenure = rng.integers(0, 120, n)
    region = rng.choice(REGIONS, n)
    z_income, z_debt = (np.log(income) - 10.8) / 0.35, (debt - 2 / 7) / 0.16
    sign = -1.0 if kind == "concept" else 1.0
    logit = -0.6 - 1.6 * z_income + sign * 1.8 * z_debt - 0.01 * (tenure - 60)
    seconds = np.sort(rng.uniform(0, WEEK.total_seconds() - 60, n))
    return pd.DataFrame(
        {
            "application_id": np.arange(first_id, first_id + n),
            "timestamp": [start + timedelta(seconds=float(s)) for s in seconds],
            "income": income.round(2),
            "debt_ratio": debt.round(4),
            "tenure_months": tenure,
            "region": region,
            "defaulted": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )


@dataclass
class World:
    """A config folder, its models registered in MLflow, and the processes started for a test."""

    folder: Path
    config: Path
    store: Store
    registry: MlflowRegistry
    mlflow: MlflowServer
    receiver: Receiver
    redis_url: str
    prefix: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _celery: Any = None

    def add_model(self, name: str, kind: str, seed: int = 0, every: str = "1h") -> ModelConfig:
        """Write data for ``name``, register its first version, then write its model file."""
        rng = np.random.default_rng(seed)
        now = datetime.now(UTC)
        data = self.folder / "data" / name
        data.mkdir(parents=True, exist_ok=True)
        ref = pd.concat(
            [applications(rng, now - (3 - i) * WEEK, ROWS, "none", i * ROWS) for i in range(2)], ignore_index=True
        )
        prod = applications(rng, now - WEEK, ROWS, kind, 2 * ROWS)
        prod.drop(columns=["defaulted"]).to_parquet(data / "rows-1.parquet", index=False)
        pd.concat([ref, prod])[["application_id", "defaulted"]].to_parquet(data / "labels.parquet", index=False)
        registered = f"{self.prefix}-{name}"
        doc: dict[str, Any] = {
            "name": name,
            "registered_model": registered,
            "owner": "risk-ml@example.com",
            "team": "risk",
            "business_purpose": "integration test",
            "data": {
                "source": {"kind": "files", "path": f"../data/{name}/rows-*.parquet"},
                "labels": {"kind": "files", "path": f"../data/{name}/labels.parquet"},
                "id_column": "application_id",
                "label_column": "defaulted",
                "window_hours": 168,
                "min_labeled_rows": 300,
            },
            "schedule": {"every": every},
            "economics": {
                "metric": "accuracy",
                "value_per_point": 2.0,
                "traffic_per_day": 50000,
                "compute_rate_per_hour": 4.0,
                "default_training_hours": 0.5,
                "labeling_cost_per_row": 0.05,
                "labels_per_retrain": 5000,
                "fixed_overhead": 300,
            },
            "policy": {"tolerance_points": 1.5},
            "trainer": {"callable": "controller.adapters.trainers:sklearn_classifier", "params": {"model": "logistic"}},
            "notify": {"url": self.receiver.url, "secret_env": SECRET_ENV, "digest_hours": 24},
            "drift": {"categorical": ["region"]},
        }
        staging = self.folder / f".{name}.yaml"
        staging.write_text(yaml.safe_dump(doc))
        cfg = ModelConfig.model_validate({**doc, "source_file": str(self.folder / "models" / f"{name}.yaml")})
        self._register(cfg, ref)
        staging.rename(self.folder / "models" / f"{name}.yaml")  # appears whole, as an editor's save would
        return cfg

    def _register(self, cfg: ModelConfig, reference: pd.DataFrame) -> None:
        assert cfg.trainer is not None
        features = features_of(cfg, list(reference.columns))
        cut = int(len(reference) * 0.7)
        train, holdout = reference.iloc[:cut], reference.iloc[cut:]
        model = import_trainer(cfg.trainer.callable)(train, features=features, target="defaulted")
        baseline = build_baseline(cfg, model, train, holdout, features)
        self.registry.set_model_tags(cfg.registered_model, {"owner": cfg.owner or ""})
        version = self.registry.log_version(
            cfg.registered_model,
            TrainingRecord(model, baseline, {"trainer": cfg.trainer.callable}, {}, 1.0, {"retrain.role": "initial"}),
        )
        self.registry.set_alias(cfg.registered_model, cfg.alias, version.version)

    def models(self) -> dict[str, ModelConfig]:
        return load_models(load_service_config(self.config))

    def env(self) -> dict[str, str]:
        return {**os.environ, **CHILD_ENV, "RETRAIN_CONFIG": str(self.config), "PYTHONPATH": str(ROOT)}

    def start(self, *args: str, ready: str, log_name: str, timeout: float = 90.0) -> subprocess.Popen[bytes]:
        """Start ``python -m controller ARGS`` and wait for ``ready`` in its log."""
        log_path = self.folder / log_name
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [PYTHON, "-m", "controller", *args, "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.folder,
                start_new_session=True,
            )
        self.procs.append(proc)

        def is_ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{args[0]} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            return ready in log_path.read_text(errors="replace")

        wait_until(f"{args[0]} to be ready (log: {log_path})", is_ready, timeout, every=0.3)
        return proc

    def worker(
        self, name: str, queues: str = "checks,training,notify", concurrency: int = 2
    ) -> subprocess.Popen[bytes]:
        return self.start(
            "worker",
            "-Q",
            queues,
            "--concurrency",
            str(concurrency),
            "-n",
            f"{name}@%h",
            ready=f"{name}@",
            log_name=f"{name}.log",
        )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def celery(self) -> Any:
        """A Celery app of this test's own (namespace and broker differ per test), to send tasks."""
        if self._celery is None:
            from celery import Celery

            from workers.app import configure

            self._celery = configure(Celery("retrain-test"), load_service_config(self.config))
        return self._celery


def isolated_redis(redis_url: str) -> str:
    """A Redis URL for one test's service: database 14 under a key namespace of its own.

    The shared fixture's database 15 is flushed at the start and end of every Redis test, which a
    concurrent run (another engineer's, or CI on the same machine) would do in the middle of this
    test's queues; a namespace in another database is touched by nobody else.
    """
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(url)
    client.ping()
    client.close()
    return url


@pytest.fixture
def world(
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    mlflow_server: MlflowServer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    import redis

    prefix = f"it-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RETRAIN_REDIS_NAMESPACE", prefix)
    redis_url = isolated_redis(redis_url)
    (tmp_path / "models").mkdir()
    config = tmp_path / "controller.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store_url": postgres_url,
                "mlflow_tracking_uri": mlflow_server.url,
                "mlflow_artifact_root": str(tmp_path / "mlartifacts"),
                "broker_url": redis_url,
                "result_backend": redis_url,
                "models_dir": "models",
                "policy": {"min_roi": 1.0, "horizon_days": 30, "cooldown_hours": 24, "monthly_budget": 5000},
                "team_budgets": {"risk": 20000},
                "webhooks": {"allow_hosts": ["127.0.0.1"], "max_attempts": 12, "backoff_seconds": 0.5},
                "check_lock_seconds": 12,
            }
        )
    )
    store = Store(postgres_url)
    store.migrate()
    w = World(
        tmp_path,
        config,
        store,
        MlflowRegistry(mlflow_server.url, artifact_root=str(tmp_path / "mlartifacts")),
        mlflow_server,
        receiver,
        redis_url,
        prefix,
    )
    yield w
    for proc in w.procs:
        kill_group(proc)
    if w._celery is not None:
        w._celery.close()
    store.dispose()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()
