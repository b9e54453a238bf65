"""Engines for SQLite and PostgreSQL with the settings Loom relies on.

SQLite: WAL, foreign keys on, a busy timeout, and transactions begun by Loom itself so a
write transaction can start with BEGIN IMMEDIATE (taking the write lock up front instead
of failing to upgrade a read lock under concurrency). `lower()` is replaced by the same
per-character case fold Python uses for conditions, so `contains` means the same on both.
PostgreSQL: psycopg 3 without server-side prepared statements (a generic plan can turn an
indexed trigram search into a sequential scan after a few executions).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

WRITE = "loom_write"


def fold(text):
    """Case-fold character by character (what PostgreSQL's lower() does: one character
    for one, so İ becomes i where Python's lower() would give two)."""
    if text is None:
        return None
    return "".join(low if len(low := c.lower()) == 1 else _SIMPLE.get(c, c) for c in str(text))


_SIMPLE = {"\u0130": "i"}   # the one BMP letter whose full lower case is two characters


def default_url(instance: str | os.PathLike = "instance") -> str:
    return f"sqlite:///{Path(instance).resolve() / 'loom.db'}"


def create_engine(url: str, **kwargs) -> Engine:
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).update(check_same_thread=False, timeout=30)
        engine = sa.create_engine(url, **kwargs)
        memory = database in ("", ":memory:")

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # Loom emits BEGIN itself
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            dbapi_connection.create_function("lower", 1, fold, deterministic=True)

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        kwargs.setdefault("connect_args", {}).setdefault("prepare_threshold", None)
        kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


@contextlib.contextmanager
def write_transaction(engine: Engine):
    """A connection in a transaction that will write (BEGIN IMMEDIATE on SQLite)."""
    with engine.connect().execution_options(**{WRITE: True}) as conn:
        with conn.begin():
            yield conn
