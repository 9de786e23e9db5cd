"""Fault-injection points, the one seam the tests use to stop or break ibtui at a known place.

Production code only marks where a point is (`hold("after-epoch-1", run_dir)`,
`injected("loss-2")`); each is a dictionary lookup and does nothing unless a test sets
  IBTUI_PAUSE_AT=<name>[,<name>...]   hold: write the marker file `paused-<name>` (the process's
                                      pid) and wait there (forever, for a test to kill it, or as
                                      long as the marker exists, for a test to release it);
  IBTUI_INJECT_NAN=<name>[,<name>...] injected: True (the caller then breaks itself).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_ENV = "IBTUI_PAUSE_AT"
INJECT_ENV = "IBTUI_INJECT_NAN"

_held: set[str] = set()  # points marked once=True that this process has already held at


def _named(env: str, name: str) -> bool:
    value = os.environ.get(env)
    return bool(value) and name in value.split(",")


def hold(name: str, where: Path, *, forever: bool = False, once: bool = False,
         hidden: bool = False) -> None:
    """Park here when `name` is among IBTUI_PAUSE_AT's names: write `where`/paused-<name>
    (`.paused-<name>` if hidden: a runs directory's scans skip dot files) and wait, forever or
    until a test removes the marker; `once`: only the first time in this process."""
    if not _named(PAUSE_ENV, name) or (once and name in _held):
        return
    if once:
        _held.add(name)
    marker = Path(where) / f"{'.' if hidden else ''}paused-{name}"
    marker.write_text(str(os.getpid()))
    while forever or marker.exists():
        time.sleep(0.1)


def injected(name: str) -> bool:
    """True when a test asked for the fault `name` (IBTUI_INJECT_NAN)."""
    return _named(INJECT_ENV, name)
