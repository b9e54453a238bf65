"""Personal search schemes (个人检索方案): a user saves the list view they are looking at —
its filters, search and sort, i.e. its query string — under a name, and deletes it later."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from flask import Blueprint, abort, g, redirect, request, url_for

bp = Blueprint("schemes", __name__)
KEEP = ("q", "s", "scheme")


def list_for(runtime, actor, obj_name: str) -> list[dict]:
    table = runtime.schema.system["saved_search"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.name, table.c.query)
                            .where(table.c.user_id == actor.id, table.c.object == obj_name).order_by(table.c.name))
        return [dict(r._mapping) for r in rows]


def _clean(query: str) -> str:
    """Only list parameters survive (never a cursor, never anything else)."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=False)
             if (k in KEEP or k.startswith("f.")) and len(v) < 200][:40]
    return urlencode(pairs)


@bp.route("/o/<name>/schemes", methods=["POST"])
def save(name):
    obj = g.runtime.spec.objects.get(name)
    if obj is None or g.actor.id is None:
        abort(404)
    label = (request.form.get("name") or "").strip()[:100]
    if not label:
        abort(400)
    query = _clean(request.form.get("query") or "")
    table = g.runtime.schema.system["saved_search"]
    with g.runtime.records.transaction() as conn:
        conn.execute(table.delete().where(table.c.user_id == g.actor.id, table.c.object == name, table.c.name == label))
        conn.execute(table.insert().values(user_id=g.actor.id, object=name, name=label, query=query))
    return redirect(url_for("records.list_records", name=name) + (f"?{query}" if query else ""))


@bp.route("/o/<name>/schemes/<int:scheme_id>/delete", methods=["POST"])
def delete(name, scheme_id):
    table = g.runtime.schema.system["saved_search"]
    with g.runtime.records.transaction() as conn:
        deleted = conn.execute(table.delete().where(table.c.id == scheme_id, table.c.user_id == g.actor.id)).rowcount
    if not deleted:
        abort(404)  # someone else's scheme is not there for you
    return redirect(url_for("records.list_records", name=name))
