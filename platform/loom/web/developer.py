"""For people who integrate: personal API tokens and the API reference."""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for

from ..security import tokens
from .openapi import build

bp = Blueprint("developer", __name__)


@bp.route("/tokens", methods=["GET", "POST"])
def token_list():
    created = None
    if request.method == "POST":
        _id, created = tokens.create(g.runtime, g.actor.id, request.form.get("name", ""))
    return render_template("tokens.html", tokens=tokens.of_user(g.runtime, g.actor.id), created=created)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
def revoke(token_id):
    tokens.revoke(g.runtime, g.actor.id, token_id)
    return redirect(url_for("developer.token_list"))


@bp.route("/api/docs")
def docs():
    return render_template("api_docs.html", spec=build(g.runtime, g.actor, g.lang))
