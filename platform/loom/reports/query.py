"""Running a report (METADATA.md section 8): its groups and measures in one SQL query.

    result = run(runtime, actor, "opportunity_funnel")
    result.columns      # group columns, then measure columns
    result.rows         # (Group, ..., value, ...) per group, sorted and limited
    result.totals       # (None, ..., total, ...): the measures over every row counted

The query reads from the record service's select (runtime.records.select), so it starts
from exactly the rows the viewer may read (the permission policy, shares, the recycle bin
left out), narrowed by the report's `where` and the caller's `filters`:

    SELECT g0, g1, COUNT(*), SUM(m0), ...,  SUM(COUNT(*)) OVER (), SUM(SUM(m0)) OVER (), ...
    FROM (SELECT <group keys>, <measure inputs> FROM (<readable rows>) AS base) AS k
    GROUP BY g0, g1 ORDER BY ... LIMIT ...

- A group or measure through lookups (customer.industry) is a correlated subquery that
  reads the linked record only when the viewer may read it too (otherwise the value is
  empty), as list columns through lookups do.
- Dates are bucketed in SQL (buckets.py), datetimes by their local day.
- Totals come from window functions over the groups, so they cover every row counted even
  when `limit` shows only the top groups; when a group is a multi-value dictionary (a
  record counts in each of its codes) they come from a second query over the records.
- Averages are computed from the sum and count of each group, exactly, on both databases.

Field security: a report that groups by a field the viewer may not read is refused
(ReportRefused, a 403 naming the field); a measure of such a field is left out of the
result (`hidden` lists their labels), and refused only when no measure is left. Sorting by
a hidden measure falls back to the groups' order.
"""
from __future__ import annotations

import decimal
import logging
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..compiler.tables import column_type
from ..i18n import Message, _, gettext
from ..metadata.spec import All, FieldSpec, Label, ObjectSpec, ReportSpec
from ..records.errors import Forbidden, NotFound
from ..security.actor import Actor
from ..storage.types import Decimal
from . import buckets

log = logging.getLogger("loom.reports")

MAX_GROUPS = 1000          # a report without a limit shows at most this many groups
SYSTEM_TARGETS = ("user", "department")   # the directory: titles readable by everyone
AGG_LABELS = {"sum": _("Sum of {field}"), "avg": _("Average {field}"), "min": _("Minimum {field}"),
              "max": _("Maximum {field}")}
BUCKET_LABELS = {"day": _("day"), "week": _("week"), "month": _("month"), "quarter": _("quarter"),
                 "year": _("year")}
EMPTY = _("(empty)")


class ReportRefused(Forbidden):
    """The viewer may not see what the report is made of (field security)."""


@dataclass(frozen=True)
class Group:
    """A group column's value in one row: the value itself (a code, an id, a bucket key such
    as 2024-06, a date...), how it is shown, and its colour (dictionary items and states)."""

    value: Any
    label: str
    color: str | None = None


@dataclass(frozen=True)
class Column:
    key: str                       # groups: the path ("customer.industry"); measures: "count", "sum_amount"
    label: str
    kind: str                      # "group" | "measure"
    path: tuple = ()
    field: FieldSpec | None = None # the field at the end of the path (None for a plain count)
    owner: str | None = None       # the object that field belongs to
    bucket: str | None = None
    agg: str | None = None
    shown_as: FieldSpec | None = None   # measures: the type their values are shown as

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


@dataclass
class Result:
    report: ReportSpec
    object: ObjectSpec
    columns: list
    rows: list                     # tuples: a Group per group column, then the measure values
    totals: tuple                  # None for group columns, then the measures over all rows
    lang: str
    timezone: Any = None
    spec: Any = None
    hidden: list = field(default_factory=list)   # labels of measures left out (field security)
    truncated: bool = False        # more groups than MAX_GROUPS matched

    @property
    def groups(self) -> list:
        return [c for c in self.columns if c.is_group]

    @property
    def measures(self) -> list:
        return [c for c in self.columns if not c.is_group]

    def text(self, index: int, value) -> str:
        """A cell as text, as people read it (1,234.50; labels of groups)."""
        from ..web.formatting import plain
        column = self.columns[index]
        if isinstance(value, Group):
            return value.label
        if value is None:
            return ""
        return plain(value, self.spec, column.shown_as, self.lang, self.timezone)

    def raw(self, index: int, value) -> str:
        """A cell for a spreadsheet: group labels, plain numbers (1234.50), ISO dates."""
        if isinstance(value, Group):
            return value.label
        if value is None:
            return ""
        if isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
            return str(value)
        return self.text(index, value)


