"""Numbering patterns (编号规则): `CUS-{yyyy}{mm}-{seq:5}`.

Tokens: {yyyy} {yy} {mm} {dd} (date of assignment), {seq:N} (the counter, zero-padded to
N), {field:NAME} (a field's value or dictionary code), {dept} (department code).
"""
from __future__ import annotations

import re

from .problems import suggest

TOKEN = re.compile(r"\{([^{}]*)\}")
DATE_TOKENS = ("yyyy", "yy", "mm", "dd")
# What a reset period needs in the pattern so numbers never repeat across periods.
RESET_NEEDS = {"yearly": ({"yyyy", "yy"},), "monthly": ({"yyyy", "yy"}, {"mm"}),
               "daily": ({"yyyy", "yy"}, {"mm"}, {"dd"})}


class PatternError(ValueError):
    pass


def parse_pattern(pattern: str) -> tuple:
    """Tokens of a pattern: ("lit", text), ("date", "yyyy"), ("seq", width),
    ("field", name), ("dept",). Raises PatternError for an unknown or malformed token."""
    tokens, pos = [], 0
    for m in TOKEN.finditer(pattern):
        if m.start() > pos:
            tokens.append(("lit", pattern[pos:m.start()]))
        body = m.group(1).strip()
        if body in DATE_TOKENS:
            tokens.append(("date", body))
        elif body == "dept":
            tokens.append(("dept",))
        elif body.startswith("seq"):
            width = body[3:]
            if width == "":
                tokens.append(("seq", 1))
            elif re.fullmatch(r":[1-9][0-9]?", width):
                tokens.append(("seq", int(width[1:])))
            else:
                raise PatternError(f"'{{{body}}}': write the counter as {{seq}} or {{seq:N}} with N from 1 to 99")
        elif body.startswith("field:") and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", body[6:]):
            tokens.append(("field", body[6:]))
        else:
            raise PatternError(f"unknown token '{{{body}}}'"
                               + suggest(body, ["yyyy", "yy", "mm", "dd", "seq:N", "field:NAME", "dept"]))
        pos = m.end()
    rest = pattern[pos:]
    if "{" in rest or "}" in rest:
        raise PatternError("unbalanced '{' or '}' in the pattern")
    if rest:
        tokens.append(("lit", rest))
    return tuple(tokens)
