"""Exactly once: a run is trained by at most one live worker.

A run is claimed by an exclusive flock on `<run>/worker.lock`. The launcher (the local
scheduler) takes it BEFORE it starts the worker and hands the locked descriptor to the worker
process, which keeps it open for its whole life; a worker started any other way (a Slurm task,
by hand) takes it itself at start-up. The operating system drops the lock when its last holder
dies, so a claim can never outlive its worker and needs no cleaning up. Between the launch and
the worker's first status write the run still says `queued`: the lock is what tells every other
scheduler that it is taken.

The file holds one line naming the last claimant (pid, host, what it is), for messages only;
the lock, not the text, is the claim. flock works across hosts on NFS (Linux emulates it with
POSIX locks there).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import socket
import time
from pathlib import Path

from ibtui.files import lock_held

LOCK_NAME = "worker.lock"
FD_ENV = "IBTUI_CLAIM_FD"  # the launcher's locked descriptor, inherited by the worker
NOT_STARTED = 3  # worker exit status: it did not train (claimed elsewhere, or not queued)


def _open(path: Path) -> int | None:
    try:
        return os.open(Path(path) / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None


def _note(fd: int, who: str) -> None:
    """Name the claimant in the file (best effort: a full disk may refuse even this line)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {who} {time.time():.0f}\n".encode(), 0)
    except OSError:
        pass


def try_claim(path: Path, who: str = "scheduler") -> int | None:
    """Claim the run: the locked descriptor (keep it open for as long as the claim holds), or
    None when another live process holds it (or the lock file cannot be opened)."""
    fd = _open(path)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    _note(fd, who)
    return fd


def claim(path: Path, who: str = "worker", wait_s: float = 5.0) -> int | None:
    """try_claim, retried for `wait_s` seconds (a reader's probe holds the lock for an instant)."""
    deadline = time.monotonic() + wait_s
    while True:
        fd = try_claim(path, who)
        if fd is not None or time.monotonic() >= deadline:
            return fd
        time.sleep(0.1)


def inherited(path: Path) -> int | None:
    """The claim the launcher handed to this worker (FD_ENV), checked: the descriptor is open,
    is this run's lock file, and holds the lock. None when there is none or it is not valid."""
    value = os.environ.pop(FD_ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    try:
        mine = os.fstat(fd)
        there = os.stat(Path(path) / LOCK_NAME)
        if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino):
            return None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the same open file: already ours
        os.set_inheritable(fd, False)
    except OSError:
        return None
    _note(fd, "worker")
    return fd


def claimed(path: Path) -> bool:
    """Whether a live process holds the run's claim (no claim file: never claimed)."""
    return lock_held(Path(path) / LOCK_NAME)


def released(path: Path, wait_s: float = 10.0) -> bool:
    """Whether the run's claim is free, waiting up to `wait_s` for a worker that is going away
    (a killed job's worker can outlive the job's record by a moment)."""
    deadline = time.monotonic() + wait_s
    while claimed(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def claimant(path: Path) -> str:
    """The claim file's note ("pid host what time"), for messages; '' when none."""
    from ibtui.files import read_regular

    try:
        return read_regular(Path(path) / LOCK_NAME, follow=False).decode(
            "utf-8", "replace")[:200].strip()
    except OSError:
        return ""


def resume_command(path: Path) -> str:
    """`ibtui resume --runs-dir DIR RUN` for a run directory, runnable from anywhere."""
    path = Path(path).absolute()
    return f"ibtui resume --runs-dir {shlex.quote(str(path.parent))} {shlex.quote(path.name)}"