# ---- planning: columns, field security ------------------------------------------------------

def _readable_path(policy, spec, actor, obj: ObjectSpec, path) -> bool:
    current = obj
    for i, name in enumerate(path):
        if name not in policy.readable_fields(actor, current):
            return False
        if i < len(path) - 1:
            current = spec.objects[current.fields[name].target]
    return True


def _owner(spec, obj: ObjectSpec, path) -> ObjectSpec:
    fields = spec.resolve(obj, path)
    return spec.objects[fields[-2].target] if len(fields) > 1 else obj


def _path_label(spec, obj, path, lang) -> str:
    return " · ".join(f.label.text(lang) for f in spec.resolve(obj, path))


def measure_key(agg: str, field_name: str | None) -> str:
    return agg + (f"_{field_name}" if field_name else "")


def _measure_label(spec, obj, agg, field_name, label: Label, lang) -> str:
    key = measure_key(agg, field_name)
    if label and label != Label.of(None, key):   # written in the report
        return label.text(lang)
    if agg == "count" and not field_name:
        return gettext(lang, _("Count"))
    name = _path_label(spec, obj, tuple(field_name.split(".")), lang) if field_name else ""
    if agg == "count":
        return gettext(lang, _("Count of {field}"), field=name)
    return gettext(lang, AGG_LABELS[agg], field=name)


def _shown_as(key: str, agg: str, leaf: FieldSpec | None, label: str) -> FieldSpec:
    if agg == "count" or leaf is None:
        return FieldSpec(key, "integer", Label.of(label))
    if agg == "avg" and leaf.value_type == "integer":
        return FieldSpec(key, "decimal", Label.of(label), scale=2)
    if agg in ("sum", "avg") and leaf.type == "formula" and leaf.value_type == "integer":
        return FieldSpec(key, "integer", Label.of(label))
    return leaf


def plan(runtime, actor: Actor, report: ReportSpec, lang: str) -> tuple[list, list]:
    """(columns, labels of hidden measures); ReportRefused when a group may not be read."""
    spec = runtime.spec
    policy = runtime.records.policy
    obj = spec.objects[report.object]
    columns, hidden = [], []
    for path, bucket in report.group_by:
        fields = spec.resolve(obj, path)
        leaf = fields[-1]
        if not _readable_path(policy, spec, actor, obj, path):
            raise ReportRefused(_("This report groups by {field}, which you may not see"),
                                field=_path_label(spec, obj, path, lang))
        if not leaf.stored and not (leaf.type == "dictionary" and leaf.multiple):
            raise ValueError(f"report {report.name}: cannot group by {'.'.join(path)} ({leaf.type})")
        label = _path_label(spec, obj, path, lang)
        if bucket:
            label = gettext(lang, _("{field} ({bucket})"), field=label, bucket=gettext(lang, BUCKET_LABELS[bucket]))
        columns.append(Column(".".join(path), label, "group", tuple(path), leaf, _owner(spec, obj, path).name, bucket))
    for agg, field_name, label in report.measures:
        key = measure_key(agg, field_name)
        text = _measure_label(spec, obj, agg, field_name, label, lang)
        path = tuple(field_name.split(".")) if field_name else ()
        if path and not _readable_path(policy, spec, actor, obj, path):
            hidden.append(text)
            continue
        leaf = spec.resolve(obj, path)[-1] if path else None
        columns.append(Column(key, text, "measure", path, leaf, _owner(spec, obj, path).name if path else None,
                              agg=agg, shown_as=_shown_as(key, agg, leaf, text)))
    if not any(not c.is_group for c in columns):
        raise ReportRefused(_("This report measures only fields you may not see: {fields}"), fields=", ".join(hidden))
    return columns, hidden


# ---- SQL ------------------------------------------------------------------------------------------

def _number_type(leaf: FieldSpec):
    if leaf.value_type == "integer":
        return sa.Integer()
    return Decimal(38, leaf.scale if leaf.scale is not None else 2)


def _scale(column: Column) -> int:
    leaf = column.field
    if leaf is None or leaf.value_type == "integer" or leaf.scale is None:
        return 2
    return leaf.scale


