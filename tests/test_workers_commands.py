"""``retrainctl deliver`` and ``retrainctl run-once`` in-process, on SQLite and a local MLflow store."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.adapters.receiver import start_receiver
from controller.adapters.store.store import Store
from controller.cli import run

SECRET = "whsec_" + base64.b64encode(b"commands-test-secret-123456").decode()


def write_config(folder: Path, url: str) -> Path:
    (folder / "models").mkdir()
    (folder / "models" / "churn.yaml").write_text(
        "name: churn\nregistered_model: churn-not-registered\n"
        "data: {source: {kind: files, path: data/*.parquet}}\n"
        f"notify: {{url: '{url}', secret_env: CMD_TEST_SECRET}}\n"
    )
    cfg = folder / "controller.yaml"
    cfg.write_text(
        f"store_url: sqlite:///{folder}/audit.db\nmlflow_tracking_uri: sqlite:///{folder}/mlflow.db\n"
        f"mlflow_artifact_root: {folder}/artifacts\n"
    )
    return cfg


def test_deliver_sends_due_items_and_prints_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CMD_TEST_SECRET", SECRET)
    rx = start_receiver(SECRET)
    try:
        cfg = write_config(tmp_path, rx.url)
        store = Store(f"sqlite:///{tmp_path}/audit.db")
        store.migrate()
        now = datetime.now(UTC)
        for i in range(3):
            event = {"type": "retrain.vetoed", "model": "churn", "data": {"i": i}, "timestamp": now.isoformat()}
            store.enqueue("churn", "webhook", f"k{i}", event, now)
        store.enqueue("ghost", "webhook", "g", {"type": "retrain.vetoed", "model": "ghost", "data": {}}, now)
        assert run(["deliver", "--config", str(cfg), "--limit", "2"]) == 0
        out = capsys.readouterr().out
        assert "3 delivered, 0 to retry, 0 dead, 1 suppressed" in out
        assert "outbox now: delivered 3, suppressed 1" in out
        assert sorted(e["data"]["i"] for e in rx.events) == [0, 1, 2]
        store.dispose()
    finally:
        rx.stop()


def test_run_once_reports_a_failed_check_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/hook")
    assert run(["run-once", "--config", str(cfg), "--no-deliver"]) == 1
    out = capsys.readouterr().out
    assert "churn: check failed:" in out and "churn-not-registered" in out
    assert "1 due, 0 checked, 1 failed" in out
    store = Store(f"sqlite:///{tmp_path}/audit.db")
    (check,) = store.checks("churn")
    assert check.status == "failed" and check.request_key and check.request_key.startswith("sched:churn:")
    store.dispose()


def test_worker_metrics_port_adds_up_the_pool_processes() -> None:
    """``--metrics-port``: the counters of the worker and of the processes it forks, served added up."""
    import socket
    import subprocess
    import sys

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import os, time\n"
        "import controller.cli  # the command group first, as retrainctl loads it\n"
        "from workers.commands import export_metrics\n"
        f"export_metrics({port})\n"
        "from controller.reactors.metrics import CHECKS\n"
        "CHECKS.labels('done').inc()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    CHECKS.labels('done').inc(2)\n"
        "    CHECKS.labels('failed').inc()\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    samples = {
        (s.name, tuple(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert samples[("retrain_checks_total", (("outcome", "done"),))] == 3
    assert samples[("retrain_checks_total", (("outcome", "failed"),))] == 1
