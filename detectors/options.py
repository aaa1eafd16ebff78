"""How drift is measured: :class:`DriftOptions`, the ``drift:`` section of a model's config.

Validated with the test catalog alone (:mod:`detectors.stattests.catalog`), so reading a config
loads no statistics library.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.stattests.catalog import Kind, test_info


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
