"""One contract for both registries: the in-memory twin and a real (local SQLite) MLflow store."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from controller.adapters.registry.base import Baseline, Registry, TrainingRecord, changed_tags
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.errors import GiveUp
from tests.fakes import InMemoryRegistry


@pytest.fixture(scope="module")
def mlflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(params=["memory", "mlflow"])
def registry(request: pytest.FixtureRequest, mlflow_dir: Path) -> Iterator[Registry]:
    """One MLflow store per module (creating one takes seconds); each test uses its own model name."""
    if request.param == "memory":
        yield InMemoryRegistry()
    else:
        yield MlflowRegistry(f"sqlite:///{mlflow_dir / 'mlflow.db'}", artifact_root=str(mlflow_dir / "artifacts"))


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return "m-" + request.node.name.replace("[", "-").replace("]", "")


def _record(seed: int = 0) -> TrainingRecord:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    scores = pd.DataFrame({"y_true": y, "y_pred": model.predict(X), "proba_1": model.predict_proba(X)[:, 1]})
    baseline = Baseline(b"profile-bytes-%d" % seed, None, {"accuracy": 0.97}, scores)
    return TrainingRecord(model, baseline, {"C": 1.0}, {"holdout_accuracy": 0.97}, 1.5, {"retrain.role": "initial"})


def test_log_resolve_and_read_baseline(registry: Registry, name: str) -> None:
    v = registry.log_version(name, _record())
    registry.set_alias(name, "champion", v.version)
    got = registry.resolve(name, "champion")
    assert got.version == v.version and "champion" in got.aliases
    base = registry.load_baseline(name, v.version)
    assert base.profile == b"profile-bytes-0"
    assert base.metrics == {"accuracy": 0.97}
    assert base.scores is not None and list(base.scores.columns) == ["y_true", "y_pred", "proba_1"]
    model = registry.load_model(name, v.version)
    assert model.predict(np.array([[3.0, 0.0], [-3.0, 0.0]])).tolist() == [1, 0]


def test_only_changed_tags_are_written(registry: Registry, name: str) -> None:
    v = registry.log_version(name, _record())
    assert registry.set_version_tags(name, v.version, {"retrain.decision": "DEFER", "retrain.metric": "acc"}) == 2
    assert registry.set_version_tags(name, v.version, {"retrain.decision": "DEFER", "retrain.metric": "acc"}) == 0
    assert registry.set_version_tags(name, v.version, {"retrain.decision": "TRIGGER", "retrain.metric": "acc"}) == 1
    assert registry.version_tags(name, v.version)["retrain.decision"] == "TRIGGER"


def test_model_tags_and_training_hours(registry: Registry, name: str) -> None:
    registry.set_model_tags(name, {"owner": "risk-ml", "business_purpose": "keep customers"})
    registry.log_version(name, _record(0))
    registry.log_version(name, _record(1))
    assert registry.model_tags(name)["owner"] == "risk-ml"
    assert registry.training_hours(name) == pytest.approx([1.5 / 3600] * 2)


def test_unknown_model_or_alias_gives_up(registry: Registry, name: str) -> None:
    with pytest.raises(GiveUp):
        registry.resolve("nope", "champion")
    registry.log_version(name, _record())
    assert registry.find_alias(name, "challenger") is None
    with pytest.raises(GiveUp, match="no alias 'challenger'"):
        registry.resolve(name, "challenger")


def test_tampered_profile_is_refused(tmp_path: Path) -> None:
    reg = MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "artifacts"))
    v = reg.log_version("churn", _record())
    files = list((tmp_path / "artifacts").rglob("profile-*.bin"))
    assert len(files) == 1
    files[0].write_bytes(b"something else")
    with pytest.raises(GiveUp, match="does not match its recorded hash"):
        MlflowRegistry(reg.tracking_uri, artifact_root=str(tmp_path / "artifacts")).load_baseline("churn", v.version)


def test_changed_tags_stringifies() -> None:
    assert changed_tags({"a": "1"}, {"a": 1, "b": 2.5}) == {"b": "2.5"}  # type: ignore[dict-item]


def test_check_reports_are_logged_as_artifacts(registry: Registry, name: str) -> None:
    run_id = registry.log_check_report(name, "1", 7, {"drift.html": b"<html>report</html>"})
    assert run_id
    if isinstance(registry, MlflowRegistry):
        local = registry.client.download_artifacts(run_id, "reports/drift.html")
        assert Path(local).read_bytes() == b"<html>report</html>"
        assert registry.client.get_run(run_id).data.tags["retrain.check_id"] == "7"


def test_reads_are_reused_within_cache_seconds_and_dropped_on_writes(mlflow_dir: Path, name: str) -> None:
    reg = MlflowRegistry(f"sqlite:///{mlflow_dir / 'mlflow.db'}", artifact_root=str(mlflow_dir / "artifacts"))
    v1 = reg.log_version(name, _record(0))
    reg.set_alias(name, "champion", v1.version)
    assert reg.resolve(name, "champion").version == v1.version
    calls = []
    real = reg.client.get_registered_model

    def counted(n: str) -> Any:
        calls.append(n)
        return real(n)

    reg.client.get_registered_model = counted  # type: ignore[method-assign,assignment]
    reg.model_tags(name), reg.find_alias(name, "challenger"), reg.resolve(name, "champion")
    assert calls == []  # one read served the alias, the tags and the missing challenger
    v2 = reg.log_version(name, _record(1))
    reg.set_alias(name, "champion", v2.version)  # our own write: the next read is fresh
    before = len(calls)
    assert reg.resolve(name, "champion").version == v2.version and len(calls) == before + 1
    other = MlflowRegistry(reg.tracking_uri, artifact_root=str(mlflow_dir / "artifacts"), cache_seconds=0)
    other.set_alias(name, "champion", v1.version)  # another process moves the alias
    assert reg.resolve(name, "champion").version == v2.version  # within cache_seconds
    reg.cache_seconds = 0
    assert reg.resolve(name, "champion").version == v1.version


def test_bulk_listing_serves_many_models_in_one_call_and_sees_moves_after_it_expires(
    mlflow_dir: Path, name: str
) -> None:
    reg = MlflowRegistry(
        f"sqlite:///{mlflow_dir / 'mlflow.db'}", artifact_root=str(mlflow_dir / "artifacts"), bulk_seconds=3600
    )
    v1 = reg.log_version(name, _record(0))
    v2 = reg.log_version(name, _record(1))
    reg.set_alias(name, "champion", v1.version)
    other = MlflowRegistry(reg.tracking_uri, artifact_root=str(mlflow_dir / "artifacts"), cache_seconds=0)
    other.log_version(f"{name}-b", _record(2))
    other.set_alias(f"{name}-b", "champion", "1")
    other.set_model_tags(f"{name}-b", {"owner": "b@example.com"})
    singles: list[str] = []
    real = reg.client.get_registered_model
    reg.client.get_registered_model = lambda n: singles.append(n) or real(n)  # type: ignore[method-assign,assignment,func-returns-value]
    assert reg.resolve(name, "champion").version == v1.version
    assert reg.resolve(f"{name}-b", "champion").version == "1"
    assert reg.model_tags(f"{name}-b") == {"owner": "b@example.com"}
    assert singles == []  # both models came from the one listing
    other.set_alias(name, "champion", v2.version)  # moved by another process: not seen yet
    assert reg.resolve(name, "champion").version == v1.version
    reg.bulk_seconds = 1e-9  # the listing expires: read again
    assert reg.resolve(name, "champion").version == v2.version
    reg.bulk_seconds = 3600
    reg.set_alias(name, "champion", v1.version)  # our own write: seen at once, read on its own
    singles.clear()
    assert reg.resolve(name, "champion").version == v1.version and singles == [name]


def test_the_processes_of_a_machine_share_one_listing(mlflow_dir: Path, name: str, tmp_path: Path) -> None:
    def process() -> MlflowRegistry:
        return MlflowRegistry(
            f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            artifact_root=str(mlflow_dir / "artifacts"),
            bulk_seconds=3600,
            cache_dir=tmp_path / "cache",
        )

    def counted(reg: MlflowRegistry) -> list[int]:
        calls: list[int] = []
        real = reg.client.search_registered_models
        reg.client.search_registered_models = lambda **kw: calls.append(1) or real(**kw)  # type: ignore[method-assign,func-returns-value]
        return calls

    first, second = process(), process()
    v1 = first.log_version(name, _record(0))
    v2 = first.log_version(name, _record(1))
    first.set_alias(name, "champion", v1.version)
    first_calls, second_calls = counted(first), counted(second)
    assert first.resolve(name, "champion").version == v1.version and first_calls == [1]
    assert second.resolve(name, "champion").version == v1.version
    assert second_calls == []  # the machine's listing, not a search of its own

    second.set_alias(name, "champion", v2.version)  # its own write: seen at once, not the older listing
    second._listing = None
    assert second.resolve(name, "champion").version == v2.version and second_calls == []
    third = process()  # a process that wrote nothing: the listing as it is, until it expires
    third_calls = counted(third)
    assert third.resolve(name, "champion").version == v1.version and third_calls == []
    third.bulk_seconds, third._listing = 1e-9, None  # the machine's listing expired for it: it lists again
    third._registered(name)
    third.bulk_seconds = 3600
    assert third.resolve(name, "champion").version == v2.version and third_calls == [1]  # and sees the move

    assert not list((tmp_path / "cache").glob("*.lock"))  # released after each listing
    listing = next((tmp_path / "cache").glob("*.listing.pkl"))
    listing.unlink()
    lock = listing.with_suffix(".lock")
    lock.touch()  # another process is listing right now
    assert third._listing is not None
    third._listing = (time.monotonic() - 7200, third._listing[1])
    assert third.resolve(name, "champion").version == v2.version and third_calls == [1]  # ours, a moment longer
    os.utime(lock, (0, 0))  # a lock left by a process that died is taken over
    third._listing = (time.monotonic() - 7200, {})
    assert third.resolve(name, "champion").version == v2.version and third_calls == [1, 1]
    assert not lock.exists() and listing.exists()


def _machine(mlflow_dir: Path, cache: Path) -> Callable[[], MlflowRegistry]:
    """A registry of the module's MLflow store with a machine cache: one per simulated process."""
    return lambda: MlflowRegistry(
        f"sqlite:///{mlflow_dir / 'mlflow.db'}", artifact_root=str(mlflow_dir / "artifacts"), cache_dir=cache
    )


