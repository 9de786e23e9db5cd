"""How a run stops early: a requested stop, a failure, and the fault-injection pause hook."""

from __future__ import annotations


class Stop(Exception):
    """Raised at a safe point when the run was asked to stop (state = cancelled/interrupted)."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state


class RunFailed(Exception):
    """The run cannot go on (NaN loss, NaN MI...): state = failed with this reason."""
