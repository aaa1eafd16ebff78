"""Statistics only: drift tests, reference profiles, data quality and performance metrics.

The names below load on first use (PEP 562), so that a command that only reads a config
(``detectors.options``) does not load numpy, pandas and scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.drift import ColumnDrift, DriftReport, detect_drift, detect_prediction_drift
    from detectors.multivariate import MultivariateDrift, domain_classifier_drift
    from detectors.options import DriftOptions
    from detectors.profile import ColumnProfile, ReferenceProfile, build_profile, merge_profiles
    from detectors.quality import ColumnQuality, QualityReport, check_quality
    from detectors.stattests import STATTESTS, Sample, StatTest, get_stattest

_WHERE = {
    "ColumnDrift": "drift",
    "DriftReport": "drift",
    "detect_drift": "drift",
    "detect_prediction_drift": "drift",
    "DriftOptions": "options",
    "MultivariateDrift": "multivariate",
    "domain_classifier_drift": "multivariate",
    "ColumnProfile": "profile",
    "ReferenceProfile": "profile",
    "build_profile": "profile",
    "merge_profiles": "profile",
    "ColumnQuality": "quality",
    "QualityReport": "quality",
    "check_quality": "quality",
    "STATTESTS": "stattests",
    "Sample": "stattests",
    "StatTest": "stattests",
    "get_stattest": "stattests",
}

__all__ = [
    "STATTESTS",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnQuality",
    "DriftOptions",
    "DriftReport",
    "MultivariateDrift",
    "QualityReport",
    "ReferenceProfile",
    "Sample",
    "StatTest",
    "build_profile",
    "check_quality",
    "detect_drift",
    "detect_prediction_drift",
    "domain_classifier_drift",
    "get_stattest",
    "merge_profiles",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
