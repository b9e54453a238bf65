"""Notification pages, the bell's count, and the embedded scheduler of the web process.

    GET  /notifications                 my notifications, newest first (?unread=1: only unread; ?before=ID: older)
    POST /notifications/<id>/open       mark it read and go to its record
    POST /notifications/<id>/read       mark it read
    POST /notifications/read            mark all of mine read

Registered by the app factory (`init_app(app)`), which also starts the scheduler thread
(jobs.Scheduler) that runs scheduled automations every LOOM_SCHEDULER_INTERVAL seconds
(default 60) unless LOOM_SCHEDULER is "off" (tests: only when it is "on").
"""
from __future__ import annotations

import os
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from .. import jobs
from . import notifications

bp = Blueprint("notifications", __name__)
PAGE = 50


def _back(default=None):
    from ..web.auth import safe_next
    target = request.form.get("next")
    url = safe_next(target) if target else (default or url_for("notifications.page"))
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Location": url})
    return redirect(url, 303)


@bp.route("/notifications")
def page():
    unread = request.args.get("unread") == "1"
    before = request.args.get("before", type=int)
    rows, more = notifications.listing(g.runtime, g.actor.id, unread=unread, before=before, limit=PAGE)
    spec = g.runtime.spec
    tz = ZoneInfo(spec.timezone)
    wanted: dict = {}
    for row in rows:
        if row["object"] in spec.objects and row["record_id"]:
            wanted.setdefault(row["object"], set()).add(row["record_id"])
    titles = {(o, i): t for o, ids in wanted.items()   # one query per object; titles the reader may see
              for i, t in g.runtime.records.titles(o, ids, g.actor).items()}
    for row in rows:
        row["created_at"] = row["created_at"].astimezone(tz)
        row["text"] = notifications.text_of(row, g.lang)
        row["object_spec"] = spec.objects.get(row["object"]) if row["object"] else None
        row["title"] = titles.get((row["object"], row["record_id"]), f"#{row['record_id']}")
    return render_template("notifications.html", items=rows, only_unread=unread, more=more,
                           next_before=rows[-1]["id"] if more and rows else None,
                           count=notifications.unread_count(g.runtime, g.actor.id))


@bp.route("/notifications/<int:notification_id>/open", methods=["POST"])
def open_(notification_id):
    row = notifications.get(g.runtime, g.actor.id, notification_id)
    if row is None:
        abort(404)
    notifications.mark_read(g.runtime, g.actor.id, [notification_id])
    link = notifications.link_of(row)
    if link and (not row["object"] or row["object"] in g.runtime.spec.objects):
        return redirect(link, 303)
    return redirect(url_for("notifications.page"), 303)


@bp.route("/notifications/<int:notification_id>/read", methods=["POST"])
def read(notification_id):
    if notifications.get(g.runtime, g.actor.id, notification_id) is None:
        abort(404)
    notifications.mark_read(g.runtime, g.actor.id, [notification_id])
    return _back()


@bp.route("/notifications/read", methods=["POST"])
def read_all():
    notifications.mark_read(g.runtime, g.actor.id)
    return _back()


def notification_count() -> int:
    """Unread notifications of the signed-in user (the bell in the top bar)."""
    actor, runtime = g.get("actor"), g.get("runtime")
    if actor is None or runtime is None or actor.id is None:
        return 0
    return notifications.unread_count(runtime, actor.id)


def tick(get_runtime) -> None:
    """One beat of the clock: run the scheduled automations that are due, here or on the queue."""
    if jobs.queued():
        from .schedule import run_due_from_environment
        jobs.submit(run_due_from_environment)
        return
    runtime = get_runtime()
    if runtime is not None and runtime.automations.scheduled:
        from .schedule import run_due
        run_due(runtime)


def _setting(app, key, default=None):
    value = app.config.get(key)
    return value if value is not None else os.environ.get(key, default)


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.add_template_global(notification_count, "notification_count")
    setting = str(_setting(app, "LOOM_SCHEDULER", "") or "").lower()
    if setting == "off" or (app.testing and setting != "on"):
        return
    holder = app.extensions["loom"]
    scheduler = jobs.Scheduler(lambda: tick(lambda: holder.runtime),
                               interval=float(_setting(app, "LOOM_SCHEDULER_INTERVAL", 60)),
                               delay=float(_setting(app, "LOOM_SCHEDULER_DELAY", 5)))
    app.extensions["loom_scheduler"] = scheduler.start()
