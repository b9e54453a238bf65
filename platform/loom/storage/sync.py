"""Keeping the database in step with the compiled tables.

The difference is computed by Alembic's comparison (`produce_migrations`) between the
database and the compiled MetaData, restricted to the tables Loom owns. Each difference
becomes a `Change`:

- safe (applied automatically at start-up and by `loom migrate`): a new table, a new
  nullable column (a new lookup with its foreign key), a new or removed index of Loom's
  own naming, a column becoming nullable, a rename declared with `renamed_from`;
- needs --apply (shown by `loom migrate --plan`, applied only by `loom migrate --apply`):
  a type change, NOT NULL on existing rows, foreign key changes;
- never applied: a column whose field left the YAML keeps its data (reported as kept).

All changes of a run apply in one transaction; a change that would mangle data (text
that is not a number, a duplicate under a new unique index) is refused beforehand with
a count and an example. Rows left in lifecycle states or dictionary codes that the new
metadata no longer has are reported, so nothing is stranded silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops

from ..compiler.tables import Schema
from ..metadata.spec import AppSpec
from . import search_index

SAFE, APPLY, KEPT, BLOCKED, NOTE = "safe", "needs --apply", "kept", "blocked", "note"


@dataclass
class Change:
    status: str                 # SAFE | APPLY | KEPT | BLOCKED | NOTE
    description: str
    op: object = None           # an Alembic op, a callable(conn), or None

    def __str__(self):
        return f"[{self.status}] {self.description}"


@dataclass
class Plan:
    changes: list = field(default_factory=list)

    def of(self, *statuses):
        return [c for c in self.changes if c.status in statuses]

    @property
    def pending(self):
        """Changes that `--apply` would make beyond the automatic ones."""
        return self.of(APPLY)

    def __bool__(self):
        return bool(self.of(SAFE, APPLY))


def _quote(conn, name):
    return conn.dialect.identifier_preparer.quote(name)


def _rename(table, old, new):
    def run(conn):
        conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, table)} RENAME COLUMN {_quote(conn, old)} TO {_quote(conn, new)}")
    return run


def _include(schema: Schema):
    ours = schema.owned_table_names()

    def include_name(name, type_, parent_names):
        if type_ == "schema":
            return True
        if type_ == "table":
            return name in ours
        if parent_names.get("table_name") not in ours:
            return False
        if type_ == "index":   # only indexes of Loom's naming; others (search, a DBA's) are left alone
            return name is None or name.startswith(("ix_", "uq_"))
        return True
    return include_name


def _convertible(conn, table, column, new_type):
    """(bad rows, an example) for values that would not survive a type change."""
    col = sa.column(column)
    t = sa.table(table, col)
    checks = {
        sa.Integer: r"^-?[0-9]+$", sa.Numeric: r"^-?[0-9]+(\.[0-9]+)?$",
        sa.Date: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", sa.Boolean: r"^(0|1|true|false)$",
    }
    pattern = next((p for kind, p in checks.items() if isinstance(new_type, kind)), None)
    if pattern is None:
        return 0, None
    bad = sa.not_(sa.cast(col, sa.Text).regexp_match(pattern))
    where = sa.and_(col.is_not(None), bad)
    count = conn.execute(sa.select(sa.func.count()).select_from(t).where(where)).scalar()
    example = conn.execute(sa.select(col).select_from(t).where(where).limit(1)).scalar() if count else None
    return count, example


def _duplicates(conn, table: sa.Table, columns):
    cols = [table.c[c] for c in columns]
    q = (sa.select(*cols, sa.func.count().label("n")).where(table.c.deleted_at.is_(None))
         .group_by(*cols).having(sa.func.count() > 1))
    rows = conn.execute(q).fetchall()
    return len(rows), (tuple(rows[0])[:-1] if rows else None)


def _add_referencing_column(table: str, column: sa.Column):
    """SQLite cannot add a foreign key to a table, but it can add a column that carries one
    (Alembic's add_column drops it; a table rebuild would copy every row)."""
    fk = next(iter(column.foreign_keys))

    def run(conn):
        preparer = conn.dialect.identifier_preparer
        q = preparer.quote
        ddl = str(sa.schema.CreateColumn(column).compile(dialect=conn.dialect))
        ddl += (f" CONSTRAINT {preparer.format_constraint(fk.constraint)}"
                f" REFERENCES {q(fk.column.table.name)} ({q(fk.column.name)})")
        if fk.ondelete:
            ddl += f" ON DELETE {fk.ondelete}"
        conn.exec_driver_sql(f"ALTER TABLE {q(table)} ADD COLUMN {ddl}")
    return run


def _new_columns_fk(op, added: set) -> bool:
    """A foreign key on columns this plan adds: they are empty, so it cannot fail."""
    return isinstance(op, ops.CreateForeignKeyOp) and all((op.source_table, c) in added for c in op.local_cols)


def _without_inline_fk_noise(leaves: list) -> list:
    """SQLite's reflection reads neither the name nor the ON DELETE of a foreign key written
    inside its column (as _add_referencing_column writes it), so Alembic proposes dropping
    and re-adding it on every comparison; such a pair is the same key and is left out."""
    def key(op):
        if isinstance(op, ops.CreateForeignKeyOp):
            return "add", (op.source_table, tuple(op.local_cols), op.referent_table)
        if isinstance(op, ops.DropConstraintOp) and op.constraint_type == "foreignkey" and op.constraint_name is None:
            fk = op.to_constraint()
            return "drop", (fk.table.name, tuple(c.name for c in fk.columns), fk.referred_table.name)
        return None, None
    keys = [key(op) for op in leaves]
    paired = {k for kind, k in keys if kind == "add"} & {k for kind, k in keys if kind == "drop"}
    return [op for op, (_kind, k) in zip(leaves, keys) if k not in paired]


def _classify(conn, schema: Schema, op, renamed_to: set, added: set = frozenset()) -> Change | None:
    if isinstance(op, ops.AddColumnOp):
        if (op.table_name, op.column.name) in renamed_to:
            return None
        column = schema.metadata.tables[op.table_name].c[op.column.name]
        if conn.dialect.name == "sqlite" and column.foreign_keys:
            return Change(SAFE, f"add column {op.table_name}.{op.column.name}",
                          _add_referencing_column(op.table_name, column))
        if op.column.nullable or op.column.server_default is not None:
            return Change(SAFE, f"add column {op.table_name}.{op.column.name}", op)
        return Change(APPLY, f"add NOT NULL column {op.table_name}.{op.column.name} to existing rows", op)
    if isinstance(op, ops.DropColumnOp):
        return Change(KEPT, f"column {op.table_name}.{op.column_name} is no longer in the metadata; its data is kept")
    if isinstance(op, ops.CreateIndexOp):
        table = schema.metadata.tables[op.table_name]
        index = next((i for i in table.indexes if i.name == op.index_name), None)
        if op.unique and index is not None:
            count, example = _duplicates(conn, table, [c.name for c in index.columns])
            if count:
                return Change(BLOCKED, f"cannot make {op.table_name}({', '.join(c.name for c in index.columns)}) "
                                       f"unique: {count} value(s) are held by several records, e.g. {example!r}")
        return Change(SAFE, f"create index {op.index_name} on {op.table_name}", op)
    if isinstance(op, ops.DropIndexOp):
        return Change(SAFE, f"drop index {op.index_name} (no longer needed)", op)
    if isinstance(op, ops.AlterColumnOp):
        if op.modify_type is not None:
            count, example = _convertible(conn, op.table_name, op.column_name, op.modify_type)
            what = f"change type of {op.table_name}.{op.column_name} from {op.existing_type} to {op.modify_type}"
            if count:
                return Change(BLOCKED, f"cannot {what}: {count} row(s) hold values that do not convert, e.g. {example!r}")
            return Change(APPLY, what, op)
        if op.modify_nullable is False:
            return Change(APPLY, f"make {op.table_name}.{op.column_name} NOT NULL", op)
        if op.modify_nullable is True:
            return Change(SAFE, f"allow empty values in {op.table_name}.{op.column_name}", op)
        return None  # comment or default-only differences are not Loom's concern
    if _new_columns_fk(op, added):
        if conn.dialect.name == "sqlite":
            return None   # made with its column
        constraint = next(c for c in schema.metadata.tables[op.source_table].foreign_key_constraints
                          if [col.name for col in c.columns] == list(op.local_cols))
        # the metadata's constraint, so the database gets the name the next comparison expects
        return Change(SAFE, f"add foreign key {op.source_table}({', '.join(op.local_cols)}) "
                            f"-> {op.referent_table}", lambda c: c.execute(sa.schema.AddConstraint(constraint)))
    table = getattr(op, "table_name", None) or getattr(op, "source_table", "?")
    if isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp)):
        verb = "add" if isinstance(op, ops.AddConstraintOp) else "drop"
        return Change(APPLY, f"{verb} constraint {getattr(op, 'constraint_name', '')} on {table}", op)
    return Change(APPLY, f"{type(op).__name__} on {table}", op)


