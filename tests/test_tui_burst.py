"""Keys sent in one burst through a real terminal (tmux) keep their order in the app's text
fields: `BSpace z` edits `abc` to `abz`, `C-u t i n y` leaves `tiny`. Textual 8.2.8 (the
newest release) runs an Input's editing binding only after the characters that followed it
in the same read; ibtui's inputs run their own bindings when the key arrives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")
if shutil.which("tmux") is None:
    pytest.skip("needs tmux", allow_module_level=True)

SOCKET = f"ibtui-burst-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True,
                          check=True).stdout


def wait_for(pattern: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = tmux("capture-pane", "-p", "-t", "s")
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not on screen:\n{text}")
        time.sleep(0.2)


def test_editing_keys_in_a_burst_keep_their_order(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    ibtui = Path(sys.executable).with_name("ibtui")
    cmd = f"{ibtui} tui --runs-dir {runs}" if ibtui.exists() else \
        f"{sys.executable} -m ibtui.cli tui --runs-dir {runs}"
    # the server must not hold pytest's pipes: no inherited stdio, a session of its own
    subprocess.run(["tmux", "-L", SOCKET, "new-session", "-d", "-s", "s", "-x", "120", "-y",
                    "24", "-c", str(tmp_path), cmd], check=True, start_new_session=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        tmux("set-option", "-s", "escape-time", "10")
        wait_for(r"no runs yet")
        tmux("send-keys", "-t", "s", "/")
        time.sleep(0.5)
        tmux("send-keys", "-t", "s", "-l", "abc")
        wait_for(r"filter .abc.")
        # each send-keys call below reaches the app in one read: a burst
        tmux("send-keys", "-t", "s", "BSpace", "z")
        wait_for(r"filter .abz.", timeout=10)
        tmux("send-keys", "-t", "s", "C-u", "t", "i", "n", "y")
        wait_for(r"filter .tiny.", timeout=10)
        tmux("send-keys", "-t", "s", "Left", "Left", "X")
        wait_for(r"filter .tiXny.", timeout=10)
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, check=False)
