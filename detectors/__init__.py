"""Statistics only: drift tests, reference profiles, data quality and performance metrics."""

from detectors.drift import ColumnDrift, DriftOptions, DriftReport, detect_drift
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
    "QualityReport",
    "ReferenceProfile",
    "Sample",
    "StatTest",
    "build_profile",
    "check_quality",
    "detect_drift",
    "get_stattest",
    "merge_profiles",
]
