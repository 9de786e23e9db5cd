"""The one key table every screen follows (the README's "Keys" section says the same).

`KEYS` rows are (what, keys, where). The help screen (`?`) shows this table under the keys of
the screen it was opened on (its bindings: the footer names the same);
tests/test_tui_keys.py presses every key of it on every screen.
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

KEYS: list[tuple[str, str, str]] = [
    ("move", "j/k or ↓/↑", "tables, lists, Summary and Log tabs"),
    ("first / last", "g/G or Home/End", "on the Log tab, G/End also resumes following"),
    ("page", "PageUp/PageDown", "Runs, Leaderboard: moves (and G, j/k) cross the pages of "
                                "250 rows; ] next page, [ previous"),
    ("open", "Enter", "a run; on a leaderboard group row: open or close the group"),
    ("back", "Esc or q", "Esc first clears a filter or selection; q on Runs quits "
                         "(asking first while runs are active)"),
    ("filter", "/", "Runs, Leaderboard: regex or text, column:term"),
    ("sort", "s, S, o", "next column, reverse, pick a column (or click a header)"),
    ("mark", "Space", "select runs (a: all shown, Esc: none)"),
    ("export", "e", "Leaderboard: the shown rows as csv, md or json"),
    ("help", "? or F1", "this screen's keys (F1 also from a text field)"),
    ("palette", "Ctrl+P", "every action of the screen, by name"),
]


def back_keys(screen: str, action: str, label: str, tooltip: str,
              q: str | None = None) -> list[BindingType]:
    """A screen's Esc and q (the table's "back"), ids `screen.back` and `screen.q`; q runs
    `q` where it differs from Esc's `action`."""
    return [Binding("escape", action, label, id=f"{screen}.back", tooltip=tooltip),
            Binding("q", q or action, label, show=False, id=f"{screen}.q")]
