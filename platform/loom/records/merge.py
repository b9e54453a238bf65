"""Merging duplicates (客户合并): one record survives, the other moves into it.

The person picks the survivor and, field by field, which value to keep. In one
transaction: the survivor takes the chosen values (through the record service, so they
are validated); every reference to the merged record moves to the survivor — lookups of
any object, rows of its lines, shares, approvals and its history; the merged record goes
to the recycle bin with `merged_into` pointing at the survivor; both histories say so.
Refused when either record is locked by its lifecycle state, or the person may not
update both.
"""
from __future__ import annotations

import datetime as dt

from ..i18n import Message, _
from . import history
from .errors import Forbidden, ValidationError

UTC = dt.timezone.utc


def mergeable_fields(obj) -> list:
    """The fields a person chooses between (what they could type)."""
    return [f for f in obj.fields.values() if (not f.system or f.name == "owner") and not f.computed
            and f.type != "lines" and not f.readonly]


def merge(runtime, obj, survivor_id: int, merged_id: int, actor, choices: dict | None = None) -> dict:
    """Merge `merged_id` into `survivor_id`. `choices` maps a field to "survivor" or
    "merged" (whose value to keep; the survivor's by default). Returns the survivor."""
    service = runtime.records
    obj = service.obj(obj)
    if survivor_id == merged_id:
        raise ValidationError(errors=[Message(_("choose two different records"))])
    with service.transaction() as conn:
        survivor = service._readable(conn, obj, survivor_id, actor, lock=True)
        merged = service._readable(conn, obj, merged_id, actor, lock=True)
        for record in (survivor, merged):
            if not service._allowed(conn, actor, obj, "update", record):
                raise Forbidden(_("you may not change {object} #{id}, so you may not merge it"),
                                object=obj.label, id=record["id"])
            service._check_locked(obj, record, False)
        values = {}
        for f in mergeable_fields(obj):
            if (choices or {}).get(f.name) == "merged" and merged.get(f.name) != survivor.get(f.name):
                values[f.name] = merged.get(f.name)
        now = dt.datetime.now(UTC)
        moved = _move_references(runtime, conn, obj, merged_id, survivor_id)
        service._apply_update(conn, obj, survivor, values, actor, system=False, comment=None, action="merge",
                              allow_duplicates=True)
        table = runtime.table(obj)
        conn.execute(table.update().where(table.c.id == merged_id).values(
            deleted_at=now, merged_into=survivor_id, updated_at=now, updated_by=actor.id,
            version=merged["version"] + 1))
        title = merged.get(obj.title) or f"#{merged_id}"
        history.record(conn, service.history_table, obj.name, [
            dict(record_id=survivor_id, action="merge", at=now, user_id=actor.id,
                 changes={"merged": [str(title), f"#{merged_id}"], **{k: [None, v] for k, v in moved.items()}},
                 version=survivor["version"] + 1),
            dict(record_id=merged_id, action="merge", at=now, user_id=actor.id,
                 changes={"merged_into": [None, survivor_id]}, version=merged["version"] + 1)])
        ctx = service.context(actor, conn)   # children moved: the survivor's rollups count them now
        for other, _f in _referring_fields(runtime, obj):
            service._rollups_for_child(conn, other, {survivor_id, merged_id}, ctx)
        return service._row(conn, obj, survivor_id) | service.lines(conn, obj, survivor_id)


def _referring_fields(runtime, obj):
    """(object, field) of every lookup pointing at `obj`, lines included."""
    for other in runtime.spec.objects.values():
        for f in other.fields.values():
            if f.is_reference and f.target == obj.name and not f.system:
                yield other, f


def _move_references(runtime, conn, obj, old: int, new: int) -> dict:
    """Point everything that referred to `old` at `new`; {what: how many}."""
    moved = {}
    for other, f in _referring_fields(runtime, obj):
        table = runtime.table(other)
        n = conn.execute(table.update().where(table.c[f.name] == old).values(**{f.name: new})).rowcount
        if n:
            moved[f"{other.name}.{f.name}"] = n
    system = runtime.schema.system
    for name in ("share", "approval"):
        table = system[name]
        n = conn.execute(table.update().where(table.c.object == obj.name, table.c.record_id == old)
                         .values(record_id=new)).rowcount
        if n:
            moved[f"{name}s"] = n
    hist = system["history"]
    n = conn.execute(hist.update().where(hist.c.object == obj.name, hist.c.record_id == old)
                     .values(record_id=new)).rowcount
    if n:
        moved["history"] = n
    return moved

