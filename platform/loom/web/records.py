"""Pages for every object: list, detail, form, related tabs, history, lookups, export.

Views are thin: they read the request, call the record service with the signed-in
actor, and render. HTMX requests get fragments (the table, a tab, the form), everything
else the full page, so each URL also works without JavaScript.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from markupsafe import Markup

from ..i18n import _
from ..metadata.spec import Compare
from ..records import conversions
from ..records.drafts import check_draft
from ..records.errors import Conflict, DuplicateFound, ValidationError
from . import formatting, forms, listing
from .shell import translate
from .themes import page

bp = Blueprint("records", __name__)


def _obj(name):
    obj = g.runtime.spec.objects.get(name)
    if obj is None or obj.child_of:
        abort(404)
    if not g.runtime.records.policy.can(g.actor, obj, "read"):
        abort(404)  # an object one may not read is not there at all
    return obj


def _fragment() -> bool:
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-Boosted")


def _can(obj, action):
    return g.runtime.records.policy.can(g.actor, obj, action)


def _readable(obj):
    return g.runtime.records.policy.readable_fields(g.actor, obj)


@bp.route("/")
def home():
    return render_template("home.html")


# ---- lists ------------------------------------------------------------------------------

def _list_context(obj, *, deleted=False):
    runtime = g.runtime
    state, where, schemes = listing.view(runtime, g.actor, obj, request.args)
    scheme = schemes.get(state.scheme)
    names = scheme.columns if scheme and scheme.columns else obj.list.columns
    cols = listing.columns(runtime, obj, names, g.lang, readable=_readable(obj))
    if deleted:
        page_ = runtime.records.query(obj, g.actor, where=where, search=state.q, deleted=True, limit=obj.list.page_size,
                                      sort=["-deleted_at"])
        rows, prev, nxt = page_.rows, None, None
    else:
        if scheme and scheme.sort and not state.sort:
            state.sort = [("-" if d else "") + n for n, d in scheme.sort]
        rows, prev, nxt = listing.fetch(runtime, g.actor, obj, state, where, limit=obj.list.page_size)
    listing.path_values(runtime, g.actor, obj, rows, names)
    refs = formatting.collect_refs(runtime, g.actor, obj.name, rows, [c.name for c in cols])
    keys = runtime.records._sort(obj, state.sort or None)
    return dict(obj=obj, state=state, cols=cols, rows=rows, refs=refs, prev=prev, next=nxt, where=where,
                sort_key=keys[0], base=url_for("records.list_records", name=obj.name), deleted=deleted,
                schemes=list(schemes.values()), filters=_filters(obj, state),
                can_create=_can(obj, "create"), can_delete=_can(obj, "delete"),
                can_export=_can(obj, "export"), personal=_personal_schemes(obj))


def _filters(obj, state):
    """Filter widgets: (field, kind, options, current value)."""
    out = []
    runtime = g.runtime
    readable = _readable(obj)
    for name in obj.list.filters:
        f = obj.fields.get(name)
        if f is None or name not in readable:
            continue
        current = state.filters.get(name)
        if f.value_type in listing.RANGE_TYPES:
            out.append((f, "range", None, current or (None, None)))
        elif f.type == "dictionary":
            choices = [(c, i.label.text(g.lang), i.depth) for c, i in runtime.spec.dictionaries[f.dictionary].items.items()]
            out.append((f, "select", choices, (current or [""])[0]))
        elif f.type == "state":
            lifecycle = runtime.spec.lifecycle_of(obj)
            out.append((f, "select", [(s, st.label.text(g.lang), 0) for s, st in lifecycle.states.items()],
                        (current or [""])[0]))
        elif f.type in ("user", "department"):
            options = forms._options(runtime, f.type, g.actor)
            if f.type == "user":
                options = [("me", translate(_("Me")))] + options
            out.append((f, "select", [(str(i), t, 0) for i, t in options], (current or [""])[0]))
        elif f.type == "boolean":
            out.append((f, "select", [("1", translate(_("Yes")), 0), ("0", translate(_("No")), 0)],
                        (current or [""])[0]))
        else:
            out.append((f, "text", None, (current or [""])[0]))
    return out


def _personal_schemes(obj):
    from . import schemes
    return schemes.list_for(g.runtime, g.actor, obj.name)


@bp.route("/o/<name>/")
def list_records(name):
    obj = _obj(name)
    context = _list_context(obj)
    if _fragment() and request.headers.get("HX-Target") == "records":
        return render_template("_table.html", **context)
    return render_template(page("list.html", obj), **context)


@bp.route("/o/<name>/trash")
def trash(name):
    obj = _obj(name)
    context = _list_context(obj, deleted=True)
    if _fragment() and request.headers.get("HX-Target") == "records":
        return render_template("_table.html", **context)
    return render_template(page("list.html", obj), **context)


@bp.route("/o/<name>/count")
def count(name):
    obj = _obj(name)
    state, where, _schemes = listing.view(g.runtime, g.actor, obj, request.args)
    n = g.runtime.records.count(obj, g.actor, where=where, search=state.q, cap=listing.COUNT_CAP,
                                deleted=request.args.get("deleted") == "1")
    text = f"{listing.COUNT_CAP:,}+" if n > listing.COUNT_CAP else f"{n:,}"
    message = _("1 record") if n == 1 else _("{n} records")
    return Markup('<span class="count">{}</span>').format(translate(message, n=text))


# ---- detail --------------------------------------------------------------------------------

def _detail_context(obj, record):
    runtime = g.runtime
    sections = []
    readable = _readable(obj)
    names = [n for s in obj.detail for n in s.fields if n in readable]
    refs = formatting.collect_refs(runtime, g.actor, obj.name, [record], names)
    for section in obj.detail:
        if section.show_if is not None and not runtime.conditions.matches(obj, section.show_if, record):
            continue
        items = []
        for n in section.fields:
            f = obj.fields[n]
            if f.type == "lines" or f.hidden or n not in readable:
                continue
            if f.show_if is not None and not runtime.conditions.matches(obj, f.show_if, record):
                continue
            fmt = formatting.formatter(runtime.spec, obj.name, f, g.lang, detail=True)
            items.append((f, fmt(record.get(n), refs)))
        sections.append((section, items))
    lines = []
    for name, f in obj.fields.items():
        if f.type == "lines":
            child = runtime.spec.objects[f.lines_object]
            cols = listing.columns(runtime, child, [c.name for c in child.declared_fields if c.type != "lines"][:8], g.lang)
            rows = record.get(name) or []
            lines.append((f, cols, rows, formatting.collect_refs(runtime, g.actor, child.name, rows, [c.name for c in cols])))
    lifecycle = runtime.spec.lifecycle_of(obj)
    state = lifecycle.states.get(record.get("state")) if lifecycle else None
    deleted = record.get("deleted_at") is not None
    policy = runtime.records.policy
    with runtime.engine.connect() as conn:
        full = runtime.records._row(conn, obj, record["id"]) or record   # rights look at every field
        can_update = not deleted and policy.allows(conn, g.actor, obj, "update", full) and not (state and state.locked)
        can_delete = policy.allows(conn, g.actor, obj, "delete", full) and not (state and state.locked and not deleted)
    title_field = obj.fields[obj.title]
    title = formatting.plain(record.get(obj.title), runtime.spec, title_field, g.lang, None) or f"#{record['id']}"
    assignees = forms._options(runtime, "user", g.actor) if can_update and obj.owned else []
    return dict(obj=obj, record=record, sections=sections, lines=lines, state=state, lifecycle=lifecycle,
                title=title, can_update=can_update, can_delete=can_delete, deleted=deleted, assignees=assignees,
                related=[(i, r, runtime.spec.objects[r.object]) for i, r in enumerate(obj.related)
                         if policy.can(g.actor, runtime.spec.objects[r.object], "read")])


@bp.route("/o/<name>/<int:record_id>")
def detail(name, record_id):
    obj = _obj(name)
    deleted = request.args.get("deleted") == "1"
    record = g.runtime.records.get(obj, record_id, g.actor, deleted=deleted)
    return render_template(page("detail.html", obj), **_detail_context(obj, record))


@bp.route("/o/<name>/<int:record_id>/related/<int:index>")
def related(name, record_id, index):
    obj = _obj(name)
    g.runtime.records.get(obj, record_id, g.actor, with_lines=False,   # the parent must be readable
                          deleted=request.args.get("deleted") == "1")
    if index >= len(obj.related):
        abort(404)
    rel = obj.related[index]
    child = _obj(rel.object)
    names = rel.columns or child.list.columns
    cols = listing.columns(g.runtime, child, names, g.lang, readable=_readable(child))
    sort = [("-" if d else "") + n for n, d in rel.sort] or None
    page_ = g.runtime.records.query(child, g.actor, where=Compare((rel.via,), "eq", record_id), sort=sort, limit=100)
    listing.path_values(g.runtime, g.actor, child, page_.rows, names)
    refs = formatting.collect_refs(g.runtime, g.actor, child.name, page_.rows, [c.name for c in cols])
    return render_template("_related.html", obj=child, cols=cols, rows=page_.rows, refs=refs, more=page_.has_more,
                           rel=rel, parent=obj, record_id=record_id, can_create=_can(child, "create"))


@bp.route("/o/<name>/<int:record_id>/history")
def history(name, record_id):
    obj = _obj(name)
    entries = g.runtime.records.history(obj, record_id, g.actor)
    users = g.runtime.records.titles("user", {e["user_id"] for e in entries})
    return render_template("_history.html", obj=obj, entries=formatting.history_entries(
        g.runtime, g.actor, obj, entries, g.lang), users=users)


# ---- forms ---------------------------------------------------------------------------------

def _form_page(obj, form, *, record=None, errors=None, status=200, conflict=None, duplicates=False):
    lines, line_defaults = [], {}
    for fname, f in obj.fields.items():
        if f.type == "lines" and any(fname in s.fields for s in obj.form):
            child = g.runtime.spec.objects[f.lines_object]
            child_fields = [c for c in child.declared_fields if not c.computed and c.type not in ("lines", "file")]
            rows = request.form and forms.lines_from(request.form, fname) or (record or {}).get(fname) or []
            lines.append((f, child, child_fields, rows))
            # an added row starts with the metadata defaults, as a new record's form does
            line_defaults[fname] = forms.new_record_defaults(g.runtime, child, g.actor)
    template = "_form.html" if _fragment() and request.method == "POST" else page("form.html", obj)
    # show_if / required_if as they stand for the values shown, before anything changes
    if request.method == "POST":
        draft = forms.submitted(obj, form, request.form)
    else:   # a stored record as it is, or a new one with its defaults and those of the link
        draft = {} if record else _link_defaults(obj)
    shown = check_draft(g.runtime.records, obj, draft, g.actor, record_id=record["id"] if record else None)
    return render_template(template, obj=obj, form=form, record=record, errors=errors or {}, lines=lines, shown=shown,
                           currency=g.runtime.spec.currency,
                           conflict=conflict, duplicates=duplicates, rules=_live_rules(obj), lookup_titles=_lookup_titles(obj, form),
                           line_titles=_line_titles(lines), line_defaults=line_defaults,
                           child_dictionary=lambda f: g.runtime.spec.dictionaries[f.dictionary].items), status


def _as_id(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _lookup_titles(obj, form) -> dict:
    """{field: title} of the records the form's lookup fields hold."""
    out = {}
    for f in obj.fields.values():
        if f.type == "lookup" and f.name in form:
            id_ = _as_id(form[f.name].data)
            if id_ is not None:
                out[f.name] = g.runtime.records.titles(f.target, {id_}, g.actor).get(id_, f"#{id_}")
    return out


