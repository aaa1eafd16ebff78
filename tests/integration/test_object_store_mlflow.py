"""An MLflow server whose artifact root is a bucket of a real S3 API server (moto's): a version's
baseline (model, reference profile, scores) and a check's evidently report are stored in the
bucket through the server, and read back from it by a client that never saw them written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.s3server import TEST_CREDENTIALS, S3Server
from controller.adapters.objectstore import store_for
from controller.adapters.registry.base import TrainingRecord
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.trainers import sklearn_classifier
from controller.reactors.baseline import build_baseline, features_of
from controller.reactors.check import run_check
from controller.reactors.context import Context
from tests.helpers import make_rows, write_configs
from tests.integration.conftest import CHILD_ENV, MlflowServer
from tests.test_object_store import NOW, history, write_partitioned


@pytest.mark.mlflow_server
@pytest.mark.slow
def test_baselines_and_reports_live_in_the_bucket_behind_the_mlflow_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = S3Server(tmp_path / "s3")
    s3.start()
    mlflow: MlflowServer | None = None
    try:
        for k, v in {**TEST_CREDENTIALS, **CHILD_ENV, "AWS_ENDPOINT_URL": s3.url}.items():
            monkeypatch.setenv(k, v)
        store_for("s3://x").fs.mkdir("mlbucket")
        (tmp_path / "mlflow").mkdir()
        mlflow = MlflowServer(
            tmp_path / "mlflow",
            artifacts="s3://mlbucket/artifacts",
            env={**TEST_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3.url},
        )
        mlflow.start()
        write_partitioned("s3://mlbucket/data/m1", history(seed=61))
        data = {
            "source": {"kind": "files", "path": "s3://mlbucket/data/m1/rows/"},
            "labels": {"kind": "files", "path": "s3://mlbucket/data/m1/labels/"},
            "min_labeled_rows": 200,
            "window_hours": 168,
        }
        path = write_configs(tmp_path, "unused", data=data, drift={"engine": "evidently", "categorical": ["color"]})
        service = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**service, "mlflow_tracking_uri": mlflow.url}))
        registry = MlflowRegistry(mlflow.url)
        ctx = Context.from_config(path, registry=registry, clock=lambda: NOW)
        cfg = ctx.model("m1")
        ref = make_rows(4000, NOW.replace(year=NOW.year - 1), seed=10)
        features = features_of(cfg, list(ref.columns))
        clf = sklearn_classifier(ref.iloc[:3000], features=features, target="label")
        baseline = build_baseline(cfg, clf, ref.iloc[:3000], ref.iloc[3000:], features)
        version = registry.log_version("m1", TrainingRecord(clf, baseline, {}, {}, 60.0))
        registry.set_alias("m1", "champion", version.version)

        out = run_check(ctx, "m1", now=NOW)
        assert out.decision is not None and out.signals["n_rows"] > 2000

        keys = [k.removeprefix("mlbucket/artifacts/") for k in store_for("s3://x").fs.find("mlbucket/artifacts")]
        assert any(k.endswith("drift.html") for k in keys), keys
        assert any("profile" in k for k in keys), keys
        assert any(k.endswith("MLmodel") for k in keys), keys
        assert not (tmp_path / "mlflow" / "artifacts").exists()  # nothing kept on the server's disk

        # another client (another worker) reads the baseline back from the bucket
        again = MlflowRegistry(mlflow.url).load_baseline("m1", version.version)
        assert again.profile_sha256 == baseline.profile_sha256 and again.metrics == baseline.metrics
    finally:
        if mlflow is not None:
            mlflow.stop()
        s3.stop()