def _leaves(container):
    for op in container.ops:
        if isinstance(op, ops.OpContainer):
            yield from _leaves(op)
        else:
            yield op


def _data_notes(conn, spec: AppSpec, schema: Schema, existing: set) -> list:
    """Rows holding states or dictionary codes the metadata no longer defines."""
    notes = []
    for obj in spec.objects.values():
        table = schema.tables[obj.name]
        if table.name not in existing:
            continue
        columns = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        lifecycle = spec.lifecycle_of(obj)
        checks = []
        if lifecycle and "state" in columns:
            checks.append(("state", set(lifecycle.states), f"state of {obj.name}"))
        for f in obj.fields.values():
            if f.type == "dictionary" and not f.multiple and f.name in columns:
                checks.append((f.name, set(spec.dictionaries[f.dictionary].items), f"{obj.name}.{f.name}"))
        for column, known, what in checks:
            col = sa.column(column)
            q = (sa.select(col, sa.func.count()).select_from(sa.table(table.name, col))
                 .where(col.is_not(None), col.not_in(known)).group_by(col))
            for value, count in conn.execute(q):
                notes.append(Change(NOTE, f"{count} record(s) hold {what} '{value}', which the metadata no longer "
                                          f"defines; move them (or keep the value as inactive) before relying on it"))
    return notes


