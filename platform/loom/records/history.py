"""The audit trail: who changed what, when, from which value to which."""
from __future__ import annotations

import datetime as dt
import decimal
from functools import lru_cache

import sqlalchemy as sa

# Columns the engine maintains itself; their changes are not news.
UNTRACKED = {"id", "version", "updated_at", "updated_by", "created_at", "created_by", "deleted_at",
             "search_text", "search_tokens"}


def jsonable(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def diff(before: dict, after: dict, fields) -> dict:
    """{field: [old, new]} for the tracked fields that changed."""
    out = {}
    for name in fields:
        if name in UNTRACKED:
            continue
        old, new = before.get(name), after.get(name)
        if old != new:
            out[name] = [jsonable(old), jsonable(new)]
    return out


def record(conn, table: sa.Table, obj: str, rows: list[dict]) -> None:
    """Append history entries: dicts with record_id, action, at, user_id, changes, comment, version."""
    if rows:
        entries = [{"object": obj, "changes": None, "comment": None, **r} for r in rows]
        conn.execute(_insert(table), entries if len(entries) > 1 else entries[0])


@lru_cache(maxsize=8)
def _insert(table: sa.Table):
    return table.insert()   # one statement object: its cache key is computed once


def read(conn, table: sa.Table, obj: str, record_id: int, limit: int = 200) -> list[dict]:
    q = (sa.select(table).where(table.c.object == obj, table.c.record_id == record_id)
         .order_by(table.c.id.desc()).limit(limit))
    return [dict(r) for r in conn.execute(q).mappings()]


def changed_since(conn, table: sa.Table, obj: str, record_id: int, version: int) -> list[str]:
    """Fields changed by writes after `version` (for a stale-update message)."""
    q = sa.select(table.c.changes).where(table.c.object == obj, table.c.record_id == record_id,
                                         table.c.version > version)
    fields: dict = {}
    for (changes,) in conn.execute(q):
        for name in changes or {}:
            fields[name] = None
    return list(fields)
