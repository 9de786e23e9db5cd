"""Run screen: MI curves, accuracy/ASR and class loss over epochs, summary and worker log."""

from __future__ import annotations

import re
from typing import ClassVar

from rich.console import Group
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static, TabbedContent, TabPane

from ibtui.fmt import num, rate
from ibtui.tui.model import fmt_duration, sanity_lines
from ibtui.tui.poller import RunDetail, Snapshot
from ibtui.tui.screens.dialogs import Scroll
from ibtui.tui.widgets.bars import run_line
from ibtui.tui.widgets.plots import (
    SUBSET_VIEWS,
    TERM_LABEL,
    Chart,
    acc_series,
    acc_title,
    class_loss_series,
    legend,
    mi_methods,
    mi_series,
)

# the line a resumed worker writes into worker.log (ibtui.experiment.checkpoint.RESUMED_LINE;
# not imported: it would load torch into the app), whoever resumed the run
RESUMED = re.compile(r"\[worker\] ── resumed from epoch (\d+)\b")


def phases_text(ph) -> Text | None:
    """`early 1–2 · transition 4 · compression 6–8 · convergence 10` from summary['phases']."""
    if not isinstance(ph, dict):
        return None
    spans = ph.get("phases") if isinstance(ph.get("phases"), dict) else None
    if spans is None:
        return Text("not detected", style="dim")
    out = Text()
    for name, span in spans.items():
        if name == "compression" and ph.get("compression_observed") is False:
            continue  # a span by epoch only: the line below says no compression was observed
        if out:
            out.append(" · ")
        if isinstance(span, (list, tuple)) and len(span) == 2 and span[0] != span[1]:
            where = f"epochs {span[0]}–{span[1]}"
        elif isinstance(span, (list, tuple)) and span:
            where = f"epoch {span[0]}"
        else:
            where = str(span)
        out.append(str(name), style="bold")
        out.append(f" {where}")
    extra = []
    if ph.get("peak_epoch") is not None:
        extra.append(f"peak at epoch {ph['peak_epoch']}")
    if "compression_observed" in ph:
        extra.append("compression observed" if ph["compression_observed"]
                     else "no compression observed")
    if ph.get("method"):
        extra.append(f"from {ph['method']}")
    if extra:
        out.append("\n" + ", ".join(extra), style="dim")
    return out


def alarm_parts(v: dict | None) -> list:
    """The backdoor alarm: verdict line and suspicion per class as bars, the
    suspected class highlighted once the alarm fires; nothing before the first checkpoint."""
    from ibtui.analysis.alarm import suspicion_bars

    bars = suspicion_bars(v)
    if not bars:
        return []
    head = Text("\nBackdoor alarm", style="bold")
    if v.get("no_verdict"):
        head.append(f": no verdict: {v['no_verdict']} (the model did not learn its clean "
                    "task)", style="bold yellow")
    elif v.get("poisoned"):
        head.append(f": class {v.get('top_class')} suspected (p {v.get('p')}, first at epoch "
                    f"{v.get('first_epoch')})", style="bold red")
    else:
        head.append(f": no alarm (p {v.get('p')}, epoch {v.get('epoch')})", style="dim")
    out: list = [head]
    for c, bar, hot in bars:
        out.append(Text.assemble((f"{c:>3} ", "bold"), (bar, "bold red" if hot else "")))
    return out


def seeds_text(group) -> Text:
    """`across 3 seeds (0, 1, 2): score 0.200 ± 0.248 · D_XT … (mean ± 95% t-interval)`."""
    seeds = ", ".join(map(str, sorted(group.seeds))) or "–"
    iv = group.metrics.get("score")
    n = iv.n if iv is not None else 0
    out = Text.assemble(("Across seeds", "bold"),
                        f" (this configuration, {n} finished of {len(group.runs)} runs; "
                        f"seeds {seeds}): ")
    for key, name in (("score", "score"), ("d_xt", "D_XT"), ("d_ty", "D_TY"),
                      ("clean_acc", "acc"), ("asr", "ASR")):
        iv = group.metrics.get(key)
        out.append(f"{name} ", style="bold")
        out.append(("–" if iv is None else iv.text()) + ("  " if key != "asr" else ""))
    out.append("  (mean ± half-width of the 95% t-interval)", style="dim")
    if group.duplicates:
        k = len(group.duplicates)
        out.append(f"\n{k} duplicate run{'s' * (k != 1)} (same seed as an earlier run) counted "
                   "once", style="yellow")
    if group.set_aside:
        out.append(f"\nnot counted: {'; '.join(f'{r}: {w}' for r, w in group.set_aside.items())}",
                   style="yellow")
    return out


