"""Personal API tokens: a user creates one, sees it once, and revokes it when done.

A token is 256 random bits; only its SHA-256 is stored (a slow password hash adds
nothing for a secret that cannot be guessed, and lookups stay one indexed query). A
request with `Authorization: Bearer <token>` acts as the token's user, with their rights
as they are at that moment (roles changed or user disabled: the token follows).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa

from ..i18n import Message, _
from ..records.errors import NotFound, ValidationError

PREFIX = "loom_"
UTC = dt.timezone.utc


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(runtime, user_id: int, name: str) -> tuple[int, str]:
    """(token id, the token itself — shown to the user once, never stored)."""
    name = (name or "").strip()[:100]
    if not name:
        raise ValidationError({"name": [Message(_("give the token a name"))]})
    token = PREFIX + secrets.token_urlsafe(32)
    table = runtime.schema.system["api_token"]
    with runtime.records.transaction() as conn:
        token_id = conn.execute(table.insert().values(
            user_id=user_id, name=name, prefix=token[:12], token_hash=_hash(token),
            created_at=dt.datetime.now(UTC)).returning(table.c.id)).scalar_one()
    return token_id, token


def revoke(runtime, user_id: int, token_id: int) -> None:
    table = runtime.schema.system["api_token"]
    with runtime.records.transaction() as conn:
        done = conn.execute(table.update().where(table.c.id == token_id, table.c.user_id == user_id,
                                                 table.c.revoked_at.is_(None)).values(revoked_at=dt.datetime.now(UTC)))
    if not done.rowcount:
        raise NotFound(_("no such token"))


def of_user(runtime, user_id: int) -> list[dict]:
    table = runtime.schema.system["api_token"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.name, table.c.prefix, table.c.created_at,
                                      table.c.last_used_at, table.c.revoked_at)
                            .where(table.c.user_id == user_id).order_by(table.c.id.desc()))
        return [dict(r._mapping) for r in rows]


def user_of(runtime, token: str) -> int | None:
    """The user id a live token belongs to, or None."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        return None
    table = runtime.schema.system["api_token"]
    now = dt.datetime.now(UTC)
    with runtime.engine.connect() as conn:
        row = conn.execute(sa.select(table.c.id, table.c.user_id, table.c.last_used_at).where(
            table.c.token_hash == _hash(token), table.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5):
        with runtime.records.transaction() as conn:   # note use, but not on every request
            conn.execute(table.update().where(table.c.id == row.id).values(last_used_at=now))
    return row.user_id
