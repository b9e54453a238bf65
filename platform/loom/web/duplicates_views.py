"""Pages for duplicates (撞单分析, 客户合并) and the pool (公海)."""
from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, request, url_for

from ..metadata.spec import Compare
from ..records import duplicates, merge, pool
from . import formatting, listing

bp = Blueprint("duplicates", __name__)


def _obj(name):
    obj = g.runtime.spec.objects.get(name)
    if obj is None or obj.child_of or not g.runtime.records.policy.can(g.actor, obj, "read"):
        abort(404)
    return obj


@bp.route("/o/<name>/duplicates")
def report(name):
    """Groups of likely duplicates the reader may see, across owners."""
    obj = _obj(name)
    if not obj.duplicates:
        abort(404)
    rule = next((r for r in obj.duplicates if r.name == request.args.get("rule")), obj.duplicates[0])
    with g.runtime.engine.connect() as conn:
        groups = duplicates.groups(conn, g.runtime, obj, g.actor, rule)
    ids = {m["id"] for group in groups for m in group}
    titles = g.runtime.records.titles(obj, ids, g.actor)
    owners = g.runtime.records.titles("user", {m["owner"] for group in groups for m in group})
    return render_template("duplicates.html", obj=obj, rule=rule, groups=groups, titles=titles, owners=owners)


@bp.route("/o/<name>/merge", methods=["GET", "POST"])
def merge_page(name):
    obj = _obj(name)
    try:
        ids = [int(i) for i in (request.values.get("ids") or "").split(",") if i][:2]
    except ValueError:
        abort(400)
    if len(ids) != 2:
        abort(400)
    if request.method == "POST":
        survivor = request.form.get("survivor", type=int)
        if survivor not in ids:
            abort(400)
        merged = ids[1] if survivor == ids[0] else ids[0]
        choices = {f.name: request.form.get(f"keep.{f.name}") for f in merge.mergeable_fields(obj)}
        choices = {k: ("survivor" if v == str(survivor) else "merged") for k, v in choices.items() if v}
        merge.merge(g.runtime, obj, survivor, merged, g.actor, choices)
        return redirect(url_for("records.detail", name=name, record_id=survivor))
    records = [g.runtime.records.get(obj, i, g.actor) for i in ids]
    fields = [f for f in merge.mergeable_fields(obj) if f.name in g.runtime.records.policy.readable_fields(g.actor, obj)]
    refs = formatting.collect_refs(g.runtime, g.actor, obj.name, records, [f.name for f in fields])
    rows = [(f, [formatting.formatter(g.runtime.spec, obj.name, f, g.lang)(r.get(f.name), refs) for r in records],
             records[0].get(f.name) != records[1].get(f.name)) for f in fields]
    return render_template("merge.html", obj=obj, records=records, rows=rows, ids=",".join(map(str, ids)))


@bp.route("/o/<name>/pool")
def pool_list(name):
    obj = _obj(name)
    if obj.pool is None or not pool.in_pool_roles(obj, g.actor):
        abort(404)
    state = listing.parse(obj, request.args)
    cols = listing.columns(g.runtime, obj, [c for c in obj.list.columns if c != "owner"], g.lang,
                           readable=g.runtime.records.policy.readable_fields(g.actor, obj))
    page = g.runtime.records.query(obj, g.actor, where=Compare(("owner",), "is_null"), search=state.q,
                                   after=state.after, limit=obj.list.page_size)
    refs = formatting.collect_refs(g.runtime, g.actor, obj.name, page.rows, [c.name for c in cols])
    from .forms import _options
    users = _options(g.runtime, "user", g.actor) if pool.is_manager(obj, g.actor) else []
    return render_template("pool.html", obj=obj, cols=cols, rows=page.rows, refs=refs, state=state,
                           next=page.next_cursor, users=users, manager=pool.is_manager(obj, g.actor))


@bp.route("/o/<name>/<int:record_id>/claim", methods=["POST"])
def claim(name, record_id):
    obj = _obj(name)
    pool.claim(g.runtime, obj, record_id, g.actor, owner=request.form.get("owner", type=int))
    target = request.form.get("next")
    from .auth import safe_next
    return redirect(safe_next(target) if target else url_for("records.detail", name=name, record_id=record_id))


@bp.route("/o/<name>/<int:record_id>/release", methods=["POST"])
def release(name, record_id):
    obj = _obj(name)
    pool.release(g.runtime, obj, record_id, g.actor, request.form.get("reason"))
    return redirect(url_for("duplicates.pool_list", name=name))


def init_app(app):
    app.register_blueprint(bp)

    @app.context_processor
    def _pool_globals():
        def return_reasons(obj):
            if obj.pool is None or not obj.pool.return_reasons:
                return []
            return [(c, i.label) for c, i in g.runtime.spec.dictionaries[obj.pool.return_reasons].items.items()
                    if i.active]
        return {"return_reasons": return_reasons, "in_pool_roles": lambda obj: g.get("actor") is not None
                and pool.in_pool_roles(obj, g.actor)}
