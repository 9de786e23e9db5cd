"""Scheduler: runs queued runs of a runs directory in worker processes, up to `jobs` at once.

One scheduler per runs directory, enforced with an flock on `<runs>/.scheduler.lock` (the OS
drops it when the scheduler dies, so a stale lock is simply taken over). Each worker starts in a
new process session (it survives an SSH hangup) with its own CUDA_VISIBLE_DEVICES slot. What the
scheduler runs is published in `<runs>/.scheduler.json` for `ibtui ls` and the app.

Exactly once: a run is claimed (ibtui.runs.claim: an flock on `<run>/worker.lock`) before its
worker is started, and the worker inherits the claim and holds it for its life. A scheduler
launches only runs it could claim, so a run whose worker is still starting (status.json still
`queued`) is never launched a second time, whoever launched the first and whether it still
lives; claimed runs count as busy slots.

A full disk: the scheduler launches nothing while its runs directory has less than
MIN_FREE_BYTES free (the queue waits, and resumes when space returns); a write of its own that
the disk refuses is retried on the next tick, never fatal.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ibtui.faults as faults
from ibtui.errors import RunStoreError
from ibtui.files import TolerantStream, fsync_dir, lock_held
from ibtui.runs import claim
from ibtui.runs.resources import THREADS_ENV, Resources, plan_resources
from ibtui.runs.store import (
    FINISHED,
    RACY_NS,
    atomic_write_json,
    atomic_write_text,
    effective_state,
    pid_alive,
    read_json,
    run_dirs,
)
from ibtui.spec import RunSpec, experiment_to_toml

LOCK = ".scheduler.lock"
INFO = ".scheduler.json"
START_WAIT_S = 15.0  # ensure_scheduler waits this long at most for its scheduler's lock
MIN_FREE_BYTES = 1 << 20  # below this a runs directory is full: no worker is started


def disk_free(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on path's filesystem (None: unknown)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def waiting_for_space(runs_dir: Path) -> str | None:
    """Why queued runs of runs_dir are not started (the disk is full), or None."""
    free = disk_free(runs_dir)
    if free is None or free >= MIN_FREE_BYTES:
        return None
    return (f"waiting for disk space: {_size(free)} free in {runs_dir} (a worker starts at "
            f"{_size(MIN_FREE_BYTES)})")


def check_runs_dir(runs_dir: Path) -> Path:
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        probe = runs_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RunStoreError(f"{runs_dir}: runs directory is not writable ({e.strerror}); "
                            "choose another with --runs-dir") from None
    return runs_dir


def _claim_run_dir(runs_dir: Path, run_id: str) -> Path:
    """An empty directory under a name nobody else has: mkdir is atomic, so two `ibtui run`
    of the same spec at once get `<id>` and `<id>-2` instead of racing on one name."""
    n = 1
    while True:
        path = runs_dir / (run_id if n == 1 else f"{run_id}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def check_scheduler_files(runs_dir: Path) -> None:
    """Refuse, before anything is created, a runs directory whose scheduler files cannot be
    used: a lock or info file that is a link, a directory or another special file."""
    for name in (LOCK, INFO):
        p = Path(runs_dir) / name
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RunStoreError(f"{p}: cannot be read ({e.strerror}); allowed: a regular file "
                                "or none") from None
        if not stat.S_ISREG(st.st_mode):
            from ibtui.files import kind_of

            raise RunStoreError(f"{p}: {kind_of(st.st_mode)}; allowed: a regular file or none "
                                "(remove it; the scheduler writes it)")


def create_runs(specs: list[RunSpec], runs_dir: Path, executor: str = "local",
                settings: dict | None = None) -> list[Path]:
    """A queued run directory per spec (spec.toml + status.json), all or nothing.

    Every run is first written into a hidden staging directory; only when all are written do
    they move into place (rename over a freshly claimed empty directory, atomic). A failure
    while staging leaves nothing behind and nothing for a scheduler to pick up."""
    runs_dir = check_runs_dir(runs_dir)
    if executor == "local":
        check_scheduler_files(runs_dir)
    staged: list[tuple[RunSpec, Path]] = []
    try:
        for i, spec in enumerate(specs):
            tmp = Path(tempfile.mkdtemp(prefix=f".creating-{os.getpid()}-{i}-", dir=runs_dir))
            staged.append((spec, tmp))
            atomic_write_text(tmp / "spec.toml", experiment_to_toml(spec.values, "[experiment]"))
            atomic_write_json(tmp / "status.json", {
                "state": "queued", "created": time.time(), "source": spec.source,
                "phase": "queued", "executor": executor, **({executor: settings} if settings else {})})
    except OSError as e:
        for _, tmp in staged:
            shutil.rmtree(tmp, ignore_errors=True)
        raise RunStoreError(f"{runs_dir}: could not create the runs ({e.strerror or e}); "
                            "nothing was created") from None
    out = []
    for spec, tmp in staged:
        path = _claim_run_dir(runs_dir, spec.run_id)
        os.replace(tmp, path)
        out.append(path)
    fsync_dir(runs_dir)  # the renames survive a crash
    return out


def set_queued(path: Path) -> None:
    """Put a crashed/failed/interrupted/cancelled run back in the queue. Its spec.toml is not
    read here: resume (ibtui.runs.launch) checks every run's spec before queueing any."""
    status, _ = read_json(path / "status.json")
    status = status or {}
    if effective_state(status) == "running":
        raise RunStoreError(f"{path.name}: still running (pid {status.get('pid')}); cancel it first")
    if not claim.released(path):
        raise RunStoreError(f"{path.name}: a live worker still holds it (pid host what since: "
                            f"{claim.claimant(path)}); cancel it first")
    if status.get("state") == "done":
        raise RunStoreError(f"{path.name}: already done; nothing to resume")
    try:
        (path / "cancel").unlink()
    except FileNotFoundError:
        pass
    status.update(state="queued", error=None, phase="queued", resumed=time.time())
    atomic_write_json(path / "status.json", status)


