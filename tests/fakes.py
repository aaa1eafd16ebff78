"""Test doubles: in-memory twins of the adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from controller.adapters.registry.base import Baseline, MonitoringPoint, TrainingRecord, VersionInfo, changed_tags
from controller.adapters.trainers import sklearn_classifier
from controller.errors import GiveUp


class InMemoryRegistry:
    """A registry in a dict, with the same behaviour as :class:`MlflowRegistry`."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.reports: dict[str, dict[str, bytes]] = {}
        self.tag_writes = 0
        self.runs_started = 0
        self.monitoring: dict[str, list[MonitoringPoint]] = {}  # 'name/version' -> points logged

    def _model(self, name: str) -> dict[str, Any]:
        if name not in self.models:
            raise GiveUp(f"registered model {name!r} not found")
        return self.models[name]

    def resolve(self, name: str, alias: str) -> VersionInfo:
        found = self.find_alias(name, alias)
        if found is None:
            raise GiveUp(f"registered model {name!r} has no alias {alias!r}")
        return found

    def find_alias(self, name: str, alias: str) -> VersionInfo | None:
        m = self._model(name)
        version = m["aliases"].get(alias)
        if version is None:
            return None
        v = m["versions"][version]
        aliases = tuple(a for a, ver in m["aliases"].items() if ver == version)
        return VersionInfo(name, version, v["run_id"], dict(v["tags"]), aliases)

    def model_tags(self, name: str) -> dict[str, str]:
        return dict(self._model(name)["tags"])

    def version_tags(self, name: str, version: str) -> dict[str, str]:
        return dict(self._model(name)["versions"][version]["tags"])

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> int:
        current = self._model(name)["versions"][version]["tags"]
        todo = changed_tags(current, tags)
        current.update(todo)
        self.tag_writes += len(todo)
        return len(todo)

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        self.models.setdefault(name, {"tags": {}, "versions": {}, "aliases": {}})["tags"].update(tags)

    def load_baseline(self, name: str, version: str) -> Baseline:
        baseline: Baseline = self._model(name)["versions"][version]["baseline"]
        return baseline

    def load_model(self, name: str, version: str) -> Any:
        return self._model(name)["versions"][version]["model"]

    def start_run(self, name: str) -> str:
        self.runs_started += 1
        return f"run-{name}-{self.runs_started}"

    def log_version(self, name: str, record: TrainingRecord, run_id: str | None = None) -> VersionInfo:
        m = self.models.setdefault(name, {"tags": {}, "versions": {}, "aliases": {}})
        version = str(len(m["versions"]) + 1)
        m["versions"][version] = {
            "run_id": run_id or f"run-{name}-v{version}",
            "tags": dict(record.tags),
            "baseline": record.baseline,
            "model": record.model,
            "hours": record.training_seconds / 3600.0,
        }
        return VersionInfo(name, version, m["versions"][version]["run_id"], dict(record.tags))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._model(name)["aliases"][alias] = version

    def attach_baseline(self, name: str, version: str, baseline: Baseline) -> str:
        self._model(name)["versions"][version]["baseline"] = baseline
        return f"baseline-{name}-{version}"

    def log_check_report(self, name: str, version: str, check_id: int, files: Mapping[str, bytes]) -> str:
        run_id = f"check-{name}-{check_id}"
        self.reports[run_id] = dict(files)
        return run_id

    def log_monitoring(self, name: str, version: str, points: Sequence[MonitoringPoint]) -> str:
        self.monitoring.setdefault(f"{name}/{version}", []).extend(points)
        return f"monitoring-{name}-{version}"

    def local_path(self, what: str, name: str, version: str, extra: tuple[Any, ...] = ()) -> Path | None:
        return None  # nothing to cache: everything is in memory already

    def training_hours(self, name: str, limit: int = 20) -> list[float]:
        if name not in self.models:
            return []
        return [float(v["hours"]) for v in list(self.models[name]["versions"].values())[-limit:]]


TAGGED_RUNS: list[str] = []
"""The MLflow run ids :func:`tagging_trainer` was given, in order."""


def tagging_trainer(train: pd.DataFrame, features: list[str], target: str, mlflow_run_id: str) -> Any:
    """A trainer that takes its retrain's MLflow run id (a real one tags the jobs it starts with it)."""
    TAGGED_RUNS.append(mlflow_run_id)
    return sklearn_classifier(train, features=features, target=target)
