"""How drift is measured: :class:`DriftOptions`, the ``drift:`` section of a model's config, and
:class:`EmbeddingOptions`, how its embeddings are tested.

Validated with the test catalog alone (:mod:`detectors.stattests.catalog`), so reading a config
loads no statistics library.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.stattests.catalog import Kind, test_info

EmbeddingMethod = Literal["model", "ratio", "distance", "mmd"]
Distance = Literal["euclidean", "cosine", "cityblock", "chebyshev"]
METHODS: tuple[EmbeddingMethod, ...] = ("model", "ratio", "distance", "mmd")
# evidently's defaults (legacy/metrics/data_drift/embedding_drift_methods.py)
DEFAULT_THRESHOLDS: dict[str, float] = {"model": 0.55, "ratio": 0.2, "distance": 0.2, "mmd": 0.015}
DEFAULT_QUANTILE: dict[str, float] = {"model": 0.95, "distance": 0.95, "mmd": 0.05}
N_BOOTSTRAP = 100
BANDWIDTH_ROWS = 1000
# below this many reference rows evidently's default ``model`` method uses its bootstrap threshold
BOOTSTRAP_BELOW_ROWS = 1000
DEFAULT_SAMPLE_ROWS = 2000
# components with more distinct values are sketched; 384 components of 1,024 bins each keep a
# profile of a few MB whatever the reference's size
DEFAULT_MAX_EXACT = 2000
DEFAULT_SKETCH_BINS = 1024


class EmbeddingOptions(BaseModel):
    """How embeddings are tested (``embedding:`` in a model's ``drift:`` section).

    >>> EmbeddingOptions(method="mmd").threshold_for()
    0.015
    >>> EmbeddingOptions().method_for(), EmbeddingOptions().bootstrap_for("model", 500)
    ('model', True)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: EmbeddingMethod | None = Field(None, description="model, ratio, distance or mmd; None: model.")
    threshold: float | None = Field(None, description="None: the method's default (0.55, 0.2, 0.2, 0.015).")
    bootstrap: bool | None = Field(
        None,
        description="Resampled threshold instead of the fixed one (model, distance, mmd). None: evidently's "
        "default (on for model below 1,000 reference rows, off otherwise).",
    )
    quantile_probability: float | None = Field(
        None, gt=0.0, lt=1.0, description="Quantile of the resampled statistics used with bootstrap (0.95; mmd 0.05)."
    )
    distance: Distance = Field("euclidean", description="The distance method's metric.")
    component_stattest: str = Field("wasserstein", description="The ratio method's test per component.")
    component_stattest_threshold: float = Field(0.1, ge=0.0, description="The ratio method's threshold per component.")
    max_rows: int = Field(
        DEFAULT_SAMPLE_ROWS,
        ge=10,
        description="model and mmd: current rows sampled down to this many (seeded), like the reference's sample.",
    )
    seed: int = Field(0, description="Seed of the current window's row sample.")

    @field_validator("component_stattest")
    @classmethod
    def _numerical_test(cls, v: str) -> str:
        if "numerical" not in test_info(v).kinds:
            raise ValueError(f"{v} does not accept numerical columns")
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"a threshold must be a finite number, got {v}")
        return v

    def method_for(self) -> EmbeddingMethod:
        return self.method or "model"

    def threshold_for(self) -> float:
        return DEFAULT_THRESHOLDS[self.method_for()] if self.threshold is None else self.threshold

    def bootstrap_for(self, method: EmbeddingMethod, n_reference: int) -> bool:
        if self.bootstrap is not None:
            return self.bootstrap and method != "ratio"
        return method == "model" and n_reference < BOOTSTRAP_BELOW_ROWS

    def quantile_for(self, method: EmbeddingMethod) -> float:
        return DEFAULT_QUANTILE.get(method, 0.95) if self.quantile_probability is None else self.quantile_probability


