"""The run-filter term language, one for the app's `/` box and the CLI's `--name`.

Whitespace-separated terms that must all match, case-insensitive. A term is a regular
expression (or, if it is not a valid one, a plain substring) searched in every field;
`column:term` (`state:run`, `attack:^b`) searches one field only. A term with * or ? and no
other pattern character is a glob on a whole value (`sweep3-*`, `id:*-s0`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass
class Filter:
    text: str = ""
    terms: list[tuple[str | None, re.Pattern]] = field(default_factory=list)
    error: str = ""

    def __call__(self, fields: dict[str, str]) -> bool:
        for col, pat in self.terms:
            if col is not None:
                if not pat.search(fields.get(col, "")):
                    return False
            elif not any(pat.search(v) for v in fields.values()):
                return False
        return True


_PATTERN_CHARS = set("^$()[]{}+|\\")


def _glob(term: str) -> str | None:
    """A glob term's regular expression on the whole value, else None."""
    if ("*" in term or "?" in term) and not (_PATTERN_CHARS & set(term)):
        return "^" + fnmatch.translate(term)
    return None


def compile_filter(text: str, columns: Iterable[str]) -> Filter:
    """`text` as a predicate on a row's fields (column -> text); `columns` are the names a
    `column:term` may use. What could not be read as asked is said in `error`."""
    known = set(columns)
    f = Filter(text=text)
    errors = []
    for term in text.split():
        col = None
        if ":" in term:
            head, rest = term.split(":", 1)
            if head.lower() in known and rest:
                col, term = head.lower(), rest
            elif head and rest and head.isidentifier():  # `foo:bar` never silently matches nothing
                errors.append(f"{head}: no such column ({', '.join(sorted(known))}); "
                              f"{term!r} matched as text")
        try:
            pat = re.compile(_glob(term) or term, re.IGNORECASE)
        except re.error as e:
            errors.append(f"{term!r}: {e.msg}; matched as plain text")
            pat = re.compile(re.escape(term), re.IGNORECASE)
        f.terms.append((col, pat))
    f.error = "; ".join(errors)
    return f


NAME_FIELDS = ("id", "name")


@lru_cache(maxsize=64)
def name_filter(text: str) -> Filter:
    """`--name TEXT`: the same terms on a run's id and its experiment name only."""
    return compile_filter(text, NAME_FIELDS)
