"""Signing in and out, changing passwords, and who the current actor is.

The session (a signed cookie) holds the user's id, the time their password was last
changed and when they were last seen. Every request reloads the user, so disabling a
user, changing their roles or their password takes effect on their open sessions at once.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from ..i18n import _
from ..records.errors import ValidationError
from ..security import signin
from ..security.organization import actor_for, set_password, verify_password
from .shell import translate

bp = Blueprint("auth", __name__)
PUBLIC = {"auth.login", "shell.static", "shell.switch_language"}


def safe_next(target: str | None) -> str:
    """Only a path on this site: no scheme, no host, no `//` (an open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _password_stamp(runtime, user_id) -> str:
    table = runtime.schema.system["credential"]
    with runtime.engine.connect() as conn:
        changed = conn.execute(sa.select(table.c.changed_at).where(table.c.user_id == user_id)).scalar()
    return changed.isoformat() if changed else ""


def load_actor():
    """g.actor from the session, or None (and the session cleared) when it is no longer valid."""
    g.actor = None
    uid = session.get("uid")
    runtime = g.get("runtime")
    if uid is None or runtime is None:
        return
    idle = current_app.config["LOOM_IDLE_MINUTES"] * 60
    if time.time() - session.get("seen", 0) > idle:
        session.clear()
        return
    user = _user(runtime, uid)
    if user is None or not user.get("active", True) or user.get("deleted_at") is not None \
            or session.get("pw") != _password_stamp(runtime, uid):
        session.clear()
        return
    g.actor = actor_for(runtime, user)
    if time.time() - session.get("seen", 0) > 60:
        session["seen"] = int(time.time())


def _user(runtime, uid):
    with runtime.engine.connect() as conn:
        return runtime.records._row(conn, runtime.spec.objects["user"], uid)


def require_login():
    if request.endpoint in PUBLIC or request.endpoint is None or request.blueprint == "api":
        return None  # the API authenticates its own requests, by token
    if g.get("actor") is None:
        if request.headers.get("HX-Request"):
            response = current_app.response_class(status=401)
            response.headers["HX-Redirect"] = url_for("auth.login", next=request.full_path.rstrip("?"))
            return response
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    runtime = g.runtime
    error = None
    username = ""
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        result = signin.attempt(runtime, username, request.form.get("password") or "", request.remote_addr)
        if result.ok:
            user = result.user
            session.clear()
            session.permanent = True
            session.update(uid=user["id"], pw=_password_stamp(runtime, user["id"]), seen=int(time.time()))
            return redirect(safe_next(request.args.get("next")))
        if result.reason == "locked":
            minutes = max(1, int(result.retry_after.total_seconds() // 60) + 1)
            error = translate(_("Too many failed attempts; try again in {n} minutes"), n=minutes)
        else:
            error = translate(_("Wrong username or password"))
    return render_template("login.html", error=error, username=username,
                           next=safe_next(request.args.get("next"))), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
def password():
    errors, done = {}, False
    if request.method == "POST":
        current = request.form.get("current") or ""
        new, again = request.form.get("new") or "", request.form.get("again") or ""
        if not verify_password(g.runtime, g.actor.id, current):
            errors["current"] = [translate(_("The current password is not right"))]
        elif new != again:
            errors["again"] = [translate(_("The two new passwords differ"))]
        else:
            try:
                set_password(g.runtime, g.actor.id, new)
            except ValidationError as e:
                errors["new"] = [m.text(g.lang) for m in e.fields.get("password", [])]
            else:
                session["pw"] = _password_stamp(g.runtime, g.actor.id)
                done = True
    return render_template("password.html", errors=errors, done=done), (422 if errors else 200)

