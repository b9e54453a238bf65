"""Assignment (分配), sharing (共享) and handing over a leaving user's records.

All three change who may see or own records, so they go through the record service and
its rights: assigning needs the right to update the record, sharing too (the people it is
shared with get read or edit access, see policy.py), and a transfer is for superusers.
Every change is in the record's history.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..i18n import Message, _
from ..records import history
from ..records.errors import Forbidden, NotFound, ValidationError
from .actor import Actor

UTC = dt.timezone.utc


def assign(runtime, obj, record_ids, owner_id: int, actor: Actor, *, conn=None) -> int:
    """Give records to another owner (their department follows the new owner's)."""
    service = runtime.records
    obj = service.obj(obj)
    if not obj.owned:
        raise ValidationError(errors=[Message(_("{object} records have no owner"), object=obj.label)])
    with service.transaction(conn) as conn:
        users = runtime.table("user")
        active = conn.execute(sa.select(users.c.active).where(users.c.id == owner_id,
                                                             users.c.deleted_at.is_(None))).first()
        if active is None or active[0] is False:
            raise ValidationError({"owner": [Message(_("the new owner must be an active user"))]})
        for record_id in record_ids:
            record = service.get(obj, record_id, actor, conn=conn, with_lines=False)
            if not service._allowed(conn, actor, obj, "update", record):
                raise Forbidden(_("you may not change this {object}"), object=obj.label)
            if record.get("owner") != owner_id:
                before = service._row(conn, obj, record_id, lock=True)
                service._check_locked(obj, before, False)   # as bulk assignment: not while locked
                service._apply_update(conn, obj, before, {}, actor, system=True, comment=None, action="assign",
                                      extra={"owner": owner_id})
        return len(record_ids)


def transfer(runtime, from_user: int, to_user: int, actor: Actor) -> dict:
    """Move every record a (leaving) user owns, in every object, to another user."""
    if not actor.superuser:
        raise Forbidden(_("only an administrator may transfer a user's records"))
    moved = {}
    with runtime.records.transaction() as conn:
        for obj in runtime.spec.objects.values():
            if not obj.owned:
                continue
            table = runtime.table(obj)
            ids = [r[0] for r in conn.execute(sa.select(table.c.id).where(table.c.owner == from_user,
                                                                          table.c.deleted_at.is_(None)))]
            if ids:
                assign(runtime, obj, ids, to_user, actor, conn=conn)
                moved[obj.name] = len(ids)
    return moved


def share(runtime, obj, record_id: int, actor: Actor, *, user_id: int | None = None,
          department_id: int | None = None, access: str = "read") -> int:
    service = runtime.records
    obj = service.obj(obj)
    if (user_id is None) == (department_id is None):
        raise ValidationError(errors=[Message(_("share with one user or one department"))])
    if access not in ("read", "edit"):
        raise ValidationError({"access": [Message(_("access is read or edit"))]})
    table = runtime.schema.system["share"]
    with service.transaction() as conn:
        record = service.get(obj, record_id, actor, conn=conn, with_lines=False)
        if not service._allowed(conn, actor, obj, "update", record):
            raise Forbidden(_("you may not share this {object}"), object=obj.label)
        target = runtime.table("user" if user_id else "department")
        if conn.execute(sa.select(target.c.id).where(target.c.id == (user_id or department_id),
                                                     target.c.deleted_at.is_(None))).first() is None:
            raise ValidationError(errors=[Message(_("there is no such user or department"))])
        conn.execute(table.delete().where(table.c.object == obj.name, table.c.record_id == record_id,
                                          table.c.user_id == user_id if user_id else table.c.department_id == department_id))
        now = dt.datetime.now(UTC)
        share_id = conn.execute(table.insert().values(
            object=obj.name, record_id=record_id, user_id=user_id, department_id=department_id, access=access,
            created_by=actor.id, created_at=now).returning(table.c.id)).scalar_one()
        who = f"user:{user_id}" if user_id else f"department:{department_id}"
        history.record(conn, service.history_table, obj.name, [dict(
            record_id=record_id, action="share", at=now, user_id=actor.id, changes={"share": [None, f"{who} {access}"]},
            version=record["version"])])
        return share_id


def unshare(runtime, obj, record_id: int, share_id: int, actor: Actor) -> None:
    service = runtime.records
    obj = service.obj(obj)
    table = runtime.schema.system["share"]
    with service.transaction() as conn:
        record = service.get(obj, record_id, actor, conn=conn, with_lines=False)
        if not service._allowed(conn, actor, obj, "update", record):
            raise Forbidden(_("you may not share this {object}"), object=obj.label)
        done = conn.execute(table.delete().where(table.c.id == share_id, table.c.object == obj.name,
                                                 table.c.record_id == record_id))
        if not done.rowcount:
            raise NotFound(_("no such share"))
        history.record(conn, service.history_table, obj.name, [dict(
            record_id=record_id, action="unshare", at=dt.datetime.now(UTC), user_id=actor.id,
            changes={"share": [str(share_id), None]}, version=record["version"])])


def shares_of(runtime, obj_name: str, record_id: int) -> list[dict]:
    table = runtime.schema.system["share"]
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).where(table.c.object == obj_name,
                                                                     table.c.record_id == record_id)).mappings()]
