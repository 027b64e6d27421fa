"""Errors the CLI turns into one line on stderr: exit status 2 (UsageError) or 1 (RunFailed)."""


class UsageError(Exception):
    """Bad input from the user: a wrong name, value, file or environment.

    The message is one line that names the problem and what would be valid.
    """


class RunFailed(Exception):
    """A run ended by an unexpected exception (its ``__cause__``).

    ``reason`` is one line; ``traceback`` the full text, which the runner also
    kept in the run directory's ``failure.json``.
    """

    def __init__(self, message: str, reason: str, traceback: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.traceback = traceback
