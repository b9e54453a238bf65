"""A whole database as a file of JSON lines, and back: backups, and moving between
SQLite and PostgreSQL.

    loom dump backup.jsonl.gz                                  # the configured database
    loom load backup.jsonl.gz --database postgresql://...      # into a new, empty one

What is dumped: every table Loom owns (runtime.schema.metadata): the object tables, the
side tables of multi-value fields, and the engine's loom_* tables (counters, history,
credentials, approvals, shares, saved searches, sign-ins, jobs, tokens...). Not the
quick-search index tables (SQLite FTS5 shadow tables, PostgreSQL GIN indexes): they are
derived, and rebuilt after a load.

The file (gzip when its name ends in .gz), one JSON document per line:

    {"loom_dump": 1, "app": "crm", "dialect": "sqlite", "created_at": "...", "search": {...}}
    {"table": "loom_department", "columns": ["id", "code", ...]}
    [1, "hq", ...]                    <- a row of the table above, values in column order
    ...
    {"end": true, "tables": 31, "rows": 123456}

Values keep their type through JSON: decimals as exact strings, dates and datetimes in
ISO 8601 (datetimes with their UTC offset), JSON columns as JSON; the loader converts
them back by the target column's type. Tables stream in both directions (a server-side
cursor when dumping from PostgreSQL, batches of BATCH rows when loading), so memory
does not grow with the size of the database.

Loading needs an empty, migrated database (anything else is refused, naming a table
that has rows) and runs in one transaction: all or nothing. Tables are inserted in
foreign-key order (metadata.sorted_tables); the references that form cycles (users and
departments refer to each other, records to their creators, customers to parent
customers) are checked at commit instead of row by row: SQLite's defer_foreign_keys, and
on PostgreSQL the foreign keys made DEFERRABLE for the load and restored afterwards. On
PostgreSQL each table's id sequence is then set past the largest id. Quick-search
indexes are rebuilt (SQLite FTS5) and search columns recomputed where the dump's
quick-search fields differ from the metadata's.
"""
from __future__ import annotations

import datetime as dt
import decimal
import gzip
import hashlib
import io
import json
import sys

import sqlalchemy as sa

from ..storage import search_index
from ..storage.types import Decimal, UTCDateTime

FORMAT = 1
BATCH = 1000


class DumpError(Exception):
    """The dump cannot be made or loaded; the message says why. Nothing was changed."""


def _open(path, mode: str):
    """(binary stream, whether to close it) for writing; (text stream, close?) for reading."""
    if str(path) == "-":
        if "r" in mode:
            return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"), False
        return sys.stdout.buffer, False
    if "r" in mode:
        if str(path).endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8"), True
        return open(path, encoding="utf-8"), True
    if str(path).endswith(".gz"):
        return gzip.open(path, "wb", compresslevel=5), True
    return open(path, "wb"), True


def _encoder(column):
    t = column.type
    if isinstance(t, (Decimal, sa.Numeric)) and not isinstance(t, sa.Float):
        return lambda v: None if v is None else str(v)
    if isinstance(t, (UTCDateTime, sa.DateTime, sa.Date, sa.Time)):
        return lambda v: None if v is None else v.isoformat()
    return None


def _decoder(column):
    t = column.type
    if isinstance(t, (Decimal, sa.Numeric)) and not isinstance(t, sa.Float):
        return lambda v: None if v is None else decimal.Decimal(v)
    if isinstance(t, (UTCDateTime, sa.DateTime)):
        return lambda v: None if v is None else dt.datetime.fromisoformat(v)
    if isinstance(t, sa.Date):
        return lambda v: None if v is None else dt.date.fromisoformat(v)
    if isinstance(t, sa.Time):
        return lambda v: None if v is None else dt.time.fromisoformat(v)
    return None


def _search_keys(spec, schema) -> dict:
    """{table: digest of its quick-search fields}: where search columns must be recomputed."""
    return {schema.tables[o.name].name: hashlib.sha1(",".join(o.search.quick).encode()).hexdigest()
            for o in spec.objects.values() if o.search.quick}


def tables(runtime) -> list:
    """The tables a dump holds, in foreign-key order."""
    return list(runtime.schema.metadata.sorted_tables)


def dump(runtime, path, *, echo=None) -> dict:
    """Write every table Loom owns to `path` ("-": standard output). {table: rows}."""
    out, close = _open(path, "w")
    counts: dict = {}
    writer = io.TextIOWrapper(out, encoding="utf-8", newline="\n", write_through=False)
    try:
        header = {"loom_dump": FORMAT, "app": runtime.spec.name, "fingerprint": runtime.spec.fingerprint,
                  "dialect": runtime.dialect, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                  "search": _search_keys(runtime.spec, runtime.schema)}
        writer.write(json.dumps(header, ensure_ascii=False) + "\n")
        with runtime.engine.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            missing = [t.name for t in tables(runtime) if t.name not in existing]
            if missing:
                raise DumpError(f"the database lacks table(s) {', '.join(missing[:5])}: run `loom migrate` first")
            for table in tables(runtime):
                columns = list(table.c)
                encoders = [_encoder(c) for c in columns]
                writer.write(json.dumps({"table": table.name, "columns": [c.name for c in columns]}) + "\n")
                order = list(table.primary_key.columns) or columns
                result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
                    sa.select(*columns).order_by(*order))
                n = 0
                for row in result:
                    values = [enc(v) if enc and v is not None else v for enc, v in zip(encoders, row)]
                    writer.write(json.dumps(values, ensure_ascii=False, separators=(",", ":")) + "\n")
                    n += 1
                counts[table.name] = n
                if echo:
                    echo(f"{table.name}: {n}")
        writer.write(json.dumps({"end": True, "tables": len(counts), "rows": sum(counts.values())}) + "\n")
        writer.flush()
    finally:
        writer.detach()
        if close:
            out.close()
    return counts


