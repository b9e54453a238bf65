"""Conditions (METADATA.md section 4) -> SQL expressions and Python predicates.

Both outputs must give the same answer for every record (property tests hold them to
it), so the semantics are pinned down here once:

- Two-valued logic. An atom on an empty value is false (`amount gt 5` with no amount);
  its negation is true. `ne`, `not_in` and `not_null` are the negations of `eq`, `in`
  and `is_null`, so `ne` matches empty values, as users of Salesforce and Odoo expect.
  SQL's NULL is kept out of the way by pushing `not` down to the atoms and adding
  `IS NULL` branches where a negated atom could meet an empty operand.
- `contains` and `starts_with` ignore case (character-wise lower case; SQLite's lower()
  is replaced by the same fold, see storage/database.py) and treat % and _ literally,
  also when the value is another field (`{field: code}`).
- Text order is code-point order (PostgreSQL compares with COLLATE "C").
- Numbers compare exactly: a fraction against an integer field is not truncated
  (`quantity gte 1.5` does not match 1).
- A date compared with a timestamp means that whole day in the application's time
  zone: `created_at eq $today` is "created today", and a date field compared with a
  timestamp (`$now`, a time literal, or a datetime field) compares with the timestamp's
  local day. On SQLite the local day of a timestamp column follows the zone's offsets
  from 1900 to 2100.
- A path through lookups (`customer.industry`) is empty when any link is empty; in SQL it
  becomes `customer IN (SELECT id FROM customer WHERE ...)`, which uses the indexes.
- Multi-value dictionary fields: `eq`/`in` mean "holds any of", `is_null` "holds none".
  Compared with another dictionary field, `eq` means the two share a code.
"""
from __future__ import annotations

import datetime as dt
import decimal
import functools
from dataclasses import dataclass, field
from typing import Callable, Mapping

import sqlalchemy as sa

from ..metadata.spec import All, Any_, AppSpec, Compare, FieldRef, FieldSpec, Not, ObjectSpec, Var
from ..storage.database import fold
from ..storage.types import Decimal, UTCDateTime
from .tables import Schema

UTC = dt.timezone.utc
NEGATIONS = {"ne": "eq", "not_in": "in", "not_null": "is_null"}
TEXT_TYPES = {"text", "textarea", "email", "phone", "url", "autonumber", "mnemonic", "dictionary", "state"}
EXACT = Decimal(38, 10)   # how a fraction is bound against an integer column


@dataclass
class Context:
    """What `$variables` and paths resolve against when a condition is evaluated."""

    user_id: int | None = None
    department_id: int | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))
    timezone: dt.tzinfo = UTC
    fetch: Callable[[str, int], Mapping | None] | None = None   # (object, id) -> record, for paths

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.timezone).date()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_escape_sql(expr):
    """The same escaping, in SQL, for a pattern taken from another column."""
    for char, escaped in (("\\", "\\\\"), ("%", "\\%"), ("_", "\\_")):
        expr = sa.func.replace(expr, char, escaped, type_=sa.String)
    return expr


def _multi(f: FieldSpec) -> bool:
    return f.type == "dictionary" and f.multiple


def _held(value, f: FieldSpec) -> set:
    """The codes a dictionary field's value holds."""
    if _multi(f):
        return set(value or ())
    return set() if value is None else {value}


def _is_day(v) -> bool:
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


def _local_date(v: dt.datetime, tz: dt.tzinfo) -> dt.date:
    return (v.astimezone(tz) if v.tzinfo else v).date()


