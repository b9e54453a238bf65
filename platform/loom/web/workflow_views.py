"""Pages for lifecycles and approvals: transitions, decisions, inboxes, diagrams."""
from __future__ import annotations

from functools import lru_cache

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms.fields.choices import SelectChoice

from ..metadata.spec import Label
from ..records.coerce import is_empty
from ..records.errors import NotFound, ValidationError
from ..workflow.diagram import svg
from . import forms

bp = Blueprint("workflow", __name__)


def _obj(name):
    obj = g.runtime.spec.objects.get(name)
    if obj is None or obj.child_of or not g.runtime.records.policy.can(g.actor, obj, "read"):
        abort(404)
    return obj


def _may_update(obj, record_id) -> bool:
    """A transition changes the record: whatever roles it names, it needs the right to update
    this record (a record shared for reading, or read through a wider read scope, is not one's
    to move)."""
    records = g.runtime.records
    with g.runtime.engine.connect() as conn:
        stored = records._row(conn, obj, record_id)
        return stored is not None and records._allowed(conn, g.actor, obj, "update", stored)


def _back(obj, record_id):
    url = url_for("records.detail", name=obj.name, record_id=record_id)
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Location": url})
    return redirect(url)


@bp.route("/o/<name>/<int:record_id>/transition/<transition>", methods=["GET", "POST"])
def transition(name, record_id, transition):
    obj = _obj(name)
    lifecycle = g.runtime.spec.lifecycle_of(obj)
    t = lifecycle.transitions.get(transition) if lifecycle else None
    if t is None:
        abort(404)
    record = g.runtime.records.get(obj, record_id, g.actor, with_lines=False)
    if not _may_update(obj, record_id):
        abort(403)
    fields = transition_fields(obj, t, record)
    error, errors = None, {}
    if request.method == "POST":
        try:
            g.runtime.workflows.transition(obj, record_id, transition, g.actor, comment=request.form.get("comment"),
                                           values=_posted(fields), version=request.form.get("version", type=int))
        except ValidationError as e:
            errors = {name: [m.text(g.lang) for m in msgs] for name, msgs in e.fields.items()}
            error = " ".join(m for name, msgs in errors.items() for m in msgs) or e.text(g.lang)
        else:
            return _back(obj, record_id)
    form = _fields_form(obj, fields, request.form if request.method == "POST" else None)
    return render_template("transition.html", obj=obj, record=record, tr=t, error=error, errors=errors,
                           fields=form), (422 if error else 200)


def transition_fields(obj, t, record) -> list:
    """The fields a transition asks for: those its target state makes required while they are
    empty, or shows for the first time (an opportunity's lost reason when it is lost). The
    edit form cannot offer them (they are hidden, or the state is locked) and the transition
    would be refused without them."""
    candidates = [f for f in obj.fields.values() if (f.required_if is not None or f.show_if is not None)
                  and not f.system and not f.computed and not f.readonly and f.type not in ("lines", "file")]
    if not candidates:
        return []
    after = {**record, "state": t.to}
    if t.set:
        with g.runtime.engine.connect() as conn:
            after.update(g.runtime.workflows._set_values(obj, t.set, record, g.actor, conn))
    allowed = forms.allowed_fields(g.runtime, obj, g.actor)
    matches = g.runtime.conditions.matches
    out = []
    for f in candidates:
        if f.name not in allowed or (f.show_if is not None and not matches(obj, f.show_if, after)):
            continue
        needed = f.required_if is not None and matches(obj, f.required_if, after) and is_empty(record.get(f.name))
        if needed or (f.show_if is not None and not matches(obj, f.show_if, record)):
            out.append((f, needed))
    return out


@lru_cache(maxsize=128)
def _form_class(spec, obj_name: str, names: tuple, lang: str):
    obj = spec.objects[obj_name]
    attrs = {name: forms._field(obj.fields[name], lang) for name in names}
    return type("TransitionForm", (FlaskForm,), {"Meta": type("Meta", (), {"csrf": False}), **attrs})


def _fields_form(obj, fields, formdata=None):
    """A small form of a transition's fields, each with `.required` set, or None."""
    if not fields:
        return None
    form = _form_class(g.runtime.spec, obj.name, tuple(f.name for f, _required in fields), g.lang)(formdata=formdata)
    for f, required in fields:
        field = form[f.name]
        field.needed = required
        if f.type == "dictionary":
            field.choices = forms._dictionary_choices(g.runtime.spec, f, g.lang)
        elif f.type in ("user", "department"):
            field.choices = [SelectChoice("", "")] + [SelectChoice(str(i), title) for i, title in
                                                      forms._options(g.runtime, f.type, g.actor)]
    return form


def _posted(fields) -> dict:
    """A transition's field values as typed (the record service checks them)."""
    values = {}
    for f, _required in fields:
        if f.type == "boolean":
            values[f.name] = f.name in request.form
        elif f.type == "dictionary" and f.multiple:
            values[f.name] = request.form.getlist(f.name)
        elif f.name in request.form:
            raw = request.form.get(f.name)
            values[f.name] = raw.replace("T", " ") if f.type == "datetime" and raw else raw
    return values


@bp.route("/o/<name>/<int:record_id>/approvals")
def panel(name, record_id):
    """The approval panel of a record (a fragment of the detail page): for those who may read it."""
    obj = _obj(name)
    g.runtime.records.get(obj, record_id, g.actor, with_lines=False)
    return render_template("_approvals.html", **_panel(obj, record_id))


