"""The exceptions of the retrain controller, written down once.

``RetrainError``
    The base of everything below.
``UserError``
    Something a user can fix: a bad config file, a missing data file, a bad argument. The CLI
    prints its message as one line and exits with code 2; the message says what, where and how
    to fix it.
``ConfigError(UserError)``
    A configuration file that does not validate; carries the file and the key path.
``DataError(UserError)``
    Input data that cannot be read or does not have the columns a check needs.
``RetryLater``
    A temporary failure (a service down, a lock held): the caller may try again after ``delay``
    seconds. Celery tasks map it to a retry.
``GiveUp``
    A permanent failure for this piece of work: retrying will not help.
"""

from __future__ import annotations


class RetrainError(Exception):
    """Base class of the controller's own errors."""


class UserError(RetrainError):
    """An error the user can fix; shown as one line, exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration file that does not validate."""

    def __init__(self, file: str, key_path: str, problem: str) -> None:
        self.file = file
        self.key_path = key_path
        self.problem = problem
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {problem}")


class DataError(UserError):
    """Input data that cannot be read or lacks what a check needs."""


class RetryLater(RetrainError):
    """A temporary failure; try again after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 30.0) -> None:
        super().__init__(message)
        self.delay = delay


class GiveUp(RetrainError):
    """A permanent failure; do not retry."""
