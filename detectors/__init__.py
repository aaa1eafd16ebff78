"""Statistics only: drift tests, reference profiles, data quality and performance metrics."""

from detectors.drift import ColumnDrift, DriftOptions, DriftReport, detect_drift, detect_prediction_drift
from detectors.multivariate import MultivariateDrift, domain_classifier_drift
from detectors.profile import ColumnProfile, ReferenceProfile, build_profile, merge_profiles
from detectors.quality import ColumnQuality, QualityReport, check_quality
from detectors.stattests import STATTESTS, Sample, StatTest, get_stattest

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
