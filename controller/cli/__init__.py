"""``retrainctl``: the command line of the retrain controller.

Errors a user can cause (bad config, missing data, unknown model) print one line on stderr and
exit with code 2; a temporary outage exits with 75 (try again later); nothing prints a traceback.
One module per command group; :mod:`controller.cli.app` gathers them.
"""

from controller.cli.app import app, main, run

__all__ = ["app", "main", "run"]
