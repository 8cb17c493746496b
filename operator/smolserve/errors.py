"""Error types shared by the library, the CLI and the operator.

The CLI maps them to exit codes: ``UsageError`` → 2 (bad arguments or input the user must
fix), any other ``SmolserveError`` → 1 (the work was attempted and failed).
"""


class SmolserveError(Exception):
    """A failure with a one-line, user-facing message."""

    exit_code = 1


class UsageError(SmolserveError):
    """Bad arguments or input: the user must change what they asked for."""

    exit_code = 2