def _panel(obj, record_id):
    flows = g.runtime.workflows.flows_of(obj, record_id)
    users = g.runtime.records.titles("user", {t["user_id"] for f in flows for t in f["tasks"]} |
                                     {f["submitter_id"] for f in flows})
    return dict(obj=obj, record_id=record_id, flows=flows, users=users)


@bp.route("/o/<name>/<int:record_id>/diagram.svg")
def record_diagram(name, record_id):
    obj = _obj(name)
    record = g.runtime.records.get(obj, record_id, g.actor, with_lines=False)
    if not obj.lifecycle:
        abort(404)
    return Response(svg(g.runtime.spec, obj.lifecycle, g.lang, current=record.get("state")), mimetype="image/svg+xml")


def _approval(approval_id):
    """The approval, for those who submitted it, are asked to decide on it or may read its record."""
    row = g.runtime.workflows.approval(approval_id)
    if row is None:
        abort(404)
    obj = g.runtime.spec.objects.get(row["object"])
    if obj is None:
        abort(404)
    record = _record_as_actor(obj, row["record_id"])
    if record is None and not g.runtime.workflows.involved(row, g.actor):
        abort(404)
    return row, obj, record


def _record_as_actor(obj, record_id):
    try:
        return g.runtime.records.get(obj, record_id, g.actor)
    except NotFound:
        return None


def _record_for_approver(obj, record_id):
    """The record as its approvers see it without read access: every field they may read
    (field security still applies), the binned record too."""
    records = g.runtime.records
    with g.runtime.engine.connect() as conn:
        record = records._row(conn, obj, record_id)
        if record is None:
            abort(404)
        record.update(records.lines(conn, obj, record_id))
    return records.visible(g.actor, obj, record)


@bp.route("/approvals/<int:approval_id>")
def approval(approval_id):
    """One request as its approvers and submitter see it (they may not otherwise read the record)."""
    row, obj, record = _approval(approval_id)
    readable = record is not None
    if record is None:
        record = _record_for_approver(obj, row["record_id"])
    from .records import _detail_context
    context = _detail_context(obj, record)
    context.update(_panel(obj, row["record_id"]))
    return render_template("approval.html", approval=row, waiting=g.runtime.workflows.waiting_for(row, g.actor),
                           readable=readable, **context)


@bp.route("/approvals/<int:approval_id>/<decision>", methods=["POST"])
def decide(approval_id, decision):
    if decision not in ("approve", "reject", "recall"):
        abort(404)
    _approval(approval_id)
    workflows = g.runtime.workflows
    if decision == "recall":
        workflows.recall(approval_id, g.actor)
    else:
        workflows.decide(approval_id, g.actor, decision, request.form.get("comment"))
    target = request.form.get("next")
    from .auth import safe_next
    url = safe_next(target) if target else url_for("workflow.inbox")
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Location": url})
    return redirect(url)


@bp.route("/approvals")
def inbox():
    items = g.runtime.workflows.inbox(g.actor)
    return render_template("approvals.html", items=_describe(items), mine=False)


@bp.route("/approvals/mine")
def mine():
    items = g.runtime.workflows.submitted_by(g.actor)
    return render_template("approvals.html", items=_describe(items), mine=True)


def _describe(items):
    """Add the record's title and the flow's label to each approval."""
    by_object: dict = {}
    for item in items:
        by_object.setdefault(item["object"], set()).add(item["record_id"])
    titles = {(o, i): t for o, ids in by_object.items()
              for i, t in g.runtime.records.titles(o, ids).items()}
    users = g.runtime.records.titles("user", {i["submitter_id"] for i in items})
    for item in items:
        item["title"] = titles.get((item["object"], item["record_id"]), f"#{item['record_id']}")
        item["object_spec"] = g.runtime.spec.objects.get(item["object"])
        flow = g.runtime.spec.workflows.get(item["flow"])
        item["flow_label"] = flow.label if flow else item["flow"]
        item["submitter"] = users.get(item["submitter_id"], "")
    return items


@bp.route("/admin/workflows")
def workflows():
    if not g.actor.superuser:
        abort(403)
    return render_template("workflows.html", workflows=g.runtime.spec.workflows)


@bp.route("/admin/workflows/<name>.svg")
def workflow_svg(name):
    if not g.actor.superuser or name not in g.runtime.spec.workflows:
        abort(404)
    return Response(svg(g.runtime.spec, name, g.lang), mimetype="image/svg+xml")


def inbox_count() -> int:
    actor = g.get("actor")
    runtime = g.get("runtime")
    if actor is None or runtime is None or actor.id is None:
        return 0
    return runtime.workflows.inbox_count(actor)


def transitions_for(obj, record) -> list:
    """The transitions the signed-in actor may take on a record, for its detail page."""
    if not obj.lifecycle or record.get("deleted_at") is not None or not _may_update(obj, record["id"]):
        return []
    try:
        return g.runtime.workflows.available(obj, record["id"], g.actor)
    except NotFound:  # an approver's view of a record they may not read
        return []


def diagram(obj, record) -> Markup:
    return Markup(svg(g.runtime.spec, obj.lifecycle, g.lang, current=record.get("state"))) if obj.lifecycle else Markup("")


def init_app(app):
    app.register_blueprint(bp)

    @app.context_processor
    def _workflow_globals():
        return {"inbox_count": inbox_count, "transitions_for": transitions_for, "diagram": diagram,
                "transition_form": lambda obj, t, record: _fields_form(obj, transition_fields(obj, t, record)),
                "label_of": lambda texts: Label(tuple(map(tuple, texts or ()))).text(g.get("lang"))}