def validity_text(row) -> Text | None:
    """`valid ✔ · rank 2 · ties #3` or `✖ set aside: backdoor not learned (ASR 0.10 < 0.9)`
    for a ranked row (ibtui.tui.model.ranked_rows); None while it is not judged."""
    if row is None or row.valid is None:
        return None
    if row.valid:
        out = Text.assemble(("valid ✔", "bold green"), " backdoor and clean task learned")
        if row.rank is not None:
            out.append(f" · rank {row.rank}")
            if row.ties:
                out.append(" · ties " + " ".join(f"#{t}" for t in row.ties[:6]), style="yellow")
    else:
        out = Text.assemble(("✖ set aside, not ranked: ", "bold red"), row.why)
    if row.ceiling:
        out.append("\n⚠ part of the MI values the score was computed from sat at their "
                   "ceiling (lower bounds)", style="yellow")
    return out


def variant_name(variant) -> str:
    """An attack variant as the README and `ibtui attacks list` name it: the stored `default`
    is every attack's `authors` variant (the paper's code)."""
    return "authors" if variant in (None, "", "default") else str(variant)


def attack_options_text(opts: dict) -> str:
    """`variant authors · size=5, colour=red, …`: the variant by its user-facing name first,
    then the resolved options."""
    rest = ", ".join(f"{a}={b}" for a, b in opts.items() if a != "variant")
    return f"variant {variant_name(opts.get('variant'))}" + (f" · {rest}" if rest else "")


