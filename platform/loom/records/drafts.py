"""Judging a draft without saving it: what a live form asks while a person types.

The same coercion, computation and checks as a real write (record service internals),
so the form's inline messages and its show_if / required_if behaviour are the service's.
"""
from __future__ import annotations

from ..security.actor import Actor


def check_draft(service, obj, values: dict, actor: Actor, record_id: int | None = None) -> dict:
    """{"hidden": [fields], "hidden_sections": [indexes into obj.form], "required": [fields],
    "errors": {field: [Message]}}."""
    obj = service.obj(obj)
    with service.reading() as conn:
        ctx = service.context(actor, conn)
        before = service._readable(conn, obj, record_id, actor) if record_id else None
        typed, _lines, errors = service._input(obj, {k: v for k, v in values.items()
                                                     if obj.fields.get(k) is not None and obj.fields[k].type != "lines"},
                                               creating=before is None, system=False)
        record = dict(before or {})
        if before is None:
            for f in obj.fields.values():
                if f.default is not None and not f.system and f.name not in typed:
                    record[f.name] = service._default(f, actor, ctx)
            record.setdefault("owner", actor.id)
        record.update(typed)
        service._compute(obj, record, ctx)
        service._validate(conn, obj, record, before, actor, ctx, errors)
        batch = [errors]
        service._check_batch(conn, obj, [record], [before], actor, ctx, batch)
        hidden, required = [], []
        for f in obj.fields.values():
            if f.show_if is not None and not service.conditions.matches(obj, f.show_if, record, ctx):
                hidden.append(f.name)
            elif f.required or (f.required_if is not None and service.conditions.matches(obj, f.required_if, record, ctx)):
                required.append(f.name)
        hidden_sections = [i for i, section in enumerate(obj.form) if section.show_if is not None
                           and not service.conditions.matches(obj, section.show_if, record, ctx)]
    return {"hidden": hidden, "hidden_sections": hidden_sections, "required": required, "errors": errors}
