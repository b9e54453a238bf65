"""Showing values: one formatter per column, chosen once per field type, so rendering a
list is a loop of plain function calls (no per-cell branching on types).

A formatter takes (value, refs) where refs maps (object, id) -> title for references,
and returns safe HTML (every user value escaped here, once).
"""
from __future__ import annotations

import datetime as dt
import decimal
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from ..metadata.spec import AppSpec, FieldSpec, Label

CURRENCY = {"CNY": "¥", "USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£", "HKD": "HK$"}
EMPTY = Markup('<span class="empty">—</span>')


def _number(value, scale=None) -> str:
    if scale is None:
        return f"{value:,}"
    return f"{decimal.Decimal(value):,.{scale}f}"


def plain(value, spec: AppSpec, f: FieldSpec, lang: str, tz) -> str:
    """A value as text (exports, titles): no HTML."""
    if value is None or value == []:
        return ""
    t = f.value_type
    if t in ("dictionary", "state"):
        items = _items(spec, f)
        values = value if isinstance(value, list) else [value]
        return ", ".join(items[v].label.text(lang) if v in items else str(v) for v in values)
    if t == "boolean":
        return ("是" if value else "否") if lang == "zh" else ("Yes" if value else "No")
    if t == "datetime":
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if t in ("decimal", "percent", "money"):
        return _number(value, f.scale)
    if t == "file":
        return str(value.get("name", "")) if isinstance(value, dict) else str(value)
    return str(value)


def _items(spec: AppSpec, f: FieldSpec) -> dict:
    if f.type == "state":
        return {}
    return spec.dictionaries[f.dictionary].items


def _is_money(spec: AppSpec, f: FieldSpec) -> bool:
    """Money, or a rollup summing money (its total is money too)."""
    if f.type == "money":
        return True
    if f.type == "rollup" and f.rollup.field and f.rollup.agg in ("sum", "min", "max", "avg"):
        child = spec.objects[f.rollup.child].fields.get(f.rollup.field)
        return child is not None and _is_money(spec, child)
    return False


_FORMATTERS: dict = {}


def formatter(spec: AppSpec, obj_name: str, f: FieldSpec, lang: str, *, detail: bool = False):
    """A function (value, refs) -> Markup for one field, built once per field, language
    and compiled spec (a list page asks for nine of them on every request)."""
    key = (id(spec), obj_name, f.name, id(f), lang, detail)
    cached = _FORMATTERS.get(key)
    if cached is not None and cached[0] is spec:
        return cached[1]
    if len(_FORMATTERS) > 20_000:   # specs replaced by reloads in development
        _FORMATTERS.clear()
    fmt = _formatter(spec, obj_name, f, lang, detail)
    _FORMATTERS[key] = (spec, fmt)
    return fmt


def _formatter(spec: AppSpec, obj_name: str, f: FieldSpec, lang: str, detail: bool):
    """These run once per cell (500 per list page), so the HTML of every code a field can
    hold (badges, states, booleans) is built here once, and the rest is plain string
    concatenation around `escape` rather than `Markup.format` (5x slower per call)."""
    tz = ZoneInfo(spec.timezone)
    t = f.value_type

    if t in ("text", "autonumber", "mnemonic"):
        return lambda v, refs: escape(v) if v not in (None, "") else EMPTY
    if t == "textarea":
        if detail:
            return lambda v, refs: Markup("<br>").join(escape(v).split("\n")) if v else EMPTY
        return lambda v, refs: escape(v if len(v) < 80 else v[:78] + "…") if v else EMPTY
    if t in ("email", "phone"):
        scheme = "mailto:" if t == "email" else "tel:"

        def link(v, refs):
            if not v:
                return EMPTY
            e = escape(v)
            return Markup(f'<a href="{scheme}{e}">{e}</a>')
        return link
    if t == "url":
        def url(v, refs):
            if not v:
                return EMPTY
            if not v.lower().startswith(("http://", "https://")):
                return escape(v)
            e = escape(v)
            return Markup(f'<a href="{e}" target="_blank" rel="noopener noreferrer">{e}</a>')
        return url
    if t == "integer":
        return lambda v, refs: escape(_number(v)) if v is not None else EMPTY
    if t in ("decimal", "percent", "money"):
        scale = f.scale if f.scale is not None else 2
        prefix = escape(CURRENCY.get(f.currency or spec.currency, "") if _is_money(spec, f) else "")
        suffix = "%" if f.type == "percent" else ""
        return lambda v, refs: Markup(f'<span class="num">{prefix}{escape(_number(v, scale))}{suffix}</span>') \
            if v is not None else EMPTY
    if t == "boolean":
        yes, no = ("是", "否") if lang == "zh" else ("Yes", "No")
        shown = {True: Markup(f'<span class="bool yes">{yes}</span>'), False: Markup(f'<span class="bool no">{no}</span>')}
        return lambda v, refs: shown[bool(v)] if v is not None else EMPTY
    if t == "date":
        return lambda v, refs: escape(v.isoformat()) if v else EMPTY
    if t == "datetime":
        return lambda v, refs: Markup(v.astimezone(tz).strftime("%Y-%m-%d %H:%M")) if v else EMPTY  # digits only
    if t == "dictionary":
        items = spec.dictionaries[f.dictionary].items
        badges = {code: Markup('<span class="badge {}">{}</span>').format(item.color or "plain", item.label.text(lang))
                  for code, item in items.items()}

        def badge(code):
            shown = badges.get(code)
            return shown if shown is not None else Markup('<span class="badge">{}</span>').format(code)
        if f.multiple:
            return lambda v, refs: Markup(" ").join(badge(c) for c in v) if v else EMPTY
        return lambda v, refs: badge(v) if v else EMPTY
    if t == "state":
        obj = spec.objects[obj_name]
        states = spec.workflows[obj.lifecycle].states if obj.lifecycle else {}
        badges = {name: Markup('<span class="badge state {}">{}</span>').format(s.color or "blue", s.label.text(lang))
                  for name, s in states.items()}

        def state(v, refs):
            shown = badges.get(v)
            if shown is None:
                return escape(v) if v else EMPTY
            return shown
        return state
    if t in ("lookup", "user", "department"):
        target = f.target
        prefix = f'<a href="/o/{escape(target)}/' if target not in ("user",) else None

        def ref(v, refs):
            if v is None:
                return EMPTY
            title = refs.get((target, v))
            if title is None:
                return Markup(f'<span class="muted">#{escape(v)}</span>')
            if prefix is None:
                return escape(title)
            return Markup(f'{prefix}{escape(v)}">{escape(title)}</a>')
        return ref
    if t == "file":
        return lambda v, refs: escape(v.get("name", "")) if isinstance(v, dict) else EMPTY
    return lambda v, refs: escape(v) if v is not None else EMPTY


