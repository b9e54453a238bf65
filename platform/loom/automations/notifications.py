"""In-app notifications (通知): the bell in the top bar and the /notifications page.

    send(runtime, conn, [user_id, ...], "customer", 42, {"zh": "...", "en": "..."}, source="automation:x")
    unread_count(runtime, user_id)
    listing(runtime, user_id, unread=False, before=None, limit=50)
    mark_read(runtime, user_id, [id, ...])     # or ids=None: all of this user's

One row per recipient in loom_notification. The text is kept in every language of the
application (`texts`) and, for readers and tools that take one text, in the recipient's
own language (`message`: the user's `language`, else the application's default). A
notification belongs to its user: every read and change here is limited to that user's
rows, so nobody sees or marks another's.

Other parts of the engine notify through `send` in their own transaction (it takes the
caller's connection), so a notification commits or rolls back with the change it tells
about. `approval_requested` and `approval_finished` are ready for the workflow engine:
the approvers of a step when it becomes current, the submitter when the flow ends.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..i18n import _

UTC = dt.timezone.utc


def _table(runtime):
    return runtime.schema.system["notification"]


def recipients(runtime, conn, user_ids) -> dict:
    """{user id: language} of the active users among user_ids."""
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    users = runtime.table("user")
    q = sa.select(users.c.id, users.c.language).where(users.c.id.in_(ids), users.c.deleted_at.is_(None),
                                                      users.c.active.is_not(False))
    return {i: lang for i, lang in conn.execute(q)}


def send(runtime, conn, user_ids, obj: str | None, record_id: int | None, texts: dict, *,
         source: str | None = None) -> list[int]:
    """Notify each (active) user once; the ids of the users notified."""
    spec = runtime.spec
    found = recipients(runtime, conn, user_ids)
    if not found:
        return []
    now = dt.datetime.now(UTC)
    rows = []
    for user_id in dict.fromkeys(i for i in user_ids if i in found):  # in the order given, once each
        lang = found[user_id] if found[user_id] in texts else spec.default_language
        message = texts.get(lang) or next(iter(texts.values()), "")
        rows.append(dict(user_id=user_id, object=obj, record_id=record_id, message=message, texts=dict(texts),
                         source=source, created_at=now, read_at=None))
    conn.execute(_table(runtime).insert(), rows)
    return [r["user_id"] for r in rows]


def unread_count(runtime, user_id, *, conn=None, cap: int = 99) -> int:
    """Unread notifications of a user, counting at most cap + 1 (the bell shows "99+")."""
    if user_id is None:
        return 0
    t = _table(runtime)
    inner = sa.select(t.c.id).where(t.c.user_id == user_id, t.c.read_at.is_(None)).limit(cap + 1).subquery()
    with runtime.records.reading(conn) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one()


def listing(runtime, user_id, *, unread: bool = False, before: int | None = None, limit: int = 50,
            conn=None) -> tuple[list[dict], bool]:
    """A page of a user's notifications, newest first: (rows, more after these)."""
    t = _table(runtime)
    q = sa.select(t).where(t.c.user_id == user_id)
    if unread:
        q = q.where(t.c.read_at.is_(None))
    if before is not None:
        q = q.where(t.c.id < before)
    with runtime.records.reading(conn) as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(t.c.id.desc()).limit(limit + 1)).mappings()]
    return rows[:limit], len(rows) > limit


def get(runtime, user_id, notification_id, *, conn=None) -> dict | None:
    """One of this user's notifications (None for anyone else's)."""
    t = _table(runtime)
    with runtime.records.reading(conn) as conn:
        row = conn.execute(sa.select(t).where(t.c.id == notification_id, t.c.user_id == user_id)).mappings().first()
    return dict(row) if row else None


def mark_read(runtime, user_id, ids=None, *, conn=None) -> int:
    """Mark some (or, with ids=None, all) of a user's unread notifications read; how many."""
    t = _table(runtime)
    q = t.update().where(t.c.user_id == user_id, t.c.read_at.is_(None))
    if ids is not None:
        ids = [i for i in ids if isinstance(i, int)]
        if not ids:
            return 0
        q = q.where(t.c.id.in_(ids))
    with runtime.records.transaction(conn) as conn:
        return conn.execute(q.values(read_at=dt.datetime.now(UTC))).rowcount


# ---- approvals (for the workflow engine to call; see docs/automations.md) --------------------

def _record_title(runtime, conn, obj, record) -> str:
    title = record.get(obj.title) if obj.title else None
    return str(title) if title not in (None, "") else f"#{record.get('id')}"


def _flow_label(runtime, approval: dict):
    flow = runtime.spec.workflows.get(approval.get("flow"))
    return flow.label if flow is not None else approval.get("flow", "")


def approval_requested(runtime, conn, obj, record: dict, approval: dict, user_ids) -> list[int]:
    """Tell the approvers of the step that just became current that it waits for them."""
    from ..i18n import gettext
    title, flow = _record_title(runtime, conn, obj, record), _flow_label(runtime, approval)
    texts = {lang: gettext(lang, _("{flow} waits for your approval: {object} {title}"),
                           flow=flow.text(lang) if hasattr(flow, "text") else flow,
                           object=obj.label.text(lang), title=title) for lang in runtime.spec.languages}
    return send(runtime, conn, list(user_ids), obj.name, record["id"], texts, source=f"approval:{approval['id']}")


def approval_finished(runtime, conn, obj, record: dict, approval: dict, status: str) -> list[int]:
    """Tell the submitter how their request ended (approved or rejected)."""
    from ..i18n import gettext
    if status not in ("approved", "rejected") or approval.get("submitter_id") is None:
        return []
    title, flow = _record_title(runtime, conn, obj, record), _flow_label(runtime, approval)
    texts = {lang: gettext(lang, _("{flow} of {object} {title}: {status}"),
                           flow=flow.text(lang) if hasattr(flow, "text") else flow, object=obj.label.text(lang),
                           title=title, status=gettext(lang, status)) for lang in runtime.spec.languages}
    return send(runtime, conn, [approval["submitter_id"]], obj.name, record["id"], texts,
                source=f"approval:{approval['id']}")


def link_of(row: dict) -> str | None:
    """Where opening a notification leads: its approval, or its record."""
    source = row.get("source") or ""
    if source.startswith("approval:") and source[9:].isdigit():
        return f"/approvals/{source[9:]}"
    if row.get("object") and row.get("record_id"):
        return f"/o/{row['object']}/{row['record_id']}"
    return None


def text_of(row: dict, lang: str | None) -> str:
    """A notification's text in the reader's language (the recipient's when not kept in it)."""
    texts = row.get("texts") or {}
    return texts.get(lang) or row.get("message") or ""
