"""Errors a user can cause. The CLI prints them without a traceback and exits with code 2."""


class IbtuiError(Exception):
    """Base of every user-facing error: the message names the file, the place and what is allowed."""

    exit_code = 2


class SpecError(IbtuiError):
    """An experiments.toml (or composed experiment) is malformed or out of range."""


class DataError(IbtuiError):
    """A dataset is missing, damaged or unknown."""


class RunStoreError(IbtuiError):
    """A runs directory or run cannot be used (unwritable, unknown run, locked)."""
