"""The CLI's contract: JSON for machines, one-line errors with exit code 2 for people."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from controller.adapters.registry.base import TrainingRecord
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.trainers import sklearn_classifier
from controller.cli import run
from controller.config import load_models, load_service_config
from controller.reactors.baseline import build_baseline, features_of
from tests.helpers import T0, make_rows, write_configs


@pytest.fixture
def config(tmp_path: Path) -> Path:
    week = make_rows(3000, T0, seed=21, flip=True)
    (tmp_path / "data").mkdir()
    week.drop(columns="label").to_parquet(tmp_path / "data" / "w.parquet")
    week[["id", "label"]].to_parquet(tmp_path / "labels.parquet")
    path = write_configs(tmp_path, "data/*.parquet", labels="labels.parquet")
    service = load_service_config(path, env={})
    cfg = load_models(service)["m1"]
    ref = make_rows(3000, T0 - timedelta(days=14), seed=22)
    features = features_of(cfg, list(ref.columns))
    clf = sklearn_classifier(ref.iloc[:2000], features=features, target="label")
    registry = MlflowRegistry(service.mlflow_tracking_uri, artifact_root=service.mlflow_artifact_root)
    v = registry.log_version(
        "m1", TrainingRecord(clf, build_baseline(cfg, clf, ref.iloc[:2000], ref.iloc[2000:], features), {}, {}, 60.0)
    )
    registry.set_alias("m1", "champion", v.version)
    return path


def test_check_json_then_status_and_history(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = (T0 + timedelta(days=7)).isoformat()
    assert run(["check", "m1", "--config", str(config), "--json", "--now", now]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "TRIGGER" and out["signal_source"] == "realized"
    assert out["retrain"]["state"] in {"promoted", "rejected"}
    assert set(out["numbers"]) >= {"loss_per_day", "retrain_cost", "net_value", "roi", "budget_left"}
    assert run(["status", "--config", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    row = status["models"][0]
    assert row["decision"] == "TRIGGER"
    # the newest check's headline, as the check reported it (the model's metric is accuracy)
    assert (row["metric"], row["source"], row["last_check"]) == ("accuracy", out["signal_source"], "done")
    assert 0.0 < row["metric_now"] < 1.0 and 0.0 <= row["drift_share"] <= 1.0
    assert row["retrain_in_flight"] is False  # the retrain ran in-process and finished
    assert status["outbox"].get("pending", 0) == 0
    assert run(["history", "m1", "--config", str(config), "--json"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert len(hist["decisions"]) == 1 and len(hist["retrains"]) == 1


def test_approve_and_veto_are_recorded(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["veto", "m1", "--author", "platform", "--reason", "freeze", "--config", str(config)]) == 0
    assert run(["check", "m1", "--config", str(config), "--json", "--now", (T0 + timedelta(days=7)).isoformat()]) == 0
    out = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert out["decision"] == "VETO" and "manual_veto" in out["reasons"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "nope"], "unknown model 'nope'"),
        (["check", "m1", "--now", "yesterday"], "not an ISO time"),
        (["approve", "m1", "--author", " ", "--reason", "x"], "must not be empty"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run([*args, "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["status", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_audit_gates_on_governance(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "--config", str(config), "--json"]) == 0
    ok = json.loads(capsys.readouterr().out)
    assert ok["compliant"] and ok["models"][0]["owner"] == "team-a@example.com"
    model_file = config.parent / "models" / "m1.yaml"
    text = model_file.read_text().replace("business_purpose: test\n", "")
    cut = text.index("economics:")
    end = text.index("name: m1")
    model_file.write_text(text[:cut] + text[end:])
    assert run(["audit", "--config", str(config), "--json"]) == 1
    bad = json.loads(capsys.readouterr().out)
    violations = " ".join(bad["models"][0]["violations"])
    assert "no cost metadata" in violations and "no business purpose" in violations


def test_baseline_command_onboards_a_version_registered_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow.sklearn

    week = make_rows(2000, T0, seed=31)
    (tmp_path / "data").mkdir()
    week.drop(columns="label").to_parquet(tmp_path / "data" / "w.parquet")
    week[["id", "label"]].to_parquet(tmp_path / "labels.parquet")
    path = write_configs(tmp_path, "data/*.parquet", labels="labels.parquet")
    service = load_service_config(path, env={})
    ref = make_rows(2000, T0 - timedelta(days=14), seed=32)
    cfg = load_models(service)["m1"]
    clf = sklearn_classifier(ref, features=features_of(cfg, list(ref.columns)), target="label")
    # A version registered by someone else's pipeline: no baseline artifacts.
    old_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(service.mlflow_tracking_uri)
    mlflow.set_registry_uri(service.mlflow_tracking_uri)
    try:
        with mlflow.start_run():
            mlflow.sklearn.log_model(clf, name="model", registered_model_name="m1", pip_requirements=["scikit-learn"])
    finally:
        mlflow.set_tracking_uri(old_uris[0])
        mlflow.set_registry_uri(old_uris[1])
    MlflowRegistry(service.mlflow_tracking_uri).set_alias("m1", "champion", "1")
    now = (T0 + timedelta(days=7)).isoformat()
    assert run(["check", "m1", "--config", str(path), "--now", now]) == 2
    assert "has no baseline" in capsys.readouterr().err
    ref.to_csv(tmp_path / "reference.csv", index=False)
    assert run(["baseline", "m1", "--reference", str(tmp_path / "reference.csv"), "--config", str(path)]) == 0
    assert "baseline from 2,000 rows" in capsys.readouterr().out
    assert run(["check", "m1", "--config", str(path), "--now", now, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "DEFER"


def test_usage_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["worker", "--concurrency", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Invalid value for '--concurrency'") and "\n" not in err