def reference_fields(spec: AppSpec, obj_name: str, names) -> list:
    obj = spec.objects[obj_name]
    return [obj.fields[n] for n in names if n in obj.fields and obj.fields[n].is_reference]


def collect_refs(runtime, actor, obj_name: str, rows, names) -> dict:
    """Titles of every record the rows refer to in the given fields: one query per target."""
    wanted: dict = {}
    for f in reference_fields(runtime.spec, obj_name, names):
        wanted.setdefault(f.target, set()).update(r.get(f.name) for r in rows)
    refs = {}
    for target, ids in wanted.items():
        reader = None if target in ("user", "department") else actor
        for id_, title in runtime.records.titles(target, ids, reader).items():
            refs[(target, id_)] = title
    return refs


def today(spec: AppSpec) -> dt.date:
    return dt.datetime.now(ZoneInfo(spec.timezone)).date()


class _Named:
    """A label-like thing for history details that are not fields."""
    def __init__(self, en, zh):
        self.label = Label((("en", en), ("zh", zh)))


DETAILS = {"step": _Named("Step", "审批步骤"), "share": _Named("Sharing", "共享"),
           "merged": _Named("Merged", "合并"), "merged_into": _Named("Merged into", "并入")}


def history_entries(runtime, actor, obj, entries, lang) -> list[dict]:
    """History entries with each change shown as people read it: labels for codes and
    states, titles for references, local times; computed fields left out (they follow)."""
    tz = ZoneInfo(runtime.spec.timezone)
    wanted: dict = {}
    for entry in entries:
        for name, (old, new) in (entry.get("changes") or {}).items():
            f = obj.fields.get(name)
            if f is not None and f.is_reference:
                wanted.setdefault(f.target, set()).update(v for v in (old, new) if isinstance(v, int))
    titles = {(target, i): t for target, ids in wanted.items()
              for i, t in runtime.records.titles(target, ids, None if target in ("user", "department") else actor).items()}
    out = []
    for entry in entries:
        shown = []
        for name, (old, new) in (entry.get("changes") or {}).items():
            f = obj.fields.get(name)
            if f is None and name in DETAILS:   # what a step, a share or a merge was about
                shown.append((DETAILS[name], "—" if old is None else str(old), "—" if new is None else str(new)))
                continue
            if f is None or f.computed or f.hidden or (f.system and name not in ("owner", "state")):
                continue
            shown.append((f, _history_value(runtime, obj, f, old, lang, tz, titles),
                          _history_value(runtime, obj, f, new, lang, tz, titles)))
        out.append(dict(entry, shown=shown))
    return out


def _history_value(runtime, obj, f, value, lang, tz, titles) -> str:
    if value is None or value == []:
        return "—"
    if f.is_reference:
        return titles.get((f.target, value), f"#{value}")
    if f.type == "state":
        lifecycle = runtime.spec.lifecycle_of(obj)
        state = lifecycle.states.get(value) if lifecycle else None
        return state.label.text(lang) if state else str(value)
    if f.value_type == "datetime" and isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if f.value_type in ("decimal", "percent", "money") and isinstance(value, str):
        value = decimal.Decimal(value)
    return plain(value, runtime.spec, f, lang, tz) or "—"
