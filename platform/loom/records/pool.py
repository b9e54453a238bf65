"""The pool (公海): records without an owner that people claim and return.

An object declares `pool:` — the roles who see the pool (records whose owner is empty),
the managers who assign from it, a limit of records one person may own, the dictionary
of reasons for returning, and after how many days without activity a record goes back.

A claim is atomic: the record is locked and its owner must still be empty, so of two
people claiming the same record at once one wins and the other is told it was taken.
A person's claims are serialized too (their user row is locked), so the limit holds.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..i18n import Message, _
from ..security.actor import Actor
from .errors import Conflict, Forbidden, NotFound, ValidationError

UTC = dt.timezone.utc


def _pool(obj):
    if obj.pool is None:
        raise NotFound(_("{object} has no pool"), object=obj.label)
    return obj.pool


def in_pool_roles(obj, actor: Actor) -> bool:
    return obj.pool is not None and (actor.superuser or bool(actor.roles & set(obj.pool.roles)))


def is_manager(obj, actor: Actor) -> bool:
    return obj.pool is not None and (actor.superuser or bool(actor.roles & set(obj.pool.managers)))


def _lock_user(runtime, conn, user_id):
    users = runtime.table("user")
    q = sa.select(users.c.id).where(users.c.id == user_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    conn.execute(q)


def owned_count(runtime, conn, obj, user_id) -> int:
    table = runtime.table(obj)
    return conn.execute(sa.select(sa.func.count()).where(table.c.owner == user_id,
                                                         table.c.deleted_at.is_(None))).scalar()


def claim(runtime, obj, record_id: int, actor: Actor, *, owner: int | None = None, conn=None) -> dict:
    """Take a record from the pool (a manager may give it to `owner` instead)."""
    service = runtime.records
    obj = service.obj(obj)
    pool = _pool(obj)
    owner = owner if owner is not None else actor.id
    if owner != actor.id and not is_manager(obj, actor):
        raise Forbidden(_("only a manager of the pool may assign from it"))
    if not in_pool_roles(obj, actor):
        raise Forbidden(_("you may not take records from this pool"))
    with service.transaction(conn) as conn:
        _lock_user(runtime, conn, owner)
        record = service._row(conn, obj, record_id, lock=True) if _valid(record_id) else None
        if record is None or record.get("deleted_at") is not None:
            raise NotFound(_("{object} #{id} does not exist or you may not see it"), object=obj.label, id=record_id)
        if record.get("owner") is not None:
            raise Conflict(_("someone else has already taken this {object}"), object=obj.label)
        if pool.claim_limit is not None and owned_count(runtime, conn, obj, owner) >= pool.claim_limit:
            raise ValidationError(errors=[Message(_("you already own {n} {object} records, the most one may hold"),
                                                  n=pool.claim_limit, object=obj.label)])
        return service._apply_update(conn, obj, record, {}, actor, system=True, comment=None, action="claim",
                                     extra={"owner": owner})


def release(runtime, obj, record_id: int, actor: Actor, reason: str | None, *, conn=None,
            system: bool = False) -> dict:
    """Return a record to the pool, with a reason."""
    service = runtime.records
    obj = service.obj(obj)
    pool = _pool(obj)
    reason = (reason or "").strip() or None
    if reason is None:
        raise ValidationError({"reason": [Message(_("give a reason for returning it to the pool"))]})
    if pool.return_reasons and reason not in runtime.spec.dictionaries[pool.return_reasons].items and not system:
        raise ValidationError({"reason": [Message(_("'{code}' is not a reason in {dictionary}"), code=reason,
                                                  dictionary=runtime.spec.dictionaries[pool.return_reasons].label)]})
    with service.transaction(conn) as conn:
        record = service._readable(conn, obj, record_id, actor, lock=True) if not system else \
            service._row(conn, obj, record_id, lock=True)
        if record.get("owner") is None:
            raise Conflict(_("this {object} is already in the pool"), object=obj.label)
        if not system and record.get("owner") != actor.id and not is_manager(obj, actor) \
                and not service._allowed(conn, actor, obj, "update", record):
            raise Forbidden(_("you may not return this {object} to the pool"), object=obj.label)
        label = reason
        if pool.return_reasons and reason in runtime.spec.dictionaries[pool.return_reasons].items:
            label = runtime.spec.dictionaries[pool.return_reasons].items[reason].label.text("zh")
        return service._apply_update(conn, obj, record, {}, actor, system=True, comment=label, action="release",
                                     extra={"owner": None, "department": None})


def expire(runtime, now: dt.datetime | None = None) -> dict:
    """Return records with no activity for `return_after_days` to their pools."""
    now = now or dt.datetime.now(UTC)
    done = {}
    for obj in runtime.spec.objects.values():
        days = obj.pool.return_after_days if obj.pool else None
        if not days:
            continue
        table = runtime.table(obj)
        with runtime.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(table.c.id).where(
                table.c.owner.is_not(None), table.c.deleted_at.is_(None),
                table.c.updated_at < now - dt.timedelta(days=days)))]
        for record_id in ids:
            release(runtime, obj, record_id, Actor.system(), f"no activity for {days} days", system=True)
        if ids:
            done[obj.name] = len(ids)
    return done


def _valid(value) -> bool:
    from .service import valid_id
    return valid_id(value)
