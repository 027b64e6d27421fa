"""Errors the CLI turns into one line on stderr and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: a wrong name, value, file or environment.

    The message is one line that names the problem and what would be valid.
    """
