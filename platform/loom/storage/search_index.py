"""The indexes behind quick search (快速检索), kept beside the compiled tables.

Every object with quick-search fields has two columns the record service fills on each
write (records/computed.py): `search_text` (the fields, case-folded) and `search_tokens`
(single characters and overlapping pairs of every run of letters and digits). They are
indexed twice, because no one index serves every term length (see docs/search.md):

- terms of 3+ characters: a trigram index on search_text
  (SQLite: an FTS5 table with tokenize='trigram'; PostgreSQL: pg_trgm GIN);
- terms of 1-2 characters, which Chinese users type all the time (华信): a token index
  on search_tokens (SQLite: FTS5 unicode61 with detail=none; PostgreSQL: GIN over
  to_tsvector('simple', ...)), always confirmed against search_text.

This DDL is not part of the MetaData (Alembic cannot compare virtual tables or expression
indexes); it runs idempotently after every schema sync, which also re-creates SQLite
triggers that table rebuilds drop. When an object's quick-search fields change, its
search columns are recomputed.
"""
from __future__ import annotations

import hashlib

import sqlalchemy as sa

from ..compiler.names import short_name

META = "loom_meta"


def trigram_table(table: str) -> str:
    return f"{table}__fts_tri"


def token_table(table: str) -> str:
    return f"{table}__fts_tok"


def _meta(conn):
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {META} (key VARCHAR(200) PRIMARY KEY, value TEXT)")


def _get(conn, key):
    return conn.exec_driver_sql(f"SELECT value FROM {META} WHERE key = '{key}'").scalar()


def _set(conn, key, value):
    conn.exec_driver_sql(f"DELETE FROM {META} WHERE key = '{key}'")
    conn.execute(sa.text(f"INSERT INTO {META} (key, value) VALUES (:k, :v)"), {"k": key, "v": value})


def _q(conn, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _sqlite(conn, name: str):
    existing = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    new = trigram_table(name) not in existing or token_table(name) not in existing
    q = lambda n: _q(conn, n)  # noqa: E731 - every identifier quoted: tables may be named `order`
    table, tri, tok = q(name), q(trigram_table(name)), q(token_table(name))
    content = name.replace("'", "''")
    conn.exec_driver_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS {tri} USING fts5("
                         f"search_text, content='{content}', content_rowid='id', tokenize='trigram')")
    conn.exec_driver_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS {tok} USING fts5("
                         f"search_tokens, content='{content}', content_rowid='id', tokenize='unicode61', detail=none)")
    for fts_name, column in ((trigram_table(name), "search_text"), (token_table(name), "search_tokens")):
        fts = q(fts_name)
        conn.exec_driver_sql(
            f"CREATE TRIGGER IF NOT EXISTS {q(fts_name + '_ai')} AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column}); END")
        conn.exec_driver_sql(
            f"CREATE TRIGGER IF NOT EXISTS {q(fts_name + '_ad')} AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column}); END")
        conn.exec_driver_sql(
            f"CREATE TRIGGER IF NOT EXISTS {q(fts_name + '_au')} AFTER UPDATE OF {column} ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column}); "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column}); END")
    return new


def _postgres(conn, name: str):
    q = lambda n: _q(conn, n)  # noqa: E731
    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {q(short_name('sx_' + name + '_trgm'))} ON {q(name)} "
                         f"USING gin (search_text gin_trgm_ops)")
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {q(short_name('sx_' + name + '_tok'))} ON {q(name)} "
                         f"USING gin (to_tsvector('simple', coalesce(search_tokens, ''))) WITH (fastupdate = off)")
    return False


def rebuild(conn, table: str):
    """Refill the SQLite FTS tables from the table (after bulk SQL or a new index)."""
    if conn.dialect.name == "sqlite":
        for fts in (_q(conn, trigram_table(table)), _q(conn, token_table(table))):
            conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def recompute(conn, spec, schema, obj, batch: int = 2000):
    """Fill the search columns of every row again (the quick-search fields changed)."""
    from ..records.computed import search_text, search_tokens  # the one definition of the columns
    table = schema.tables[obj.name]
    columns = [table.c[n] for n in obj.search.quick if n in table.c]
    last = 0
    while True:
        rows = conn.execute(sa.select(table.c.id, *columns).where(table.c.id > last).order_by(table.c.id)
                            .limit(batch)).all()
        if not rows:
            return
        conn.execute(table.update().where(table.c.id == sa.bindparam("_id")).values(
            search_text=sa.bindparam("_text"), search_tokens=sa.bindparam("_tokens")),
            [{"_id": r[0], "_text": search_text(r[1:]), "_tokens": search_tokens(r[1:])} for r in rows])
        last = rows[-1][0]


def ensure(conn, spec, schema):
    """The AFTER_SYNC hook: create what is missing; recompute what is stale."""
    _meta(conn)
    for obj in spec.objects.values():
        if not obj.search.quick:
            continue
        table = schema.tables[obj.name].name
        new = _sqlite(conn, table) if conn.dialect.name == "sqlite" else _postgres(conn, table)
        key = f"search:{table}"
        fields = hashlib.sha1(",".join(obj.search.quick).encode()).hexdigest()
        stale = _get(conn, key) != fields
        if stale:
            recompute(conn, spec, schema, obj)
            _set(conn, key, fields)
        if new:  # index what the table already holds (external-content FTS starts empty)
            rebuild(conn, table)