@functools.lru_cache(maxsize=16)
def _offset_spans(tz: dt.tzinfo) -> tuple:
    """The zone's UTC offsets from 1900 to 2100: ((since or None, seconds), ...), oldest first."""
    def offset(second):
        return int(dt.datetime.fromtimestamp(second, tz).utcoffset().total_seconds())
    start = int(dt.datetime(1900, 1, 1, tzinfo=UTC).timestamp())
    end = int(dt.datetime(2100, 1, 1, tzinfo=UTC).timestamp())
    spans = [(None, offset(start))]
    for day in range(start, end, 86400):
        if offset(day + 86400) != spans[-1][1]:
            lo, hi = day, day + 86400            # the change happens in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == spans[-1][1] else (lo, mid)
            spans.append((dt.datetime.fromtimestamp(hi, UTC), offset(day + 86400)))
    return tuple(spans)


class ConditionCompiler:
    def __init__(self, spec: AppSpec, schema: Schema, dialect: str = "sqlite"):
        self.spec, self.schema, self.dialect = spec, schema, dialect

    # ---- values -----------------------------------------------------------------------

    def resolve(self, f: FieldSpec, raw, ctx: Context):
        """A literal or variable as a Python value of the field's type."""
        if isinstance(raw, tuple):
            return tuple(v for v in (self.resolve(f, r, ctx) for r in raw) if v is not None)
        t = f.value_type
        if isinstance(raw, Var):
            if raw.name == "current_user":
                return ctx.user_id
            if raw.name == "current_department":
                return ctx.department_id
            if raw.name == "today":
                return ctx.today + dt.timedelta(days=raw.offset)
            delta = dt.timedelta(hours=raw.offset) if raw.unit == "h" else dt.timedelta(days=raw.offset)
            moment = ctx.now + delta
            return _local_date(moment, ctx.timezone) if t == "date" else moment
        if raw is None:
            return None
        if t == "date":
            if isinstance(raw, str) and len(raw) > 10:
                raw = dt.datetime.fromisoformat(raw)
            if isinstance(raw, dt.datetime):   # a moment: its day where the application is
                return _local_date(raw, ctx.timezone)
            return raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
        if t == "datetime":
            if isinstance(raw, (dt.date, dt.datetime)):
                value = raw
            else:
                text = str(raw)
                value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=ctx.timezone)
            return value
        if t in ("decimal", "percent", "money", "rollup", "formula", "integer"):
            number = decimal.Decimal(str(raw))
            if not number.is_finite():
                raise ValueError(f"not a number: {raw!r}")
            if t != "integer":
                return number
            # exact: `quantity gte 1.5` must not become `quantity gte 1`
            return int(number) if number == number.to_integral_value() else number
        if t in ("lookup", "user", "department"):
            return int(raw)
        return raw

    def _day(self, d: dt.date, ctx: Context):
        start = dt.datetime(d.year, d.month, d.day, tzinfo=ctx.timezone).astimezone(UTC)
        return start, start + dt.timedelta(days=1)

    def _timestamp_atom(self, op: str, value, ctx: Context):
        """Rewrite a comparison of a timestamp with dates into bounds: (op, value)."""
        if op in ("eq", "gt", "gte", "lt", "lte") and _is_day(value):
            start, end = self._day(value, ctx)
            return {"eq": ("range", (start, end)), "gt": ("gte", end), "gte": ("gte", start),
                    "lt": ("lt", start), "lte": ("lt", end)}[op]
        if op == "between" and len(value) == 2 and (_is_day(value[0]) or _is_day(value[1])):
            lo = self._day(value[0], ctx)[0] if _is_day(value[0]) else value[0]
            if _is_day(value[1]):
                return "range", (lo, self._day(value[1], ctx)[1])
            return "between", (lo, value[1])
        if op == "in" and any(_is_day(v) for v in value):
            return "in_ranges", tuple(self._day(v, ctx) if _is_day(v) else (v, v + dt.timedelta(microseconds=1))
                                      for v in value)
        return op, value

    # ---- SQL ----------------------------------------------------------------------------

    def sql(self, obj: str | ObjectSpec, cond, ctx: Context | None = None):
        """A SQLAlchemy boolean expression over the object's table."""
        obj = self.spec.objects[obj] if isinstance(obj, str) else obj
        return self._sql(obj, cond, ctx or Context(), False)

    def _sql(self, obj, cond, ctx, negated):
        if cond is None:
            return sa.false() if negated else sa.true()
        if isinstance(cond, Not):
            return self._sql(obj, cond.item, ctx, not negated)
        if isinstance(cond, (All, Any_)):
            parts = [self._sql(obj, c, ctx, negated) for c in cond.items]
            conj = isinstance(cond, All) != negated  # De Morgan
            return sa.and_(*parts) if conj else sa.or_(*parts)
        op, negate = (NEGATIONS[cond.op], True) if cond.op in NEGATIONS else (cond.op, False)
        return self._sql_path(obj, self.schema.table(obj), cond.path, op, cond.value, ctx, negated != negate)

    def _sql_path(self, obj, table, path, op, raw, ctx, negated):
        f = obj.field(path[0])
        if len(path) == 1 or isinstance(raw, FieldRef):
            return self._sql_leaf(obj, table, path, op, raw, ctx, negated)
        target = self.spec.objects[f.target]
        ttable = self.schema.table(target).alias()  # never correlated with an outer same table
        fk = table.c[f.name]
        inner = sa.select(ttable.c.id).where(self._sql_path(target, ttable, path[1:], op, raw, ctx, False))
        if op == "is_null":
            positive = sa.or_(fk.is_(None), fk.in_(inner))
            return sa.not_(positive) if negated else positive
        positive = fk.in_(inner)
        return sa.or_(fk.is_(None), sa.not_(positive)) if negated else positive

    def _value_sql(self, obj, table, path):
        """A column, or a correlated scalar subquery for a path through lookups."""
        f = obj.field(path[0])
        if len(path) == 1:
            return table.c[f.name], f
        target = self.spec.objects[f.target]
        ttable = self.schema.table(target).alias()
        inner, leaf = self._value_sql(target, ttable, path[1:])
        return sa.select(inner).where(ttable.c.id == table.c[f.name]).correlate(table).scalar_subquery(), leaf

    def _codes_sql(self, obj, table, path):
        """The codes a multi-value field at the end of a path holds: (select, code column)."""
        fields = self.spec.resolve(obj, path)
        owner = self.spec.objects[fields[-2].target] if len(path) > 1 else obj
        side = self.schema.multi[(owner.name, path[-1])].alias()
        record_id = table.c.id if len(path) == 1 else self._value_sql(obj, table, path[:-1])[0]
        return sa.select(side.c.code).where(side.c.record_id == record_id).correlate(table), side.c.code

    def _local_date_sql(self, col, tz: dt.tzinfo):
        """The day, in the application's time zone, of a timestamp column."""
        if self.dialect == "postgresql":
            name = getattr(tz, "key", None)
            if name:
                return sa.cast(sa.func.timezone(sa.cast(sa.literal(name), sa.Text), col), sa.Date)
            offset = tz.utcoffset(None)
            return sa.cast(sa.func.timezone("UTC", col) + sa.literal(offset, sa.Interval()), sa.Date)
        # SQLite keeps UTC text; shift it by the offset in force at that moment. Its date
        # functions round to milliseconds (23:59:59.9999 would become the next day), so the
        # fraction of a second goes first: offsets are whole seconds.
        spans = _offset_spans(tz)
        seconds_only = sa.func.substr(col, 1, 19, type_=sa.String)

        def shifted(seconds):
            return sa.func.date(seconds_only, f"{seconds:+d} seconds", type_=sa.String)
        if len(spans) == 1:
            return shifted(spans[0][1])
        return sa.case(*[(col >= sa.literal(since, UTCDateTime()), shifted(seconds))  # recent first
                         for since, seconds in reversed(spans[1:])], else_=shifted(spans[0][1]))

    def _sql_leaf(self, obj, table, path, op, raw, ctx, negated):
        f = self.spec.resolve(obj, path)[-1]
        if isinstance(raw, FieldRef):
            if _multi(f) or _multi(self.spec.resolve(obj, raw.path)[-1]):
                return self._sql_multi_ref(obj, table, path, raw.path, op, negated)
        elif _multi(f):  # a path reaches here one step at a time
            return self._sql_multi(obj, table, f, op, self.resolve(f, raw, ctx), negated)
        col, f = self._value_sql(obj, table, path)
        if op == "is_null":
            return col.is_not(None) if negated else col.is_(None)
        operands = [col]
        left = col
        if isinstance(raw, FieldRef):
            other, g = self._value_sql(obj, table, raw.path)
            operands.append(other)
            value = other
            if f.value_type == "datetime" and g.value_type == "date":
                left = self._local_date_sql(col, ctx.timezone)
            elif f.value_type == "date" and g.value_type == "datetime":
                value = self._local_date_sql(other, ctx.timezone)
        else:
            value = self.resolve(f, raw, ctx)
            if value is None or value == ():
                return sa.true() if negated else sa.false()
            if f.value_type == "datetime":
                op, value = self._timestamp_atom(op, value, ctx)
            elif f.value_type == "integer":
                value = self._exact(value)
        ordered = left.collate("C") if (self.dialect == "postgresql" and f.value_type in TEXT_TYPES
                                       and op in ("gt", "gte", "lt", "lte", "between")) else left
        if op == "eq":
            positive = left == value
        elif op == "gt":
            positive = ordered > value
        elif op == "gte":
            positive = ordered >= value
        elif op == "lt":
            positive = ordered < value
        elif op == "lte":
            positive = ordered <= value
        elif op == "in":
            positive = col.in_(list(value))
        elif op == "between":
            positive = sa.and_(ordered >= value[0], ordered <= value[1])
        elif op == "range":
            positive = sa.and_(col >= value[0], col < value[1])
        elif op == "in_ranges":
            positive = sa.or_(*[sa.and_(col >= lo, col < hi) for lo, hi in value])
        elif op in ("contains", "starts_with"):
            if isinstance(raw, FieldRef):
                pattern = _like_escape_sql(sa.func.lower(value, type_=sa.String)) + sa.literal("%", sa.String)
                pattern = sa.literal("%", sa.String) + pattern if op == "contains" else pattern
            else:
                pattern = _like_escape(fold(str(value)))
                pattern = f"%{pattern}%" if op == "contains" else f"{pattern}%"
            positive = sa.func.lower(col).like(pattern, escape="\\")
        else:  # pragma: no cover - the checker allows no other operator
            raise ValueError(op)
        if not negated:
            return positive
        return sa.or_(*[o.is_(None) for o in operands], sa.not_(positive))

    @staticmethod
    def _exact(value):
        """Fractions bound as exact numbers next to an integer column (not as integers)."""
        if isinstance(value, tuple):
            return tuple(ConditionCompiler._exact(v) for v in value)
        return sa.literal(value, EXACT) if isinstance(value, decimal.Decimal) else value

    def _sql_multi(self, obj, table, f, op, value, negated):
        side = self.schema.multi[(obj.name, f.name)]
        match = sa.select(side.c.record_id).where(side.c.record_id == table.c.id).correlate(table)
        if op == "eq":
            match = match.where(side.c.code == value)
        elif op == "in":
            match = match.where(side.c.code.in_(list(value)))
        if op in ("eq", "in") and (value is None or value == ()):
            return sa.true() if negated else sa.false()
        positive = ~match.exists() if op == "is_null" else match.exists()
        return sa.not_(positive) if negated else positive

    def _sql_multi_ref(self, obj, table, path, other_path, op, negated):
        """`eq` between dictionary fields, one or both multi-value: they share a code."""
        if op != "eq":  # pragma: no cover - the checker allows only eq and ne
            raise ValueError(op)
        f, g = self.spec.resolve(obj, path)[-1], self.spec.resolve(obj, other_path)[-1]
        if _multi(f) and _multi(g):
            codes, code = self._codes_sql(obj, table, path)
            positive, singles = codes.where(code.in_(self._codes_sql(obj, table, other_path)[0])).exists(), []
        else:
            single, held = (other_path, path) if _multi(f) else (path, other_path)
            single = self._value_sql(obj, table, single)[0]
            positive, singles = single.in_(self._codes_sql(obj, table, held)[0]), [single]
        if not negated:
            return positive
        return sa.or_(*[s.is_(None) for s in singles], sa.not_(positive))

    # ---- Python -------------------------------------------------------------------------

    def matches(self, obj: str | ObjectSpec, cond, record: Mapping, ctx: Context | None = None) -> bool:
        """Whether a record (a mapping of field values) satisfies the condition."""
        obj = self.spec.objects[obj] if isinstance(obj, str) else obj
        return self._py(obj, cond, record, ctx or Context(), False)

    def _py(self, obj, cond, record, ctx, negated) -> bool:
        if cond is None:
            return not negated
        if isinstance(cond, Not):
            return self._py(obj, cond.item, record, ctx, not negated)
        if isinstance(cond, All):
            result = all(self._py(obj, c, record, ctx, False) for c in cond.items)
            return result != negated
        if isinstance(cond, Any_):
            result = any(self._py(obj, c, record, ctx, False) for c in cond.items)
            return result != negated
        op, negate = (NEGATIONS[cond.op], True) if cond.op in NEGATIONS else (cond.op, False)
        return self._py_atom(obj, cond.path, op, cond.value, record, ctx) != (negated != negate)

    def value_at(self, obj: ObjectSpec, path, record, ctx: Context):
        """The value at the end of a path, following lookups with ctx.fetch."""
        current, values = obj, record
        for i, name in enumerate(path):
            f = current.field(name)
            value = values.get(name) if values is not None else None
            if i == len(path) - 1:
                return value, f
            if value is None or ctx.fetch is None:
                return None, self.spec.resolve(current, path[i:])[-1]
            values = ctx.fetch(f.target, value)
            current = self.spec.objects[f.target]
        raise ValueError("empty path")  # pragma: no cover

    def _py_atom(self, obj, path, op, raw, record, ctx) -> bool:
        v, f = self.value_at(obj, path, record, ctx)
        if op == "is_null":
            return not v if _multi(f) else v is None
        if isinstance(raw, FieldRef):
            value, g = self.value_at(obj, raw.path, record, ctx)
            if _multi(f) or _multi(g):
                return bool(_held(v, f) & _held(value, g))
            if v is None or value is None:
                return False
            if f.value_type == "datetime" and g.value_type == "date":
                v = _local_date(v, ctx.timezone)
            elif f.value_type == "date" and g.value_type == "datetime":
                value = _local_date(value, ctx.timezone)
        elif _multi(f):
            value = self.resolve(f, raw, ctx)
            if op == "eq":
                return value is not None and value in set(v or ())
            return bool(set(v or ()) & set(value or ()))
        else:
            if v is None:
                return False
            value = self.resolve(f, raw, ctx)
            if value is None or value == ():
                return False
            if f.value_type == "datetime":
                op, value = self._timestamp_atom(op, value, ctx)
        if op == "eq":
            return v == value
        if op == "gt":
            return v > value
        if op == "gte":
            return v >= value
        if op == "lt":
            return v < value
        if op == "lte":
            return v <= value
        if op == "in":
            return v in value
        if op == "between":
            return value[0] <= v <= value[1]
        if op == "range":
            return value[0] <= v < value[1]
        if op == "in_ranges":
            return any(lo <= v < hi for lo, hi in value)
        if op == "contains":
            return fold(str(value)) in fold(str(v))
        if op == "starts_with":
            return fold(str(v)).startswith(fold(str(value)))
        raise ValueError(op)  # pragma: no cover
