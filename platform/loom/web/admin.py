"""Administration: roles, the sign-in log, the operation log, handing over records;
and assigning and sharing records from their pages.

Users and departments are records of the engine's own objects, so their pages are the
generated ones (/o/user/, /o/department/); everything here is for superusers, except
assigning and sharing, which follow the record's rights.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from ..security import sharing

bp = Blueprint("admin", __name__)
PAGE = 100


def _superuser():
    if not g.actor.superuser:
        abort(403)


@bp.route("/admin/")
def index():
    _superuser()
    return render_template("admin/index.html")


@bp.route("/admin/roles")
def roles():
    _superuser()
    runtime = g.runtime
    side, users = runtime.schema.multi[("user", "roles")], runtime.table("user")
    with runtime.engine.connect() as conn:
        members: dict = {}
        for role, name in conn.execute(sa.select(side.c.code, users.c.name).join(users, users.c.id == side.c.record_id)
                                       .where(users.c.deleted_at.is_(None)).order_by(users.c.name)):
            members.setdefault(role, []).append(name)
    rights = {role: [(obj, obj.permissions[role]) for obj in runtime.spec.objects.values() if role in obj.permissions]
              for role in runtime.spec.roles}
    return render_template("admin/roles.html", roles=runtime.spec.roles, members=members, rights=rights)


def _since(arg: str):
    try:
        return dt.datetime.fromisoformat(request.args[arg]).replace(tzinfo=ZoneInfo(g.runtime.spec.timezone))
    except (KeyError, ValueError):
        return None


@bp.route("/admin/logins")
def logins():
    _superuser()
    log = g.runtime.schema.system["login"]
    q = sa.select(log).order_by(log.c.id.desc()).limit(PAGE)
    if request.args.get("user"):
        q = q.where(log.c.username == request.args["user"])
    if request.args.get("failed"):
        q = q.where(log.c.success.is_(False))
    if _since("from"):
        q = q.where(log.c.at >= _since("from"))
    if request.args.get("before", type=int):
        q = q.where(log.c.id < request.args.get("before", type=int))
    with g.runtime.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    return render_template("admin/logins.html", rows=rows, tz=ZoneInfo(g.runtime.spec.timezone))


@bp.route("/admin/operations")
def operations():
    """The operation log: every record change, searchable by user, object and time."""
    _superuser()
    runtime = g.runtime
    hist = runtime.records.history_table
    q = sa.select(hist).order_by(hist.c.id.desc()).limit(PAGE)
    users = runtime.table("user")
    if request.args.get("user"):
        q = q.where(hist.c.user_id.in_(sa.select(users.c.id).where(users.c.username == request.args["user"])))
    if request.args.get("object") in runtime.spec.objects:
        q = q.where(hist.c.object == request.args["object"])
    if request.args.get("action"):
        q = q.where(hist.c.action == request.args["action"])
    if _since("from"):
        q = q.where(hist.c.at >= _since("from"))
    if _since("to"):
        q = q.where(hist.c.at < _since("to"))
    if request.args.get("before", type=int):
        q = q.where(hist.c.id < request.args.get("before", type=int))
    with runtime.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    names = runtime.records.titles("user", {r["user_id"] for r in rows})
    return render_template("admin/operations.html", rows=rows, names=names, objects=runtime.spec.objects,
                           tz=ZoneInfo(runtime.spec.timezone))


@bp.route("/admin/transfer", methods=["GET", "POST"])
def transfer():
    """Hand every record of a leaving user to another user."""
    _superuser()
    from .forms import _options
    moved = None
    if request.method == "POST":
        moved = sharing.transfer(g.runtime, request.form.get("from", type=int), request.form.get("to", type=int), g.actor)
    return render_template("admin/transfer.html", users=_options(g.runtime, "user", g.actor), moved=moved)


# ---- record pages: assign and share ------------------------------------------------------------

@bp.route("/o/<name>/<int:record_id>/assign", methods=["POST"])
def assign(name, record_id):
    obj = g.runtime.spec.objects.get(name) or abort(404)
    sharing.assign(g.runtime, obj, [record_id], request.form.get("owner", type=int), g.actor)
    return _back(name, record_id)


@bp.route("/o/<name>/<int:record_id>/share", methods=["POST"])
def share(name, record_id):
    obj = g.runtime.spec.objects.get(name) or abort(404)
    target = request.form.get("target", "")
    kind, _, ident = target.partition(":")
    if kind not in ("user", "department") or not ident.isdigit():
        abort(400)
    sharing.share(g.runtime, obj, record_id, g.actor, access=request.form.get("access", "read"),
                  **{f"{kind}_id": int(ident)})
    return _back(name, record_id)


@bp.route("/o/<name>/<int:record_id>/share/<int:share_id>/delete", methods=["POST"])
def unshare(name, record_id, share_id):
    obj = g.runtime.spec.objects.get(name) or abort(404)
    sharing.unshare(g.runtime, obj, record_id, share_id, g.actor)
    return _back(name, record_id)


@bp.route("/o/<name>/<int:record_id>/shares")
def shares(name, record_id):
    obj = g.runtime.spec.objects.get(name) or abort(404)
    record = g.runtime.records.get(obj, record_id, g.actor, with_lines=False)
    from .forms import _options
    rows = sharing.shares_of(g.runtime, name, record_id)
    users = dict(_options(g.runtime, "user", g.actor))
    departments = dict(_options(g.runtime, "department", g.actor))
    with g.runtime.engine.connect() as conn:
        can_share = g.runtime.records._allowed(conn, g.actor, obj, "update", record)
    return render_template("_shares.html", obj=obj, record=record, rows=rows, users=users,
                           departments=departments, can_share=can_share and obj.owned)


def _back(name, record_id):
    url = url_for("records.detail", name=name, record_id=record_id)
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Location": url})
    return redirect(url)
