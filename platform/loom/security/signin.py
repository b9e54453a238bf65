"""Signing in: checking a password, the sign-in log, throttling and temporary lockout.

Every attempt is logged (time, username, user, address, success, reason). After
FAILURES failed attempts for one username within WINDOW, or ADDRESS_FAILURES from one
address, further attempts are refused for the rest of the window — before the password is
even checked, so guessing cannot continue — and the refusal says when to try again.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from .organization import find_user, verify_password

FAILURES = 5
ADDRESS_FAILURES = 20
WINDOW = dt.timedelta(minutes=15)
UTC = dt.timezone.utc


@dataclass
class Attempt:
    user: dict | None
    reason: str | None = None          # None on success; password, unknown, disabled, locked
    retry_after: dt.timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _recent_failures(conn, table, column, value, since):
    """Failures for `value` since `since` and since its last success."""
    last_ok = conn.execute(sa.select(sa.func.max(table.c.at)).where(column == value, table.c.success.is_(True),
                                                                    table.c.at >= since)).scalar()
    start = max(since, last_ok) if last_ok else since
    q = sa.select(sa.func.count(), sa.func.min(table.c.at)).where(
        column == value, table.c.success.is_(False), table.c.at > start, table.c.reason != "locked")
    return conn.execute(q).one()


def attempt(runtime, username: str, password: str, address: str | None, now: dt.datetime | None = None) -> Attempt:
    now = now or dt.datetime.now(UTC)
    log = runtime.schema.system["login"]
    username = (username or "").strip()[:100]
    with runtime.records.transaction() as conn:
        since = now - WINDOW
        for column, value, limit in ((log.c.username, username, FAILURES), (log.c.address, address, ADDRESS_FAILURES)):
            if value is None:
                continue
            count, first = _recent_failures(conn, log, column, value, since)
            if count >= limit:
                result = Attempt(None, "locked", (first + WINDOW) - now if first else WINDOW)
                break
        else:
            user = find_user(runtime, username, conn) if username else None
            if user is None:
                result = Attempt(None, "unknown")
            elif not user.get("active", True):
                result = Attempt(None, "disabled")
            elif not verify_password(runtime, user["id"], password, conn):
                result = Attempt(None, "password")
                result.user = None
                conn.execute(log.insert().values(at=now, username=username, user_id=user["id"], address=address,
                                                 success=False, reason="password"))
                return result
            else:
                result = Attempt(user)
        conn.execute(log.insert().values(at=now, username=username, user_id=result.user["id"] if result.user else None,
                                         address=address, success=result.ok, reason=result.reason))
        return result
