"""The board view of `list.kanban`: a column per value of the grouping field, cards that
move between columns (through the record service, like any edit)."""
from __future__ import annotations

import sqlalchemy as sa

from ..metadata.spec import All, Compare
from . import formatting, listing

CARDS = 50


def _columns(runtime, obj, f, lang):
    if f.type == "dictionary":
        return [(c, i.label.text(lang), i.color) for c, i in runtime.spec.dictionaries[f.dictionary].items.items()
                if i.active]
    if f.type == "state":
        return [(s, st.label.text(lang), st.color) for s, st in runtime.spec.lifecycle_of(obj).states.items()]
    if f.type == "boolean":
        return [(True, "✓", "green"), (False, "✗", "gray")]
    from .forms import _options
    return [(i, t, None) for i, t in _options(runtime, f.target, None, limit=30)]


def board(runtime, actor, obj, args, lang):
    kanban = obj.list.kanban
    f = obj.fields[kanban.group_by]
    state, base, _schemes = listing.view(runtime, actor, obj, args)
    card_fields = list(kanban.fields) or [c for c in obj.list.columns if c not in (obj.title, kanban.group_by)][:3]
    readable = runtime.records.policy.readable_fields(actor, obj)
    fmts = listing.columns(runtime, obj, card_fields, lang, readable=readable)
    card_fields = [c.name for c in fmts]
    total = obj.fields.get(kanban.sum) if kanban.sum and kanban.sum in readable else None
    columns = []
    for value, label, color in _columns(runtime, obj, f, lang) + [(None, "—", "gray")]:
        cond = Compare((f.name,), "eq", value) if value is not None else Compare((f.name,), "is_null")
        where = All((base, cond)) if base is not None else cond
        page = runtime.records.query(obj, actor, where=where, search=state.q, limit=CARDS)
        if value is None and not page.rows:
            continue
        amount = None
        if total is not None:
            with runtime.engine.connect() as conn:
                q = runtime.records.select(conn, obj, actor, where=where, search=state.q).subquery()
                amount = conn.execute(sa.select(sa.func.sum(q.c[total.name]))).scalar()
        refs = formatting.collect_refs(runtime, actor, obj.name, page.rows, card_fields)
        columns.append(dict(value="" if value is None else value, label=label, color=color, rows=page.rows,
                            more=page.has_more, refs=refs, total=amount))
    money = formatting.formatter(runtime.spec, obj.name, total, lang) if total is not None else None
    return dict(obj=obj, columns=columns, fmts=fmts, money=money, state=state, group=f,
                base=f"/o/{obj.name}/kanban")
