"""Drill-down: from a report's group to the object's list page, filtered to the same rows.

A list page is filtered by its URL (web/listing.py): `f.<field>=value` (repeated: any of
them, `none`: empty, `me`: the current user) for the fields in the object's `list.filters`,
`f.<field>.from` / `.to` for numbers and dates (inclusive, days in the application's time
zone for datetimes), and `scheme=<name>`. A link is offered only when everything that
narrows the group can be said that way — the report's `where`, the page's own filters and
the group values — so the list shows exactly the records the group counts (the list, like
the report, shows only what the viewer may read). Otherwise there is no link.

    params = combine(of_condition(...), of_group(...))   # None: not expressible
    url = list_url(obj, params)
"""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from ..compiler.conditions import Context
from ..metadata.spec import All, Compare, FieldRef, Var
from ..web.listing import RANGE_TYPES
from . import buckets

TEXT_TYPES = ("text", "textarea", "email", "phone", "url", "autonumber", "mnemonic")
CHOICE_TYPES = ("dictionary", "state", "lookup", "user", "department")


class _Inexpressible(Exception):
    pass


def _filterable(obj, path):
    if len(path) != 1 or path[0] not in obj.list.filters or path[0] not in obj.fields:
        raise _Inexpressible
    return obj.fields[path[0]]


def _atom(runtime, obj, cond: Compare, ctx: Context) -> dict:
    f = _filterable(obj, cond.path)
    name, op, raw = f.name, cond.op, cond.value
    if isinstance(raw, FieldRef):
        raise _Inexpressible
    t = f.value_type
    if t in RANGE_TYPES:
        if op not in ("eq", "gte", "lte", "between"):
            raise _Inexpressible
        try:
            value = runtime.conditions.resolve(f, raw, ctx)
        except (ValueError, TypeError, ArithmeticError):
            raise _Inexpressible from None
        values = value if isinstance(value, tuple) else (value,)
        if t == "datetime" and any(isinstance(v, dt.datetime) or not isinstance(v, dt.date) for v in values):
            raise _Inexpressible   # a moment, not a day: the list filters by days
        lo = hi = None
        if op == "eq":
            lo = hi = values[0]
        elif op == "gte":
            lo = values[0]
        elif op == "lte":
            hi = values[0]
        elif len(values) == 2:
            lo, hi = values
        else:
            raise _Inexpressible
        return {name: ("range", lo, hi)}
    if t == "boolean":
        if op != "eq" or not isinstance(raw, bool):
            raise _Inexpressible
        return {name: ("in", frozenset({"1" if raw else "0"}))}
    if t in TEXT_TYPES:
        if op != "contains" or not isinstance(raw, str) or not raw:
            raise _Inexpressible
        return {name: ("contains", raw)}
    if t in CHOICE_TYPES:
        if op == "is_null":
            return {name: ("in", frozenset({"none"}))}
        if op not in ("eq", "in"):
            raise _Inexpressible
        values = raw if isinstance(raw, tuple) else (raw,)
        out = set()
        for v in values:
            if isinstance(v, Var):
                if v.name == "current_user" and t == "user":
                    out.add("me")
                elif v.name == "current_department" and t == "department" and ctx.department_id is not None:
                    out.add(str(ctx.department_id))
                else:
                    raise _Inexpressible
            elif v is None or v in ("", "none", "me"):
                raise _Inexpressible
            else:
                out.add(str(v))
        return {name: ("in", frozenset(out))}
    raise _Inexpressible


def _params(runtime, obj, cond, ctx) -> dict:
    if cond is None:
        return {}
    if isinstance(cond, All):
        out: dict = {}
        for item in cond.items:
            out = _merge(out, _params(runtime, obj, item, ctx))
        return out
    if isinstance(cond, Compare):
        return _atom(runtime, obj, cond, ctx)
    raise _Inexpressible   # any / not


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for name, want in b.items():
        have = out.get(name)
        if have is None:
            out[name] = want
            continue
        if have[0] != want[0]:
            raise _Inexpressible
        if have[0] == "in":
            both = have[1] & want[1]
            if not both:
                raise _Inexpressible      # nothing matches both: no list to show
            out[name] = ("in", both)
        elif have[0] == "range":
            los = [v for v in (have[1], want[1]) if v is not None]
            his = [v for v in (have[2], want[2]) if v is not None]
            out[name] = ("range", max(los) if los else None, min(his) if his else None)
        elif have != want:
            raise _Inexpressible
    return out


def of_condition(runtime, obj, cond, ctx: Context | None = None):
    """List parameters saying what `cond` says, or None. A condition that is one of the
    object's search schemes becomes `scheme=<name>`."""
    ctx = ctx or Context()
    try:
        return _params(runtime, obj, cond, ctx)
    except _Inexpressible:
        pass
    for scheme in obj.search.schemes:
        if scheme.where == cond:
            return {"": ("scheme", scheme.name)}
    return None


def of_group(obj, column, group):
    """List parameters for one group value, or None."""
    try:
        f = _filterable(obj, column.path)
    except _Inexpressible:
        return None
    value = group.value
    if column.bucket:
        span = buckets.days(value, column.bucket) if value is not None else None
        return {f.name: ("range", span[0], span[1])} if span else None
    t = f.value_type
    if t in CHOICE_TYPES:
        return {f.name: ("in", frozenset({"none" if value is None else str(value)}))}
    if value is None:
        return None
    if t == "boolean":
        return {f.name: ("in", frozenset({"1" if value else "0"}))}
    if t in RANGE_TYPES and t != "datetime":
        return {f.name: ("range", value, value)}
    return None


def combine(*parts):
    """All parts at once (None when one of them cannot be said, or they contradict)."""
    out: dict = {}
    for part in parts:
        if part is None:
            return None
        try:
            out = _merge(out, part)
        except _Inexpressible:
            return None
    return out


def _text(value) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def query(obj, params: dict) -> list:
    """The (name, value) pairs of the list URL, in the order of the list's filters."""
    pairs = []
    scheme = params.get("")
    if scheme:
        pairs.append(("scheme", scheme[1]))
    for name in obj.list.filters:
        entry = params.get(name)
        if entry is None:
            continue
        if entry[0] == "in":
            pairs += [(f"f.{name}", v) for v in sorted(entry[1])]
        elif entry[0] == "contains":
            pairs.append((f"f.{name}", entry[1]))
        else:
            if entry[1] is not None:
                pairs.append((f"f.{name}.from", _text(entry[1])))
            if entry[2] is not None:
                pairs.append((f"f.{name}.to", _text(entry[2])))
    return pairs


def list_url(obj, params) -> str | None:
    if params is None or obj.child_of:
        return None
    pairs = query(obj, params)
    return f"/o/{obj.name}/" + ("?" + urlencode(pairs) if pairs else "")
