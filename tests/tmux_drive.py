#!/usr/bin/env python3
"""Drive the real app in tmux the way a user does, saving every captured screen as text.

    python tests/tmux_drive.py [--out DIR] [--size 80x24] [--no-live] [--keys-only]
                               [--round-two-only] [--round-three-only] [--timeout 900]

Phase 1 (fixture): a copy of the fixture runs directory (every state, damaged runs); the app
is opened with `ibtui tui --runs-dir`, and keys are sent with `tmux send-keys`: the runs
table, a `/` filter, a run's MI and training plots, the leaderboard with two runs compared,
the workers, help, the quit confirmation.
Phase 2 (keys): the fixture again; on every screen (runs, leaderboard, workers, run with each
tab, compose, help, dialogs) the command palette is opened and searched, and every key of the
key table (ibtui/tui/keys.py) is pressed; after each key the app must still be running and
no traceback may be on screen.
Phase 2b (round two): the MI chart's ceiling, bound band and ▲ markers, v and b, the
compare overlay's labels, + hiding the leaderboard's plot, the replicas view, G across pages,
F1 from the filter field, an unknown filter column, a runs dir that does not exist yet.
Phase 2c (round three): a resumed run's Log tab shows the `resumed from epoch N` rule where
the log continues; the Workers and Run headers name the screen and the runs directory; a fresh
compose form is the quick preset, and tags, momentum, mi_equal_n and threads are set in it
(their help line from the spec's field table); ctrl+r asks first, and n and Esc launch nothing.
Phase 3 (live, unless --no-live): an empty runs directory; `n` opens the form, a tiny
experiment is typed in and launched with ctrl+r, confirmed with y; a real detached scheduler
runs it while the runs table is captured; the finished run is opened and its MI plots captured.

Screens land in DIR (default $TMPDIR/ibtui-tmux-screens/) as NN-name.txt (plain) and NN-name.ansi
(with colours: `cat` them in a terminal). Needs tmux. Uses its own tmux server socket, so it
never touches the user's sessions. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOCKET = f"ibtui-drive-{os.getpid()}"
SESSION = "ibtui"


def tmux(*args: str, check: bool = True) -> str:
    out = subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True,
                         check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


class Driver:
    def __init__(self, out: Path, width: int, height: int):
        self.out = out
        self.width, self.height = width, height
        self.n = 0

    def start(self, command: str, cwd: Path) -> None:
        for attempt in range(5):  # a server that was just killed may still be going away
            try:
                tmux("new-session", "-d", "-s", SESSION, "-x", str(self.width), "-y",
                     str(self.height), "-c", str(cwd), command)
                break
            except RuntimeError:
                if attempt == 4:
                    raise
                time.sleep(1.0)
        tmux("set-option", "-t", SESSION, "remain-on-exit", "on")
        # tmux holds a lone ESC for 500 ms by default to tell it from alt+key; a user in tmux
        # sets this low too (see the README), so Escape then a letter stays two keys
        tmux("set-option", "-s", "escape-time", "10")

    def stop(self) -> None:
        tmux("kill-server", check=False)
        time.sleep(0.5)

    def screen(self, colours: bool = False) -> str:
        return tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", SESSION)

    def keys(self, *keys: str, pause: float = 0.4) -> None:
        for k in keys:
            tmux("send-keys", "-t", SESSION, k)
            time.sleep(0.3 if k == "Escape" else 0.08)  # a lone ESC must not merge into alt+
        time.sleep(pause)

    def type(self, text: str, pause: float = 0.4) -> None:
        tmux("send-keys", "-t", SESSION, "-l", text)
        time.sleep(pause)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        """The screen once `pattern` (a regex) appears on it; raises after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text):
                time.sleep(0.3)  # let the frame finish drawing
                return self.screen()
            if time.monotonic() > deadline:
                self.capture("timeout")
                raise TimeoutError(f"{pattern!r} did not appear within {timeout:.0f}s")
            time.sleep(0.25)

    def alive(self) -> bool:
        return tmux("display-message", "-p", "-t", SESSION, "#{pane_dead}").strip() == "0"

    def check(self, where: str) -> None:
        """The app still runs and shows no traceback; raises (after a capture) otherwise."""
        text = self.screen()
        if not self.alive() or re.search(r"Traceback|MarkupError|Error in|╭─+ Traceback", text):
            self.capture(f"crash-{re.sub(r'[^a-z0-9]+', '-', where.lower())}")
            raise RuntimeError(f"the app crashed or died at: {where}")

    def press(self, where: str, *keys: str, pause: float = 0.3) -> None:
        """Send keys one by one, checking the app after each."""
        for k in keys:
            self.keys(k, pause=pause)
            self.check(f"{where}: {k}")

    def filter(self, where: str, query: str, *then: str) -> None:
        """Open the filter field with `/`, type `query`, then press `then` (checked)."""
        self.press(where, "/")
        self.type(query)
        self.press(where, *then)

    def palette(self, where: str, query: str = "s") -> None:
        """Open the command palette, search it, close it; the app must survive."""
        self.keys("C-p")
        self.wait_for(r"Search for commands|[Ss]earch", timeout=15)
        self.check(f"{where}: palette")
        self.type(query, pause=0.8)
        self.check(f"{where}: palette search {query!r}")
        self.capture(f"palette-{where}")
        self.keys("Escape", pause=0.5)
        self.check(f"{where}: palette closed")

    def capture(self, name: str) -> Path:
        self.n += 1
        stem = self.out / f"{self.n:02d}-{name}"
        stem.with_suffix(".txt").write_text(self.screen())
        stem.with_suffix(".ansi").write_text(self.screen(colours=True))
        print(f"  captured {stem.name}", flush=True)
        return stem.with_suffix(".txt")


