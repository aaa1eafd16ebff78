"""Statistical drift tests with evidently's names, defaults and directions, one per module."""

from detectors.stattests.base import KINDS, Kind, Sample, StatTest, TestNotApplicable, TestResult
from detectors.stattests.registry import STATTESTS, UnknownStatTest, auto_stattest_name, get_stattest

__all__ = [
    "KINDS",
    "STATTESTS",
    "Kind",
    "Sample",
    "StatTest",
    "TestNotApplicable",
    "TestResult",
    "UnknownStatTest",
    "auto_stattest_name",
    "get_stattest",
]
