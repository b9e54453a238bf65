"""Conversions: records made from one record in one step (线索转换, a new quote version).

An object declares them in its metadata (`conversions:`); running one creates each
record of `creates` in order through the record service (so validation, numbering,
defaults and permissions apply to each), links the source to what it became (`link`),
applies `set` to the source and, optionally, a lifecycle transition — all in one
transaction: if any record is refused, nothing is created.

Values are literals, `$today`-style variables, `{field: x}` (the source's value),
`{expr: ...}` (a formula over the source) or `$<as>` (the id of a record created earlier
in the same conversion). `copy: true` starts from the source's values of fields with the
same name; `copy_lines` copies rows of lines fields.
"""
from __future__ import annotations

from dataclasses import replace

from ..i18n import Message, _
from ..metadata.spec import Conversion, CreatedRef, FieldRef, Formula, ObjectSpec, Var
from .computed import _expression
from .errors import Forbidden, NotFound, ValidationError

LINE_SYSTEM = {"id", "line_no", "created_at", "created_by", "updated_at", "updated_by", "version", "deleted_at"}


def _conversion(obj: ObjectSpec, name: str) -> Conversion:
    for c in obj.conversions:
        if c.name == name:
            return c
    raise NotFound(_("{object} has no conversion '{name}'"), object=obj.label, name=name)


def refusal(runtime, conn, obj, conversion: Conversion, record: dict, actor) -> Message | None:
    """Why the actor may not run this conversion on this record, or None."""
    if conversion.roles and not actor.superuser and not (actor.roles & set(conversion.roles)):
        return Message(_("you may not run '{action}'"), action=conversion.label)
    service = runtime.records
    for create in conversion.creates:
        if not service.policy.can(actor, runtime.spec.objects[create.object], "create"):
            return Message(_("you may not create {object} records"), object=runtime.spec.objects[create.object].label)
    if (conversion.set or any(c.link for c in conversion.creates)) and \
            not service._allowed(conn, actor, obj, "update", record):
        return Message(_("you may not change this {object}"), object=obj.label)
    if conversion.when is not None and not runtime.conditions.matches(obj, conversion.when, record,
                                                                     service.context(actor, conn)):
        return Message(_("the conditions for '{action}' are not met"), action=conversion.label)
    return None


def available(runtime, obj, record: dict, actor) -> list[Conversion]:
    if not obj.conversions or record.get("deleted_at") is not None:
        return []
    with runtime.engine.connect() as conn:
        return [c for c in obj.conversions if refusal(runtime, conn, obj, c, record, actor) is None]


def _value(runtime, source_obj, target_field, raw, source, created, actor, ctx):
    if isinstance(raw, CreatedRef):
        return created[raw.name]["id"]
    if isinstance(raw, FieldRef):   # a path through lookups is followed
        return runtime.conditions.value_at(source_obj, raw.path, source, ctx)[0]
    if isinstance(raw, Formula):
        return _expression(raw.expr)(source, {"today": ctx.today, "now": ctx.now})
    if isinstance(raw, Var):
        return runtime.records._default(replace(target_field, default=raw), actor, ctx)
    return raw


def _copied(runtime, source_obj, target_obj, source) -> dict:
    """The source's values of fields the target has too (what a person could type)."""
    out = {}
    for name, f in target_obj.fields.items():
        mine = source_obj.fields.get(name)
        if mine is None or f.system or f.computed or f.readonly or f.type == "lines" or name not in source:
            continue
        out[name] = source[name]
    return out


def _lines(runtime, source_obj, source, field) -> list[dict]:
    child = runtime.spec.objects[source_obj.fields[field].lines_object]
    return [{k: v for k, v in row.items() if k not in LINE_SYSTEM and k != source_obj.name
             and k in child.fields and not child.fields[k].computed} for row in source.get(field) or []]


def convert(runtime, obj, record_id: int, name: str, actor, *, skip=(), conn=None) -> dict:
    """Run a conversion; {as: created record}. Refused with a clear message, creating
    nothing, when not allowed or when any record would be invalid."""
    service = runtime.records
    obj = service.obj(obj)
    conversion = _conversion(obj, name)
    with service.transaction(conn) as conn:
        source = service.get(obj, record_id, actor, conn=conn)
        why = refusal(runtime, conn, obj, conversion, source, actor)
        if why is not None:
            raise Forbidden(why)
        ctx = service.context(actor, conn)
        created: dict = {}
        for create in conversion.creates:
            if create.optional and create.as_ in skip:
                continue
            target = runtime.spec.objects[create.object]
            values = _copied(runtime, obj, target, source) if create.copy else {}
            for field_name, raw in create.values.items():
                values[field_name] = _value(runtime, obj, target.fields[field_name], raw, source, created, actor, ctx)
            for lines in create.copy_lines:
                values[lines] = _lines(runtime, obj, source, lines)
            try:  # configured values may fill read-only fields, as a transition's `set` does;
                # a possible duplicate does not stop a conversion the person asked for
                created[create.as_] = service.create(target, values, actor, conn=conn, system=True,
                                                     allow_duplicates=True)
            except ValidationError as e:
                # say which of the records could not be made
                raise ValidationError({f"{create.as_}.{k}": v for k, v in e.fields.items()},
                                      [Message(_("{object}: {message}"), object=target.label, message=m)
                                       for m in e.errors] or
                                      [Message(_("the {object} could not be created"), object=target.label)]) from None
        updates = {c.link: created[c.as_]["id"] for c in conversion.creates if c.link and c.as_ in created}
        for field_name, raw in conversion.set.items():
            updates[field_name] = _value(runtime, obj, obj.fields[field_name], raw, source, created, actor, ctx)
        if updates:
            before = service._row(conn, obj, record_id, lock=True)
            summary = ", ".join(f"{runtime.spec.objects[c.object].label.text('en')} #{created[c.as_]['id']}"
                                for c in conversion.creates if c.as_ in created)
            service._apply_update(conn, obj, before, {}, actor, system=True, comment=summary, action="convert",
                                  extra={k: service_value(runtime, obj, k, v) for k, v in updates.items()})
        if conversion.transition:
            runtime.workflows.transition(obj, record_id, conversion.transition, actor, conn=conn)
        return created


def service_value(runtime, obj, name, value):
    """A value set on the source, coerced to its field's type."""
    from .coerce import coerce
    return coerce(obj.fields[name], value, runtime.records.timezone)
