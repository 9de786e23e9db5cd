"""Small bars: the filter input behind `/` and the one-line run summary under a table."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input, Static

from ibtui.fmt import num
from ibtui.tui.model import RunRow, fmt_duration, fmt_progress, state_text

FILTER_HELP = ("regex or text, all terms must match; column:term for one column "
               "(state:run attack:^b rate:0.1) · enter keep · esc clear")


class KeyOrderInput(Input):
    """An Input whose editing keys act in the order they were typed.

    Textual (8.2.8, the newest release) runs a widget's key bindings only after the key event
    has bubbled up to the app, while a printable key that follows in the same burst is
    inserted by the widget at once: `backspace z` sent together inserts z and then deletes
    it, `ctrl+u tiny` inserts tiny and then clears the field (fast typing, SSH, tmux
    send-keys). The Input's own bindings are run here, when their key arrives, instead."""

    async def _on_key(self, event: events.Key) -> None:
        bindings = self._bindings.key_to_bindings.get(event.key)
        if bindings and not event.is_printable:
            binding = bindings[0]
            event.stop()
            event.prevent_default()
            await self.run_action(binding.action)
            return
        await super()._on_key(event)


class FilterBar(KeyOrderInput):
    """The `/` filter: live as you type; enter keeps it, escape clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "clear_filter", "Clear filter")]

    class Closed(Message):
        def __init__(self, bar: FilterBar, keep: bool) -> None:
            super().__init__()
            self.bar = bar
            self.keep = keep

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(self, **kw) -> None:
        super().__init__(placeholder=FILTER_HELP, **kw)

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Closed(self, keep=False))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Closed(self, keep=True))


def run_line(row: RunRow | None, now: float) -> Text:
    """`id · state progress · acc ASR score · elapsed` and, on a second line, why it failed."""
    if row is None:
        return Text("no run highlighted", style="dim")
    t = Text()
    t.append(row.id, style="bold")
    t.append("  ")
    t.append_text(state_text(row.state))
    prog = fmt_progress(row)
    if prog and prog != row.state:
        t.append(f" {prog}")
    if row.detail and row.state == "running":
        t.append(f" ({row.detail})", style="dim")
    t.append(f"  acc {num(row.acc)} ASR {num(row.asr)}")
    if row.score is not None:
        from ibtui.analysis.validity import score_text

        t.append(f" score {score_text(row.score, row.score_lo, row.score_hi, row.ceiling)}")
    t.append(f"  {fmt_duration(row.elapsed(now))}", style="dim")
    if row.valid is False:
        t.append("\n✖ set aside: ", style="bold red")
        t.append(row.why, style="red")
    elif row.valid and row.rank is not None:
        t.append(f"  ✔ rank {row.rank}" + (f", ties {' '.join(f'#{x}' for x in row.ties[:4])}"
                                            if row.ties else ""), style="green")
    if row.note:
        t.append("\n")
        t.append(app_note(row), style="red" if row.state in ("failed", "crashed", "damaged")
                 else "yellow")
    return t


def app_note(row: RunRow) -> str:
    """A run's note as the app says it: the keys, not the command line ("resume with
    ibtui resume …" becomes "r resumes from epoch N, 4 shows the log")."""
    import re

    where = f" from epoch {row.epoch}" if row.epoch else ""
    return re.sub(r"(?:resume with|resume:?) `ibtui resume [^`]*`",
                  f"r resumes{where}, 4 shows the log", row.note)


class RunLine(Static):
    """The highlighted run, in full, under a table."""

    def show(self, row: RunRow | None, now: float, extra: Text | None = None) -> None:
        t = run_line(row, now)
        if extra is not None:
            t = Text.assemble(extra, "\n", t)
        key = (t.plain, tuple((s.start, s.end, str(s.style)) for s in t.spans))
        if key != getattr(self, "_shown", None):  # an update re-lays the screen out
            self._shown = key
            self.update(t)