def app_command(runs_dir: Path) -> str:
    ibtui = Path(sys.executable).with_name("ibtui")
    exe = [str(ibtui)] if ibtui.exists() else [sys.executable, "-m", "ibtui.cli"]
    return shlex.join([*exe, "tui", "--runs-dir", str(runs_dir)])


def phase_fixture(d: Driver, work: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_runs import make_fixture_runs

    runs = make_fixture_runs(work / "fixture", now=time.time())  # live to the real clock
    d.start(app_command(runs), runs.parent)
    d.wait_for(r"13 runs")
    d.wait_for(r"running")
    d.capture("runs")
    d.keys("/")
    d.type("wanet")
    d.keys("Enter")
    d.wait_for(r"filter .wanet.")
    d.capture("runs-filtered")
    d.keys("Escape")
    d.keys("s", "s", "s", "s")  # s walks the sort through the shown columns: run, state, …
    d.capture("runs-sorted")
    d.keys("S")  # reverse it
    d.capture("runs-sorted-reversed")
    d.keys("/")
    d.type("state:done")
    d.keys("Enter", "Down", "Enter")
    d.wait_for(r"I\(X;T\)")
    d.capture("run-mi")
    d.keys("2")
    d.wait_for(r"clean acc")
    d.capture("run-training")
    d.keys("3")
    d.wait_for(r"stealth score")
    d.capture("run-summary")
    d.keys("Escape", "Escape", "l")
    d.wait_for(r"leaderboard")
    d.keys("Space", "Space")
    d.wait_for(r"2 selected")
    d.capture("leaderboard-compare")
    d.keys("Escape", "Escape", "Escape", "w")
    d.wait_for(r"Running now")
    d.capture("workers")
    d.keys("?")
    d.wait_for(r"Keys ·")
    d.capture("help")
    d.keys("Escape", "q")  # q on workers goes back to the runs; q there asks
    d.wait_for(r"13 runs")
    d.keys("q")
    d.wait_for(r"cancels nothing")
    d.capture("quit-confirm")
    d.keys("y", pause=1.0)
    d.stop()


MOVE = ("j", "k", "G", "g", "End", "Home", "PageDown", "PageUp", "Down", "Up")


def phase_keys(d: Driver, work: Path) -> None:
    """The palette on every screen and every key of the key table, without a crash."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_runs import make_fixture_runs

    runs = make_fixture_runs(work / "keys", now=time.time())
    d.start(app_command(runs), runs.parent)
    d.wait_for(r"13 runs")
    # Runs: palette, movement, filter, sort (s, S, o picker), mark, help, open, back
    d.palette("runs", "filter")
    d.press("runs", *MOVE)
    d.filter("runs filter", "state:done", "Enter", "Escape")
    d.press("runs sort", "s", "S", "o")
    d.wait_for(r"Sort by")
    d.palette("sort-picker")
    d.press("sort picker", "j", "k", "Enter")
    d.press("runs sort", "o", "Escape", "q")  # q in the picker closes it
    d.press("runs mark", "Space", "Space", "a", "Escape", "Escape")
    d.press("runs help", "?")
    d.wait_for(r"Keys ·")
    d.palette("help")
    d.press("help", "j", "k", "G", "g", "PageDown", "PageUp")
    d.capture("keys-help-runs")
    d.press("help", "q")
    # a run: every tab, movement inside Summary and Log, back with q
    d.filter("runs", "state:done", "Enter", "Home", "Enter")
    d.wait_for(r"I\(X;T\)")
    d.palette("run")
    for tab in ("1", "2", "3", "4"):
        d.press(f"run tab {tab}", tab, *MOVE)
    d.press("run", "m")
    d.capture("keys-run-log")
    d.press("run back", "q")
    d.wait_for(r"13 runs")
    d.press("runs", "Escape")
    # the cancel dialog: its own footer, y/n shown
    d.filter("runs", "state:running", "Enter", "Home", "c")
    d.wait_for(r"Cancel \d+ run")
    d.palette("confirm")
    d.capture("keys-confirm")
    d.press("confirm", "n", "Escape")
    # Leaderboard: palette, movement, sort, group + enter on a group row, checks, export
    d.press("runs", "l")
    d.wait_for(r"leaderboard")
    d.palette("leaderboard", "sort")
    d.press("leaderboard", *MOVE)
    d.press("leaderboard", "s", "S", "o", "Escape", "Space", "x")
    d.filter("leaderboard", "arch:resnet", "Enter", "Escape")
    d.press("leaderboard", "i")
    d.wait_for(r"Sanity checks")
    d.palette("checks")
    d.capture("keys-checks")
    d.press("checks", "i")
    d.press("leaderboard", "e")
    d.wait_for(r"Export")
    d.palette("export")
    d.press("export", "c")
    d.wait_for(r"written to")
    d.press("leaderboard", "v", "Home", "Enter", "Enter", "t", "b")
    d.capture("keys-leaderboard-grouped")
    d.press("leaderboard", "?")
    d.press("leaderboard help", "Escape", "q")
    d.wait_for(r"13 runs")
    # Workers
    d.press("runs", "w")
    d.wait_for(r"Running now")
    d.palette("workers")
    d.press("workers", *MOVE)
    d.press("workers", "q")
    d.wait_for(r"13 runs")
    # Compose: palette, tab through a few fields, space on a choice list, back
    d.press("runs", "n")
    d.wait_for(r"new experiment")
    d.palette("compose")
    d.press("compose", "Tab", "Tab", "Tab", "Tab", "Space", "Space", "j", "k")
    d.capture("keys-compose")
    d.press("compose", "Escape")
    d.wait_for(r"13 runs")
    # q on the top screen asks (runs are active); y quits
    d.press("runs", "q")
    d.wait_for(r"cancels nothing")
    d.keys("y", pause=1.0)
    d.stop()


def phase_round_two(d: Driver, work: Path) -> None:
    """Charts that say what they show, a wide leaderboard that shows more, keys that answer:
    the MI chart's ceiling, bound band and markers, v (subsets) and b (bounds); the compare
    overlay's labels; + hiding the plot; G across pages; F1 from the filter field; c on an
    empty runs directory that does not exist yet."""
    sys.path.insert(0, str(ROOT / "tests"))
    import json

    from fixtures_runs import make_fixture_runs

    runs = make_fixture_runs(work / "round2", now=time.time())
    done = "paper-badnets-digits-resnet18-p0.1-s0"
    path = runs / done / "mi.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    for r in recs:  # the backdoor's first I(X;T) at its ceiling: drawn ▲
        if r["term"] == "xt" and r["role"] == "backdoor" and r["epoch"] == recs[0]["epoch"]:
            r["value"], r["at_ceiling"] = 6.88, True
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    d.start(app_command(runs), runs.parent)
    d.wait_for(r"13 runs")
    d.filter("runs", "state:done", "Enter", "Home", "Enter")
    d.wait_for(r"ceiling log N")
    text = d.wait_for(r"▲")
    if "╌╌╌" not in text or "I(X;T)" not in text or "nats" not in text:
        d.capture("round2-mi-missing")
        raise RuntimeError("the MI chart lacks its ceiling line, title or unit")
    d.capture("round2-mi-ceiling")
    d.press("run subsets", "v")
    d.wait_for(r"target class only")
    d.capture("round2-mi-target-only")
    d.press("run subsets", "v", "v", "b")
    d.wait_for(r"lower bounds hidden")
    d.press("run bounds", "b", "2")
    d.wait_for(r"clean acc · ASR · RA")
    d.capture("round2-training")
    d.press("run", "Escape", "Escape", "Escape", "l")
    d.wait_for(r"leaderboard")
    d.press("leaderboard", "Space", "Space")
    d.wait_for(r"paper \w+ \w+ p")  # the overlay's legend names the experiment
    d.capture("round2-compare")
    if d.width >= 120:  # the plot pane is beside the table: + gives the table the width
        d.press("leaderboard", "+")
        d.wait_for(r"Plot hidden")
        d.wait_for(r"checks")
        d.capture("round2-no-plot")
        d.press("leaderboard", "+")
    d.press("leaderboard", "R")
    d.wait_for(r"configurations ranked by mean score")
    d.capture("round2-replicas")
    d.press("leaderboard", "R", "Escape", "Escape")  # the selection, then back to Runs
    d.wait_for(r"13 runs")
    d.press("runs", "G")
    d.press("runs", "/")
    d.press("runs filter", "F1")
    d.wait_for(r"Keys ·")
    d.press("help", "Escape", "Escape", "Escape")
    d.press("runs", "/")
    d.type("foo:bar")
    d.wait_for(r"foo: no such column")
    d.capture("round2-unknown-column")
    # editing keys and characters in one burst (one send-keys: one read) keep their order
    tmux("send-keys", "-t", SESSION, "BSpace", "z")
    d.wait_for(r"filter .foo:baz.", timeout=10)
    tmux("send-keys", "-t", SESSION, "C-u", "t", "i", "n", "y")
    d.wait_for(r"filter .tiny.", timeout=10)
    d.capture("round2-burst")
    d.press("runs", "Enter", "Escape", "w")
    d.wait_for(r"Running now")
    d.press("workers", "j", "j", "j")  # past the last worker: on into the waiting runs
    d.capture("round2-workers-crossed")
    d.press("workers", "k", "q")
    d.wait_for(r"13 runs")
    d.press("runs", "q")
    d.wait_for(r"cancels nothing")
    d.keys("y", pause=1.0)
    d.stop()
    # a runs directory that does not exist yet: said so; c says no run is highlighted
    d.start(app_command(work / "round2-missing" / "runs"), work)
    d.wait_for(r"does\s+not\s+exist\s+yet")
    d.press("empty", "c")
    d.wait_for(r"No run highlighted")
    d.capture("round2-missing-dir")
    d.keys("q", pause=1.0)
    d.stop()


def focused_field(text: str) -> str:
    """The field the compose form's help line names (`key: <its help>`, under the form), or
    "" when the focus is on no field (a title, a button)."""
    from ibtui.tui.form import FORM_KEYS

    for line in reversed(text.splitlines()[-8:]):
        m = re.match(r" *([a-z_]+): ", line)  # a wrapped help or an attack's options: no key
        if m and m.group(1) in FORM_KEYS:
            return m.group(1)
    return ""


def tab_to(d: Driver, key: str, limit: int = 40) -> None:
    """Tab through the compose form until `key` has the focus, one Tab at a time: each waits
    for the help line to change (a Tab sent before the last one landed would skip a field)."""
    for _ in range(limit):
        now = focused_field(d.screen())
        if now == key:
            time.sleep(0.3)
            if focused_field(d.screen()) == key:  # and it stays there
                return
            continue
        d.keys("Tab", pause=0.1)
        deadline = time.monotonic() + 3.0
        while focused_field(d.screen()) == now and time.monotonic() < deadline:
            time.sleep(0.1)
    d.capture(f"no-field-{key}")
    raise RuntimeError(f"the compose form never focused {key!r}")


def phase_round_three(d: Driver, work: Path) -> None:
    """A resumed run's log, headers that name their screen, the compose form's new fields and
    start, and ctrl+r that asks."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_runs import make_fixture_runs

    runs = make_fixture_runs(work / "round3", now=time.time())
    crashed = "paper-badnets-digits-resnet18-p0.2-s2"
    with open(runs / crashed / "worker.log", "a") as f:  # a second attempt, as a worker writes
        f.write(f"[worker] {crashed} starting: 1 threads\n"
                "[worker] ── resumed from epoch 4 (its checkpoint) ──\n"
                "[epoch 5/10] loss 0.3100 acc 0.9000 asr 0.9500 ra 0.0400 2.0s\n")
    d.start(app_command(runs), runs.parent)
    d.wait_for(r"13 runs")
    # the Log tab of a resumed run: a rule where the log continues
    d.filter("runs", "state:crashed", "Enter", "Home", "Enter")
    d.wait_for(r"ibtui run · ")
    d.press("run", "4")
    text = d.wait_for(r"resumed from epoch 4")
    line = next(ln for ln in text.splitlines() if "resumed from epoch 4" in ln)
    if "[worker]" in line or "──" not in line:
        d.capture("round3-log-no-rule")
        raise RuntimeError(f"the resumed-from line is not drawn as a rule: {line!r}")
    d.capture("round3-log-resumed")
    d.press("run", "Escape", "Escape")  # back, then the filter
    d.wait_for(r"13 runs")
    d.press("runs", "w")
    d.wait_for(r"ibtui workers · ")
    d.capture("round3-workers-header")
    d.press("workers", "q")
    d.wait_for(r"13 runs")
    # compose: a fresh form is the quick preset (2 runs of 12 epochs on digits)
    d.press("runs", "n")
    d.wait_for(r"new experiment")
    text = d.wait_for(r"✔ 2 attacks = 2 runs", timeout=120)  # registries load first
    if "quick-badnets" not in text or "24 epochs" not in text:
        d.capture("round3-compose-not-quick")
        raise RuntimeError("a fresh form is not the quick preset")
    d.capture("round3-compose-quick")
    tab_to(d, "tags")
    d.wait_for(r"labels to filter runs by")  # the spec's own help
    d.type("pilot")
    d.wait_for(r"tags +pilot")
    d.keys("Tab")  # the "More settings" title (no help line): open it
    deadline = time.monotonic() + 5.0
    while focused_field(d.screen()) and time.monotonic() < deadline:
        time.sleep(0.1)
    d.keys("Enter")
    d.wait_for(r"▼ More settings")
    for key, value in (("momentum", "0.8"), ("mi_equal_n", "false"), ("threads", "1")):
        tab_to(d, key)
        d.keys("C-u", pause=0.1)
        d.type(value, pause=0.2)
        d.wait_for(rf"{key.replace('_', ' ').replace('mi ', 'MI ')} +{value}")
        d.check(f"compose {key}")
    d.wait_for(r"✔ 2 attacks = 2 runs")  # still valid
    d.capture("round3-compose-fields")
    # ctrl+r asks first; n and Esc launch nothing
    for decline in ("n", "Escape"):
        d.press("compose", "C-r")
        d.wait_for(r"Launch these runs\?")
        if decline == "n":
            d.capture("round3-launch-confirm")
        d.press("confirm", decline)
        d.wait_for(r"✔ 2 attacks")
        if "Launch these runs?" in d.screen():
            raise RuntimeError(f"{decline} did not close the launch confirmation")
    d.press("compose", "Escape")
    d.wait_for(r"13 runs")
    if "quick-" in d.screen():
        d.capture("round3-launched-anyway")
        raise RuntimeError("a declined launch created runs")
    d.press("runs", "q")
    d.wait_for(r"cancels nothing")
    d.keys("y", pause=1.0)
    d.stop()


def phase_live(d: Driver, work: Path, timeout: float) -> None:
    runs = work / "live" / "runs"
    runs.parent.mkdir(parents=True)
    d.start(app_command(runs), runs.parent)
    d.wait_for(r"no runs yet")
    d.capture("empty")
    d.keys("n")
    d.wait_for(r"new experiment")
    d.wait_for(r"✔ 2 attacks = 2 runs", timeout=120)  # the quick preset, once the registries load
    # the name field has focus; tab walks the form in order
    for key, value in (("name", "tiny"), ("width", "4"), ("attack", None), ("epochs", "1"),
                       ("mi_epochs", "1"), ("mi_options", "k = 2, max_samples = 64")):
        tab_to(d, key)
        if key == "attack":  # adap-blend, badnets, blend, …: untick blend (the 3rd)
            d.keys("Home", "j", "j", "Space", pause=0.3)
            d.wait_for(r"✔ 1 run")
            continue
        d.keys("C-u", pause=0.1)
        d.type(value, pause=0.2)
    d.wait_for(r"✔ 1 run.*: tiny-badnets-digits-resnet18-p0.1-s0")
    d.capture("compose-tiny")
    d.keys("C-r")
    d.wait_for(r"Launch these runs\?")
    d.capture("launch-confirm")
    d.keys("y")
    d.wait_for(r"tiny|badnets")
    d.capture("launched")
    deadline = time.monotonic() + timeout
    seen_running = False
    while time.monotonic() < deadline:
        text = d.screen()
        if not seen_running and re.search(r"● running|● \d", text):
            d.capture("live-running")
            seen_running = True
        if re.search(r"✔ done|✔ 1|✖ failed|✖ crashed", text):
            break
        time.sleep(2.0)
    else:
        d.capture("live-timeout")
        raise TimeoutError("the tiny run did not finish")
    d.capture("live-finished")
    d.keys("Enter")
    d.wait_for(r"I\(X;T\)")
    time.sleep(1.0)
    d.capture("live-run-mi")
    d.keys("4")
    d.capture("live-run-log")
    d.keys("Escape", "q", pause=1.0)
    if "Quit ibtui?" in d.screen():
        d.keys("y", pause=1.0)
    d.stop()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=Path(tempfile.gettempdir()) / "ibtui-tmux-screens")
    ap.add_argument("--size", default="80x24")
    ap.add_argument("--no-live", action="store_true", help="skip the real tiny experiment")
    ap.add_argument("--keys-only", action="store_true",
                    help="only phase 2: the palette on every screen and every key")
    ap.add_argument("--round-two-only", action="store_true",
                    help="only phase 2b: charts, layout and keys of the second round")
    ap.add_argument("--round-three-only", action="store_true",
                    help="only phase 2c: a resumed run's log, headers, compose and ctrl+r")
    ap.add_argument("--timeout", type=float, default=900, help="seconds for the live run")
    a = ap.parse_args(argv)
    if shutil.which("tmux") is None:
        print("tmux is not installed (apt-get install -y tmux)", file=sys.stderr)
        return 2
    width, height = (int(x) for x in a.size.split("x"))
    a.out.mkdir(parents=True, exist_ok=True)
    for old in a.out.glob("[0-9][0-9]-*"):
        old.unlink()
    d = Driver(a.out, width, height)
    with tempfile.TemporaryDirectory(prefix="ibtui-drive-") as tmp:
        work = Path(tmp)
        try:
            if a.round_two_only:
                print(f"charts, layout and keys (round two), {a.size}:", flush=True)
                phase_round_two(d, work)
                return 0
            if a.round_three_only:
                print(f"resumed log, headers, compose and ctrl+r (round three), {a.size}:",
                      flush=True)
                phase_round_three(d, work)
                return 0
            if not a.keys_only:
                print(f"fixture runs, {a.size}:", flush=True)
                phase_fixture(d, work)
            print(f"every key and the palette on every screen, {a.size}:", flush=True)
            phase_keys(d, work)
            print(f"charts, layout and keys (round two), {a.size}:", flush=True)
            phase_round_two(d, work)
            print(f"resumed log, headers, compose and ctrl+r (round three), {a.size}:",
                  flush=True)
            phase_round_three(d, work)
            if not (a.no_live or a.keys_only):
                print("live tiny experiment:", flush=True)
                phase_live(d, work, a.timeout)
        finally:
            d.stop()
    print(f"screens in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
