"""The model registry adapter: MLflow behind a small interface, with an in-memory twin for tests.

What the controller needs from a registry:
- resolve the version a model's alias points at, and read registered-model and version tags;
- read the baseline logged with a version (reference profile, baseline metrics, reference scores);
- write ``retrain.*`` version tags, only the ones that changed (an MLflow server on SQLite takes
  about 26 tag writes per second, so unchanged tags are never rewritten);
- log a newly trained version with its baseline, move aliases, and list past training durations.

Baseline artifacts live in the version's run under ``retrain_baseline/``: ``profile-<sha12>.bin``
(the reference profile, content-addressed), ``baseline.json`` (metrics, profile hash, format) and
``scores.parquet`` (reference labels, predictions and probabilities, for label-free estimates).

Errors: an unknown model or alias is a :class:`~controller.errors.GiveUp` (configuration must
change); an unreachable tracking server is :class:`~controller.errors.RetryLater`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import pandas as pd

from controller.adapters.filecache import digest
from controller.adapters.registry.base import (
    BASELINE_DIR,
    BASELINE_RUN_TAG,
    Baseline,
    MonitoringPoint,
    TrainingRecord,
    VersionInfo,
    changed_tags,
    profile_file_name,
)
from controller.adapters.registry.cache import MISSING, _discard, _take, load_local, save_local
from controller.errors import GiveUp, RetryLater

log = logging.getLogger(__name__)


T = TypeVar("T")


class MlflowRegistry:
    """The MLflow model registry (a tracking server, or a local SQLite store with local artifacts)."""

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str | None = None,
        artifact_root: str | None = None,
        experiment: str = "retrain-controller",
        cache_seconds: float = 2.0,
        bulk_seconds: float = 0.0,
        cache_dir: str | Path | None = None,
    ) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        self.tracking_uri = _local_sqlite(tracking_uri)
        self.registry_uri = _local_sqlite(registry_uri) if registry_uri else self.tracking_uri
        self.artifact_root = artifact_root
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        self._baselines: dict[tuple[str, str], Baseline] = {}
        # A check asks for the champion, the model's tags and the challenger one after another:
        # each registered model and version is read once per ``cache_seconds`` (writes through
        # this registry drop the entry; a change made elsewhere is seen after at most that long).
        self.cache_seconds = cache_seconds
        self._recent: dict[tuple[str, ...], tuple[float, Any]] = {}
        # A worker checks hundreds of models, each once an hour: reading each registered model on
        # its own costs an MLflow call per check. With ``bulk_seconds``, every registered model
        # (aliases, tags) is read in one paged search and reused for that long; a model written
        # through this registry, or not in the listing, is read on its own as above.
        self.bulk_seconds = bulk_seconds
        self._listing: tuple[float, dict[str, Any]] | None = None
        self._written: dict[str, float] = {}  # model -> when this registry last wrote it (time.time())
        # A version's number and run never change: read once per process.
        self._versions: dict[tuple[str, str], VersionInfo] = {}
        # A version's model and baseline never change either: with ``cache_dir``, the first
        # process of a machine to fetch them from MLflow leaves a copy that the others load.
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._monitoring_runs: dict[str, str] = {}  # 'name/version' -> its monitoring run

    def _cached(self, key: tuple[str, ...], fetch: Callable[[], T]) -> T:
        hit = self._recent.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return cast(T, hit[1])
        value = self._call(fetch)
        if self.cache_seconds > 0:
            self._recent[key] = (time.monotonic(), value)
        return value

    def _run(self, run_id: str) -> Any:
        # A run's metrics do not change once it ended; the key cannot clash with a model name.
        return self._cached(("", run_id), lambda: self.client.get_run(run_id))

    def _forget(self, name: str) -> None:
        for key in [k for k in self._recent if k[0] == name]:
            del self._recent[key]
        if self._listing is not None:
            self._listing[1].pop(name, None)
        self._written[name] = time.time()

    def _registered(self, name: str) -> Any:
        """The registered model (aliases, tags): from the bulk listing when it is on and fresh."""
        if self.bulk_seconds > 0:
            if self._listing is None or time.monotonic() - self._listing[0] >= self.bulk_seconds:
                self._listing = self._fresh_listing()
            found = self._listing[1].get(name)
            if found is not None:
                return found
        return self._cached((name,), lambda: self.client.get_registered_model(name))

    def _fresh_listing(self) -> tuple[float, dict[str, Any]]:
        """Every registered model, with the ``time.monotonic()`` it is as of.

        With ``cache_dir``, one process of a machine lists them per ``bulk_seconds`` and the
        others load its listing (a machine with eight pool processes asks MLflow once, not eight
        times); it is as old as when its listing began, so a move made elsewhere is still seen
        within ``bulk_seconds``. A model written through this registry since that listing began
        is left out of it, to be read on its own."""
        path = self.cache_dir / f"{digest(self.registry_uri)}.listing.pkl" if self.cache_dir is not None else None
        if path is not None:
            shared = load_local(path)
            if isinstance(shared, tuple) and len(shared) == 2 and isinstance(shared[1], dict):
                as_of, found = shared
                age = time.time() - float(as_of)
                if 0 <= age < self.bulk_seconds:
                    stale = {n for n, at in self._written.items() if at >= as_of}
                    return time.monotonic() - age, {n: m for n, m in found.items() if n not in stale}
        lock = path.with_suffix(".lock") if path is not None else None
        taken = _take(lock) if lock is not None else None
        if taken is False and self._listing is not None:
            # another process is listing right now: keep ours a second longer, then look again
            return time.monotonic() - self.bulk_seconds + 1.0, self._listing[1]
        as_of, began = time.time(), time.monotonic()
        try:
            found = self._list_registered()
            if path is not None:
                save_local(path, (as_of, found))
        finally:
            if taken and lock is not None:
                _discard(lock)
        return began, found

    def _list_registered(self, max_pages: int = 10) -> dict[str, Any]:
        """Every registered model, up to ``max_pages`` pages of 1,000 (the rest is read per model)."""
        found: dict[str, Any] = {}
        token = None
        for _ in range(max_pages):
            page = self._call(
                lambda: self.client.search_registered_models(max_results=1000, page_token=token)  # noqa: B023
            )
            found.update((m.name, m) for m in page)
            token = page.token
            if not token:
                break
        return found

    def _version(self, name: str, version: str) -> VersionInfo:
        key = (name, version)
        if key not in self._versions:

            def fetch() -> VersionInfo:
                mv = self._cached(key, lambda: self.client.get_model_version(name, version))
                return VersionInfo(name, str(mv.version), mv.run_id, dict(mv.tags), tuple(mv.aliases))

            self._versions[key] = self._local_copy("version", name, version, fetch)
        return self._versions[key]

    def _forget_version(self, name: str, version: str) -> None:
        self._versions.pop((name, version), None)
        self._recent.pop((name, version), None)
        for what in ("version", "baseline"):
            path = self.local_path(what, name, version)
            if path is not None:
                path.unlink(missing_ok=True)

    def local_path(self, what: str, name: str, version: str, extra: tuple[Any, ...] = ()) -> Path | None:
        """Where the machine cache keeps ``what`` of a version (None without ``cache_dir``).

        Keyed by the registered model's creation time too: a model deleted and registered again
        numbers its versions from 1 again.
        """
        if self.cache_dir is None:
            return None
        created = getattr(self._registered(name), "creation_timestamp", None)
        if created is None:
            return None
        parts = [self.registry_uri, name, str(version), str(created), *map(str, extra)]
        return self.cache_dir / f"{digest(*parts)}.{what}.pkl"

    def _local_copy(self, what: str, name: str, version: str, fetch: Callable[[], T]) -> T:
        """``fetch()``, through the machine's cache folder when there is one."""
        path = self.local_path(what, name, version)
        if path is None:
            return fetch()
        value = load_local(path)
        if value is MISSING:
            value = fetch()
            save_local(path, value)
        return cast(T, value)

    # reading --------------------------------------------------------------------------------
    def resolve(self, name: str, alias: str) -> VersionInfo:
        found = self.find_alias(name, alias)
        if found is None:
            raise GiveUp(f"registered model {name!r} has no alias {alias!r} in {self.registry_uri}")
        return found

    def find_alias(self, name: str, alias: str) -> VersionInfo | None:
        """The version behind ``alias``; its tags as first read in this process (they are not
        what a check acts on: ``version_tags`` reads them fresh)."""
        version = self._registered(name).aliases.get(alias)
        if version is None:
            return None
        return self._version(name, str(version))

    def model_tags(self, name: str) -> dict[str, str]:
        return dict(self._registered(name).tags)

    def version_tags(self, name: str, version: str) -> dict[str, str]:
        return dict(self._call(lambda: self.client.get_model_version(name, version)).tags)

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> int:
        todo = changed_tags(self.version_tags(name, version), tags)
        if todo:
            self._forget(name)
        for key, value in todo.items():
            self._call(partial(self.client.set_model_version_tag, name, version, key, value))
        return len(todo)

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        self._forget(name)
        self._ensure_model(name)
        for key, value in tags.items():
            self._call(partial(self.client.set_registered_model_tag, name, key, value))

    def load_baseline(self, name: str, version: str) -> Baseline:
        cached = self._baselines.get((name, version))
        if cached is not None:
            return cached
        mv = self._version(name, version)
        # A baseline attached after registration lives in a run of its own, named by a version tag.
        run_id = mv.tags.get(BASELINE_RUN_TAG) or mv.run_id
        try:
            baseline = self._local_copy("baseline", name, version, lambda: self._fetch_baseline(name, version, run_id))
        except GiveUp:
            # The version as first read may predate a baseline attached since (a version tag names
            # its run): read it again before giving up.
            self._forget_version(name, version)
            fresh = self._call(lambda: self.client.get_model_version(name, version))
            fresh_run = fresh.tags.get(BASELINE_RUN_TAG) or fresh.run_id
            if fresh_run == run_id:
                raise
            baseline = self._local_copy(
                "baseline", name, version, lambda: self._fetch_baseline(name, version, fresh_run)
            )
        self._baselines[(name, version)] = baseline
        return baseline

    def _fetch_baseline(self, name: str, version: str, run_id: str | None) -> Baseline:
        if not run_id:
            raise GiveUp(f"{name} version {version} has no run, so no baseline")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self._download_baseline(run_id, tmp)
            except GiveUp:
                raise GiveUp(
                    f"{name} version {version} has no baseline: log one with 'retrainctl register' "
                    f"or the trainer flow (artifacts under {BASELINE_DIR}/)"
                ) from None
            meta = json.loads((local / "baseline.json").read_text())
            profile = sha = None
            if meta.get("profile_file"):
                profile = (local / meta["profile_file"]).read_bytes()
                sha = hashlib.sha256(profile).hexdigest()
                if sha != meta.get("profile_sha256"):
                    raise GiveUp(f"{name} version {version}: the profile does not match its recorded hash")
            scores_path = local / "scores.parquet"
            scores = pd.read_parquet(scores_path) if scores_path.exists() else None
        metrics = {k: float(v) for k, v in meta.get("metrics", {}).items()}
        # Holdout metrics the training run logged fill what the baseline file does not state.
        for key, value in self._run(run_id).data.metrics.items():
            if key.startswith("holdout_"):
                metrics.setdefault(key.removeprefix("holdout_"), float(value))
        return Baseline(profile, sha, metrics, scores)

    def _download_baseline(self, run_id: str, dst: str) -> Path:
        """The run's baseline folder, fetched straight from the run's artifact location.

        ``client.download_artifacts(run_id, ...)`` reads the run again and looks for a logged
        model of that name first; the run is read once per check here anyway.
        """
        from mlflow.artifacts import download_artifacts

        uri = f"{self._run(run_id).info.artifact_uri.rstrip('/')}/{BASELINE_DIR}"
        return Path(
            self._call(lambda: download_artifacts(artifact_uri=uri, dst_path=dst, tracking_uri=self.tracking_uri))
        )

    def load_model(self, name: str, version: str) -> Any:
        import mlflow.sklearn

        def fetch() -> Any:
            with self._tracking():
                return self._call(lambda: mlflow.sklearn.load_model(f"models:/{name}/{version}"))

        return self._local_copy("model", name, version, fetch)

    def training_hours(self, name: str, limit: int = 20) -> list[float]:
        """Durations of the training runs behind the model's newest versions, in hours."""
        versions = self._call(
            lambda: self.client.search_model_versions(
                f"name = '{name}'", max_results=limit, order_by=["version_number DESC"]
            )
        )
        hours = []
        for mv in versions:
            if not mv.run_id:
                continue
            run = self._run(mv.run_id)
            seconds = run.data.metrics.get("training_seconds")
            if seconds is None and run.info.end_time and run.info.start_time:
                seconds = (run.info.end_time - run.info.start_time) / 1000.0
            if seconds is not None:
                hours.append(float(seconds) / 3600.0)
        return hours

    # writing --------------------------------------------------------------------------------
    def start_run(self, name: str) -> str:
        """Open the training run of a retrain before it trains: its id is handed to the trainer,
        so the resources a training job starts can carry it as a billing tag."""
        experiment_id = self._experiment_id()
        run = self._call(
            lambda: self.client.create_run(experiment_id, run_name=f"train-{name}", tags={"retrain.model": name})
        )
        return str(run.info.run_id)

    def log_version(self, name: str, record: TrainingRecord, run_id: str | None = None) -> VersionInfo:
        """Log a trained model with its baseline as a new version of ``name`` (in the run
        :meth:`start_run` opened, when given)."""
        import mlflow
        import mlflow.sklearn
        import sklearn

        self._forget(name)
        self._ensure_model(name)
        with self._tracking():
            experiment_id = self._experiment_id()
            opened = (
                mlflow.start_run(run_id=run_id)
                if run_id
                else mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{name}")
            )
            with opened as run:
                mlflow.log_params({k: _param(v) for k, v in record.params.items()})
                mlflow.log_metrics({**record.metrics, "training_seconds": record.training_seconds})
                self._log_baseline(record.baseline)
                info = mlflow.sklearn.log_model(
                    record.model, name="model", pip_requirements=[f"scikit-learn=={sklearn.__version__}"]
                )
            mv = self._call(
                lambda: self.client.create_model_version(
                    name, info.model_uri, run_id=run.info.run_id, tags=record.tags, model_id=info.model_id
                )
            )
        return VersionInfo(name, str(mv.version), run.info.run_id, dict(record.tags))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._forget(name)
        self._call(lambda: self.client.set_registered_model_alias(name, alias, version))

    def attach_baseline(self, name: str, version: str, baseline: Baseline) -> str:
        """Give an already registered version a baseline (a run of its own, linked by a version tag)."""
        import mlflow

        self._call(lambda: self.client.get_model_version(name, version))
        run_name = f"baseline-{name}-v{version}"
        with self._tracking(), mlflow.start_run(experiment_id=self._experiment_id(), run_name=run_name) as run:
            mlflow.set_tags({"retrain.model": name, "retrain.version": version})
            mlflow.log_metrics({k: v for k, v in baseline.metrics.items() if v == v})
            self._log_baseline(baseline)
        self._forget(name)
        self._call(lambda: self.client.set_model_version_tag(name, version, BASELINE_RUN_TAG, run.info.run_id))
        self._baselines.pop((name, version), None)
        self._forget_version(name, version)
        return str(run.info.run_id)

    def log_check_report(self, name: str, version: str, check_id: int, files: Mapping[str, bytes]) -> str:
        """Log one check's reports (e.g. evidently's HTML) as artifacts of a run of their own."""
        experiment_id = self._experiment_id(f"{self.experiment}-checks")
        run = self._call(
            lambda: self.client.create_run(
                experiment_id,
                run_name=f"check-{name}-{check_id}",
                tags={"retrain.model": name, "retrain.version": version, "retrain.check_id": str(check_id)},
            )
        )
        with tempfile.TemporaryDirectory() as tmp:
            for fname, content in files.items():
                (Path(tmp) / fname).write_bytes(content)
            self._call(lambda: self.client.log_artifacts(run.info.run_id, tmp, "reports"))
        self._call(lambda: self.client.set_terminated(run.info.run_id))
        return str(run.info.run_id)

    def log_monitoring(self, name: str, version: str, points: Sequence[MonitoringPoint]) -> str:
        """Append checks' figures as metrics of the version's monitoring run (one per version, made on
        first use), in one ``log_batch`` call: the MLflow UI charts them over time."""
        from mlflow.entities import Metric

        key = f"{name}/{version}"
        run_id = self._monitoring_runs.get(key)
        if run_id is None:
            experiment_id = self._call(lambda: self._experiment_id(f"{self.experiment}-monitoring"))
            found = self._call(
                lambda: self.client.search_runs(
                    [experiment_id], filter_string=f"tags.`retrain.monitoring` = '{_quoted(key)}'", max_results=1
                )
            )
            if found:
                run_id = str(found[0].info.run_id)
            else:
                run = self._call(
                    lambda: self.client.create_run(
                        experiment_id,
                        run_name=f"monitoring-{name}-v{version}",
                        tags={"retrain.monitoring": key, "retrain.model": name, "retrain.version": version},
                    )
                )
                run_id = str(run.info.run_id)
            self._monitoring_runs[key] = run_id
        metrics = [
            Metric(k, float(v), int(p.at.timestamp() * 1000), p.step) for p in points for k, v in p.metrics.items()
        ]
        for at in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics per batch
            chunk = metrics[at : at + 1000]
            self._call(partial(self.client.log_batch, run_id, metrics=chunk))
        return run_id

    # helpers --------------------------------------------------------------------------------
    def _log_baseline(self, baseline: Baseline) -> None:
        import mlflow

        meta: dict[str, Any] = {"format": 1, "metrics": baseline.metrics}
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / BASELINE_DIR
            folder.mkdir()
            if baseline.profile is not None:
                sha, fname = profile_file_name(baseline.profile)
                (folder / fname).write_bytes(baseline.profile)
                meta.update(profile_file=fname, profile_sha256=sha)
            if baseline.scores is not None:
                buf = io.BytesIO()
                baseline.scores.to_parquet(buf)
                (folder / "scores.parquet").write_bytes(buf.getvalue())
            (folder / "baseline.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
            mlflow.log_artifacts(str(folder), BASELINE_DIR)

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if not _not_found(exc):
                raise RetryLater(f"MLflow at {self.registry_uri} failed: {exc}") from exc
            self._call(lambda: self.client.create_registered_model(name))

    def _experiment_id(self, name: str | None = None) -> str:
        name = name or self.experiment
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        # A local artifact folder only makes sense for a local store; a tracking server keeps (or
        # proxies) its own, so workers on other machines can read what this one logged.
        local = not self.tracking_uri.startswith(("http://", "https://", "databricks"))
        location = (Path(self.artifact_root).resolve() / name).as_uri() if self.artifact_root and local else None
        return str(self.client.create_experiment(name, artifact_location=location))

    @contextmanager
    def _tracking(self) -> Iterator[None]:
        """Point MLflow's fluent API at this registry for the duration of a call."""
        import mlflow

        old_t, old_r = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(old_t)
            mlflow.set_registry_uri(old_r)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run an MLflow call; unreachable server -> RetryLater, missing thing -> GiveUp."""
        from mlflow.exceptions import MlflowException

        try:
            return fn()
        except MlflowException as exc:
            if _not_found(exc):
                raise GiveUp(str(exc).splitlines()[0]) from exc
            if _unreachable(exc):
                raise RetryLater(f"MLflow at {self.tracking_uri} is unreachable: {str(exc)[:200]}") from exc
            raise
        except OSError as exc:
            raise RetryLater(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"} or "not found" in str(exc).lower()


def _unreachable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("max retries", "connection", "timed out", "temporarily unavailable", "503", "502"))


def _local_sqlite(uri: str) -> str:
    """Make sure the folder of a local SQLite MLflow store exists."""
    if (uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")) or uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:500]


def _quoted(text: str) -> str:
    """``text`` inside single quotes of an MLflow search filter."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
