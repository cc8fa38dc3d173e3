"""The one error type that user-facing code raises for bad input: the CLI prints it on one line."""


class UsageError(Exception):
    """Bad input from the user: the message names the problem and the fix, in one sentence.

    The CLI prints ``accelbench: error: <message>`` and exits with status 2, no traceback.
    """


class CellSkipped(Exception):
    """A cell that cannot run by design (for example a float model on an int8-only device)."""


def failure_reason(exc: BaseException) -> str:
    """One line: a UsageError's own message, else the type and the first non-blank line."""
    # The first non-blank line: some messages (numpy's ImportError) start with blank lines.
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return text if isinstance(exc, UsageError) else f"{type(exc).__name__}: {text}"


def first_line(err: BaseException) -> str:
    """An error's first line, at most 300 characters (its type's name when it has no message)."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
