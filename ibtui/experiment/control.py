"""How a run stops early: a requested stop, a failure, and the fault-injection pause hook."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Stop(Exception):
    """Raised at a safe point when the run was asked to stop (state = cancelled/interrupted)."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state


class RunFailed(Exception):
    """The run cannot go on (NaN loss, NaN MI...): state = failed with this reason."""


def pause_point(name: str, run_dir: Path) -> None:
    """Fault-injection hook for tests: IBTUI_PAUSE_AT=<name> makes the worker write
    <run>/paused-<name> and sleep there, so a test can SIGKILL it at a known point."""
    wanted = os.environ.get("IBTUI_PAUSE_AT", "")
    if wanted and wanted == name:
        (run_dir / f"paused-{name}").write_text(str(os.getpid()))
        while True:
            time.sleep(0.2)
