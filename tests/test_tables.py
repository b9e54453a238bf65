"""Every field type compiles to the right columns, keys and indexes."""
from __future__ import annotations

import datetime as dt
import decimal
import textwrap

import pytest
import sqlalchemy as sa

from loom.compiler.tables import compile_schema, short_name
from loom.metadata import check_metadata
from loom.metadata.fieldtypes import DECLARABLE_TYPES
from loom.runtime import Runtime
from loom.storage.types import Decimal, UTCDateTime

APP = "app: t\nlanguages: [en]\nmenu: [{label: T, items: [thing]}]\n"
ROLES = "roles: [{name: admin, superuser: true}]\n"
DICT = "dictionary: color\nitems: [{code: red}, {code: blue}]\n"
THING = """\
object: thing
fields:
  - {name: t_text, type: text, max_length: 40, unique: true}
  - {name: t_textarea, type: textarea}
  - {name: t_email, type: email}
  - {name: t_phone, type: phone}
  - {name: t_url, type: url}
  - {name: t_integer, type: integer, index: true}
  - {name: t_decimal, type: decimal, precision: 12, scale: 3}
  - {name: t_percent, type: percent}
  - {name: t_money, type: money, currency: CNY}
  - {name: t_boolean, type: boolean}
  - {name: t_date, type: date}
  - {name: t_datetime, type: datetime}
  - {name: t_dictionary, type: dictionary, dictionary: color}
  - {name: t_multi, type: dictionary, dictionary: color, multiple: true}
  - {name: t_lookup, type: lookup, target: other, on_delete: set_null}
  - {name: t_cascade, type: lookup, target: other, on_delete: cascade}
  - {name: t_restrict, type: lookup, target: other}
  - {name: t_user, type: user}
  - {name: t_department, type: department}
  - {name: t_autonumber, type: autonumber, numbering: {pattern: "T-{seq:4}"}}
  - {name: t_mnemonic, type: mnemonic, source: t_text}
  - {name: t_formula, type: formula, expr: "t_integer * 2"}
  - {name: t_formula_text, type: formula, expr: "concat(t_text, '!')", result: text}
  - {name: t_rollup, type: rollup, from: t_lines, agg: sum, field: qty}
  - {name: t_count, type: rollup, from: {object: other, via: thing}, agg: count}
  - {name: t_lines, type: lines, object: thing_line}
  - {name: t_file, type: file, max_size: 5MB}
list:
  columns: [t_text, t_integer, t_date]
  filters: [t_dictionary]
  sort: [-t_date]
search:
  quick: [t_text, t_autonumber]
"""
LINE = """\
object: thing_line
child_of: thing
fields:
  - {name: qty, type: integer}
"""
OTHER = """\
object: other
fields:
  - {name: name, type: text}
  - {name: thing, type: lookup, target: thing}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    (root / "objects").mkdir()
    (root / "dictionaries").mkdir()
    (root / "app.yaml").write_text(APP)
    (root / "roles.yaml").write_text(ROLES)
    (root / "dictionaries" / "color.yaml").write_text(DICT)
    for name, text in (("thing", THING), ("thing_line", LINE), ("other", OTHER)):
        (root / "objects" / f"{name}.yaml").write_text(textwrap.dedent(text))
    spec, problems = check_metadata(root)
    assert problems == []
    return spec


@pytest.fixture(scope="module")
def schema(spec):
    return compile_schema(spec)


def test_the_fixture_uses_every_declarable_type(spec):
    assert {f.type for f in spec.objects["thing"].declared_fields} == set(DECLARABLE_TYPES)


@pytest.mark.parametrize("field, kind, detail", [
    ("t_text", sa.String, 40), ("t_textarea", sa.Text, None), ("t_email", sa.String, 100),
    ("t_phone", sa.String, 100), ("t_url", sa.String, 2000), ("t_integer", sa.Integer, None),
    ("t_decimal", Decimal, (12, 3)), ("t_percent", Decimal, (18, 2)), ("t_money", Decimal, (18, 2)),
    ("t_boolean", sa.Boolean, None), ("t_date", sa.Date, None), ("t_datetime", UTCDateTime, None),
    ("t_dictionary", sa.String, 64), ("t_lookup", sa.Integer, None), ("t_user", sa.Integer, None),
    ("t_department", sa.Integer, None), ("t_autonumber", sa.String, 100), ("t_mnemonic", sa.String, 100),
    ("t_formula", Decimal, (18, 2)), ("t_formula_text", sa.Text, None), ("t_rollup", Decimal, (18, 2)),
    ("t_count", sa.Integer, None), ("t_file", sa.JSON, None),
])
def test_column_types(schema, field, kind, detail):
    column = schema.tables["thing"].c[field]
    assert isinstance(column.type, kind), column.type
    if kind is sa.String:
        assert column.type.length == detail
    if kind is Decimal:
        assert (column.type.precision, column.type.scale) == detail
    assert column.nullable


def test_fields_without_a_column(schema):
    columns = set(schema.tables["thing"].c.keys())
    assert "t_lines" not in columns and "t_multi" not in columns
    side = schema.multi[("thing", "t_multi")]
    assert side.name == "thing__t_multi"
    assert [c.name for c in side.primary_key] == ["record_id", "code"]
    assert next(iter(side.c.record_id.foreign_keys)).ondelete == "CASCADE"


def test_system_columns(schema):
    table = schema.tables["thing"]
    for name in ("id", "owner", "department", "created_at", "created_by", "updated_at", "updated_by",
                 "version", "deleted_at", "search_text", "search_tokens"):
        assert name in table.c, name
    assert table.c.id.primary_key
    assert not table.c.version.nullable and not table.c.created_at.nullable
    assert "state" not in table.c  # no lifecycle
    assert list(table.c.keys())[0] == "id"


def test_foreign_keys_follow_on_delete(schema):
    def fk(name):
        return next(iter(schema.tables["thing"].c[name].foreign_keys))
    assert fk("t_lookup").target_fullname == "other.id" and fk("t_lookup").ondelete == "SET NULL"
    assert fk("t_cascade").ondelete == "CASCADE"
    assert fk("t_restrict").ondelete is None
    assert fk("t_user").target_fullname == "loom_user.id"
    assert fk("t_department").target_fullname == "loom_department.id"
    assert fk("owner").target_fullname == "loom_user.id"


def test_child_table_points_at_its_parent(schema):
    line = schema.tables["thing_line"]
    parent = next(iter(line.c.thing.foreign_keys))
    assert parent.target_fullname == "thing.id" and parent.ondelete == "CASCADE"
    assert not line.c.thing.nullable
    assert "line_no" in line.c and "owner" not in line.c


def test_indexes(schema):
    indexes = {tuple(c.name for c in i.columns): i for i in schema.tables["thing"].indexes}
    unique = indexes[("t_text",)]
    assert unique.unique
    assert "deleted_at IS NULL" in str(unique.dialect_options["sqlite"]["where"])
    assert ("t_date", "id") in indexes                          # default sort
    assert ("t_dictionary", "t_date", "id") in indexes          # filter + sort
    assert ("owner", "t_date", "id") in indexes                 # own scope lists
    assert ("t_lookup",) in indexes and ("t_user",) in indexes  # lookups
    assert ("t_integer", "id") in indexes                       # column (covers index: true)
    assert not any(i.unique for k, i in indexes.items() if k != ("t_text",))
    bin_ = indexes[("deleted_at",)]                             # the recycle bin: deleted rows only
    assert "deleted_at IS NOT NULL" in str(bin_.dialect_options["sqlite"]["where"])
    assert "deleted_at IS NOT NULL" in str(bin_.dialect_options["postgresql"]["where"])


def test_live_rows_are_listed_by_the_sort_index_not_the_bin(spec, tmp_path):
    """SQLite's statistics average the rows per deleted_at value, and every deleted row has
    its own: an index holding live rows too would look selective for `deleted_at IS NULL`."""
    runtime = Runtime(spec, __import__("loom.storage.database", fromlist=["x"]).create_engine(
        f"sqlite:///{tmp_path / 'plan.db'}"))
    runtime.migrate()
    table = runtime.table("thing")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rows = [dict(t_text=f"t{i}", t_date=dt.date(2024, 1, 1) + dt.timedelta(days=i % 300), created_at=start,
                 updated_at=start, version=1,
                 deleted_at=start + dt.timedelta(minutes=i) if i % 20 == 0 else None) for i in range(2000)]
    with runtime.engine.begin() as conn:
        conn.execute(table.insert(), rows)
        conn.exec_driver_sql("ANALYZE")

        def plan(q):
            compiled = q.compile(conn, compile_kwargs={"literal_binds": True})
            return " ".join(r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
        live = plan(sa.select(table.c.id).where(table.c.deleted_at.is_(None))
                    .order_by(table.c.t_date.desc(), table.c.id.desc()).limit(51))
        binned = plan(sa.select(table.c.id).where(table.c.deleted_at.is_not(None))
                      .order_by(table.c.deleted_at.desc()).limit(51))
    runtime.close()
    assert "ix_thing_t_date_id" in live and "TEMP B-TREE" not in live
    assert "ix_thing_deleted" in binned


def test_long_names_stay_within_postgres_limit():
    name = short_name("ix_" + "a" * 70)
    assert len(name) == 63 and name != short_name("ix_" + "a" * 71)


def test_values_round_trip(spec, db_url):
    runtime = Runtime(spec, __import__("loom.storage.database", fromlist=["x"]).create_engine(db_url))
    runtime.migrate()
    now = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    values = dict(t_text="一二三", t_decimal=decimal.Decimal("1.234"), t_money=decimal.Decimal("0.10"),
                  t_boolean=True, t_date=dt.date(2024, 2, 29), t_datetime=now, t_file={"name": "a.pdf"},
                  created_at=now, updated_at=now, version=1)
    table = runtime.table("thing")
    with runtime.engine.begin() as conn:
        conn.execute(table.insert().values(**values))
        row = conn.execute(sa.select(table)).mappings().one()
    assert row["t_text"] == "一二三"
    assert row["t_decimal"] == decimal.Decimal("1.234") and isinstance(row["t_decimal"], decimal.Decimal)
    assert str(row["t_money"]) == "0.10"
    assert row["t_boolean"] is True and row["t_date"] == dt.date(2024, 2, 29)
    assert row["t_datetime"] == now and row["t_datetime"].tzinfo is not None
    assert row["t_file"] == {"name": "a.pdf"}
    runtime.close()