def request_cancel(path: Path) -> None:
    """Ask a run to stop: a queued run is cancelled at once, a running worker at its next safe point."""
    status, _ = read_json(path / "status.json")
    status = status or {}
    state = effective_state(status)
    if state in FINISHED:
        raise RunStoreError(f"{path.name}: already {state}")
    if state == "crashed":  # nothing runs: a cancel would only relabel the crash
        raise RunStoreError(f"{path.name}: crashed, nothing runs to cancel; allowed: resume it "
                            f"({claim.resume_command(path)}) or leave it")
    atomic_write_text(path / "cancel", str(time.time()), fsync=False)  # replaces a link, never
    # writes through one
    if status.get("executor") == "slurm" and state != "running":
        from ibtui.runs.slurm import cancel_jobs  # a pending job leaves the cluster's queue;

        cancel_jobs([path])  # a running one stops at its next safe point, like a local worker
    if state != "running":
        status.update(state="cancelled", error="cancelled by user", ended=time.time())
        atomic_write_json(path / "status.json", status)


@dataclass
class Worker:
    path: Path
    proc: subprocess.Popen
    gpu: str | None
    since: float = field(default_factory=time.time)


class Scheduler:
    def __init__(self, runs_dir: Path, resources: Resources | None = None,
                 only: set[str] | None = None):
        self.runs_dir = check_runs_dir(runs_dir)
        self.res = resources or plan_resources()
        self.only = only
        self.workers: dict[str, Worker] = {}
        self._lock_fd: int | None = None
        self.stopping = 0
        self.unwritten: dict[Path, dict] = {}  # statuses the disk refused: written again each tick
        self.problem: str | None = None  # the last write of ours the disk refused
        self._said: set[str] = set()
        self._status_cache: dict[str, tuple] = {}  # run -> (status.json signature, status)
        self.waiting: str | None = None  # why queued runs are not started (a full disk)

    @property
    def jobs(self) -> int:
        return self.res.jobs

    @property
    def gpus(self) -> list[str]:
        return self.res.gpus

    # --- lock ------------------------------------------------------------------------
    def acquire(self) -> bool:
        if self._lock_fd is not None:
            return True
        try:  # never through a link: truncating would hit whatever it points to
            fd = os.open(self.runs_dir / LOCK,
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         0o644)
        except OSError as e:
            raise RunStoreError(f"{self.runs_dir / LOCK}: cannot be the scheduler's lock "
                                f"({'a symbolic link' if e.errno == errno.ELOOP else e.strerror});"
                                " allowed: a regular file or none (remove it)") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunStoreError(f"{self.runs_dir / LOCK}: not a regular file; allowed: a regular "
                                "file or none (remove it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            try:
                (self.runs_dir / INFO).unlink()
            except FileNotFoundError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def owner(self) -> bool:
        return self._lock_fd is not None

    # --- queue -----------------------------------------------------------------------
    def _statuses(self):
        """(run dir, status) of every run; a status.json is read again only when its mtime
        or size changed (a stat per run and tick: reads stay O(runs that change))."""
        seen = {}
        for de in run_dirs(self.runs_dir):  # a link is never a run (store.run_dirs)
            try:
                st = os.stat(os.path.join(de.path, "status.json"), follow_symlinks=False)
            except OSError:
                continue
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._status_cache.get(de.name)
            if cached is not None and cached[0] == sig and time.time_ns() - sig[0] > RACY_NS:
                status = cached[1]
            else:
                status, _ = read_json(Path(de.path) / "status.json")
            seen[de.name] = (sig, status)
            if status:
                yield Path(de.path), status
        self._status_cache = seen

    def queued(self) -> list[Path]:
        """Queued local runs nobody has claimed (a claimed one has a worker starting)."""
        out = []
        for p, status in self._statuses():
            if p.name in self.workers or (self.only is not None and p.name not in self.only):
                continue
            if (status.get("state") == "queued" and status.get("executor", "local") == "local"
                    and not claim.claimed(p)):
                out.append((status.get("created", 0), p))
        return [p for _, p in sorted(out)]

    def foreign_workers(self) -> int:
        """Live workers of this runs dir that this scheduler did not start (left by a scheduler
        that died or handed over, still starting or running): they hold cores/GPUs too."""
        n = 0
        for p, st in self._statuses():
            if p.name in self.workers or st.get("executor", "local") != "local":
                continue
            state = effective_state(st)
            if state == "running" or (state == "queued" and claim.claimed(p)):
                n += 1
        return n

    def free_gpu(self) -> str | None:
        used = {w.gpu for w in self.workers.values()}
        for g in self.gpus:
            if g not in used:
                return g
        return None

    def launch(self, path: Path) -> bool:
        """Claim the run, then start its worker with the claim; False when another process
        holds the claim (or the worker could not be started)."""
        lock = claim.try_claim(path, f"scheduler {os.getpid()}")
        if lock is None:
            return False
        gpu = self.free_gpu() if self.gpus else None
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        env[THREADS_ENV] = str(self.res.threads)  # the worker sets every thread pool from it
        env[claim.FD_ENV] = str(lock)
        try:
            with open(path / "worker.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "ibtui.worker", str(path)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True,  # survives the terminal / SSH session going away
                    pass_fds=(lock,),  # the claim: held by the worker from its first instant
                )
        except OSError as e:
            self._trouble(f"could not start a worker for {path}: {e}")
            return False
        finally:
            os.close(lock)  # the worker's copy holds the claim now
        self.workers[path.name] = Worker(path, proc, gpu)
        return True

    def _trouble(self, what: str) -> None:
        """Say once what went wrong (a full disk, mostly); the scheduler goes on. A message is
        said once per scheduler, whatever numbers in it change (the free bytes)."""
        key = re.sub(r"\d+", "#", what)
        if key not in self._said:
            self._said.add(key)
            print(f"[scheduler] {what}", flush=True)
        self.problem = what

    def _write_status(self, path: Path, fields: dict) -> None:
        """Update a run's status.json; what the disk refuses is written again on later ticks."""
        status, _ = read_json(path / "status.json")
        try:
            atomic_write_json(path / "status.json", dict(status or {}, **fields))
            self.unwritten.pop(path, None)
        except OSError as e:
            self.unwritten[path] = fields
            self._trouble(f"cannot write {path / 'status.json'} ({e.strerror or e}); "
                          "trying again")

    def reap(self) -> list[str]:
        """Finished workers; a worker that died without writing its outcome is marked crashed."""
        for path, fields in list(self.unwritten.items()):
            self._write_status(path, fields)
        done = []
        for name, w in list(self.workers.items()):
            code = w.proc.poll()
            if code is None:
                continue
            del self.workers[name]
            done.append(name)
            if code == claim.NOT_STARTED:
                continue  # the worker found the run taken or no longer queued: not ours to mark
            status, _ = read_json(w.path / "status.json")
            status = status or {}
            if status.get("state") in ("running", "queued"):
                how = (f"killed by {signal.Signals(-code).name}" if code < 0
                       else f"exited with code {code}")
                self._write_status(w.path, {
                    "state": "crashed", "ended": time.time(),
                    "error": f"worker {how}; see {w.path.absolute() / 'worker.log'} and resume "
                             f"with `{claim.resume_command(w.path)}`"})
        return done

    def publish(self) -> None:
        try:
            atomic_write_json(self.runs_dir / INFO, {
                "pid": os.getpid(), "host": socket.gethostname(), "jobs": self.jobs,
                "gpus": self.gpus, "threads": self.res.threads, "heartbeat": time.time(),
                "workers": [{"run": n, "pid": w.proc.pid, "gpu": w.gpu, "since": w.since}
                            for n, w in self.workers.items()],
                **({"waiting": self.waiting} if self.waiting else {}),
            })
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
                raise
            self._trouble(f"cannot write {self.runs_dir / INFO} ({e.strerror or e}); "
                          "trying again")

    def step(self) -> None:
        self.reap()
        launched = 0
        if not self.stopping:
            queue = self.queued()
            self.waiting = waiting_for_space(self.runs_dir) if queue else None
            if queue and self.waiting:
                self._trouble(self.waiting)
            elif queue:
                busy = len(self.workers) + self.foreign_workers()
                for path in queue[:max(0, self.res.slots() - busy)]:
                    launched += self.launch(path)
        self.publish()
        if launched:
            faults.hold("scheduler-launched", self.runs_dir, once=True, hidden=True)

    def stop(self, hard: bool = False) -> None:
        """First call: SIGTERM (workers stop at a safe point). Second: SIGKILL at once."""
        self.stopping += 1
        for path in self.queued():  # never started: resumable, not silently left in the queue
            self._write_status(path, {"state": "interrupted", "ended": time.time(),
                                      "error": "stopped before it started"})
        for w in self.workers.values():
            try:
                os.killpg(w.proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
            except ProcessLookupError:
                pass
        if hard:
            for w in self.workers.values():
                try:
                    w.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                status, _ = read_json(w.path / "status.json")
                status = status or {}
                if status.get("state") in ("running", "queued"):
                    self._write_status(w.path, {"state": "interrupted", "ended": time.time(),
                                                "error": "stopped at once (second Ctrl-C)"})

    def loop(self, until: Callable[[], bool] | None = None, tick: Callable[[], None] | None = None,
             poll: float = 0.5) -> None:
        """Run until the queue is empty and no worker is alive (or `until()` is true)."""
        while True:
            self.step()
            if tick is not None:
                tick()
            if not self.workers and (self.stopping or not self.queued()):
                break
            if until is not None and until():
                break
            time.sleep(poll)
        self.publish()

    def run_queue(self, tick: Callable[[], None] | None = None,
                  until: Callable[[], bool] | None = None, poll: float = 0.5) -> None:
        """loop() as the lock owner, then hand over cleanly: a run queued while this scheduler
        was deciding to stop (another `ibtui run` or the app found the lock still held and
        left its runs to us) is seen after the lock is released, and run."""
        while True:
            try:
                self.loop(until=until, tick=tick, poll=poll)
                faults.hold("scheduler-release", self.runs_dir, once=True, hidden=True)
            finally:
                self.release()
            if until is not None and until():
                return
            if self.stopping or not self.queued() or not self.acquire():
                return  # done, stopped, or another scheduler took over the queue


def scheduler_info(runs_dir: Path) -> dict | None:
    """What the live scheduler of a runs directory is running, or None if none is alive."""
    info, _ = read_json(Path(runs_dir) / INFO)
    if not info:
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        info["pid"] = pid = None
    if info.get("host") == socket.gethostname() and not pid_alive(pid):
        return None
    workers = info.get("workers")  # anyone may have written it: only well-formed entries
    info["workers"] = [w for w in workers if isinstance(w, dict) and isinstance(w.get("run"), str)
                       ] if isinstance(workers, list) else []
    return info


def scheduler_alive(runs_dir: Path) -> bool:
    """Whether a live scheduler holds the runs directory's lock."""
    return lock_held(Path(runs_dir) / LOCK)


def ensure_scheduler(runs_dir: Path, jobs: int | None = None, gpus: str | list[str] | None = None,
                     threads: int | None = None) -> int | None:
    """Start a detached scheduler (own session) unless one is alive. Returns its pid or None.
    What it leaves out (None) is planned by plan_resources, the same as `ibtui run`."""
    runs_dir = check_runs_dir(runs_dir)
    if scheduler_alive(runs_dir):
        return None
    res = plan_resources(jobs, gpus, threads)
    cmd = [sys.executable, "-m", "ibtui.runs.scheduler", str(runs_dir), "--jobs", str(res.jobs),
           "--threads", str(res.threads), "--gpus", ",".join(res.gpus)]
    log = open(runs_dir / ".scheduler.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    # until it holds the lock (or has gone), a check would take it for dead and start another
    deadline = time.monotonic() + START_WAIT_S
    while proc.poll() is None and not scheduler_alive(runs_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.pid


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m ibtui.runs.scheduler")
    ap.add_argument("runs_dir")
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--gpus", default=None, help="comma-separated; empty = CPU only")
    a = ap.parse_args(argv)
    # its log may sit on a full disk: never die of a print
    sys.stdout, sys.stderr = TolerantStream(sys.stdout), TolerantStream(sys.stderr)
    try:
        s = Scheduler(Path(a.runs_dir), plan_resources(a.jobs, a.gpus, a.threads))
    except RunStoreError as e:
        print(f"[scheduler] not started: {e}", flush=True)
        return 2
    if not s.acquire():
        print("another scheduler is running on this directory", flush=True)
        return 0
    print(f"[scheduler] pid {os.getpid()}: {s.res.describe()}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: s.stop(hard=s.stopping > 0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # own session already; never die with a terminal
    try:
        s.run_queue()
    except OSError as e:  # one line naming what failed, for the follower to show (not a loop)
        print(f"[scheduler] stopped: {e.strerror or e}: {e.filename or s.runs_dir}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