def _line_titles(lines) -> dict:
    wanted: dict = {}
    for _lf, _child, child_fields, rows in lines:
        for c in child_fields:
            if c.type == "lookup":
                wanted.setdefault(c.target, set()).update(_as_id(r.get(c.name)) for r in rows)
    return {(target, i): t for target, ids in wanted.items()
            for i, t in g.runtime.records.titles(target, ids, g.actor).items()}


def _live_rules(obj):
    """Which fields have show_if / required_if: the form asks the server when they change."""
    return json.dumps(sorted({f.name for f in obj.fields.values() if f.show_if is not None or f.required_if is not None}))


def _field_errors(error: ValidationError) -> dict:
    return {k: [m.text(g.lang) for m in v] for k, v in error.fields.items()} | \
        ({"": [m.text(g.lang) for m in error.errors]} if error.errors else {})


def _link_defaults(obj) -> dict:
    """Values a "new" link presets (?d.customer=12 from a customer's related tab)."""
    return {k[2:]: v for k, v in request.args.items() if k.startswith("d.") and k[2:] in obj.fields}


@bp.route("/o/<name>/new", methods=["GET", "POST"])
def create(name):
    obj = _obj(name)
    if not _can(obj, "create"):
        abort(403)
    if request.method == "GET":
        defaults = _link_defaults(obj)
        form = forms.build(g.runtime, obj, g.lang, record=defaults or None, actor=g.actor)
        return _form_page(obj, form)
    form = forms.build(g.runtime, obj, g.lang, formdata=request.form, actor=g.actor)
    try:
        record = g.runtime.records.create(obj, forms.submitted(obj, form, request.form), g.actor,
                                          allow_duplicates=request.form.get("_allow_duplicates") == "1")
    except DuplicateFound as e:
        return _form_page(obj, form, errors=_field_errors(e), status=409, duplicates=True)
    except ValidationError as e:
        return _form_page(obj, form, errors=_field_errors(e), status=422)
    return _go(url_for("records.detail", name=name, record_id=record["id"]))


