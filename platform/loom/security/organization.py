"""Users, departments and the actors they sign in as.

Users and departments are ordinary records of the engine's own objects (see
metadata/system/), written through the record service; passwords live apart in
loom_credential, hashed with scrypt, where no record path can read them.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from ..i18n import Message, _
from ..records.errors import NotFound, ValidationError
from .actor import Actor

MIN_PASSWORD = 8


def check_password_strength(password: str) -> None:
    problems = []
    if len(password or "") < MIN_PASSWORD:
        problems.append(Message(_("a password needs at least {n} characters"), n=MIN_PASSWORD))
    elif password.isdigit() or password.isalpha():
        problems.append(Message(_("a password needs letters and digits or symbols")))
    if problems:
        raise ValidationError({"password": problems})


def set_password(runtime, user_id: int, password: str, conn=None) -> None:
    check_password_strength(password)
    table = runtime.schema.system["credential"]
    values = {"password_hash": generate_password_hash(password, method="scrypt"),
              "changed_at": dt.datetime.now(dt.timezone.utc)}
    with runtime.records.transaction(conn) as conn:
        if conn.execute(sa.select(table.c.user_id).where(table.c.user_id == user_id)).first():
            conn.execute(table.update().where(table.c.user_id == user_id).values(**values))
        else:
            conn.execute(table.insert().values(user_id=user_id, **values))


def verify_password(runtime, user_id: int, password: str, conn=None) -> bool:
    table = runtime.schema.system["credential"]
    with runtime.records.reading(conn) as conn:
        stored = conn.execute(sa.select(table.c.password_hash).where(table.c.user_id == user_id)).scalar()
    return bool(stored) and check_password_hash(stored, password or "")


def department_id(runtime, code: str | None, conn=None) -> int | None:
    if not code:
        return None
    table = runtime.table("department")
    with runtime.records.reading(conn) as conn:
        found = conn.execute(sa.select(table.c.id).where(table.c.code == code, table.c.deleted_at.is_(None))).scalar()
    if found is None:
        raise NotFound(_("there is no department '{code}'"), code=code)
    return found


def create_user(runtime, username: str, *, name: str | None = None, password: str | None = None,
                roles=(), department: str | None = None, email: str | None = None, conn=None) -> dict:
    """Create a user (and their credential) in one transaction."""
    with runtime.records.transaction(conn) as conn:
        values = {"username": username, "name": name or username, "roles": list(roles),
                  "department": department_id(runtime, department, conn)}
        if email:
            values["email"] = email
        if password is not None:
            check_password_strength(password)
        user = runtime.records.create("user", values, Actor.system(), conn=conn)
        if password is not None:
            set_password(runtime, user["id"], password, conn)
        return user


def find_user(runtime, username: str, conn=None) -> dict | None:
    table = runtime.table("user")
    with runtime.records.reading(conn) as conn:
        row = conn.execute(sa.select(table).where(table.c.username == username, table.c.deleted_at.is_(None))).mappings().first()
        if row is None:
            return None
        record = dict(row)
        runtime.records._attach_multi(conn, runtime.spec.objects["user"], [record])
        return record


def actor_for(runtime, user: dict) -> Actor:
    roles = frozenset(r for r in user.get("roles") or () if r in runtime.spec.roles)
    return Actor(id=user["id"], username=user["username"], name=user.get("name") or user["username"],
                 department_id=user.get("department"), roles=roles,
                 superuser=any(runtime.spec.roles[r].superuser for r in roles),
                 language=user.get("language") or None)


def seed_departments(runtime) -> int:
    """Create the departments roles.yaml lists that do not exist yet (by code)."""
    seeds = runtime.spec.departments
    if not seeds:
        return 0
    table = runtime.table("department")
    created = 0
    with runtime.records.transaction() as conn:
        existing = dict(conn.execute(sa.select(table.c.code, table.c.id)).all())
        todo = [s for s in seeds if s.code not in existing]
        while todo:  # a parent before its children, whatever the order in roles.yaml
            ready = [s for s in todo if not s.parent or s.parent in existing]
            for seed in ready or todo[:1]:
                record = runtime.records.create(
                    "department", {"code": seed.code, "name": seed.name, "parent": existing.get(seed.parent)},
                    Actor.system(), conn=conn, system=True)
                existing[seed.code] = record["id"]
                created += 1
            todo = [s for s in todo if s.code not in existing]
    return created
