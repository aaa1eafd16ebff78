"""docker-compose.yml is never run here (no Docker engine); it is parsed and checked instead."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path
from typing import Any

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OUR_IMAGE = "retrain-controller:"


def argv(command: Any) -> list[str]:
    return command if isinstance(command, list) else str(command).split()


def retrainctl_commands() -> Any:
    from controller.cli import app

    return typer.main.get_command(app)


def resolve_click(group: Any, args: list[str]) -> Any:
    """The (Typer or Click) command ``args`` name; fails on an unknown subcommand or option."""
    cmd, rest = group, list(args)
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        assert sub is not None, f"no command {rest[0]!r} in {args}"
        cmd, rest = sub, rest[1:]
    assert not hasattr(cmd, "commands"), f"{args} names a group, not a command"
    ctx = cmd.make_context("prog", list(rest))
    ctx.close()
    return cmd


def test_every_service_is_there_with_a_health_check() -> None:
    assert {"redis", "postgres", "mlflow", "worker", "beat", "controller", "web"} <= set(SERVICES)
    for name in ("redis", "postgres", "mlflow", "worker", "beat", "web"):
        assert "test" in SERVICES[name].get("healthcheck", {}), f"{name} has no health check"


def test_every_image_is_pinned() -> None:
    for name, svc in SERVICES.items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"


def test_our_image_is_built_from_the_dockerfile_with_pinned_base() -> None:
    ours = [n for n, s in SERVICES.items() if s["image"].startswith(OUR_IMAGE)]
    assert set(ours) == {"mlflow", "controller", "worker", "beat", "web"}
    assert all(SERVICES[n].get("build") == "." for n in ours)
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert "-c constraints.txt" in dockerfile
    for copied in re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile, flags=re.M):
        for src in copied.split():
            if src != "README.md":  # written by the lead; pyproject.toml names it
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_every_retrainctl_command_exists_with_its_options() -> None:
    group = retrainctl_commands()
    seen = set()
    for svc in SERVICES.values():
        if "command" in svc and argv(svc["command"])[0] == "retrainctl":
            args = argv(svc["command"])[1:]
            resolve_click(group, args)
            seen.add(args[0])
    assert {"worker", "beat", "status", "serve"} <= seen


def test_the_mlflow_server_command_exists_with_a_postgres_backend() -> None:
    from mlflow.cli import cli as mlflow_cli

    args = argv(SERVICES["mlflow"]["command"])
    assert args[0] == "mlflow"
    resolve_click(mlflow_cli, args[1:])
    backend = args[args.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg://")
    assert shutil.which("mlflow", path=str(ROOT / ".venv" / "bin")) is not None


def test_health_checks_of_our_image_run_real_things() -> None:
    worker = " ".join(argv(SERVICES["worker"]["healthcheck"]["test"])[1:])
    assert worker.startswith("celery -A workers.app inspect ping")
    app_module = importlib.import_module("workers.app")
    assert app_module.app.main == "retrain"
    for name in ("mlflow", "beat", "web"):
        test = argv(SERVICES[name]["healthcheck"]["test"])
        assert test[:3] == ["CMD", "python", "-c"]
        compile(test[3], f"{name} healthcheck", "exec")


def test_services_reach_each_other_by_name_and_secrets_come_from_the_environment() -> None:
    env = SERVICES["worker"]["environment"]
    assert "@postgres:5432/" in env["RETRAIN_STORE_URL"]
    assert env["RETRAIN_BROKER_URL"].startswith("redis://redis:6379/")
    assert env["RETRAIN_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    secrets = {k: v for k, v in env.items() if k.endswith("_SECRET")}
    assert secrets and all(v.startswith("${") for v in secrets.values()), "secrets must not be written in the file"
    init = SERVICES["postgres"]["volumes"][1].split(":")[0]
    assert (ROOT / init).is_file()
    for name in ("worker", "beat"):
        assert "redis" in SERVICES[name]["depends_on"]


def _exported_metric_names(tmp_path: Path) -> set[str]:
    """Every sample name the console's /metrics and the workers' counters export."""
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from controller.adapters.store.store import Store
    from controller.config import ServiceConfig
    from controller.reactors.context import Context
    from controller.web.app import create_app
    from tests.fakes import InMemoryRegistry

    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    store.migrate()
    service = ServiceConfig(cache_dir=None, team_budgets={"risk": 100.0})
    text = (
        TestClient(create_app(Context(service, {}, store, InMemoryRegistry()), run_check=lambda m, k: None))
        .get("/metrics")
        .text
    )
    store.dispose()
    families = list(text_string_to_metric_families(text))
    # a labelled counter shows no sample before its first count: its samples will be <name>_total
    return {s.name for f in families for s in f.samples} | {f.name + "_total" for f in families if f.type == "counter"}


def test_monitoring_files_name_metrics_that_exist_and_targets_that_run(tmp_path: Path) -> None:
    import json

    exported = _exported_metric_names(tmp_path)
    rules = yaml.safe_load((ROOT / "docker" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"RetrainOutboxDeadLetters", "RetrainChecksFailing", "RetrainTeamBudgetNearlySpent"} <= alerts
    dashboard = json.loads((ROOT / "docker" / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bretrain_[a-z_]+", e)}
    assert used and used <= exported, f"not exported: {sorted(used - exported)}"
    scrape = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert scrape["rule_files"] == ["alerts.yml"]
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    web, worker = argv(SERVICES["web"]["command"]), argv(SERVICES["worker"]["command"])
    assert targets == {
        f"web:{web[web.index('--port') + 1]}",
        f"worker:{worker[worker.index('--metrics-port') + 1]}",
    }
    assert SERVICES["worker"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]


def test_the_s3_option_keeps_artifacts_in_a_bucket_with_credentials_from_the_environment() -> None:
    """docker-compose.s3.yml: MinIO, the artifact bucket, and the MLflow server's artifacts in it."""
    s3 = yaml.safe_load((ROOT / "docker-compose.s3.yml").read_text())
    services: dict[str, Any] = s3["services"]
    for name, svc in services.items():
        assert name in SERVICES or svc.get("image"), f"{name}: a new service without an image"
        if "image" in svc:
            repo, _, tag = svc["image"].rpartition(":")
            assert repo and re.search(r"\d", tag) and tag != "latest", f"{name}: image {svc['image']!r} is not pinned"
    cmd = argv(services["mlflow"]["command"])
    assert cmd[cmd.index("--artifacts-destination") + 1].startswith("s3://mlflow/")
    for name in ("mlflow", "controller", "worker", "beat", "bucket"):
        env = services[name]["environment"]
        assert env["MLFLOW_S3_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        # secrets only from the environment of whoever runs compose
        assert env["AWS_SECRET_ACCESS_KEY"].startswith("${") and env["AWS_ACCESS_KEY_ID"].startswith("${")
    compile(argv(services["bucket"]["command"])[2], "bucket", "exec")
    assert services["mlflow"]["depends_on"]["bucket"]["condition"] == "service_completed_successfully"
    assert "'.[s3]'" in (ROOT / "Dockerfile").read_text()