@bp.route("/o/<name>/<int:record_id>/edit", methods=["GET", "POST"])
def edit(name, record_id):
    obj = _obj(name)
    record = g.runtime.records.get(obj, record_id, g.actor)
    if not _may_change(obj, record_id):
        abort(403)  # no form that cannot be saved: reading a record is not the right to change it
    if request.method == "GET":
        form = forms.build(g.runtime, obj, g.lang, record=record, actor=g.actor)
        return _form_page(obj, form, record=record)
    form = forms.build(g.runtime, obj, g.lang, formdata=request.form, actor=g.actor, record=record)
    try:
        version = int(request.form.get("_version", ""))
    except ValueError:
        abort(400)
    try:
        g.runtime.records.update(obj, record_id, forms.submitted(obj, form, request.form), g.actor, version=version,
                                 allow_duplicates=request.form.get("_allow_duplicates") == "1")
    except DuplicateFound as e:
        return _form_page(obj, form, record=record, errors=_field_errors(e), status=409, duplicates=True)
    except ValidationError as e:
        return _form_page(obj, form, record=record, errors=_field_errors(e), status=422)
    except Conflict as e:
        fields = [obj.fields[f].label.text(g.lang) for f in e.fields if f in obj.fields]
        return _form_page(obj, form, record=e.current or record, status=409,
                          conflict=translate(_("Someone else changed this record meanwhile: {fields}. Your input is kept below; "
                                               "save again to apply it over their change."), fields=", ".join(fields) or "-"))
    return _go(url_for("records.detail", name=name, record_id=record_id))