def plan(conn, spec: AppSpec, schema: Schema) -> Plan:
    """Compare the database with the compiled schema. Changes nothing."""
    result = Plan()
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    renamed_to = set()
    for obj in spec.objects.values():
        table = schema.tables[obj.name]
        if table.name not in existing:
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        for f in obj.fields.values():
            if f.renamed_from and f.renamed_from in columns and f.name not in columns:
                renamed_to.add((table.name, f.name))
                result.changes.append(Change(SAFE, f"rename column {table.name}.{f.renamed_from} to {f.name} "
                                                   f"(renamed_from keeps the data)", _rename(table.name, f.renamed_from, f.name)))
    context = MigrationContext.configure(conn, opts={"include_name": _include(schema), "compare_type": True})
    migration = produce_migrations(context, schema.metadata)
    created = {op.table_name for op in migration.upgrade_ops.ops if isinstance(op, ops.CreateTableOp)}
    if created:
        # one create_all: it makes the indexes, and adds foreign keys once all tables exist
        tables = [t for t in schema.metadata.sorted_tables if t.name in created]
        result.changes.append(Change(SAFE, f"create table{'s' if len(tables) > 1 else ''} "
                                           f"{', '.join(t.name for t in tables)}",
                                     lambda c: schema.metadata.create_all(c, tables=tables)))
    leaves = [op for op in _leaves(migration.upgrade_ops)
              if not isinstance(op, ops.CreateTableOp) and getattr(op, "table_name", None) not in created]
    added = {(op.table_name, op.column.name) for op in leaves if isinstance(op, ops.AddColumnOp)}
    if conn.dialect.name == "sqlite":
        leaves = _without_inline_fk_noise(leaves)
    for op in leaves:
        if isinstance(op, ops.DropTableOp):
            result.changes.append(Change(KEPT, f"table {op.table_name} is no longer in the metadata; kept"))
            continue
        change = _classify(conn, schema, op, renamed_to, added)
        if change is not None:
            result.changes.append(change)
    result.changes.extend(_data_notes(conn, spec, schema, existing))
    return result


def _run(conn, change: Change, operations: Operations):
    if callable(change.op):
        change.op(conn)
    elif isinstance(change.op, ops.AlterColumnOp) and change.op.modify_type is not None:
        op = change.op
        if conn.dialect.name == "sqlite":
            with operations.batch_alter_table(op.table_name) as batch:
                batch.alter_column(op.column_name, type_=op.modify_type, existing_type=op.existing_type)
        else:
            type_sql = op.modify_type.compile(dialect=conn.dialect)
            operations.alter_column(op.table_name, op.column_name, type_=op.modify_type,
                                    existing_type=op.existing_type,
                                    postgresql_using=f"{_quote(conn, op.column_name)}::{type_sql}")
    elif isinstance(change.op, ops.AlterColumnOp) and conn.dialect.name == "sqlite":
        op = change.op
        with operations.batch_alter_table(op.table_name) as batch:
            batch.alter_column(op.column_name, nullable=op.modify_nullable, existing_type=op.existing_type)
    else:
        operations.invoke(change.op)


def apply(engine, spec: AppSpec, schema: Schema, *, include_unsafe: bool = False) -> Plan:
    """Plan and apply in one transaction: safe changes always, the rest with include_unsafe.
    Returns the plan; on any failure nothing is changed and the error propagates."""
    with engine.begin() as conn:
        result = plan(conn, spec, schema)
        operations = Operations(MigrationContext.configure(conn))
        wanted = (SAFE, APPLY) if include_unsafe else (SAFE,)
        for change in result.of(*wanted):  # new tables come first in a plan
            _run(conn, change, operations)
        # DDL Alembic cannot compare (search indexes, triggers a SQLite rebuild drops)
        search_index.ensure(conn, spec, schema)
    return result