class _Query:
    """One report's SQL for one viewer on one connection."""

    def __init__(self, runtime, conn, actor: Actor, obj: ObjectSpec):
        self.runtime, self.conn, self.actor, self.obj = runtime, conn, actor, obj
        self.spec, self.schema = runtime.spec, runtime.schema
        self.policy = runtime.records.policy
        self.dialect = conn.dialect.name
        self.tz = ZoneInfo(self.spec.timezone)

    def readable(self, target: ObjectSpec, table):
        """Rows of `target` (a linked record) the viewer may read: not binned, policy."""
        return sa.and_(table.c.deleted_at.is_(None), self.policy.filter(self.conn, self.actor, target, table))

    def value(self, obj: ObjectSpec, source, path):
        """The value at the end of a path, from `source` (a table, alias or subquery)."""
        f = obj.fields[path[0]]
        if len(path) == 1:
            if f.type == "dictionary" and f.multiple:   # as one value: its first code
                side = self.schema.multi[(obj.name, f.name)].alias()
                return sa.select(sa.func.min(side.c.code)).where(side.c.record_id == source.c.id).scalar_subquery()
            return source.c[f.name]
        target = self.spec.objects[f.target]
        table = self.schema.table(target).alias()
        inner = self.value(target, table, path[1:])
        return sa.select(inner).where(table.c.id == source.c[f.name], self.readable(target, table)).scalar_subquery()

    def group_key(self, base, column: Column):
        """(expression, join or None): a multi-value dictionary joins its codes."""
        leaf = column.field
        if leaf.type == "dictionary" and leaf.multiple:
            owner = self.spec.objects[column.owner]
            side = self.schema.multi[(owner.name, leaf.name)].alias()
            if len(column.path) == 1:
                on = side.c.record_id == base.c.id
            else:
                table = self.schema.table(owner).alias()
                on = sa.and_(side.c.record_id == self.value(self.obj, base, column.path[:-1]),
                             side.c.record_id.in_(sa.select(table.c.id).where(self.readable(owner, table))))
            return side.c.code, (side, on)
        expr = self.value(self.obj, base, column.path)
        if column.bucket:
            local = None
            if leaf.value_type == "datetime":
                local = lambda e: self.runtime.conditions._local_date_sql(e, self.tz)  # noqa: E731
            expr = buckets.key_sql(expr, column.bucket, self.dialect, local_date=local)
        return expr, None

    def inner(self, base, groups, measures, *, with_groups=True):
        cols, from_, joined = [], base, False
        if with_groups:
            for i, column in enumerate(groups):
                expr, join = self.group_key(base, column)
                if join is not None:
                    from_ = from_.outerjoin(*join)
                    joined = True
                cols.append(expr.label(f"g{i}"))
        for j, column in enumerate(measures):
            if column.path:
                cols.append(self.value(self.obj, base, column.path).label(f"m{j}"))
        if not cols:
            cols.append(sa.literal(1).label("one"))
        return sa.select(*cols).select_from(from_).subquery("k"), joined

    @staticmethod
    def aggregates(k, measures, *, window: bool):
        """The aggregate columns a{j} (s{j}, n{j} for sums and averages) and, with window,
        their totals over all groups t{j} (ts{j}, tn{j})."""
        out = []
        for j, column in enumerate(measures):
            value = k.c[f"m{j}"] if column.path else None
            if column.agg == "count":
                a = sa.func.count(value) if value is not None else sa.func.count()
                out.append(a.label(f"a{j}"))
                if window:
                    out.append(sa.func.sum(a).over().label(f"t{j}"))
            elif column.agg in ("sum", "avg"):
                kind = _number_type(column.field)
                s, n = sa.func.sum(value, type_=kind), sa.func.count(value)
                out += [s.label(f"s{j}"), n.label(f"n{j}")]
                if window:
                    out += [sa.func.sum(s, type_=kind).over().label(f"ts{j}"), sa.func.sum(n).over().label(f"tn{j}")]
            else:
                kind = column_type(column.field) if not column.field.multiple else sa.String()
                fn = getattr(sa.func, column.agg)
                a = fn(value, type_=kind)
                out.append(a.label(f"a{j}"))
                if window:
                    out.append(fn(a, type_=kind).over().label(f"t{j}"))
        return out

    def natural(self, column: Column, expr, desc=False) -> list:
        """ORDER BY terms for a group column in its natural order: dictionary and state
        order, titles of linked records, time; empty values last either way."""
        leaf = column.field
        terms = []
        if not column.bucket and leaf.type == "dictionary":
            codes = list(self.spec.dictionaries[leaf.dictionary].items)
            terms.append(sa.case({c: i for i, c in enumerate(codes)}, value=expr, else_=len(codes)))
        elif not column.bucket and leaf.type == "state":
            lifecycle = self.spec.lifecycle_of(self.spec.objects[column.owner])
            names = list(lifecycle.states) if lifecycle else []
            terms.append(sa.case({s: i for i, s in enumerate(names)}, value=expr, else_=len(names)))
        elif not column.bucket and leaf.is_reference:
            target = self.spec.objects[leaf.target]
            table = self.schema.table(target).alias()
            if target.title in table.c:
                column = table.c[target.title]
                if self.dialect == "postgresql":   # code-point order, as SQLite (and conditions) have it
                    column = column.collate("C")
                title = sa.select(column).where(table.c.id == expr)
                if leaf.target not in SYSTEM_TARGETS:
                    title = title.where(self.readable(target, table))
                terms.append(title.scalar_subquery())
        terms.append(expr)
        return [sa.nulls_last(t.desc() if desc else t.asc()) for t in terms]


