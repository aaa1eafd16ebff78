"""Statistical drift tests with evidently's names, defaults and directions, one per module.

The names below load on first use (PEP 562): reading the test catalog
(:mod:`detectors.stattests.catalog`) to validate a config loads no statistics library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.stattests.base import Sample, StatTest, TestNotApplicable, TestResult
    from detectors.stattests.catalog import KINDS, Kind, UnknownStatTest
    from detectors.stattests.registry import STATTESTS, auto_stattest_name, get_stattest

_WHERE = {
    "KINDS": "catalog",
    "Kind": "catalog",
    "UnknownStatTest": "catalog",
    "Sample": "base",
    "StatTest": "base",
    "TestNotApplicable": "base",
    "TestResult": "base",
    "STATTESTS": "registry",
    "auto_stattest_name": "registry",
    "get_stattest": "registry",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
