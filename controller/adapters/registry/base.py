"""The model registry's interface: versions, aliases, baselines and tags, behind one small protocol.

The MLflow implementation is :mod:`controller.adapters.registry.mlflow`; tests use an in-memory twin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

BASELINE_DIR = "retrain_baseline"


BASELINE_RUN_TAG = "retrain.baseline_run"


TAG_PREFIX = "retrain."


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Baseline:
    """What was registered with a model version to compare production against."""

    profile: bytes | None
    profile_sha256: str | None
    metrics: dict[str, float]
    scores: pd.DataFrame | None = None
    """Reference rows with ``y_true``, ``y_pred`` and probability columns ``proba_<class>``."""


@dataclass(frozen=True)
class TrainingRecord:
    """What a training run produced, to be logged as a new version."""

    model: Any
    baseline: Baseline
    params: dict[str, Any]
    metrics: dict[str, float]
    training_seconds: float
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringPoint:
    """One check's figures, appended to the version's monitoring run (``mlflow_history``)."""

    at: datetime
    step: int
    metrics: dict[str, float]


class Registry(Protocol):
    def resolve(self, name: str, alias: str) -> VersionInfo: ...
    def find_alias(self, name: str, alias: str) -> VersionInfo | None: ...
    def model_tags(self, name: str) -> dict[str, str]: ...
    def version_tags(self, name: str, version: str) -> dict[str, str]: ...
    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> int: ...
    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None: ...
    def load_baseline(self, name: str, version: str) -> Baseline: ...
    def load_model(self, name: str, version: str) -> Any: ...
    def start_run(self, name: str) -> str: ...
    def log_version(self, name: str, record: TrainingRecord, run_id: str | None = None) -> VersionInfo: ...
    def set_alias(self, name: str, alias: str, version: str) -> None: ...
    def training_hours(self, name: str, limit: int = 20) -> list[float]: ...
    def log_check_report(self, name: str, version: str, check_id: int, files: Mapping[str, bytes]) -> str: ...
    def log_monitoring(self, name: str, version: str, points: Sequence[MonitoringPoint]) -> str: ...
    def attach_baseline(self, name: str, version: str, baseline: Baseline) -> str: ...
    def local_path(self, what: str, name: str, version: str, extra: tuple[Any, ...] = ()) -> Path | None: ...


def changed_tags(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The subset of ``wanted`` that differs from ``current``.

    >>> changed_tags({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"})
    {'b': '3', 'c': '4'}
    """
    return {k: str(v) for k, v in wanted.items() if current.get(k) != str(v)}


def profile_file_name(profile: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(profile).hexdigest()
    return sha, f"profile-{sha[:12]}.bin"
