"""One run-filter language: the CLI's --name and the app's / box select the same runs."""

from __future__ import annotations

import json

import pytest

from ibtui.runs.board import RunFilter
from ibtui.runs.filter import compile_filter, name_filter

TERMS = ["*-s1", "paper-wanet-*", "^paper-b.*s2$", "P0\\.05", "id:*-resnet18-*"]


def test_terms_glob_regex_text_and_column():
    f = compile_filter("sweep3-* attack:^b", ["attack", "id"])
    assert f({"id": "sweep3-x", "attack": "blend"})
    assert not f({"id": "sweep3-x", "attack": "wanet"})
    assert not f({"id": "a-sweep3-x", "attack": "blend"})  # a glob is on the whole value
    assert compile_filter("SWEEP", ["id"])({"id": "sweep3"})  # case-insensitive
    bad = compile_filter("a[", ["id"])
    assert bad.error and bad({"id": "xa[y"})  # not a regex: plain text
    assert "no such column" in compile_filter("foo:bar", ["id"]).error


def test_name_terms_see_the_id_and_the_experiment_name_only():
    match = RunFilter(names=["exp-?"]).matches
    assert match("r1", "done", {"name": "EXP-1"}) and match("exp-2", "done", {})
    assert not match("r1", "done", {"name": "exp-10", "attack": "exp-1"})
    assert RunFilter(names=["^r", "nothing"]).matches("r1", "done", {})  # any of them
    assert name_filter("name:^exp$")({"id": "exp", "name": "other"}) is False


@pytest.mark.parametrize("term", TERMS)
def test_cli_and_app_select_the_same_runs(tmp_path, monkeypatch, term):
    pytest.importorskip("textual")
    import asyncio

    from fixtures_runs import make_fixture_runs
    from helpers import make_app, settle, table
    from typer.testing import CliRunner

    from ibtui.cli import app as cli

    monkeypatch.chdir(tmp_path)
    runs = make_fixture_runs(tmp_path)
    r = CliRunner().invoke(cli, ["ls", "--runs-dir", str(runs), "--format", "json",
                                 "--name", term], env={"IBTUI_RUNS_DIR": None})
    assert r.exit_code == 0, r.output
    by_cli = {x["run"] for x in json.loads(r.stdout)["runs"]}

    async def by_app() -> set[str]:
        app = make_app(runs)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            await pilot.press("slash", *term, "enter")
            await settle(pilot)
            return set(table(app).visible_ids)

    assert by_cli and by_cli == asyncio.run(by_app())
