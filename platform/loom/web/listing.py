"""A list view from its URL: filters, quick search, scheme, sort and page.

Everything a view shows is in its query string, so back, reload and a shared link give
the same view:  ?q=华信&f.category=consumer&f.created_at.from=2024-01-01&s=-amount&after=...

Paging is by keyset (`after` / `before` cursors), so a page deep in a million rows costs
what the first page costs; the count is capped and loaded in its own request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from markupsafe import Markup

from ..metadata.spec import All, Any_, Compare, FieldRef, FieldSpec, Not, ObjectSpec, Var
from ..records.search import ordered_page
from ..records.service import encode_cursor
from . import formatting

RANGE_TYPES = {"integer", "decimal", "percent", "money", "date", "datetime", "rollup", "formula"}
COUNT_CAP = 1000


@dataclass
class Column:
    name: str
    field: FieldSpec
    label: object
    fmt: object
    sortable: bool


@dataclass
class ListState:
    q: str = ""
    sort: list = field(default_factory=list)         # ["-updated_at"]
    filters: dict = field(default_factory=dict)      # field -> value | (from, to)
    scheme: str | None = None
    after: str | None = None
    before: str | None = None
    args: dict = field(default_factory=dict)         # the query string as given (for links)

    def url(self, base: str, **changes) -> str:
        """The same view with some parameters changed (None removes one)."""
        args = {k: v for k, v in self.args.items() if k not in ("after", "before")}
        for k, v in changes.items():
            if v in (None, ""):
                args.pop(k, None)
            else:
                args[k] = v
        return base + ("?" + urlencode(args, doseq=True) if args else "")


def parse(obj: ObjectSpec, args) -> ListState:
    state = ListState(args={k: args.getlist(k) if len(args.getlist(k)) > 1 else args.get(k) for k in args})
    state.q = (args.get("q") or "").strip()[:100]
    if args.get("s"):
        state.sort = [s for s in args.get("s").split(",") if s][:3]
    state.scheme = args.get("scheme") or None
    state.after, state.before = args.get("after") or None, args.get("before") or None
    for name in obj.list.filters:
        f = obj.fields.get(name)
        if f is None:
            continue
        if f.value_type in RANGE_TYPES:
            low, high = args.get(f"f.{name}.from"), args.get(f"f.{name}.to")
            if low or high:
                state.filters[name] = (low or None, high or None)
        else:
            values = [v for v in args.getlist(f"f.{name}") if v != ""]
            if values:
                state.filters[name] = values
    return state


def condition(obj: ObjectSpec, state: ListState, actor, schemes: dict):
    """The filters and the chosen scheme as one condition (None when there is none)."""
    parts = []
    for name, value in state.filters.items():
        f = obj.fields[name]
        if isinstance(value, tuple):
            low, high = value
            if low:
                parts.append(Compare((name,), "gte", low))
            if high:
                parts.append(Compare((name,), "lte", high))
            continue
        values = tuple(Var("current_user") if v == "me" else v for v in value)
        if f.type == "boolean":
            parts.append(Compare((name,), "eq", values[0] in ("1", "true", "yes")))
        elif f.value_type in ("text", "textarea", "email", "phone", "url", "autonumber", "mnemonic"):
            parts.append(Compare((name,), "contains", values[0]))
        elif any(v == "" or v == "none" for v in values):
            parts.append(Compare((name,), "is_null"))
        else:
            parts.append(Compare((name,), "in", values) if len(values) > 1 else Compare((name,), "eq", values[0]))
    scheme = schemes.get(state.scheme)
    if scheme is not None and scheme.where is not None:
        parts.append(scheme.where)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else All(tuple(parts))


class Columns(list):
    """A list's columns. `cells` renders a row's cells after the first in one call: a
    Jinja loop over the columns cost twice what the formatters themselves cost."""

    def cells(self, row, refs) -> Markup:
        return Markup("".join([f"<td>{c.fmt(row.get(c.name), refs)}</td>" for c in self[1:]]))


def view(runtime, actor, obj: ObjectSpec, args):
    """The list view of a query string as the actor may have it: (state, condition, schemes).
    Filters on fields the actor may not read are left out, and so are schemes that select
    or sort on such fields: either would tell the values of the hidden field."""
    readable = runtime.records.policy.readable_fields(actor, obj)
    state = parse(obj, args)
    state.filters = {k: v for k, v in state.filters.items() if k in readable}
    schemes = usable_schemes(runtime, actor, obj)
    return state, condition(obj, state, actor, schemes), schemes


def usable_schemes(runtime, actor, obj: ObjectSpec) -> dict:
    """{name: scheme} of the object's schemes whose condition and sort look only at fields
    the actor may read (along paths too: customer.annual_revenue)."""
    policy = runtime.records.policy

    def readable(path) -> bool:
        current = obj
        for part in path:
            if part not in policy.readable_fields(actor, current):
                return False
            target = current.fields[part].target
            if target is None:
                break
            current = runtime.spec.objects[target]
        return True
    return {s.name: s for s in obj.search.schemes
            if all(readable(p) for p in condition_paths(s.where)) and all(readable((n,)) for n, _d in s.sort)}


def condition_paths(cond):
    """The field paths a condition compares (values that are fields too)."""
    if isinstance(cond, Compare):
        yield cond.path
        if isinstance(cond.value, FieldRef):
            yield cond.value.path
    elif isinstance(cond, (All, Any_)):
        for item in cond.items:
            yield from condition_paths(item)
    elif isinstance(cond, Not):
        yield from condition_paths(cond.item)


def columns(runtime, obj: ObjectSpec, names, lang: str, *, readable=None) -> Columns:
    out = Columns()
    for name in names:
        path = name.split(".")
        fields = runtime.spec.resolve(obj, path)
        f = fields[-1]
        if readable is not None and path[0] not in readable:
            continue
        owner = runtime.spec.objects[fields[-2].target].name if len(fields) > 1 else obj.name
        label = f.label if len(fields) == 1 else f"{fields[0].label.text(lang)} · {f.label.text(lang)}"
        sortable = len(path) == 1 and f.stored and f.type not in ("textarea", "file", "lines") and not f.multiple
        out.append(Column(name, f, label, formatting.formatter(runtime.spec, owner, f, lang), sortable))
    return out


def fetch(runtime, actor, obj: ObjectSpec, state: ListState, where, *, limit: int):
    """(rows, prev cursor, next cursor)."""
    service = runtime.records
    sort = state.sort or None
    keys = service._sort(obj, sort)
    if state.before:
        flipped = [("-" if not d else "") + n for n, d in keys]
        with ordered_page():
            page = service.query(obj, actor, where=where, search=state.q, sort=flipped, after=state.before, limit=limit)
        rows = list(reversed(page.rows))
        has_prev, has_next = page.has_more, True
    else:
        with ordered_page():
            page = service.query(obj, actor, where=where, search=state.q, sort=sort, after=state.after, limit=limit)
        rows = page.rows
        has_prev, has_next = bool(state.after), page.has_more
    prev = encode_cursor([rows[0][n] for n, _d in keys]) if rows and has_prev else None
    nxt = encode_cursor([rows[-1][n] for n, _d in keys]) if rows and has_next else None
    return rows, prev, nxt


def path_values(runtime, actor, obj: ObjectSpec, rows, names):
    """Values of columns that follow lookups (customer.industry): one query per hop."""
    for name in names:
        path = name.split(".")
        if len(path) < 2:
            continue
        current_obj, keys = obj, {id(r): r.get(path[0]) for r in rows}
        for i, part in enumerate(path[:-1]):
            f = current_obj.fields[part]
            target = runtime.spec.objects[f.target]
            ids = {v for v in keys.values() if v is not None}
            page = runtime.records.query(target, actor, where=Compare(("id",), "in", tuple(ids)), limit=len(ids) or 1) \
                if ids else None
            by_id = {r["id"]: r for r in page.rows} if page else {}
            nxt = path[i + 1]
            keys = {k: (by_id.get(v) or {}).get(nxt) for k, v in keys.items()}
            current_obj = target
        for r in rows:
            r[name] = keys.get(id(r))
