"""`ibtui run`'s follow loop: one bar per run for a few runs; one overall bar (plus a bar per
running run) for many; runs that ended are read once."""

import io
import shutil

from fixtures_runs import make_fixture_runs
from helpers import DONE
from rich.console import Console

import ibtui.progress as progress
from ibtui.runs.resources import plan_resources


def _done_runs(tmp_path, n):
    runs = make_fixture_runs(tmp_path)
    paths = []
    for i in range(n):
        dst = runs.parent / "many" / f"copy-{i}"
        shutil.copytree(runs / DONE, dst)
        paths.append(dst)
    return runs.parent / "many", paths


def _follow(runs_dir, paths, monkeypatch):
    reads = []
    real = progress._describe
    monkeypatch.setattr(progress, "_describe", lambda p: reads.append(p.name) or real(p))
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    progress.follow(runs_dir, paths, plan_resources(jobs=1, gpus="", threads=1), console,
                    detach=True)
    return out.getvalue(), reads


def test_many_runs_show_one_overall_bar(tmp_path, monkeypatch):
    runs_dir, paths = _done_runs(tmp_path, progress.MANY_BARS + 8)
    text, reads = _follow(runs_dir, paths, monkeypatch)
    assert f"{len(paths)} runs" in text and f"{len(paths)} done" in text
    assert "copy-3" not in text  # no bar per finished run
    assert sorted(reads) == sorted(p.name for p in paths)  # each ended run read once


def test_a_few_runs_show_a_bar_each(tmp_path, monkeypatch):
    runs_dir, paths = _done_runs(tmp_path, 3)
    text, _ = _follow(runs_dir, paths, monkeypatch)
    assert all(p.name in text for p in paths)
