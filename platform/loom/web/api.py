"""The JSON API under /api/v1/, generated for every object.

Everything goes through the record service with the token's user as the actor, so
validation, numbering, permissions, field security and history are those of the pages.
Authentication is by personal token (`Authorization: Bearer loom_...`); the API takes no
cookies, so it needs no CSRF token. Errors are problem details (RFC 9457) with per-field
messages, in the language of `Accept-Language`:

    400 malformed request   401 no or bad token   403 not allowed   404 no such record
    409 stale version or conflict   422 invalid values

    GET    /api/v1/<object>?q=&sort=-updated_at&limit=50&after=<cursor>&fields=a,b
           &where=<condition as JSON>&<field>=<value>&<field>[<op>]=<value>
    POST   /api/v1/<object>                      create (JSON body)
    GET    /api/v1/<object>/<id>                 one record; ETag carries its version
    PATCH  /api/v1/<object>/<id>                 update; If-Match: <version> (or "_version" in the body)
    DELETE /api/v1/<object>/<id>                 to the recycle bin
    POST   /api/v1/<object>/<id>/restore
    GET    /api/v1/<object>/<id>/history
    POST   /api/v1/<object>/<id>/transitions/<name>   {"comment": ..., "values": {...}}
    GET    /api/v1/approvals                     decisions waiting for the token's user
    POST   /api/v1/approvals/<id>/<approve|reject|recall>   {"comment": ...}
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, g, request

from ..i18n import Message, _
from ..records.conditions_input import parse_condition
from ..records.errors import DuplicateFound, RecordError, ValidationError
from ..records.history import jsonable
from ..security import tokens
from ..security.organization import actor_for
from .shell import translate

bp = Blueprint("api", __name__, url_prefix="/api/v1")
RESERVED = {"q", "sort", "limit", "after", "fields", "where"}
OPERATORS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "starts_with", "is_null", "not_null"}


class BadRequest(Exception):
    def __init__(self, message, **params):
        self.msg = Message(message, **params)


def problem(status: int, title: str, detail: str | None = None, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="loom"'
    return response


def _json(data, status=200, **headers) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, default=jsonable), status=status,
                    mimetype="application/json", headers=headers)


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _sp, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return problem(401, translate(_("Authentication required")),
                       translate(_("send a personal token: Authorization: Bearer <token>")))
    user_id = tokens.user_of(g.runtime, token.strip())
    user = None
    if user_id:
        with g.runtime.engine.connect() as conn:
            user = g.runtime.records._row(conn, g.runtime.spec.objects["user"], user_id)
    if user is None or not user.get("active", True) or user.get("deleted_at") is not None:
        return problem(401, translate(_("Authentication required")), translate(_("the token is not valid")))
    g.actor = actor_for(g.runtime, user)
    return None


@bp.errorhandler(RecordError)
def _record_error(e: RecordError):
    extra = {}
    if isinstance(e, ValidationError):
        extra["errors"] = {k: [m.text(g.lang) for m in v] for k, v in e.fields.items()}
    if isinstance(e, DuplicateFound):  # only what the caller may read is named
        extra["duplicates"] = [{"rule": m.rule.name, "id": m.id if m.readable else None,
                                "title": m.title if m.readable else None} for m in e.matches]
        extra["hint"] = "send \"_allow_duplicates\": true to save anyway"
        if e.errors:
            extra["record_errors"] = [m.text(g.lang) for m in e.errors]
    if getattr(e, "fields", None) and not isinstance(e, ValidationError):
        extra["changed_fields"] = list(e.fields)
    titles = {400: _("Bad request"), 403: _("Not allowed"), 404: _("Not found"), 409: _("Conflict"),
              422: _("Please check your input")}
    return problem(e.status, translate(titles.get(e.status, _("Bad request"))), e.text(g.lang), **extra)


@bp.errorhandler(BadRequest)
def _bad_request(e: BadRequest):
    return problem(400, translate(_("Bad request")), e.msg.text(g.lang))


def _object(name):
    obj = g.runtime.spec.objects.get(name)
    if obj is None or obj.child_of or not g.runtime.records.policy.can(g.actor, obj, "read"):
        from ..records.errors import NotFound
        raise NotFound(_("there is no object '{name}'"), name=name)
    return obj


def _body() -> dict:
    if not request.data:
        return {}
    try:
        data = json.loads(request.data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(_("the body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise BadRequest(_("the body must be a JSON object"))
    return data


def serialize(obj, record: dict, fields=None) -> dict:
    """A record for JSON: dates, decimals and the like are converted by json.dumps's
    `default` (jsonable), once, when the response is written."""
    out = {}
    for key, value in record.items():
        if fields and key not in fields and key not in ("id", "version"):
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            child = g.runtime.spec.objects[obj.fields[key].lines_object]
            value = [serialize(child, row) for row in value]
        out[key] = value
    title = record.get(obj.title)
    if title is not None and (not fields or obj.title in fields):
        out["_title"] = title
    return out


def _where(obj):
    """Conditions from `where` (JSON) and from field parameters, checked like YAML ones."""
    hidden = set(obj.fields) - g.runtime.records.policy.readable_fields(g.actor, obj)
    parts = []
    if request.args.get("where"):
        try:
            parts.append(json.loads(request.args["where"]))
        except ValueError:
            raise BadRequest(_("'where' is not valid JSON")) from None
    for key, value in request.args.items(multi=True):
        if key in RESERVED:
            continue
        name, _b, op = key.partition("[")
        op = op.rstrip("]") or "eq"
        if op not in OPERATORS:
            raise BadRequest(_("unknown operator '{op}'"), op=op[:20])
        if op in ("in", "not_in"):
            parts.append({"field": name, "op": op, "value": [v for v in value.split(",") if v]})
        elif op in ("is_null", "not_null"):
            parts.append({"field": name, "op": op})
        else:
            parts.append({"field": name, "op": op, "value": value})
    if not parts:
        return None
    raw = parts[0] if len(parts) == 1 else {"all": parts}
    return parse_condition(g.runtime.spec, obj.name, raw, hidden=hidden)


def _limit() -> int:
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise BadRequest(_("'limit' must be a whole number")) from None
    if not 1 <= limit <= 500:
        raise BadRequest(_("'limit' must be between 1 and 500"))
    return limit


@bp.route("/")
def index():
    policy = g.runtime.records.policy
    return _json({"objects": [{"name": o.name, "label": o.label.text(g.lang), "url": f"/api/v1/{o.name}"}
                              for o in g.runtime.spec.objects.values()
                              if not o.child_of and policy.can(g.actor, o, "read")],
                  "openapi": "/api/v1/openapi.json"})


@bp.route("/<name>", methods=["GET"])
def list_records(name):
    obj = _object(name)
    fields = set(filter(None, request.args.get("fields", "").split(","))) or None
    if fields and fields - set(obj.fields):
        raise BadRequest(_("unknown field '{field}'"), field=sorted(fields - set(obj.fields))[0][:60])
    sort = [s for s in request.args.get("sort", "").split(",") if s] or None
    page = g.runtime.records.query(obj, g.actor, where=_where(obj), search=request.args.get("q") or None,
                                   sort=sort, limit=_limit(), after=request.args.get("after") or None)
    return _json({"data": [serialize(obj, r, fields) for r in page.rows], "has_more": page.has_more,
                  "next": page.next_cursor})


@bp.route("/<name>", methods=["POST"])
def create(name):
    obj = _object(name)
    body = _body()
    allow = body.pop("_allow_duplicates", False) is True
    record = g.runtime.records.create(obj, body, g.actor, allow_duplicates=allow)
    return _json(serialize(obj, g.runtime.records.visible(g.actor, obj, record)), 201,
                 Location=f"/api/v1/{name}/{record['id']}", ETag=f'"{record["version"]}"')


@bp.route("/<name>/<int:record_id>", methods=["GET"])
def get(name, record_id):
    obj = _object(name)
    record = g.runtime.records.get(obj, record_id, g.actor)
    return _json(serialize(obj, record), ETag=f'"{record["version"]}"')


def _version(body):
    if "_version" in body:
        version = body.pop("_version")
    else:
        version = request.headers.get("If-Match", "").replace("W/", "").strip('"') or None
    if version is None:
        return None
    try:
        return int(version)
    except (TypeError, ValueError):
        raise BadRequest(_("the version must be a whole number")) from None


@bp.route("/<name>/<int:record_id>", methods=["PATCH"])
def update(name, record_id):
    obj = _object(name)
    body = _body()
    version = _version(body)
    allow = body.pop("_allow_duplicates", False) is True
    record = g.runtime.records.update(obj, record_id, body, g.actor, version=version, allow_duplicates=allow)
    return _json(serialize(obj, g.runtime.records.visible(g.actor, obj, record)), ETag=f'"{record["version"]}"')


@bp.route("/<name>/<int:record_id>", methods=["DELETE"])
def delete(name, record_id):
    obj = _object(name)
    g.runtime.records.delete(obj, record_id, g.actor)
    return Response(status=204)


@bp.route("/<name>/<int:record_id>/restore", methods=["POST"])
def restore(name, record_id):
    obj = _object(name)
    record = g.runtime.records.restore(obj, record_id, g.actor)
    return _json(serialize(obj, g.runtime.records.visible(g.actor, obj, record)))


@bp.route("/<name>/<int:record_id>/history", methods=["GET"])
def history(name, record_id):
    obj = _object(name)
    return _json({"data": g.runtime.records.history(obj, record_id, g.actor)})


@bp.route("/<name>/<int:record_id>/transitions/<transition>", methods=["POST"])
def transition(name, record_id, transition):
    obj = _object(name)
    body = _body()
    version = _version(body)
    values = body.get("values") or {}
    if not isinstance(values, dict):
        raise BadRequest(_("'values' must be a JSON object"))
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest(_("'comment' must be a text"))
    record = g.runtime.workflows.transition(obj, record_id, transition, g.actor, comment=comment,
                                            values=values, version=version)
    return _json(serialize(obj, g.runtime.records.visible(g.actor, obj, record)))


@bp.route("/approvals", methods=["GET"])
def approvals():
    items = g.runtime.workflows.inbox(g.actor)
    return _json({"data": [{k: v for k, v in i.items() if k != "definition"} for i in items]})


@bp.route("/approvals/<int:approval_id>/<decision>", methods=["POST"])
def decide(approval_id, decision):
    body = _body()
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest(_("'comment' must be a text"))
    if decision == "recall":
        approval = g.runtime.workflows.recall(approval_id, g.actor)
    elif decision in ("approve", "reject"):
        approval = g.runtime.workflows.decide(approval_id, g.actor, decision, comment)
    else:
        return problem(404, translate(_("Not found")))
    return _json({k: v for k, v in approval.items() if k != "definition"})


@bp.route("/openapi.json")
def openapi():
    from .openapi import build
    return _json(build(g.runtime, g.actor, g.lang))
