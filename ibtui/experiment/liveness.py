"""The worker's status.json writes off the training thread.

A training step on a GPU takes milliseconds; an atomic replace of status.json takes 1–10 ms on a
busy local disk and more on a shared filesystem. `StatusBeat.update` only records fields (µs);
a writer thread replaces status.json with them at most every `interval` seconds, without fsync
(liveness needs no durability), and looks at the run's cancel file after each write.
`write_now` is for what must be on disk before the run goes on (phase changes): it writes in
the caller's thread, fsynced when asked. Every write holds one lock and writes the whole current
status, so a later write never carries older fields than an earlier one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ibtui.runs.store import RunWriter


class StatusBeat:
    def __init__(self, writer: RunWriter, cancel_file: Path, interval: float = 1.0):
        self.w = writer
        self.cancel_file = cancel_file
        self.interval = interval
        self.cancelled = False  # the cancel file was seen by the last write
        self._pending: dict = {}
        self._fields = threading.Lock()  # guards _pending (held for microseconds)
        self._io = threading.Lock()  # one status.json write at a time, whole status each
        self._due = threading.Event()
        self._asked = False  # a write was asked for and not yet made
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last = -float("inf")

    def update(self, **fields) -> None:
        """Keep fields for the next write; ask for one when the last is `interval` old."""
        with self._fields:
            self._pending.update(fields)
        now = time.monotonic()
        if now - self._last >= self.interval and not self._closed:
            self._last = now
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ibtui-status",
                                                daemon=True)
                self._thread.start()
            self._asked = True
            self._due.set()

    def write_now(self, fsync: bool = True, **fields) -> None:
        """Write the kept fields and these now, in this thread."""
        with self._io:
            with self._fields:
                pending, self._pending = self._pending, {}
            self.w.set_status(fsync=fsync, **{**pending, **fields})
            self._last = time.monotonic()
            self.cancelled = self.cancel_file.exists()

    def _loop(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._asked:
                self._asked = False
                try:
                    with self._io:
                        with self._fields:
                            pending, self._pending = self._pending, {}
                        self.w.set_status(fsync=False, **pending)
                        self.cancelled = self.cancel_file.exists()
                except OSError:  # a lost liveness write: the next one, or a durable one, retries
                    pass
            if self._closed:
                return

    def close(self) -> None:
        """Stop the writer thread once the write asked for is made; none is made after."""
        self._closed = True
        self._due.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