def _may_change(obj, record_id) -> bool:
    """Whether the actor may update the record now: their rights on the stored record (field
    security does not hide a field from its scope), and a state that is not locked."""
    records = g.runtime.records
    with g.runtime.engine.connect() as conn:
        stored = records._row(conn, obj, record_id)
        if stored is None or not records._allowed(conn, g.actor, obj, "update", stored):
            return False
    lifecycle = g.runtime.spec.lifecycle_of(obj)
    state = lifecycle.states.get(stored.get("state")) if lifecycle else None
    return not (state and state.locked)


@bp.route("/o/<name>/validate", methods=["POST"])
def validate(name):
    """Inline validation and live show_if/required_if: the service judges the draft, the
    page applies the verdict (which fields to show, which are required, messages)."""
    obj = _obj(name)
    form = forms.build(g.runtime, obj, g.lang, formdata=request.form, actor=g.actor)
    values = forms.submitted(obj, form, request.form)
    verdict = check_draft(g.runtime.records, obj, values, g.actor, record_id=request.form.get("_id", type=int))
    body = {"hidden": verdict["hidden"], "hidden_sections": verdict["hidden_sections"], "required": verdict["required"],
            "errors": {k: [m.text(g.lang) for m in v] for k, v in verdict["errors"].items()}}
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


def _go(url):
    if _fragment():
        return Response(status=204, headers={"HX-Location": url})
    return redirect(url)


@bp.route("/o/<name>/<int:record_id>/delete", methods=["POST"])
def delete(name, record_id):
    obj = _obj(name)
    g.runtime.records.delete(obj, record_id, g.actor)
    return _go(url_for("records.list_records", name=name))


@bp.route("/o/<name>/<int:record_id>/restore", methods=["POST"])
def restore(name, record_id):
    obj = _obj(name)
    g.runtime.records.restore(obj, record_id, g.actor)
    return _go(url_for("records.detail", name=name, record_id=record_id))


@bp.route("/o/<name>/<int:record_id>/purge", methods=["POST"])
def purge(name, record_id):
    obj = _obj(name)
    g.runtime.records.purge(obj, record_id, g.actor)
    return _go(url_for("records.trash", name=name))


