"""What checks and retrains share in one process: config, store, registry, clock and the caches of
what is derived from a model version.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from controller.adapters.filecache import FileCache
from controller.adapters.registry.base import Baseline, Registry
from controller.adapters.registry.cache import MISSING, load_local, save_local
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.scoring import Factorized, Scorer
from controller.adapters.store.store import Store
from controller.adapters.store.tables import utcnow
from controller.config import (
    ModelConfig,
    ServiceConfig,
    load_models,
    load_service_config,
    resolve_policy,
)
from controller.core.policy import PolicyConfig
from controller.errors import UserError
from controller.signals.measure import LabelFree
from detectors.drift import DriftOptions
from detectors.profile import ReferenceProfile, build_profile


@dataclass
class Context:
    """Everything a check needs from the outside, built once per process."""

    service: ServiceConfig
    models: dict[str, ModelConfig]
    store: Store
    registry: Registry
    clock: Callable[[], datetime] = utcnow
    _model_cache: dict[tuple[str, str], Any] = field(default_factory=dict)
    _profiles: dict[str, ReferenceProfile] = field(default_factory=dict)
    # id of a profile's bytes -> (those bytes, kept alive so the id stays theirs; the profile)
    _profile_of_bytes: dict[int, tuple[bytes, ReferenceProfile]] = field(default_factory=dict)
    # What is derived from one model version, keyed ``(registered model, version, ...)``; kept per
    # process and, with the registry's machine cache, on disk for the worker's other processes.
    _scorers: VersionCache[Scorer] = field(init=False)
    _hours_cache: VersionCache[list[float]] = field(init=False)
    label_free: VersionCache[LabelFree | None] = field(init=False)
    """Each version's label-free estimator, fitted on its reference scores (None: it has none)."""
    _prediction_profiles: VersionCache[ReferenceProfile] = field(init=False)
    file_cache: FileCache | None = field(init=False)
    """The machine's decoded copies of the data files checks read (with ``cache_dir``)."""

    def __post_init__(self) -> None:
        cache_dir, mb = self.service.cache_dir, self.service.file_cache_mb
        self.file_cache = FileCache(Path(cache_dir) / "files", mb * 2**20) if cache_dir and mb > 0 else None
        self._scorers = VersionCache("scorer", self.registry)
        self._hours_cache = VersionCache("hours", self.registry)
        self.label_free = VersionCache("label-free", self.registry)
        self._prediction_profiles = VersionCache("prediction-profile", self.registry)

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        registry: Registry | None = None,
        store: Store | None = None,
        clock: Callable[[], datetime] = utcnow,
        migrate: bool = True,
    ) -> Context:
        service = load_service_config(path)
        models = load_models(service)
        if store is None:
            store = Store(service.store_url)
            if migrate:
                store.migrate()
        if registry is None:
            registry = MlflowRegistry(
                service.mlflow_tracking_uri,
                service.mlflow_registry_uri,
                service.mlflow_artifact_root,
                bulk_seconds=service.registry_refresh_seconds,
                cache_dir=service.cache_dir,
            )
        return cls(service, models, store, registry, clock)

    def reload_models(self) -> None:
        self.models = load_models(self.service)

    def model(self, name: str) -> ModelConfig:
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise UserError(f"unknown model {name!r} (configured: {known})")
        return self.models[name]

    def policy(self, cfg: ModelConfig) -> PolicyConfig:
        return resolve_policy(self.service, cfg)

    def load_model(self, name: str, version: str) -> Any:
        key = (name, version)
        if key not in self._model_cache:
            self._model_cache[key] = self.registry.load_model(name, version)
        return self._model_cache[key]

    def score(
        self,
        name: str,
        version: str,
        rows: pd.DataFrame,
        features: Sequence[str],
        factorized: Factorized | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Score a window with the version's model (numpy for a plain linear pipeline, which reuses
        the text columns' ``factorized`` codes when the check has them)."""
        key = (name, version)
        if key not in self._scorers:
            self._scorers[key] = Scorer(self.load_model(name, version))
        scorer = self._scorers[key]
        settled = (scorer.verified, scorer.fast is None)
        out = scorer(rows, features, factorized)
        if (scorer.verified, scorer.fast is None) != settled:
            self._scorers[key] = scorer  # verified (or dropped): the other processes need not redo it
        return out

    def profile(self, baseline: Baseline) -> ReferenceProfile:
        """The baseline's reference profile, decoded once per process (keyed by the bytes' hash).

        The registry hands out the same bytes object for a version each time: that object is
        recognized without hashing it again (a profile keeps its reference sample: hundreds of KB)."""
        assert baseline.profile is not None
        seen = self._profile_of_bytes.get(id(baseline.profile))
        if seen is not None and seen[0] is baseline.profile:
            return seen[1]
        key = hashlib.sha256(baseline.profile).hexdigest()
        if key not in self._profiles:
            self._profiles[key] = ReferenceProfile.from_bytes(baseline.profile)
        self._profile_of_bytes[id(baseline.profile)] = (baseline.profile, self._profiles[key])
        return self._profiles[key]

    def prediction_profile(
        self, name: str, version: str, baseline: Baseline, options: DriftOptions
    ) -> ReferenceProfile:
        """The profile of the version's own predictions on its holdout, built once per process."""
        key = (name, version)
        if key not in self._prediction_profiles:
            assert baseline.scores is not None
            ref = baseline.scores[["y_pred"]].rename(columns={"y_pred": "prediction"})
            self._prediction_profiles[key] = build_profile(ref, categorical=options.categorical, sample_rows=0)
        return self._prediction_profiles[key]

    def training_hours(self, name: str, version: str) -> list[float]:
        key = (name, version)
        if key not in self._hours_cache:
            self._hours_cache[key] = self.registry.training_hours(name)
        return self._hours_cache[key]


V = TypeVar("V")


class VersionCache(dict[tuple[str, ...], V]):
    """A dict of what is derived from a model version, keyed ``(registered model, version, ...)``,
    backed by the registry's machine cache: a key missing here is looked for on disk, and a value
    set here is written there, so a worker's other processes (and its next start) load it instead
    of computing it again. A version never changes, so neither does what is derived from it.

    A key found on neither is not looked for on disk again for ``recheck_seconds``: a check that
    only asks whether a value exists (without computing it) does not pay a file lookup each time.
    """

    def __init__(self, kind: str, registry: Registry, recheck_seconds: float = 60.0) -> None:
        super().__init__()
        self.kind = kind
        self.registry = registry
        self.recheck_seconds = recheck_seconds
        self._absent: dict[tuple[str, ...], float] = {}

    def _path(self, key: tuple[str, ...]) -> Path | None:
        return self.registry.local_path(self.kind, key[0], key[1], tuple(key[2:]))

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            return True
        if not isinstance(key, tuple):
            return False
        looked = self._absent.get(key)
        if looked is not None and time.monotonic() - looked < self.recheck_seconds:
            return False
        path = self._path(key)
        value = MISSING if path is None else load_local(path)
        if value is MISSING:
            self._absent[key] = time.monotonic()
            return False
        self._absent.pop(key, None)
        super().__setitem__(key, value)
        return True

    def __setitem__(self, key: tuple[str, ...], value: V) -> None:
        super().__setitem__(key, value)
        self._absent.pop(key, None)
        path = self._path(key)
        if path is not None:
            save_local(path, value)