def _q(conn, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def check_empty(runtime, conn) -> None:
    """Refuse a database that holds rows in any table Loom owns."""
    existing = set(sa.inspect(conn).get_table_names())
    missing = [t.name for t in tables(runtime) if t.name not in existing]
    if missing:
        raise DumpError(f"the database lacks table(s) {', '.join(missing[:5])}: migrate it first")
    for table in tables(runtime):
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
            raise DumpError(f"the database is not empty (table {table.name} has rows): `loom load` fills a new "
                            f"database only. Create an empty one (it is migrated by `loom load` itself; do not start "
                            f"the web application or `loom demo` on it first, which add departments) and load there.")


def _foreign_keys(conn, runtime) -> list:
    """[(table, constraint name)] of every foreign key among Loom's tables (PostgreSQL)."""
    inspector = sa.inspect(conn)
    found = []
    for table in tables(runtime):
        for fk in inspector.get_foreign_keys(table.name):
            if fk.get("name"):
                found.append((table.name, fk["name"]))
    return found


def _defer(conn, runtime) -> list:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # until this transaction commits
        return []
    keys = _foreign_keys(conn, runtime)
    for table, name in keys:
        conn.exec_driver_sql(f"ALTER TABLE {_q(conn, table)} ALTER CONSTRAINT {_q(conn, name)} "
                             f"DEFERRABLE INITIALLY DEFERRED")
    return keys


def _undefer(conn, keys: list) -> None:
    if not keys:
        return
    conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")   # every deferred check runs now
    for table, name in keys:
        conn.exec_driver_sql(f"ALTER TABLE {_q(conn, table)} ALTER CONSTRAINT {_q(conn, name)} NOT DEFERRABLE")


def _reset_sequences(conn, runtime) -> None:
    if conn.dialect.name != "postgresql":
        return
    for table in tables(runtime):
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, sa.Integer) or pk[0].autoincrement is False:
            continue
        sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                {"t": _q(conn, table.name), "c": pk[0].name}).scalar()
        if sequence:
            conn.execute(sa.text(f"SELECT setval(:s, COALESCE((SELECT MAX({_q(conn, pk[0].name)}) FROM "
                                 f"{_q(conn, table.name)}), 0) + 1, false)"), {"s": sequence})


def _lines(source):
    for number, raw in enumerate(source, start=1):
        if raw.strip():
            try:
                yield number, json.loads(raw)
            except ValueError as e:
                raise DumpError(f"line {number} of the dump is not JSON ({e}); is it a Loom dump?") from None


def load(runtime, path, *, echo=None) -> dict:
    """Fill an empty, migrated database from a dump, in one transaction. {table: rows}."""
    source, close = _open(path, "r")
    counts: dict = {}
    try:
        lines = _lines(source)
        first = next(lines, None)
        if first is None or not isinstance(first[1], dict) or first[1].get("loom_dump") != FORMAT:
            raise DumpError("this is not a Loom dump (the first line should be its header)")
        header = first[1]
        known = {t.name: t for t in tables(runtime)}
        with runtime.records.transaction() as conn:       # one write transaction: all or nothing
            check_empty(runtime, conn)
            deferred = _defer(conn, runtime)
            table, columns, decoders, batch, ended = None, [], [], [], False
            for number, item in lines:
                if isinstance(item, list):
                    if table is None:
                        raise DumpError(f"line {number}: a row before any table")
                    if len(item) != len(columns):
                        raise DumpError(f"line {number}: {len(item)} values for {len(columns)} columns of "
                                        f"{table.name}")
                    batch.append({c: (d(v) if d and v is not None else v)
                                  for c, d, v in zip(columns, decoders, item)})
                    if len(batch) >= BATCH:
                        conn.execute(table.insert(), batch)
                        counts[table.name] += len(batch)
                        batch = []
                    continue
                if batch:
                    conn.execute(table.insert(), batch)
                    counts[table.name] += len(batch)
                    batch = []
                if table is not None and echo:
                    echo(f"{table.name}: {counts[table.name]}")
                if item.get("end"):
                    ended = True
                    break
                name = item.get("table")
                if name not in known:
                    raise DumpError(f"the dump has table {name}, which this metadata does not define: load it "
                                    f"with the metadata it was made with")
                table = known[name]
                columns = item.get("columns") or []
                unknown = [c for c in columns if c not in table.c]
                if unknown:
                    raise DumpError(f"the dump has column(s) {', '.join(unknown)} in {name}, which this metadata "
                                    f"does not define: load it with the metadata it was made with")
                decoders = [_decoder(table.c[c]) for c in columns]
                counts[name] = 0
            if not ended:
                raise DumpError("the dump ends before its last line: the file is incomplete")
            _undefer(conn, deferred)
            _reset_sequences(conn, runtime)
            _search(conn, runtime, header.get("search") or {})
    except (sa.exc.IntegrityError, sa.exc.DataError) as e:
        raise DumpError(f"the database refused the data, nothing was loaded: {str(e.orig).splitlines()[0]}") from None
    finally:
        if close:
            source.close()
        else:
            source.detach()      # leave standard input open
    return counts


def _search(conn, runtime, dumped: dict) -> None:
    """Recompute search columns whose definition changed since the dump; rebuild FTS tables."""
    current = _search_keys(runtime.spec, runtime.schema)
    for obj in runtime.spec.objects.values():
        table = runtime.schema.tables[obj.name].name
        if table not in current:
            continue
        if dumped.get(table) != current[table]:
            search_index.recompute(conn, runtime.spec, runtime.schema, obj)
        search_index.rebuild(conn, table)

