"""The drift tests by evidently's names: which column kinds each accepts and how its score reads,
known without loading the tests themselves (a config is validated before any statistics run).

``tests/test_stattests_contract.py`` checks that every implementation agrees with its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["numerical", "categorical"]
KINDS: tuple[Kind, ...] = ("numerical", "categorical")


@dataclass(frozen=True)
class TestInfo:
    """One test: the kinds it accepts, whether its score is a p-value (drift below the threshold)
    or a distance (drift at or above it), and evidently's default threshold."""

    name: str
    kinds: tuple[Kind, ...]
    is_pvalue: bool
    default_threshold: float


BOTH: tuple[Kind, ...] = ("numerical", "categorical")
CATALOG: dict[str, TestInfo] = {
    t.name: t
    for t in (
        TestInfo("TVD", ("categorical",), True, 0.1),
        TestInfo("anderson", ("numerical",), True, 0.1),
        TestInfo("chisquare", ("categorical",), True, 0.05),
        TestInfo("cramer_von_mises", ("numerical",), True, 0.1),
        TestInfo("ed", ("numerical",), False, 0.1),
        TestInfo("fisher_exact", ("categorical",), True, 0.1),
        TestInfo("g_test", ("categorical",), True, 0.1),
        TestInfo("hellinger", BOTH, False, 0.1),
        TestInfo("jensenshannon", BOTH, False, 0.1),
        TestInfo("kl_div", BOTH, False, 0.1),
        TestInfo("ks", ("numerical",), True, 0.05),
        TestInfo("mannw", ("numerical",), True, 0.05),
        TestInfo("psi", BOTH, False, 0.1),
        TestInfo("t_test", ("numerical",), True, 0.05),
        TestInfo("wasserstein", ("numerical",), False, 0.1),
        TestInfo("z", ("categorical",), True, 0.05),
    )
}


class UnknownStatTest(ValueError):
    """A test name that is not registered; the message lists the valid names."""


def test_info(name: str) -> TestInfo:
    """The catalog entry of ``name``, or :class:`UnknownStatTest` listing the valid names.

    >>> test_info("psi").is_pvalue, test_info("ks").kinds
    (False, ('numerical',))
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownStatTest(f"unknown stattest {name!r}; valid names: {', '.join(sorted(CATALOG))}") from None