@bp.route("/o/<name>/bulk", methods=["POST"])
def bulk(name):
    """Delete or assign the selected records; each through the service, all or nothing."""
    obj = _obj(name)
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()][:500]
    action = request.form.get("action")
    service = g.runtime.records
    with service.transaction() as conn:
        for record_id in ids:
            if action == "delete":
                service.delete(obj, record_id, g.actor, conn=conn)
            elif action == "assign":
                owner = request.form.get("owner", type=int)
                record = service.get(obj, record_id, g.actor, conn=conn, with_lines=False)
                service.update(obj, record_id, {"owner": owner}, g.actor, version=record["version"], conn=conn)
            else:
                abort(400)
    return _go(request.form.get("back") and _safe(request.form["back"]) or url_for("records.list_records", name=name))


def _safe(url):
    from .auth import safe_next
    return safe_next(url)


# ---- lookups ----------------------------------------------------------------------------------

@bp.route("/o/<name>/lookup")
def lookup(name):
    """Type-ahead for lookup fields: readable records of `name` matching the term."""
    obj = _obj(name)
    term = (request.args.get("q") or "").strip()
    where = None
    owner = request.args.get("for", "")
    if "." in owner:  # the lookup's own filter applies to what it offers
        src, field = owner.split(".", 1)
        f = g.runtime.spec.objects.get(src, None) and g.runtime.spec.objects[src].fields.get(field)
        if f is not None and f.is_reference and f.target == name:
            where = f.filter
    page_ = g.runtime.records.query(obj, g.actor, where=where, search=term or None, limit=15)
    title = obj.fields[obj.title]
    options = [(r["id"], formatting.plain(r.get(obj.title), g.runtime.spec, title, g.lang, None) or f"#{r['id']}")
               for r in page_.rows]
    return render_template("_lookup_options.html", options=options, target=request.args.get("target", ""))


# ---- export -----------------------------------------------------------------------------------

@bp.route("/o/<name>/export.<fmt>")
def export(name, fmt):
    obj = _obj(name)
    if not _can(obj, "export"):
        abort(403)
    if fmt not in ("csv", "xlsx"):
        abort(404)
    from . import export as exporter
    state, where, _schemes = listing.view(g.runtime, g.actor, obj, request.args)
    return exporter.response(g.runtime, g.actor, obj, where, state, fmt, g.lang)


# ---- kanban -------------------------------------------------------------------------------------

@bp.route("/o/<name>/kanban")
def kanban(name):
    obj = _obj(name)
    if obj.list.kanban is None or obj.list.kanban.group_by not in _readable(obj):
        abort(404)  # columns of a field one may not read would tell its values
    from .kanban import board
    return render_template(page("kanban.html", obj), **board(g.runtime, g.actor, obj, request.args, g.lang))


@bp.route("/o/<name>/<int:record_id>/convert/<conversion>", methods=["POST"])
def convert(name, record_id, conversion):
    """Run a conversion (线索转换...): the optional records are those left checked."""
    obj = _obj(name)
    spec = next((c for c in obj.conversions if c.name == conversion), None)
    if spec is None:
        abort(404)
    chosen = set(request.form.getlist("create"))
    skip = {c.as_ for c in spec.creates if c.optional and c.as_ not in chosen}
    created = conversions.convert(g.runtime, obj, record_id, conversion, g.actor, skip=skip)
    opened = created.get(spec.open) if spec.open else None
    target = next((c.object for c in spec.creates if c.as_ == spec.open), None)
    return _go(url_for("records.detail", name=target, record_id=opened["id"]) if opened
               else url_for("records.detail", name=name, record_id=record_id))


@bp.route("/o/<name>/calendar")
def calendar(name):
    obj = _obj(name)
    if obj.list.calendar is None or obj.list.calendar.start not in _readable(obj):
        abort(404)  # days of a date one may not read would tell it
    from .calendar import month_view
    return render_template(page("calendar.html", obj), **month_view(g.runtime, g.actor, obj, request.args, g.lang))


@bp.route("/o/<name>/<int:record_id>/move", methods=["POST"])
def move(name, record_id):
    """A card dropped on another column: the grouping field changes, through the service."""
    obj = _obj(name)
    if obj.list.kanban is None:
        abort(404)
    group_by = obj.list.kanban.group_by
    record = g.runtime.records.get(obj, record_id, g.actor, with_lines=False)
    value = request.form.get("value") or None
    version = request.form.get("version", type=int) or record["version"]
    g.runtime.records.update(obj, record_id, {group_by: value}, g.actor, version=version)
    return Response(status=204, headers={"HX-Trigger": "loom:moved"})
