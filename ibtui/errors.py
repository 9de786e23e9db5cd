"""Errors a user can cause. The CLI prints them without a traceback and exits with code 2."""


def one_line(text: str) -> str:
    """`text` with every non-printable character (newlines, tabs, NUL, other control and
    separator characters) written as its Python escape, so that it reads as one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class IbtuiError(Exception):
    """Base of every user-facing error: the message names the file, the place and what is allowed."""

    exit_code = 2


class SpecError(IbtuiError):
    """An experiments.toml (or composed experiment) is malformed or out of range.

    The message is always one line: user text that reaches it (a key, a name, a value) has its
    control characters escaped."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)


class DataError(IbtuiError):
    """A dataset is missing, damaged or unknown."""


class RunStoreError(IbtuiError):
    """A runs directory or run cannot be used (unwritable, unknown run, locked)."""