def _combine(*conditions):
    parts = tuple(c for c in conditions if c is not None)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else All(parts)


def _order(q: _Query, report: ReportSpec, groups, measures, gk, aggs) -> list:
    terms, used = [], set()
    for key in report.sort:
        desc, name = key.startswith("-"), key.lstrip("-")
        for i, column in enumerate(groups):
            if column.key == name and i not in used:
                terms += q.natural(column, gk[i], desc)
                used.add(i)
                break
        else:
            for j, column in enumerate(measures):
                if column.key == name:
                    terms.append(sa.nulls_last(aggs[j].desc() if desc else aggs[j].asc()))
                    break
            else:   # unknown or hidden (field security): the groups' order decides
                log.debug("report %s: sort key %r is not one of its columns", report.name, key)
    for i, column in enumerate(groups):
        if i not in used:
            terms += q.natural(column, gk[i])
    return terms


def _sort_value(k, j, column):
    """The expression a measure sorts by."""
    value = k.c[f"m{j}"] if column.path else None
    if column.agg == "count":
        return sa.func.count(value) if value is not None else sa.func.count()
    if column.agg == "avg":
        return sa.func.avg(value)
    return getattr(sa.func, column.agg)(value)


def _measure(column: Column, row, prefix: str, j: int):
    """A measure's value from a result row (a{j}, or s{j}/n{j}; totals: t, ts, tn)."""
    if column.agg == "count":
        value = row[f"{prefix}{j}"] if prefix == "a" else row[f"t{j}"]
        return int(value or 0)
    if column.agg in ("sum", "avg"):
        s = row[f"s{j}"] if prefix == "a" else row[f"ts{j}"]
        n = row[f"n{j}"] if prefix == "a" else row[f"tn{j}"]
        n = int(n or 0)
        if column.agg == "sum":
            if s is None or n == 0:
                return None
            return int(s) if column.field.value_type == "integer" else decimal.Decimal(s)
        if not n or s is None:
            return None
        quantum = decimal.Decimal(1).scaleb(-_scale(column))
        return (decimal.Decimal(s) / n).quantize(quantum, rounding=decimal.ROUND_HALF_UP)
    return row[f"a{j}"] if prefix == "a" else row[f"t{j}"]


def _parse_filters(runtime, actor, obj, filters):
    if filters is None or not isinstance(filters, dict):
        return filters
    from ..records.conditions_input import parse_condition
    hidden = set(obj.fields) - runtime.records.policy.readable_fields(actor, obj)
    return parse_condition(runtime.spec, obj.name, filters, hidden=hidden)


