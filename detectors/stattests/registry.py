"""Every test by evidently's name, and evidently's automatic choice of a test per column."""

from __future__ import annotations

from detectors.stattests.anderson import Anderson
from detectors.stattests.base import Kind, Sample, StatTest
from detectors.stattests.catalog import UnknownStatTest
from detectors.stattests.chisquare import ChiSquare
from detectors.stattests.cramer_von_mises import CramerVonMises
from detectors.stattests.energy import EnergyDistance
from detectors.stattests.fisher_exact import FisherExact
from detectors.stattests.g_test import GTest
from detectors.stattests.hellinger import Hellinger
from detectors.stattests.jensenshannon import JensenShannon
from detectors.stattests.kl_div import KLDiv
from detectors.stattests.ks import KS
from detectors.stattests.mannw import MannWhitney
from detectors.stattests.psi import PSI
from detectors.stattests.t_test import TTest
from detectors.stattests.tvd import TVD
from detectors.stattests.wasserstein import Wasserstein
from detectors.stattests.z import ZTest

STATTESTS: dict[str, type[StatTest]] = {
    cls.name: cls
    for cls in (
        KS,
        ChiSquare,
        ZTest,
        PSI,
        JensenShannon,
        Wasserstein,
        KLDiv,
        Hellinger,
        CramerVonMises,
        Anderson,
        MannWhitney,
        TTest,
        EnergyDistance,
        TVD,
        FisherExact,
        GTest,
    )
}

# evidently's size boundary between "small" references (p-value tests) and large ones (distances)
SMALL_REFERENCE = 1000


def get_stattest(name: str, threshold: float | None = None) -> StatTest:
    """The test registered under ``name``.

    >>> get_stattest("psi")
    PSI(threshold=0.1)
    >>> get_stattest("nope")
    Traceback (most recent call last):
    ...
    detectors.stattests.catalog.UnknownStatTest: unknown stattest 'nope'; valid names: TVD, anderson, chisquare, cramer_von_mises, ed, fisher_exact, g_test, hellinger, jensenshannon, kl_div, ks, mannw, psi, t_test, wasserstein, z
    """  # noqa: E501
    try:
        cls = STATTESTS[name]
    except KeyError:
        raise UnknownStatTest(f"unknown stattest {name!r}; valid names: {', '.join(sorted(STATTESTS))}") from None
    return cls(threshold)


def n_unique_union(ref: Sample, cur: Sample, at_most: int) -> int:
    """Distinct values over both samples, counted only as far as ``at_most + 1`` is needed."""
    if ref.n_unique > at_most:
        return ref.n_unique
    seen = set(ref.values.tolist())
    for v in cur.values.tolist():
        seen.add(v)
        if len(seen) > at_most:
            break
    return len(seen)


def auto_stattest_name(ref: Sample, cur: Sample, kind: Kind) -> str:
    """Evidently's rule: by reference size (non-null values), column kind and distinct values
    over both windows.

    >>> s = Sample.from_values(list(range(10)) * 200, "numerical")
    >>> auto_stattest_name(s, s, "numerical"), auto_stattest_name(s, s, "categorical")
    ('wasserstein', 'jensenshannon')
    >>> small = Sample.from_values([0, 1] * 10, "numerical")
    >>> auto_stattest_name(small, small, "numerical")
    'z'
    """
    n_values = n_unique_union(ref, cur, 5)
    if ref.n <= SMALL_REFERENCE:
        if kind == "numerical" and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == "numerical" and n_values > 5:
        return "wasserstein"
    return "jensenshannon"
