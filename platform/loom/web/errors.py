"""Friendly error pages and fragments: never a traceback.

A full page for normal requests; for HTMX requests a small fragment swapped into the
page's message area (#flash), with the status kept so scripts can tell.
"""
from __future__ import annotations

import logging

from flask import g, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..i18n import _
from ..records.errors import RecordError

log = logging.getLogger("loom.web")

TITLES = {400: _("Bad request"), 401: _("Please sign in"), 403: _("Not allowed"), 404: _("Not found"),
          405: _("Method not allowed"), 409: _("Conflict"), 413: _("Too large"), 422: _("Please check your input"),
          500: _("Something went wrong")}
TEXTS = {400: _("The request could not be understood."),
         403: _("You do not have permission to do this."),
         404: _("The page or record does not exist, or you may not see it."),
         405: _("This action is not available here."),
         409: _("Someone else changed this meanwhile."),
         413: _("The upload is too large."),
         422: _("Some values need attention."),
         500: _("The error was recorded. Please try again; if it persists, tell your administrator.")}


def render_error(status: int, message: str | None = None):
    from .shell import translate
    title = translate(TITLES.get(status, TITLES[500]))
    text = message or translate(TEXTS.get(status, TEXTS[500]))
    if request.path.startswith("/api/"):  # machines get problem details, not pages
        from .api import problem
        return problem(status, title, text)
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        response = render_template("_error.html", status=status, title=title, message=text), status
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
        return response[0], status, headers
    return render_template("error.html", status=status, title=title, message=text), status


def metadata_problems(problems):
    """While the metadata is invalid (in development), every page shows why."""
    return render_template("metadata_errors.html", problems=problems), 503


def init_app(app):
    @app.errorhandler(RecordError)
    def _record_error(e: RecordError):
        return render_error(e.status, e.text(g.get("lang")))

    @app.errorhandler(CSRFError)
    def _csrf(e):
        from .shell import translate
        return render_error(400, translate(_("The form expired or came from elsewhere; reload the page and try again.")))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        response = make_response(render_error(e.code or 500))
        for name, value in e.get_headers():  # e.g. Allow on 405, as RFC 9110 requires
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(e):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500)