def run(runtime, actor: Actor, report: ReportSpec | str, filters=None, *, lang: str | None = None,
        max_groups: int = MAX_GROUPS) -> Result:
    """Run a report for `actor`. `filters` (a condition, or a mapping as in YAML whose
    fields the actor must be able to read) narrows it further. NotFound when the report
    does not exist or its object may not be read; ReportRefused (field security)."""
    spec = runtime.spec
    lang = lang or actor.language or spec.default_language
    if isinstance(report, str):
        found = spec.reports.get(report)
        if found is None:
            raise NotFound(_("The report {name} does not exist or you may not see it"), name=report)
        report = found
    obj = spec.objects[report.object]
    service = runtime.records
    if not service.policy.can(actor, obj, "read"):
        raise NotFound(_("The report {name} does not exist or you may not see it"), name=report.name)
    columns, hidden = plan(runtime, actor, report, lang)
    groups = [c for c in columns if c.is_group]
    measures = [c for c in columns if not c.is_group]
    where = _combine(report.where, _parse_filters(runtime, actor, obj, filters))
    limit = min(report.limit or max_groups, max_groups)
    with service.reading() as conn:
        q = _Query(runtime, conn, actor, obj)
        base = service.select(conn, obj, actor, where=where).subquery("base")
        k, joined = q.inner(base, groups, measures)
        gk = [k.c[f"g{i}"] for i in range(len(groups))]
        window = bool(groups) and not joined
        stmt = sa.select(*gk, *q.aggregates(k, measures, window=window))
        if groups:
            aggs = [_sort_value(k, j, m) for j, m in enumerate(measures)]
            stmt = stmt.group_by(*gk).order_by(*_order(q, report, groups, measures, gk, aggs)).limit(limit + 1)
        rows = [r for r in conn.execute(stmt).mappings()]
        truncated = bool(groups) and len(rows) > limit and not report.limit
        rows = rows[:limit]
        if not groups:
            totals_row, prefix = (rows[0] if rows else None), "a"
        elif window:
            totals_row, prefix = (rows[0] if rows else None), "t"
        else:   # a record counts in each of its codes: total the records once each
            k2, _joined = q.inner(base, groups, measures, with_groups=False)
            once = sa.select(*q.aggregates(k2, measures, window=False))
            totals_row, prefix = conn.execute(once).mappings().first(), "a"
        labels = [_labels(runtime, conn, actor, column, [r[f"g{i}"] for r in rows], lang)
                  for i, column in enumerate(groups)]
    out_rows = []
    for r in rows:
        cells = [labels[i][r[f"g{i}"]] for i in range(len(groups))]
        cells += [_measure(m, r, "a", j) for j, m in enumerate(measures)]
        out_rows.append(tuple(cells))
    if totals_row is None:
        totals = tuple([None] * len(groups) + [0 if m.agg == "count" else None for m in measures])
    else:
        totals = tuple([None] * len(groups) + [_measure(m, totals_row, prefix, j) for j, m in enumerate(measures)])
    if not groups:   # one row: the measures over everything
        out_rows = [totals[len(groups):]] if totals_row is not None else []
    return Result(report, obj, columns, out_rows, totals, lang, ZoneInfo(spec.timezone), spec, hidden, truncated)


# ---- labels of groups --------------------------------------------------------------------------

def _labels(runtime, conn, actor, column: Column, values, lang) -> dict:
    """{value: Group} for the values of one group column."""
    from ..web.formatting import plain
    spec = runtime.spec
    leaf = column.field
    empty = Group(None, gettext(lang, EMPTY))
    out = {None: empty}
    present = [v for v in values if v is not None]
    if column.bucket:
        out.update({v: Group(v, buckets.label(v, column.bucket)) for v in present})
    elif leaf.type == "dictionary":
        items = spec.dictionaries[leaf.dictionary].items
        for v in present:
            item = items.get(v)
            out[v] = Group(v, item.label.text(lang), item.color) if item else Group(v, str(v))
    elif leaf.type == "state":
        lifecycle = spec.lifecycle_of(spec.objects[column.owner])
        states = lifecycle.states if lifecycle else {}
        for v in present:
            state = states.get(v)
            out[v] = Group(v, state.label.text(lang), state.color) if state else Group(v, str(v))
    elif leaf.is_reference:
        reader = None if leaf.target in SYSTEM_TARGETS else actor   # as list pages show them
        titles = runtime.records.titles(leaf.target, set(present), reader, conn=conn)
        out.update({v: Group(v, titles.get(v, f"#{v}")) for v in present})
    elif leaf.value_type == "boolean":
        out.update({v: Group(v, gettext(lang, _("Yes") if v else _("No"))) for v in present})
    else:
        tz = ZoneInfo(spec.timezone)
        out.update({v: Group(v, plain(v, spec, leaf, lang, tz)) for v in present})
    return out


def message(error) -> Message | None:
    """The reader-facing message of an error run() raises (for pages and the API)."""
    return getattr(error, "msg", None)
