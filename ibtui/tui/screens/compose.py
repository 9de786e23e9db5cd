"""Compose screen: a form for one experiment (a grid of runs); launch it or save it to TOML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Button, Collapsible, Footer, Input, Label, Select, SelectionList, Static
from textual.widgets._toggle_button import ToggleButton
from textual.widgets.option_list import OptionDoesNotExist
from textual.worker import get_current_worker

from ibtui.errors import IbtuiError
from ibtui.runs.launch import Launched, launch
from ibtui.runs.slurm import KINDS
from ibtui.spec import FIELDS, RunSpec
from ibtui.tui.form import (
    FORM,
    FORM_KEYS,
    START_PRESET,
    breakdown,
    build_raw,
    missing_data,
    save_experiment,
    start_text,
    start_value,
    validate,
)
from ibtui.tui.keys import back_keys
from ibtui.tui.screens.dialogs import DuplicateScreen
from ibtui.tui.widgets.bars import KeyOrderInput

FALLBACK_CHOICES = {"dataset": ["digits"], "arch": ["resnet18"], "attack": ["badnets"],
                    "mi_method": ["noise-aware"]}
SHOW_RUNS = 4


def load_choices() -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """Registry names for the choice widgets, option help per attack, and what failed to load.

    A registry that cannot be imported yet falls back to the default value for its choice
    list only; validation still uses the real registries and reports what is wrong."""
    out: dict[str, list[str]] = {}
    attack_help: dict[str, str] = {}
    problems: list[str] = []

    def attempt(key: str, load) -> None:
        try:
            out[key] = load()
        except Exception as e:  # noqa: BLE001 - a half-written registry must not break the form
            problems.append(f"{key} choices unavailable ({type(e).__name__}: {e})")

    def datasets() -> list[str]:
        from ibtui.data.datasets import DATASETS

        return sorted(DATASETS)

    def models() -> list[str]:
        from ibtui.models import ARCHS

        return sorted(ARCHS)

    def attacks() -> list[str]:
        from ibtui.data.attacks import ATTACKS

        for name, cls in ATTACKS.items():
            opts = ", ".join(f"{k}={o.default!r}" for k, o in cls.options.items())
            variants = ", ".join(cls.variants)
            attack_help[name] = opts + (f"; variant: {variants}" if variants else "")
        return sorted(ATTACKS)

    def methods() -> list[str]:
        from ibtui.mi import METHODS

        return list(METHODS)

    for key, load in (("dataset", datasets), ("arch", models), ("attack", attacks),
                      ("mi_method", methods)):
        attempt(key, load)
    return {**FALLBACK_CHOICES, **out}, attack_help, problems


def _default_list(key: str) -> list[str]:
    """The names a choice list starts with checked (the quick preset's, else the default)."""
    return list(start_value(key))


def _default_shown(key: str) -> str:
    """A field's built-in default as the help line names it."""
    d = FIELDS[key].default
    if key == "mi_epochs":
        return "the paper's, scaled to epochs"
    if isinstance(d, (list, dict)) and not d:
        return "none"
    if isinstance(d, list):
        return ", ".join(map(str, d))
    if isinstance(d, bool):
        return "true" if d else "false"
    return str(d) if d != "" else "none"


class CheckList(SelectionList[str]):
    """A SelectionList whose boxes read ✔ when checked and stay empty when not (the stock
    list draws the same X for both, told apart by colour only)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return strip
        segments = list(strip)
        if len(segments) < 2 or segments[1].text != ToggleButton.BUTTON_INNER:
            return strip
        mark = "✔" if option.value in self._selected else " "
        segments[1] = Segment(mark, segments[1].style, segments[1].control)
        return Strip(segments, strip.cell_length)


class ComposeScreen(Screen):
    TITLE = "New experiment"
    BINDINGS: ClassVar[list[BindingType]] = [
        *back_keys("compose", "back", "Back", "Back to the runs (the form keeps its values)"),
        Binding("ctrl+r,f5", "launch", "Launch", key_display="^r", id="compose.launch",
                tooltip="Queue the runs and make sure a scheduler is running (asks first)"),
        Binding("ctrl+o,f2", "save", "Save", key_display="^o", id="compose.save",
                tooltip="Append the experiment to the TOML file below (validated first)"),
        Binding("ctrl+t", "reset", "Reset", show=False, id="compose.reset",
                tooltip="Reset every field to where a new form starts: the quick preset "
                        "(asks first)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.choices = dict(FALLBACK_CHOICES)
        self.attack_help: dict[str, str] = {}
        self.specs: list[RunSpec] = []
        self.error = ""
        self.warning = ""
        self.last_saved = ""  # "created" or "appended": what the last save did
        self.validated = 0
        self._stale = False
        self._timer: Timer | None = None  # how many validations have been shown (tests wait on it)
        self.busy = False
        self._initial_picks: dict[str, set[str]] = {}
        self.executor_kind = "local"  # the app's choice from compose() on; the select changes it

    # --- layout ------------------------------------------------------------------------
    def _row(self, f) -> ComposeResult:
        with Horizontal(classes="form-row", id=f"row-{f.key}"):
            yield Label(f.label, classes="form-label")
            with Vertical(classes="form-field"):
                if f.kind == "select":
                    opts = [(Text(c), c) for c in self.choices[f.key]]
                    yield Select(opts, value=start_value(f.key), allow_blank=False,
                                 id=f"f-{f.key}", compact=True)
                elif f.kind == "multi":
                    on = _default_list(f.key)
                    # what shows checked before the registries load (the fallback lists)
                    self._initial_picks[f.key] = {c for c in on if c in self.choices[f.key]}
                    yield CheckList(*[(Text(c), c, c in on) for c in self.choices[f.key]],
                                    id=f"f-{f.key}", classes="multi")
                else:
                    yield KeyOrderInput(start_text(f.key), placeholder=f.help,
                                        id=f"f-{f.key}", compact=True)
                if f.help and (f.kind == "multi" or f.key == "attack_options"):
                    yield Static(Text(f.help), classes="form-help", id=f"help-{f.key}")

    def compose(self) -> ComposeResult:
        self.executor_kind = self.app.executor_kind
        hint = (f"  starts from the {START_PRESET} preset · comma-separated values make a grid · "
                "same rules as experiments.toml")
        # the screen's name and the runs directory, as on every screen
        yield Static(Text.assemble(("ibtui ", "bold"), ("new experiment", "underline"),
                                   (" · ", "dim"), (self.app.sub_title, "bold"), (hint, "dim")),
                     classes="topbar")
        with VerticalScroll(id="form", can_focus=False):
            for f in FORM:
                if not f.advanced:
                    yield from self._row(f)
            with Collapsible(title="More settings", collapsed=True, id="advanced"):
                for f in FORM:
                    if f.advanced:
                        yield from self._row(f)
        with Vertical(id="compose-bottom"):
            yield Static(id="field-help")
            yield Static(id="compose-result")
            with Horizontal(id="compose-actions"):
                yield Button("Launch ^r", id="launch", compact=True)
                yield Button("Save ^o", id="save", compact=True)
                yield Label(" to ", classes="form-label-inline")
                yield KeyOrderInput(str(self.app.experiments_file), id="save-path", compact=True)
                yield Label(" runs on ", classes="form-label-inline")
                yield Select([(Text(k), k) for k in KINDS], value=self.executor_kind,
                             allow_blank=False, id="executor", compact=True,
                             tooltip="Launch sends the runs to the local scheduler or to Slurm "
                                     "(settings: the [executor] table of the file)")
        yield Footer(compact=True, show_command_palette=False)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Light up the focused field's label (`:focus-within` does not follow focus moves
        between sibling rows)."""
        focused = None
        for row in self.query(".form-row"):
            inside = event.widget in row.query("*")
            row.set_class(inside, "-focused")
            if inside:
                focused = FORM_KEYS.get((row.id or "").removeprefix("row-"))
        self.show_field_help(focused)

    def show_field_help(self, f) -> None:
        """The focused field's meaning, from the spec's field table (FIELDS[key].help)."""
        text = Text()
        if f is not None:
            text = Text.assemble((f"{f.key}: ", "bold"), (f.help, ""),
                                 (f"  (default {_default_shown(f.key)})", "dim"))
        self.query_one("#field-help", Static).update(text)

    def on_mount(self) -> None:
        self.query_one("#f-name", Input).focus()  # tab then walks the fields in order
        self.show_field_help(FORM_KEYS["name"])
        self._load_choices()
        self.revalidate()

    # --- choices -----------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="compose-choices",
          description="loading the registries")
    def _load_choices(self) -> None:
        choices, attack_help, problems = load_choices()
        self.app.call_from_thread(self._set_choices, choices, attack_help)
        if problems:
            self.app.call_from_thread(self.app.notify, "\n".join(problems),
                                      title="Some choices fall back to defaults",
                                      severity="warning")

    def _set_choices(self, choices: dict[str, list[str]], attack_help: dict[str, str]) -> None:
        self.choices, self.attack_help = choices, attack_help
        for key in ("dataset", "arch"):
            sel = self.query_one(f"#f-{key}", Select)
            value = sel.value
            sel.set_options([(Text(c), c) for c in choices[key]])
            if value in choices[key]:
                sel.value = value
        for key in ("attack", "mi_method"):
            sl = self.query_one(f"#f-{key}", SelectionList)
            picked = set(sl.selected)
            if not picked or picked == self._initial_picks.get(key):  # untouched: the start
                picked = set(_default_list(key))
            sl.clear_options()
            sl.add_options([(Text(c), c, c in picked) for c in choices[key]])
        self.update_attack_help()
        self.revalidate()

    def update_attack_help(self) -> None:
        picked = self.query_one("#f-attack", SelectionList).selected
        lines = [f"{a}: {self.attack_help[a]}" for a in picked if a in self.attack_help]
        self.query_one("#help-attack_options", Static).update(Text(
            "\n".join(lines) or FORM[[f.key for f in FORM].index("attack_options")].help))

    # --- the experiment ----------------------------------------------------------------
    def values(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        texts: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for f in FORM:
            w = self.query_one(f"#f-{f.key}")
            if isinstance(w, SelectionList):
                order = self.choices[f.key]
                multi[f.key] = sorted(w.selected, key=lambda c: order.index(c)
                                      if c in order else len(order))
            elif isinstance(w, Select):
                texts[f.key] = "" if w.value is Select.BLANK else str(w.value)
            else:
                texts[f.key] = w.value
        return texts, multi

    def raw(self) -> dict:
        texts, multi = self.values()
        return build_raw(texts, multi)

    def raw_or_show(self, title: str = "") -> dict | None:
        """The form's raw experiment, or None with its error shown (and notified under
        `title` when one is given)."""
        try:
            return self.raw()
        except IbtuiError as e:
            self.show_result([], str(e))
            if title:
                self.notify(str(e), title=title, severity="error")
            return None

    @on(Input.Changed)
    @on(Select.Changed)
    @on(SelectionList.SelectedChanged)
    def _changed(self, event) -> None:
        if getattr(event, "input", None) is not None and event.input.id == "save-path":
            return
        if isinstance(event, SelectionList.SelectedChanged):
            self.update_attack_help()
        self.revalidate()

    def revalidate(self) -> None:
        """Validate soon: typing restarts the wait, so a burst of keys validates once."""
        if not self.is_mounted:
            return
        self._stale = True
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.15, self._validate_now, name="validate")

    @property
    def validation_pending(self) -> bool:
        """A change not yet validated, or a validation still running (tests wait on this)."""
        return self._stale or any(w.group == "compose-validate" and not w.is_finished
                                  for w in self.workers)

    def _validate_now(self) -> None:
        self._stale = False
        self._timer = None
        raw = self.raw_or_show()
        if raw is not None:
            self._validate(raw)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compose-validate",
          description="validating the experiment")
    def _validate(self, raw: dict) -> None:
        try:
            specs, error = validate(raw), ""
        except IbtuiError as e:
            specs, error = [], str(e)
        warnings = []
        for ds, root in dict.fromkeys((s.values.get("dataset"), s.values.get("data_root"))
                                      for s in specs if not s.values.get("download")):
            why = missing_data(str(ds), root)
            if why:
                warnings.append(why)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_result, specs, error, " ".join(warnings))

    def show_result(self, specs: list[RunSpec], error: str, warning: str = "") -> None:
        self.specs, self.error, self.warning = specs, error, warning
        self.validated += 1
        out = self.query_one("#compose-result", Static)
        field = re.search(r"field '([a-z_]+)", error)
        for row in self.query(".form-row"):
            row.set_class(field is not None and row.id == f"row-{field.group(1)}", "-invalid")
        if error:
            out.update(Text.assemble(("✖ ", "bold red"), (error, "red")))
            return
        n = len(specs)
        mark = ("⚠ ", "bold yellow") if warning else ("✔ ", "bold green")
        t = Text.assemble(mark, (breakdown(specs), "bold"), ": ")
        t.append(", ".join(s.run_id for s in specs[:SHOW_RUNS]))
        if n > SHOW_RUNS:
            t.append(f" … and {n - SHOW_RUNS} more", style="dim")
        if warning:
            t.append("\n" + warning, style="yellow")
        out.update(t)

    # --- launch and save ---------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "launch":
            self.action_launch()
        elif event.button.id == "save":
            self.action_save()

    def action_back(self) -> None:
        self.dismiss()

    def action_reset(self) -> None:
        """ctrl+t: every field back to its default, after asking (it loses what was typed)."""
        from ibtui.tui.screens.dialogs import ConfirmScreen

        self.app.push_screen(
            ConfirmScreen("Reset the form?", f"Every field goes back to where a new form starts "
                          f"(the {START_PRESET} preset); what you typed is lost.", yes="Reset",
                          no="Keep it", danger=True),
            lambda ok: self.reset_fields() if ok else None)

    def reset_fields(self) -> None:
        for f in FORM:
            w = self.query_one(f"#f-{f.key}")
            if isinstance(w, Input):
                w.value = start_text(f.key)
            elif isinstance(w, Select):
                w.value = start_value(f.key)
            elif isinstance(w, SelectionList):
                w.deselect_all()
                for v in _default_list(f.key):
                    if v in self.choices[f.key]:
                        w.select(v)

    def action_launch(self) -> None:
        """ctrl+r, F5 or the Launch button: ask (naming the runs), then launch. The launch
        itself is `_launch` (validation, duplicates, the launch service)."""
        raw = self.raw_or_show("Not launched")
        if raw is None:
            return
        if self.error and not self.validation_pending:
            self._launch(raw)  # it reports the error; nothing to ask about
            return
        from ibtui.tui.screens.dialogs import ConfirmScreen

        what = ("the experiment the form describes" if self.validation_pending
                else breakdown(self.specs))
        ids = [s.run_id for s in self.specs[:3]] if not self.validation_pending else []
        more = len(self.specs) - len(ids) if ids else 0
        body = (f"{what}" + (f": {', '.join(ids)}{f' and {more} more' if more else ''}"
                             if ids else "")
                + f".\nThey are created in {self.app.sub_title} and queued at once.")
        self.app.push_screen(
            ConfirmScreen("Launch these runs?", body, yes="Launch", no="Back to the form"),
            lambda ok: self._launch(raw) if ok else None)

    def existing_runs(self, specs: list[RunSpec]) -> dict[str, str]:
        """{run id the spec would get: the existing run of the same configuration and seed}
        among the runs the app shows (a relaunch of it measures nothing new)."""
        from ibtui.analysis.replicas import config_key

        have = {(r.config, r.seed): r.id for r in self.app.snapshot.rows if r.config}
        out = {}
        for spec in specs:
            hit = have.get((config_key(spec.values), spec.values.get("seed")))
            if hit is not None:
                out[spec.run_id] = hit
        return out

    def ask_duplicates(self, found: dict[str, str], verb: str, go) -> None:
        """Ask before launching or saving runs that repeat existing ones; `go()` proceeds."""
        names = []
        for run_id in found:
            n = 1
            while (self.app.runs_dir / (run_id if n == 1 else f"{run_id}-{n}")).exists():
                n += 1
            names.append(run_id if n == 1 else f"{run_id}-{n}")
        shown = list(found.values())
        k = len(found)
        body = (f"{k} of these run{'s' * (k != 1)} already exist{'s' * (k == 1)} with the same "
                f"configuration and seed: {', '.join(shown[:3])}"
                f"{f' and {k - 3} more' if k > 3 else ''}.\nA copy repeats the same seed: it "
                "measures nothing new, and the leaderboard counts it once, as a duplicate. "
                "For another replica, change the seed.\n"
                f"{'Launching' if verb == 'Launch' else 'Running the saved file'} would make: "
                f"{', '.join(names[:3])}"
                f"{f' and {k - 3} more' if k > 3 else ''}.")

        def answer(choice: str | None) -> None:
            if choice == "copies":
                go()
            elif choice == "open":
                self.dismiss()
                self.app.open_run(shown[0])

        self.app.push_screen(DuplicateScreen(f"{verb}: these runs exist already", body,
                                             f"{verb} copies"), answer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compose-launch",
          description="launching the experiment")
    def _launch(self, raw: dict, confirmed: bool = False) -> None:
        app = self.app
        try:
            specs = validate(raw)
        except IbtuiError as e:
            app.call_from_thread(self.show_result, [], str(e))
            app.call_from_thread(app.notify, str(e), title="Not launched", severity="error")
            return
        found = {} if confirmed else self.existing_runs(specs)
        if found:
            app.call_from_thread(self.ask_duplicates, found, "Launch",
                                 lambda: self._launch(raw, confirmed=True))
            return
        try:  # the launch service `ibtui run` uses: local scheduler or one Slurm job array
            cfg = app.executor_settings(self.executor_kind)
            done = launch(specs, app.runs_dir, cfg, source=str(app.executor_file or app.experiments_file),
                          start_scheduler=app.scheduler_starter())
        except IbtuiError as e:
            app.call_from_thread(self.show_result, [], str(e))
            app.call_from_thread(app.notify, str(e), title="Not launched", severity="error")
            return
        app.call_from_thread(self._launched, done)

    def _launched(self, done: Launched) -> None:
        text = done.message()
        self.app.notify(text[0].upper() + text[1:] + ".", title="Launched")
        self.app.poll_now()
        if self.app.screen is self:
            self.dismiss()

    @on(Select.Changed, "#executor")
    def _executor_changed(self, event: Select.Changed) -> None:
        self.executor_kind = str(event.value)

    def action_save(self) -> None:
        raw = self.raw_or_show("Not saved")
        if raw is None:
            return
        path = Path(self.query_one("#save-path", Input).value.strip() or "experiments.toml")
        self._save(raw, path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compose-save",
          description="saving the experiment")
    def _save(self, raw: dict, path: Path, confirmed: bool = False) -> None:
        app = self.app
        if not confirmed:
            try:
                found = self.existing_runs(validate(raw))
            except IbtuiError:
                found = {}  # save_experiment reports the error below
            if found:
                app.call_from_thread(self.ask_duplicates, found, "Save",
                                     lambda: self._save(raw, path, confirmed=True))
                return
        existed = path.is_file() and path.stat().st_size > 0
        try:
            runs = save_experiment(raw, path, when=app.clock())
        except IbtuiError as e:
            app.call_from_thread(self.show_result, [], str(e))
            app.call_from_thread(app.notify, str(e), title="Not saved", severity="error")
            return
        n = len(runs)
        what = (f"appended; the file now holds {n} run{'s' * (n != 1)}" if existed
                else f"created with {n} run{'s' * (n != 1)}")
        self.last_saved = "appended" if existed else "created"
        app.call_from_thread(app.notify, f"{path}: {what} and loads cleanly.", title="Saved")