def test_a_machine_cache_serves_models_and_baselines_to_other_processes(
    mlflow_dir: Path, name: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cached = _machine(mlflow_dir, cache)
    first = cached()
    v = first.log_version(name, _record(3))
    base, model = first.load_baseline(name, v.version), first.load_model(name, v.version)
    assert sorted(f.name.split(".")[1] for f in cache.glob("*.pkl")) == ["baseline", "model", "version"]

    second = cached()

    def no_fetch(*_: Any) -> Any:
        raise AssertionError("fetched from MLflow although the machine has a copy")

    second._fetch_baseline = no_fetch  # type: ignore[method-assign]
    got = second.load_baseline(name, v.version)
    assert (got.profile, got.profile_sha256, got.metrics) == (base.profile, base.profile_sha256, base.metrics)
    pd.testing.assert_frame_equal(got.scores, base.scores)
    X = np.random.default_rng(9).normal(size=(50, 2))
    np.testing.assert_array_equal(second.load_model(name, v.version).predict_proba(X), model.predict_proba(X))

    for f in cache.glob("*.baseline.pkl"):
        f.write_bytes(b"not a pickle")  # a damaged copy is fetched again and replaced
    third = cached()
    assert third.load_baseline(name, v.version).profile == base.profile
    assert cached().load_baseline(name, v.version).metrics == base.metrics


def test_a_model_registered_again_does_not_get_the_old_models_copies(
    mlflow_dir: Path, name: str, tmp_path: Path
) -> None:
    from controller.reactors.context import VersionCache

    cached = _machine(mlflow_dir, tmp_path / "cache")
    reg = cached()
    v = reg.log_version(name, _record(4))
    derived: VersionCache[float] = VersionCache("noise", reg)
    assert (name, v.version, "accuracy") not in derived
    derived[(name, v.version, "accuracy")] = 0.25
    other: VersionCache[float] = VersionCache("noise", cached())
    assert (name, v.version, "accuracy") in other and other[(name, v.version, "accuracy")] == 0.25
    assert (name, v.version, "roc_auc") not in other

    old = reg.load_baseline(name, v.version)
    reg.client.delete_registered_model(name)
    again = cached()
    v2 = again.log_version(name, _record(5))
    assert v2.version == v.version  # MLflow numbers the new model's versions from 1 again
    assert old.profile == b"profile-bytes-4" and again.load_baseline(name, v2.version).profile == b"profile-bytes-5"
    fresh: VersionCache[float] = VersionCache("noise", again)
    assert (name, v2.version, "accuracy") not in fresh


def test_the_machine_cache_never_breaks_a_check(tmp_path: Path) -> None:
    from controller.adapters.registry.cache import MISSING, load_local, save_local

    path = tmp_path / "cache" / "x.scorer.pkl"
    save_local(path, lambda: None)  # does not pickle: nothing written, no temporary file left
    assert list((tmp_path / "cache").iterdir()) == []
    assert load_local(path) is MISSING
    path.write_bytes(b"\x80\x05truncated")
    assert load_local(path) is MISSING
    save_local(path, {"a": 1})
    assert load_local(path) == {"a": 1}


def test_an_unwritable_machine_cache_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from controller.adapters.registry.cache import MISSING, load_local, save_local

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level("WARNING", logger="controller.adapters.registry.mlflow"):
        save_local(blocker / "a.model.pkl", {"a": 1})
        save_local(blocker / "b.model.pkl", {"b": 2})
    assert load_local(blocker / "a.model.pkl") is MISSING
    warnings = [r.getMessage() for r in caplog.records if "not writable" in r.getMessage()]
    assert len(warnings) == 1 and str(blocker) in warnings[0]


def test_a_key_missing_from_the_machine_cache_is_looked_for_again_only_after_a_while(
    mlflow_dir: Path, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.reactors.context import VersionCache

    cached = _machine(mlflow_dir, tmp_path / "cache")
    reg = cached()
    v = reg.log_version(name, _record(6))
    key = (name, v.version, "accuracy")
    here: VersionCache[float] = VersionCache("noise", reg, recheck_seconds=3600)
    lookups: list[Path] = []
    real = reg.local_path
    monkeypatch.setattr(reg, "local_path", lambda *a, **k: lookups.append(real(*a, **k)) or lookups[-1])
    assert key not in here and key not in here
    assert len(lookups) == 1, "the second miss did not touch the disk"
    VersionCache("noise", cached())[key] = 0.5  # another process computes it meanwhile
    assert key not in here, "not looked for again before recheck_seconds"
    here.recheck_seconds = 0
    assert key in here and here[key] == 0.5
    here[key] = 0.75  # set here: found at once, whatever was missed before
    assert key in here and here[key] == 0.75
