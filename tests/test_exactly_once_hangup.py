"""A lost terminal never orphans the queue of a foreground `ibtui run`.

`ibtui run` draws its live bars on a real pseudo-terminal, which the test closes while the first
of two runs trains (as sshd does when the client goes away, or tmux kill-session):
  - as its controlling terminal: the kernel hangs the session up (SIGHUP) and every later write
    fails with EIO, in whichever order they reach the process;
  - as its output only (no controlling terminal): no signal at all, only EIO on output.
Either way the queued run must still run, and the first must be trained once."""

import fcntl
import os
import select
import struct
import subprocess
import termios
import threading
import time

import pytest
from helpers import ibtui_cmd, quick_spec

from ibtui.progress import Terminal
from ibtui.runs.scheduler import scheduler_alive
from ibtui.runs.store import list_runs


def env():
    out = {k: v for k, v in os.environ.items()
           if k not in ("IBTUI_PAUSE_AT", "IBTUI_THREADS", "COLUMNS", "LINES")}
    out.update(OMP_NUM_THREADS="1", TERM="xterm-256color")
    return out


class Pty:
    """`cmd` on a fresh pseudo-terminal (120x40) whose output the test reads until it closes it."""

    def __init__(self, cmd, controlling: bool):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

        def make_controlling():  # in the child, a new session's leader: the pty becomes its tty
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env(),
                                     start_new_session=True,
                                     preexec_fn=make_controlling if controlling else None)
        os.close(slave)
        self.output = bytearray()
        self._open = True
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        while self._open:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready and self._open:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.output += data

    def close(self):
        """The terminal goes away (the master side closes)."""
        self._open = False
        self._reader.join()
        os.close(self.master)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("controlling", [True, False], ids=["hangup-and-eio", "eio-only"])
def test_closed_terminal_never_orphans_the_queue(tmp_path, controlling):
    spec = tmp_path / "h.toml"
    spec.write_text(quick_spec("h", "[4, 8]"))
    runs = tmp_path / "runs"
    term = Pty(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs), "--jobs", "1",
                              "--threads", "1", "--gpus", ""], controlling)
    try:
        t = time.monotonic()
        while not any(r.state == "running" for r in list_runs(runs) if runs.exists()):
            assert term.proc.poll() is None, bytes(term.output).decode(errors="replace")
            assert time.monotonic() - t < 300, "no run started"
            time.sleep(0.2)
        assert b"\x1b[" in term.output  # the live bars were drawn on the terminal
        term.close()
        orphaned_since = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = [r.state for r in list_runs(runs)]
            if len(states) == 2 and all(s == "done" for s in states):
                break
            # nobody left to run the queue: the foreground died without handing it over
            if term.proc.poll() is not None and not scheduler_alive(runs) \
                    and "running" not in states:
                orphaned_since = orphaned_since or time.monotonic()
                assert time.monotonic() - orphaned_since < 10, \
                    f"queue orphaned after the terminal closed: {states}"
            else:
                orphaned_since = None
            time.sleep(0.5)
        else:
            pytest.fail(f"runs not done: {[r.state for r in list_runs(runs)]}")
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        term.proc.wait()
    for r in list_runs(runs):
        assert (r.path / "worker.log").read_text().count(" starting:") == 1


def test_terminal_output_errors_are_swallowed_and_noted():
    """What Rich writes through: EIO/EPIPE mark the terminal lost; nothing is raised."""

    class Dead:
        def write(self, s):
            raise OSError(5, "Input/output error")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def isatty(self):
            return True

    t = Terminal(Dead())
    assert t.write("x") == 1 and t.lost == "EIO"
    t.flush()  # dropped once lost
    t2 = Terminal(Dead())
    t2.flush()
    assert t2.lost == "EPIPE"
