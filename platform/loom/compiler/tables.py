"""AppSpec -> SQLAlchemy tables.

One table per object (named after it; the engine's own objects get a `loom_` prefix),
one column per stored field plus the system columns, a side table per multi-value
dictionary field, and the engine's own tables (storage/system_tables.py). Indexes follow
how the data is used: lookups, filters and sort columns (composite with the default
sort, so a filtered list is one index walk), owners and departments for permission
scopes, and unique fields as partial unique indexes over non-deleted rows.
"""
from __future__ import annotations

from functools import partial
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Column, ForeignKey, Index, MetaData, Table

from ..gcpause import paused_gc
from ..metadata.spec import AppSpec, FieldSpec, ObjectSpec
from .names import short_name
from ..storage import system_tables
from ..storage.types import Decimal, UTCDateTime

def _name(prefix: str, constraint, table) -> str:
    columns = "_".join(c.name for c in constraint.columns) if prefix != "pk" else ""
    return short_name(f"{prefix}_{table.name}" + (f"_{columns}" if columns else ""))


# Stable, short constraint names: the same on both databases and across runs, so the
# schema comparison sees no false differences. (partials of a module function: picklable)
NAMING_CONVENTION = {
    "ix_name": partial(_name, "ix"), "uq_name": partial(_name, "uq"), "fk_name": partial(_name, "fk"),
    "pk_name": partial(_name, "pk"),
    "ix": "%(ix_name)s", "uq": "%(uq_name)s", "fk": "%(fk_name)s", "pk": "%(pk_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}
ON_DELETE = {"restrict": None, "set_null": "SET NULL", "cascade": "CASCADE"}
CODE_LENGTH = 64


@dataclass
class Schema:
    """The compiled tables of an application."""

    metadata: MetaData
    tables: dict = field(default_factory=dict)      # object name -> Table
    multi: dict = field(default_factory=dict)       # (object, field) -> side Table
    system: dict = field(default_factory=dict)      # engine table name -> Table

    def table(self, obj: str | ObjectSpec) -> Table:
        return self.tables[obj if isinstance(obj, str) else obj.name]

    def owned_table_names(self) -> set:
        return {t.name for t in self.metadata.tables.values()}


def column_type(f: FieldSpec):
    t = f.value_type
    if f.type == "formula" and t == "text":
        return sa.Text()  # a concatenation has no natural bound
    if t in ("text", "email", "phone", "url", "autonumber", "mnemonic"):
        return sa.String(f.max_length or 255)
    if t == "textarea":
        return sa.Text()
    if t in ("integer",):
        return sa.Integer()
    if t in ("decimal", "percent", "money"):
        return Decimal(f.precision or 18, f.scale if f.scale is not None else 2)
    if t == "boolean":
        return sa.Boolean(create_constraint=False)
    if t == "date":
        return sa.Date()
    if t == "datetime":
        return UTCDateTime()
    if t in ("dictionary", "state"):
        return sa.String(CODE_LENGTH)
    if t in ("lookup", "user", "department"):
        return sa.Integer()
    if t == "file":
        return sa.JSON()
    raise ValueError(f"no column type for {t}")  # pragma: no cover - the checker forbids it


def _columns(spec: AppSpec, obj: ObjectSpec):
    yield Column("id", sa.Integer, primary_key=True, autoincrement=True)
    for f in obj.fields.values():
        if not f.stored or f.name == "id":
            continue
        args = []
        if f.is_reference:
            target = spec.objects[f.target].table
            on_delete = "CASCADE" if f.name == obj.child_of else ON_DELETE[f.on_delete]
            args.append(ForeignKey(f"{target}.id", ondelete=on_delete, use_alter=True))
        nullable = f.name not in ("created_at", "updated_at", "version")
        if f.name == obj.child_of:
            nullable = False
        yield Column(f.name, column_type(f), *args, nullable=nullable)
    if obj.search.quick:
        yield Column("search_text", sa.Text, nullable=True)
        yield Column("search_tokens", sa.Text, nullable=True)
    for rule in obj.duplicates:   # the normalized key a duplicate rule compares, indexed
        yield Column(rule.column, sa.String(255), nullable=True)
    if obj.owned:
        yield Column("merged_into", sa.Integer, nullable=True)   # set on a record merged into another


def _add_indexes(obj: ObjectSpec, table: Table) -> None:
    """Every index the object's use needs (an Index on a table's columns joins that table)."""
    cols = table.c
    wanted: dict[tuple, bool] = {}

    def want(*names, unique=False):
        names = tuple(dict.fromkeys(n for n in names if n in cols))
        if names and names not in wanted:
            wanted[names] = unique

    sort = [name for name, _desc in obj.list.sort if name in cols]
    tail = tuple(sort) + ("id",) if "id" not in sort else tuple(sort)
    want(*tail)
    for f in obj.fields.values():
        if not f.stored or f.name == "id":
            continue
        if f.unique:
            want(f.name, unique=True)
        elif f.name in ("created_by", "updated_by"):
            continue  # users are disabled, never purged: these would only slow writes
        elif f.is_reference or f.index or f.type in ("state", "autonumber"):
            want(f.name, *tail) if f.name in ("owner", "department", "state") else want(f.name)
    for name in obj.list.filters:
        f = obj.fields.get(name)
        if f is not None and f.stored:
            want(name, *tail)
    for name in obj.list.columns:
        f = obj.fields.get(name)
        if f is not None and f.stored and f.name not in ("id",) and sa_sortable(f):
            want(name, "id")
    if obj.list.kanban:
        want(obj.list.kanban.group_by, *tail)
    if obj.list.calendar:
        want(obj.list.calendar.start)
    for rule in obj.duplicates:
        want(rule.column, "id")
    plain = [n for n, unique in wanted.items() if not unique]
    for names in plain:  # (a) is served by (a, b): keep only the longer one
        if any(other != names and other[:len(names)] == names for other in plain):
            del wanted[names]
    for names, unique in wanted.items():
        if unique:
            Index(None, *[cols[n] for n in names], unique=True,
                  sqlite_where=cols.deleted_at.is_(None), postgresql_where=cols.deleted_at.is_(None))
        else:
            Index(None, *[cols[n] for n in names])
    if "deleted_at" in cols:
        # The recycle bin's index holds deleted rows only. A plain index on deleted_at made
        # SQLite's planner take `deleted_at IS NULL` (every live row) for a selective
        # condition: ANALYZE records the average rows per value, and each deleted row has
        # its own timestamp. At 1,000,000 customers list pages and duplicate look-ups then
        # read the whole index and sorted it (0.3-0.5 s) instead of walking their own.
        Index(short_name(f"ix_{table.name}_deleted"), cols.deleted_at,
              sqlite_where=cols.deleted_at.is_not(None), postgresql_where=cols.deleted_at.is_not(None))


def sa_sortable(f: FieldSpec) -> bool:
    return f.type not in ("textarea", "lines", "file") and not f.multiple


def compile_schema(spec: AppSpec) -> Schema:
    with paused_gc():
        return _compile(spec)


def _compile(spec: AppSpec) -> Schema:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    schema = Schema(metadata)
    for obj in spec.objects.values():
        table = Table(obj.table, metadata, *_columns(spec, obj))
        _add_indexes(obj, table)
        schema.tables[obj.name] = table
    for obj in spec.objects.values():
        for f in obj.fields.values():
            if f.type == "dictionary" and f.multiple:
                side = Table(f"{obj.table}__{f.name}", metadata,
                             Column("record_id", sa.Integer, ForeignKey(f"{obj.table}.id", ondelete="CASCADE"),
                                    primary_key=True),
                             Column("code", sa.String(CODE_LENGTH), primary_key=True),
                             Index(None, "code", "record_id"))
                schema.multi[(obj.name, f.name)] = side
    schema.system = system_tables.define(metadata, user_table=spec.objects["user"].table)
    return schema
