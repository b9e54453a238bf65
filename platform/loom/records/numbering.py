"""Assigning numbers (编号) inside the writing transaction.

A counter row per (field, scope) lives in loom_counter; the scope is the rendered
pattern without its counter (so every non-counter token scopes it, as the language says)
plus the reset period. One statement both creates and advances a counter
(INSERT ... ON CONFLICT DO UPDATE ... RETURNING), taking the row's write lock until the
transaction ends: concurrent writers queue on it, a rollback gives the number back, and
committed numbers have no gaps. Long writers (imports) commit in batches so they hold the
lock for one batch at a time.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..metadata.spec import FieldSpec, ObjectSpec

PERIOD = {"never": "", "yearly": "%Y", "monthly": "%Y%m", "daily": "%Y%m%d"}
DATE = {"yyyy": "%Y", "yy": "%y", "mm": "%m", "dd": "%d"}


def render(f: FieldSpec, values: dict, when: dt.date, dept_code: str | None) -> tuple[str, str, int]:
    """(prefix with {seq} kept as a placeholder, counter key, width)."""
    n = f.numbering
    parts, width = [], 0
    for token in n.tokens:
        kind = token[0]
        if kind == "lit":
            parts.append(token[1])
        elif kind == "date":
            parts.append(when.strftime(DATE[token[1]]))
        elif kind == "field":
            value = values.get(token[1])
            parts.append("" if value is None else str(value))
        elif kind == "dept":
            parts.append(dept_code or "")
        elif kind == "seq":
            width = token[1]
            parts.append("\x00")
    template = "".join(parts)
    key = f"{f.name}|{template.replace(chr(0), '#')}|{when.strftime(PERIOD[n.reset])}"
    return template, key, width


@lru_cache(maxsize=16)
def _advance(dialect: str, counter: sa.Table):
    """The upsert, built once per counter table: building it anew per number cost more
    than running it."""
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = dialect_insert(counter).values(key=sa.bindparam("key"), value=sa.bindparam("first"))
    return stmt.on_conflict_do_update(index_elements=[counter.c.key],
                                      set_={"value": counter.c.value + sa.bindparam("advance")}
                                      ).returning(counter.c.value)


def next_values(conn, counter: sa.Table, key: str, count: int, start: int, step: int) -> list[int]:
    """Advance a counter by `count` numbers in one statement; the numbers assigned."""
    first_last = start + step * (count - 1)
    last = conn.execute(_advance(conn.dialect.name, counter),
                        {"key": key, "first": first_last, "advance": step * count}).scalar_one()
    return [last - step * (count - 1 - i) for i in range(count)]


def assign(conn, counter: sa.Table, obj: ObjectSpec, f: FieldSpec, rows: list[dict], when: dt.date,
           dept_codes: dict) -> None:
    """Number the rows (in order), grouping rows that share a counter into one statement."""
    groups: dict = {}
    for row in rows:
        template, key, width = render(f, row, when, dept_codes.get(row.get("department")))
        groups.setdefault(f"{obj.name}.{key}", []).append((row, template, width))
    for key, members in groups.items():
        values = next_values(conn, counter, key, len(members), f.numbering.start, f.numbering.step)
        for (row, template, width), value in zip(members, values):
            row[f.name] = template.replace("\x00", str(value).zfill(width))
