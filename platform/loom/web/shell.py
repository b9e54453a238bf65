"""What every page shares: language, translations, the menu, static files."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, redirect, request, send_file, session
from flask_wtf.csrf import generate_csrf

from ..i18n import gettext
from ..metadata.spec import Label
from .themes import static_file

bp = Blueprint("shell", __name__)


def language() -> str:
    runtime = g.get("runtime")
    languages = runtime.spec.languages if runtime else ("zh", "en")
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    actor = g.get("actor")
    if actor is not None and actor.language in languages:
        return actor.language
    best = request.accept_languages.best_match(languages) if request else None
    return best or (runtime.spec.default_language if runtime else languages[0])


def t(value) -> str:
    """A label (or a message) in the reader's language."""
    lang = g.get("lang") or language()
    if isinstance(value, Label) or hasattr(value, "text"):
        return value.text(lang)
    return "" if value is None else str(value)


def translate(message: str, **params) -> str:
    return gettext(g.get("lang") or language(), message, **params)


def menu():
    """Menu groups with the entries the actor may open."""
    runtime, actor = g.get("runtime"), g.get("actor")
    if runtime is None or actor is None:
        return []
    policy = runtime.records.policy
    groups = []
    for group in runtime.spec.menu:
        items = []
        for item in group.items:
            kind, _, name = item.rpartition(":")
            if kind == "report":
                report = runtime.spec.reports.get(name)
                if report and policy.can(actor, runtime.spec.objects[report.object], "read"):
                    items.append({"label": report.label, "url": f"/reports/{name}", "name": item})
            elif name in runtime.spec.objects and policy.can(actor, runtime.spec.objects[name], "read"):
                obj = runtime.spec.objects[name]
                items.append({"label": obj.plural, "url": f"/o/{name}/", "name": name})
        if items:
            groups.append({"label": group.label, "items": items})
    if actor.superuser:
        groups.append({"label": Label((("en", "Admin"), ("zh", "管理"))),
                       "items": [{"label": Label((("en", "Administration"), ("zh", "系统管理"))), "url": "/admin/",
                                  "name": "admin"}]})
    return groups


@bp.route("/static/<path:filename>")
def static(filename):
    path = static_file(filename)
    if path is None:
        abort(404)
    response = send_file(path, max_age=3600)
    return response


@bp.route("/lang/<code>", methods=["POST"])
def switch_language(code):
    runtime = g.get("runtime")
    if runtime and code in runtime.spec.languages:
        session["lang"] = code
    target = request.form.get("next") or "/"
    from .auth import safe_next
    return redirect(safe_next(target))


def _conversions_for(obj, record):
    from ..records.conversions import available
    return available(g.runtime, obj, record, g.actor) if g.get("actor") is not None else []


def _timezone() -> ZoneInfo:
    """The application's time zone: stored times are UTC, pages show them in it."""
    runtime = g.get("runtime")
    return ZoneInfo(runtime.spec.timezone if runtime else "UTC")


def set_language():
    g.lang = language()


def init_app(app):
    app.register_blueprint(bp)

    @app.context_processor
    def _globals():
        runtime = g.get("runtime")
        return {"t": t, "_": translate, "conversions_for": _conversions_for, "lang": g.get("lang") or "zh", "menu": menu, "actor": g.get("actor"),
                "csrf_token": generate_csrf, "app_label": runtime.spec.label if runtime else Label.of("Loom"),
                "languages": runtime.spec.languages if runtime else ("zh", "en"), "tz": _timezone}