def summary_renderable(d: RunDetail, boot: dict | None = None, seeds=None,
                       ranked=None) -> Group:
    """The Summary tab. boot: the run's within-run bootstrap (ibtui.analysis.stealth.
    run_intervals); seeds: its configuration across seeds (replicas.Group) or None; ranked:
    the run's row with its validity (ibtui.tui.model.ranked_rows) or None."""
    from ibtui.analysis.stealth import bootstrap_label, interval_text

    s = d.summary or {}
    boot = boot or {}
    parts: list = []
    if not s:
        why = ("written when the run finishes" if d.row.state in ("queued", "running")
               else "no summary.json")
        parts.append(Text(f"No summary yet ({why}).", style="dim"))
    else:
        t = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        t.add_column(style="bold")
        t.add_column(justify="right")
        t.add_column(style="bold")
        t.add_column(justify="right")
        method = (s.get("stealth") or {}).get("method") or s.get("mi_method") or ""
        pairs = [
            ("stealth score", interval_text(s.get("score"), boot.get("score_interval")),
             "clean acc", num(s.get("clean_acc"))),
            ("D_XT", interval_text(s.get("d_xt"), boot.get("d_xt_interval")), "ASR",
             num(s.get("asr"))),
            ("D_TY", interval_text(s.get("d_ty"), boot.get("d_ty_interval")), "ASR (all)",
             num(s.get("asr_all"))),
            ("MI method", str(method), "RA", num(s.get("ra"))),
            ("poisoned", str(s.get("n_poison", "–")), "PSNR", num(s.get("psnr"), 2)),
            ("backdoor subset", str(s.get("n_backdoor", "–")), "SSIM", num(s.get("ssim"))),
            ("wall time", fmt_duration(s.get("wall_seconds")), "LPIPS",
             num(s.get("lpips"))),
        ]
        for row in pairs:
            t.add_row(*row)
        parts.append(t)
        parts.append(Text("score, D_XT, D_TY: " + bootstrap_label(boot or None), style="dim"))
        verdict = validity_text(ranked)
        if verdict is not None:
            parts.append(verdict)
        if seeds is not None:
            parts.append(seeds_text(seeds))
        by_method = s.get("stealth_by_method") or {}
        if len(by_method) > 1:
            m = Table("method", "score", "D_XT", "D_TY", box=None, padding=(0, 2, 0, 0),
                      header_style="bold")
            for name, v in by_method.items():
                v = v or {}
                m.add_row(name, num(v.get("score")), num(v.get("d_xt")),
                          num(v.get("d_ty")))
            parts += [Text(""), m]
        checks = sanity_lines(s)
        if checks:
            failed = [what for ok, what in checks if not ok]
            passed = len(checks) - len(failed)
            head = Text(f"\nSanity checks: {passed}/{len(checks)} passed", style="bold")
            if failed:
                head.append(f", {len(failed)} failed (listed first)", style="bold red")
            parts.append(head)
            for what in failed:
                parts.append(Text.assemble(("✖ ", "bold red"), what))
            by_check: dict[str, int] = {}
            for c in s.get("sanity") or []:
                if isinstance(c, dict) and c.get("ok"):
                    by_check[str(c.get("check"))] = by_check.get(str(c.get("check")), 0) + 1
            if by_check:
                parts.append(Text.assemble(("✔ ", "green"), f"{passed} passed: ", (", ".join(
                    f"{k} ×{n}" for k, n in by_check.items()), "dim")))
        phases = phases_text(s.get("phases"))
        if phases is not None:
            parts += [Text("\nPhases", style="bold"), phases]
    parts += alarm_parts(getattr(d, "alarm", None))
    if d.damaged:
        parts.append(Text("\nDamaged: " + "; ".join(d.damaged), style="red"))
    spec = d.spec or {}
    if spec:
        from ibtui.spec import FIELDS

        keys = ("dataset", "arch", "width", "attack", "attack_options", "poison_rate", "target",
                "epochs", "noise_xt", "noise_ty", "mi_epochs", "mi_method", "observe_classes",
                "seed", "device")
        # and every other field whose value is not its default (lr, batch size, mi_options…)
        keys += tuple(k for k in FIELDS if k not in keys and k in spec
                      and spec[k] not in (FIELDS[k].default, None, [], {}))
        st = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        st.add_column(style="bold")
        st.add_column()
        for k in keys:
            if k in spec:
                v = spec[k]
                if k == "attack_options" and isinstance(v, dict):
                    v = attack_options_text(v)
                elif isinstance(v, dict):
                    v = ", ".join(f"{a}={b}" for a, b in v.items()) or "defaults"
                st.add_row(k, str(v))
        parts += [Text("\nSpec", style="bold"), st]
    return Group(*parts)