class DriftOptions(BaseModel):
    """How drift is measured; the ``drift:`` section of a model's config.

    >>> DriftOptions(stattest="ks", correction="bh").stattest
    'ks'
    >>> DriftOptions(stattest="kss")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DriftOptions
    stattest
      Value error, unknown stattest 'kss'; valid names: TVD, anderson, ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["native", "evidently"] = Field(
        "native", description="native: numpy/scipy from a profile; evidently: runs evidently itself (needs raw data)."
    )
    stattest: str | None = Field(None, description="One test for every column; None: evidently's automatic choice.")
    stattest_threshold: float | None = Field(None, description="Threshold for every column; None: the test's default.")
    per_column_stattest: dict[str, str] = Field(default_factory=dict, description="Test per column (wins over all).")
    per_type_stattest: dict[Kind, str] = Field(default_factory=dict, description="Test per kind.")
    per_column_threshold: dict[str, float] = Field(default_factory=dict, description="Threshold per column.")
    per_type_threshold: dict[Kind, float] = Field(default_factory=dict, description="Threshold per kind.")
    correction: Literal["none", "bonferroni", "bh"] = Field(
        "none", description="Multiple-testing correction across the p-value tests of one check."
    )
    min_effect: float = Field(
        0.0,
        ge=0.0,
        description="Effect-size floor: a column drifts only if its effect (normed Wasserstein distance for "
        "numbers, total variation distance for categories) is at least this. 0 disables it (evidently's behaviour).",
    )
    columns: tuple[str, ...] | None = Field(None, description="Columns to check; None: all reference columns.")
    categorical: tuple[str, ...] = Field((), description="Columns to treat as categorical whatever their dtype.")
    drift_share: float = Field(0.5, gt=0.0, le=1.0, description="Share of drifted columns that makes dataset drift.")
    embeddings: dict[str, str | tuple[str, ...]] = Field(
        default_factory=dict,
        description="Embeddings by name: a list column, a list of columns, a comma-separated list or a prefix glob "
        "such as 'emb_*'. A stored profile must have been built with them.",
    )
    embedding: EmbeddingOptions = Field(
        default_factory=EmbeddingOptions, description="How embeddings are tested (method, threshold, bootstrap...)."
    )
    text: tuple[str, ...] | None = Field(
        None, description="Free-text columns; None: recognised (string columns of several words a value), (): none."
    )
    text_threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description="AUC above which text drifts; None: evidently's choice by reference size."
    )

    @field_validator("embeddings")
    @classmethod
    def _specs(cls, v: dict[str, str | tuple[str, ...]]) -> dict[str, str | tuple[str, ...]]:
        for name, spec in v.items():
            if not name or not spec or (isinstance(spec, str) and not spec.strip()):
                raise ValueError(f"embedding {name!r}: give a list column, columns or a prefix glob")
        return v

    @model_validator(mode="after")
    def _native_for_embeddings(self) -> DriftOptions:
        if self.engine == "evidently" and (self.embeddings or self.text):
            raise ValueError("embeddings and text are checked by the native engine: use engine 'native'")
        return self

    @field_validator("stattest")
    @classmethod
    def _known_test(cls, v: str | None) -> str | None:
        if v is not None:
            test_info(v)
        return v

    @field_validator("per_column_stattest", "per_type_stattest")
    @classmethod
    def _known_tests(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v.values():
            test_info(name)
        return v

    @field_validator("stattest_threshold")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"a threshold must be a finite number >= 0, got {v}")
        return v

    @model_validator(mode="after")
    def _tests_fit_kinds(self) -> DriftOptions:
        for kind, name in self.per_type_stattest.items():
            if kind not in test_info(name).kinds:
                accepts = ", ".join(test_info(name).kinds)
                raise ValueError(f"per_type_stattest: {name} does not accept {kind} columns (accepts {accepts})")
        for key, value in [*self.per_column_threshold.items(), *self.per_type_threshold.items()]:
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"threshold for {key!r} must be a finite number >= 0, got {value}")
        # a threshold above 1 for a test known to give p-values can never be met: say so now
        named: list[tuple[str, str | None, float | None]] = [
            (c, self.per_column_stattest.get(c) or self.stattest, t) for c, t in self.per_column_threshold.items()
        ]
        named += [(k, self.per_type_stattest.get(k) or self.stattest, t) for k, t in self.per_type_threshold.items()]
        named += [("all columns", self.stattest, self.stattest_threshold)]
        for key, test, limit in named:
            if test is not None and limit is not None and test_info(test).is_pvalue and limit > 1:
                raise ValueError(f"threshold for {key!r}: {test} gives p-values, so it must be in (0, 1], got {limit}")
        return self

    def configured_test(self, column: str, kind: Kind) -> str | None:
        """The test named for this column by config, most specific first; None: automatic."""
        return self.per_column_stattest.get(column) or self.per_type_stattest.get(kind) or self.stattest

    def threshold_for(self, column: str, kind: Kind) -> float | None:
        if column in self.per_column_threshold:
            return self.per_column_threshold[column]
        if kind in self.per_type_threshold:
            return self.per_type_threshold[kind]
        return self.stattest_threshold
