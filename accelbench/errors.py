"""The one error type that user-facing code raises for bad input: the CLI prints it on one line."""


class UsageError(Exception):
    """Bad input from the user: the message names the problem and the fix, in one sentence.

    The CLI prints ``accelbench: error: <message>`` and exits with status 2, no traceback.
    """


class CellSkipped(Exception):
    """A cell that cannot run by design (for example a float model on an int8-only device)."""