class LogView(RichLog):
    """The worker log: long lines wrap; it follows new lines until the user scrolls up, and
    End (or G) jumps to the last line and follows again."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Follow", show=False),
        Binding("end", "scroll_end", "Follow", show=False),
    ]
    follow: reactive[bool] = reactive(True)

    def __init__(self, **kw) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=True, **kw)
        self.text_lines: list[str] = []

    def watch_follow(self, follow: bool) -> None:
        self.auto_scroll = follow
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.FollowChanged(follow))

    class FollowChanged(Message):
        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    def add_lines(self, lines) -> None:
        for line in lines:
            self.text_lines.append(line)
            m = RESUMED.match(line)
            if m:  # where a resumed attempt continues: a rule across the log
                self.write(Rule(f"resumed from epoch {m.group(1)}", style="yellow",
                                characters="─"), scroll_end=self.follow)
            else:
                self.write(Text(line), scroll_end=self.follow)

    def reset(self, lines) -> None:
        self.clear()
        self.text_lines = []
        self.add_lines(lines)

    def _stop_following(self) -> None:
        if self.max_scroll_y > 0:
            self.follow = False

    def _resume_at_end(self) -> None:
        if self.scroll_y >= self.max_scroll_y:
            self.follow = True

    def action_scroll_up(self) -> None:
        self._stop_following()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._stop_following()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._stop_following()
        super().action_scroll_home()

    def action_scroll_down(self) -> None:
        super().action_scroll_down()
        self.call_after_refresh(self._resume_at_end)

    def action_page_down(self) -> None:
        super().action_page_down()
        self.call_after_refresh(self._resume_at_end)

    def action_scroll_end(self) -> None:
        self.follow = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def _on_mouse_scroll_up(self, event) -> None:
        self._stop_following()
        super()._on_mouse_scroll_up(event)


class RunScreen(Screen):
    TITLE = "Run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="run.back", tooltip="Back to the list"),
        Binding("q", "back", "Back", show=False, id="run.q"),
        Binding("1", "view('mi')", "MI", id="run.mi", tooltip="MI curves per subset"),
        Binding("2", "view('training')", "Train", id="run.training",
                tooltip="Clean accuracy, ASR and per-class train loss"),
        Binding("3", "view('summary')", "Summary", id="run.summary",
                tooltip="Stealth score, D_XT, D_TY, sanity flags, spec"),
        Binding("4", "view('log')", "Log", id="run.log", tooltip="Worker log tail"),
        Binding("m", "next_method", "Method", id="run.method",
                tooltip="Show the next MI estimator recorded for this run"),
        Binding("v", "subsets", "Subsets", id="run.subsets",
                tooltip="MI charts: every subset, the target class only, or the backdoor "
                        "against the other classes"),
        Binding("b", "bounds", "Bounds", show=False, id="run.bounds",
                tooltip="MI charts: show or hide the certified lower bounds"),
        Binding("c", "cancel", "Cancel", id="run.cancel", tooltip="Cancel this run"),
        Binding("r", "resume", "Resume", id="run.resume", tooltip="Re-queue this run"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.method: str | None = None
        self.subsets = "all"  # SUBSET_VIEWS key: which subsets the MI charts draw
        self.bounds = True  # draw the lower bounds under the backdoor and target lines
        self.detail: RunDetail | None = None
        self._log: tuple | None = None  # None: nothing shown yet
        self._intervals: tuple = (None, None)  # (summary score, MI records), bootstrap
        self._computing: tuple | None = None  # the key a bootstrap worker is computing

    def compose(self) -> ComposeResult:
        yield Static(id="run-info", classes="runline")
        with TabbedContent(initial="mi"):
            with TabPane("MI", id="mi"):
                with Horizontal(classes="charts"):
                    yield Chart(TERM_LABEL["xt"], id="chart-xt", inside_legend=False,
                                ylabel="nats")
                    yield Chart(TERM_LABEL["ty"], id="chart-ty", inside_legend=False,
                                ylabel="nats")
                yield Static(id="legend-mi", classes="legend wrap")
            with TabPane("Training", id="training"):
                with Horizontal(classes="charts"):
                    yield Chart("clean acc · ASR", id="chart-acc", inside_legend=False)
                    yield Chart("train loss per class", id="chart-loss", inside_legend=False,
                                ylabel="loss")
                with Horizontal(classes="legend-row"):
                    yield Static(id="legend-acc", classes="legend")
                    yield Static(id="legend-loss", classes="legend")
            with TabPane("Summary", id="summary"), Scroll(id="summary-scroll"):
                yield Static(id="summary-body")
            with TabPane("Log", id="log"):
                yield Static(id="log-follow", classes="legend-row")
                yield LogView(id="log-view")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self.app.runs_signal.subscribe(self, self.show_snapshot)
        self.app.detail_signal.subscribe(self, self.show_detail)
        self.show_snapshot(self.app.snapshot)
        known = self.app.watch_run(self.run_id)
        if known is not None:
            self.show_detail(known)

    def on_unmount(self) -> None:
        self.app.unwatch_run(self.run_id)

    def show_snapshot(self, snap: Snapshot) -> None:
        row = snap.by_id().get(self.run_id)
        if row is None and self.app.loaded:
            self.query_one("#run-info", Static).update(Text.assemble(
                ("ibtui ", "bold"), ("run", "underline"), (" · ", "dim"),
                (self.app.sub_title, "bold"), "  ",
                (f"{self.run_id}: the run directory is gone", "red")))
            return
        # the screen's name and the runs directory, as on every screen, then what the run is
        head = Text.assemble(("ibtui ", "bold"), ("run", "underline"), (" · ", "dim"),
                             (self.app.sub_title, "bold"), "  ")
        if row is not None:
            head.append(f"{row.attack} on {row.dataset} · {row.arch}"
                        f"{'×' + str(row.width) if row.width else ''} · rate {rate(row.rate)}"
                        f" · seed {row.seed}", style="dim")
        head.append("\n")
        self.query_one("#run-info", Static).update(head + run_line(row, snap.now))

    def show_detail(self, d: RunDetail) -> None:
        from ibtui.analysis.stealth import xt_scale_of

        if d.run_id != self.run_id:
            return
        self.detail = d
        methods = mi_methods(d.mi)
        if self.method not in methods:
            self.method = methods[0] if methods else None
        # the estimator is always named: two runs' curves are comparable only under the same one
        suffix = f" · {self.method}" if self.method else ""
        if len(methods) > 1:
            suffix += f" ({methods.index(self.method) + 1}/{len(methods)}, m: next)"
        epochs = d.spec.get("epochs") or d.row.epochs
        xlim = (1, epochs) if isinstance(epochs, int) and epochs > 1 else None
        labelled: dict[str, object] = {}
        view = "" if self.subsets == "all" else f" · {SUBSET_VIEWS[self.subsets][0]}"
        for term in ("xt", "ty"):
            series = mi_series(d.mi, term, self.method, self.subsets, self.bounds)
            for s in series:
                labelled.setdefault(s.label, s)
            # I(X;T) measured at a scale (mi_options.xt_scale) is named as such
            scale = xt_scale_of(d.mi, self.method) if term == "xt" else None
            at = f" at {scale:g}×spread" if scale is not None else ""
            name = TERM_LABEL[term]
            # longest first: a narrow chart shortens its title instead of losing it
            self.query_one(f"#chart-{term}", Chart).draw(
                series, (f"{name}{at} (nats){suffix}{view}", f"{name}{at} (nats){suffix}",
                         f"{name}{at} · {self.method}" if self.method else f"{name}{at}",
                         f"{name}{at}", name), xlim=xlim, empty="no MI checkpoint yet")
        self.query_one("#legend-mi", Static).update(legend(list(labelled.values())))
        acc = acc_series(d.metrics)
        self.query_one("#chart-acc", Chart).draw(acc, acc_title(acc), ylim=(0.0, 1.0),
                                                 xlim=xlim, empty="no epoch yet")
        self.query_one("#legend-acc", Static).update(legend(acc))
        target = d.spec.get("target") if isinstance(d.spec.get("target"), int) else None
        loss = class_loss_series(d.metrics, target)
        self.query_one("#chart-loss", Chart).draw(loss, "train loss per class", xlim=xlim,
                                                  empty="no epoch yet")
        self.query_one("#legend-loss", Static).update(legend(loss))
        self.query_one("#summary-body", Static).update(
            summary_renderable(d, self.intervals(d), self.seeds(d), self.ranked_row()))
        log = tuple(d.log)
        if log != self._log:
            view = self.query_one(LogView)
            if self._log and log[:len(self._log)] == self._log:
                view.add_lines(log[len(self._log):])
            else:
                view.reset(log or ["(no worker.log yet)"])
            self._log = log
            self.show_follow(view.follow)

    def intervals(self, d: RunDetail) -> dict | None:
        """The within-run bootstrap: the summary's, or (older runs) computed from mi.jsonl in a
        worker thread, never on the UI thread (500 replicates), and kept while the summary
        and the MI records stay the same; until it is ready, a note says so."""
        if not d.summary:
            return None
        key = (d.summary.get("score"), len(d.mi))
        if self._intervals[0] == key:
            return self._intervals[1]
        st = d.summary.get("stealth")
        if isinstance(st, dict) and isinstance(st.get("bootstrap"), dict):  # recorded: no work
            self._intervals = (key, st["bootstrap"])
            return st["bootstrap"]
        if self._computing != key:
            self._computing = key
            self._compute_intervals(key, d.summary, d.mi)
        return {"score_interval": None, "note": "computing it from mi.jsonl…"}

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-intervals",
          description="within-run bootstrap")
    def _compute_intervals(self, key: tuple, summary: dict, mi: list[dict]) -> None:
        from ibtui.analysis.stealth import run_intervals

        try:
            boot = run_intervals(summary, mi)
        except Exception as e:  # never leave the note saying "computing"
            boot = {"score_interval": None, "note": f"could not compute ({type(e).__name__})"}
        self.app.call_from_thread(self._intervals_ready, key, boot)

    def _intervals_ready(self, key: tuple, boot: dict | None) -> None:
        if self._computing == key:
            self._computing = None
        d = self.detail
        if d is None or not d.summary or (d.summary.get("score"), len(d.mi)) != key:
            return  # superseded: the run changed while this was computed
        self._intervals = (key, boot)
        if self.is_mounted:
            self.query_one("#summary-body", Static).update(
                summary_renderable(d, boot, self.seeds(d), self.ranked_row()))

    def ranked_row(self):
        """This run's row as the app ranked it among all runs (validity, rank, ties)."""
        return next((r for r in self.app.snapshot.rows if r.id == self.run_id), None)

    def seeds(self, d: RunDetail):
        """This run's configuration across the seeds the app knows (None: fewer than two
        of its runs have a score)."""
        from ibtui.analysis.replicas import METRICS, group_replicas

        config = d.row.config if d.row is not None else ""
        if not config:
            return None
        mates = [r for r in self.app.snapshot.rows if r.config == config]
        if sum(r.score is not None for r in mates) < 2:
            return None
        (group,) = group_replicas([
            {"run": r.id, "spec": {"config": config, "seed": r.seed}, "valid": r.valid,
             "why": r.why, **dict(zip(METRICS, (r.score, r.d_xt, r.d_ty, r.acc, r.asr), strict=True))}
            for r in mates])
        return group

    def show_follow(self, follow: bool) -> None:
        n = len(self._log or ())
        if follow:
            t = Text.assemble(("● following", "bold green"),
                              f" · {n} lines · new lines scroll into view; ↑ or k pauses")
        else:
            t = Text.assemble(("‖ paused", "bold yellow"),
                              f" · {n} lines · End or G jumps to the last line and follows")
        self.query_one("#log-follow", Static).update(t)

    def on_log_view_follow_changed(self, event: LogView.FollowChanged) -> None:
        self.show_follow(event.follow)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Arrows and j/k scroll the Summary and Log without a Tab press first."""
        target = {"summary": "#summary-scroll", "log": "#log-view"}.get(event.pane.id or "")
        if target:
            self.query_one(target).focus()

    def action_back(self) -> None:
        self.dismiss()

    def action_view(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_next_method(self) -> None:
        if self.detail is None:
            return
        methods = mi_methods(self.detail.mi)
        if len(methods) < 2:
            self.notify("Only one MI estimator was recorded for this run.")
            return
        self.method = methods[(methods.index(self.method) + 1) % len(methods)]
        self.show_detail(self.detail)

    def action_subsets(self) -> None:
        views = list(SUBSET_VIEWS)
        self.subsets = views[(views.index(self.subsets) + 1) % len(views)]
        self.notify(f"MI charts: {SUBSET_VIEWS[self.subsets][0]}", timeout=2)
        if self.detail is not None:
            self.show_detail(self.detail)

    def action_bounds(self) -> None:
        self.bounds = not self.bounds
        self.notify(f"MI charts: lower bounds {'shown' if self.bounds else 'hidden'}",
                    timeout=2)
        if self.detail is not None:
            self.show_detail(self.detail)

    def action_cancel(self) -> None:
        self.app.cancel_runs([self.run_id])

    def action_resume(self) -> None:
        self.app.resume_runs([self.run_id])
