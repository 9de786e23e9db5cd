"""Messages the poll thread posts to the app. A newer one replaces a pending older one."""

from __future__ import annotations

from textual.message import Message

from ibtui.tui.poller import RunDetail, Snapshot


class RunsUpdated(Message):
    """A fresh snapshot of the runs directory (rows + scheduler)."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsUpdated)


class RunDetailUpdated(Message):
    """The fully read files of one run changed."""

    def __init__(self, run_id: str, detail: RunDetail | None) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail = detail

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunDetailUpdated) and message.run_id == self.run_id
