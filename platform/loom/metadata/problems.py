"""Problems found in metadata, each tied to a place in a file.

Every check appends to one `Problems` list so a run reports all its errors together;
`MetadataError` carries them out of the loader.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, NamedTuple


class Mark(NamedTuple):
    """A place in a source file, 1-based like editors show it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, order=True)
class Problem:
    mark: Mark
    path: str          # e.g. "fields[3].type"; "" for the document itself
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.mark}: {where}{self.message}"


class MetadataError(Exception):
    """Raised with every problem of a run; never with a traceback for the user."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(map(str, self.problems)))


def format_path(path: Iterable) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def suggest(word, choices: Iterable[str], *, list_all: bool = True, limit: int = 12) -> str:
    """"; did you mean 'text'? expected one of: ..." for a misspelt word."""
    choices = sorted({str(c) for c in choices})
    if not choices:
        return ""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:  # prefix matches catch abbreviations difflib scores low ('cust' -> 'customer')
        close = [c for c in choices if str(word) and c.startswith(str(word))][:1]
    text = f"; did you mean '{close[0]}'?" if close else ""
    if list_all:
        shown = ", ".join(choices[:limit]) + (", ..." if len(choices) > limit else "")
        text += f"{' ' if close else '; '}expected one of: {shown}"
    return text
