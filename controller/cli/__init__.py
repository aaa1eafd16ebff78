"""``retrainctl``: the command line of the retrain controller.

Errors a user can cause (bad config, missing data, unknown model) print one line on stderr and
exit with code 2; a temporary outage exits with 75 (try again later); nothing prints a traceback.
One module per command group; :mod:`controller.cli.root` gathers them, with the commands other
packages add through the ``retrainctl.commands`` entry point. ``app``, ``main`` and ``run`` load
it on first use, so that a package adding commands can import :mod:`controller.cli.common`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.cli.root import app, main, run

__all__ = ["app", "main", "run"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from controller.cli import root

    return getattr(root, name)
