"""The report pages.

    GET /reports/                    the reports the user may open (those on objects they may read)
    GET /reports/<name>              chart, table and totals; ?f.<field>=... narrows it like a list
    GET /reports/<name>/export.csv   the table as CSV (needs the `export` right on the object)

A report on an object the user may not read is not there (404); one grouping by a field
they may not read is refused (403, naming the field). Each group links to the object's
list filtered to the same records, when the list's filters can say so (drill.py).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, g, render_template, request
from markupsafe import Markup, escape

from ..i18n import _
from ..metadata.spec import All, Compare
from ..web import formatting, listing
from ..web.errors import render_error
from ..web.shell import translate
from . import charts, drill
from .query import run

bp = Blueprint("reports", __name__)

RISKY = ("=", "+", "-", "@", "\t", "\r")          # as web/export.py: cells a spreadsheet would run
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
KIND_LABELS = {"bar": _("Bar chart"), "line": _("Line chart"), "pie": _("Pie chart"), "funnel": _("Funnel chart"),
               "table": _("Table")}


def _report(name):
    runtime = g.runtime
    report = runtime.spec.reports.get(name)
    if report is None:
        abort(404)
    obj = runtime.spec.objects.get(report.object)
    if obj is None or not runtime.records.policy.can(g.actor, obj, "read"):
        abort(404)   # a report on an object one may not read is not there at all
    return report, obj


def _page_filters(obj):
    """The page's own filters (list parameters, fields the user may read only): (state, condition)."""
    state = listing.parse(obj, request.args)
    readable = g.runtime.records.policy.readable_fields(g.actor, obj)
    state.filters = {k: v for k, v in state.filters.items() if k in readable}
    state.q = ""
    return state, listing.condition(obj, state, g.actor, {})


def _valid(obj, cond) -> bool:
    """Whether every value of the page's filters fits its field (a bad date is the user's
    error, not the database's)."""
    ctx = g.runtime.records.policy.context(g.actor)
    atoms = cond.items if isinstance(cond, All) else (cond,) if cond is not None else ()
    for atom in atoms:
        if isinstance(atom, Compare) and atom.value is not None:
            try:
                g.runtime.conditions.resolve(obj.fields[atom.path[0]], atom.value, ctx)
            except (ValueError, TypeError, ArithmeticError):
                return False
    return True


def _result(name):
    report, obj = _report(name)
    state, cond = _page_filters(obj)
    if not _valid(obj, cond):
        return report, obj, state, cond, None
    return report, obj, state, cond, run(g.runtime, g.actor, report, cond, lang=g.lang)


@bp.route("/reports/")
def index():
    runtime = g.runtime
    policy = runtime.records.policy
    items = []
    for report in runtime.spec.reports.values():
        obj = runtime.spec.objects.get(report.object)
        if obj is not None and policy.can(g.actor, obj, "read"):
            items.append((report, obj))
    items.sort(key=lambda p: (p[1].plural.text(g.lang), p[0].label.text(g.lang)))
    return render_template("reports.html", items=items, kinds=KIND_LABELS)


def _links(report, obj, result, page_cond):
    """Drill-down links: per row and group column, the whole table, and per row for the chart."""
    runtime = g.runtime
    ctx = runtime.records.policy.context(g.actor)
    base = drill.combine(drill.of_condition(runtime, obj, report.where, ctx),
                         drill.of_condition(runtime, obj, page_cond, ctx))
    group_idx = [i for i, c in enumerate(result.columns) if c.is_group]
    cells = []
    for row in result.rows:
        parts, links = [base], []
        for i in group_idx:
            parts.append(drill.of_group(obj, result.columns[i], row[i]))
            links.append(drill.list_url(obj, drill.combine(*parts)))
        cells.append(links)
    return drill.list_url(obj, base), cells


def _group_html(group):
    if group.value is None:
        return Markup('<span class="muted">{}</span>').format(group.label)
    if group.color:
        return Markup('<span class="badge {}">{}</span>').format(group.color, group.label)
    return escape(group.label)


@bp.route("/reports/<name>")
def show(name):
    report, obj, state, cond, result = _result(name)
    if result is None:
        return render_error(400, translate(_("A filter value is not valid")))
    runtime = g.runtime
    whole, links = _links(report, obj, result, cond)
    group_idx = [i for i, c in enumerate(result.columns) if c.is_group]
    fmts = {i: formatting.formatter(runtime.spec, obj.name, c.shown_as, g.lang)
            for i, c in enumerate(result.columns) if not c.is_group}
    rows = []
    for row, row_links in zip(result.rows, links):
        cells = []
        for i, value in enumerate(row):
            if i in fmts:
                cells.append({"html": fmts[i](value, {}), "num": True})
            else:
                cells.append({"html": _group_html(value), "href": row_links[group_idx.index(i)]})
        rows.append(cells)
    totals = [{"html": fmts[i](v, {}) if i in fmts else "", "num": i in fmts} for i, v in enumerate(result.totals)]
    chart_hrefs = [row_links[-1] if row_links else None for row_links in links]
    svg = Markup(charts.render(charts.from_result(result, chart_hrefs, lang=g.lang)))
    from ..web.records import _filters
    policy = runtime.records.policy
    return render_template("report.html", report=report, obj=obj, result=result, rows=rows, totals=totals,
                           svg=svg, whole=whole, state=state, filters=_filters(obj, state),
                           can_export=policy.can(g.actor, obj, "export"), group_count=len(group_idx),
                           kind=KIND_LABELS.get(report.chart, report.chart))


def _safe(text: str) -> str:
    if text.startswith(RISKY) and not NUMBER.match(text):
        return "'" + text
    return text


@bp.route("/reports/<name>/export.csv")
def export(name):
    report, obj = _report(name)
    if not g.runtime.records.policy.can(g.actor, obj, "export"):
        abort(403)
    report, obj, _state, _cond, result = _result(name)
    if result is None:
        return render_error(400, translate(_("A filter value is not valid")))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_safe(c.label) for c in result.columns])
    for row in result.rows:
        writer.writerow([_safe(result.raw(i, v)) for i, v in enumerate(row)])
    total_row = [_safe(result.raw(i, v)) for i, v in enumerate(result.totals)]
    if result.groups:
        total_row[0] = translate(_("Total"))
        writer.writerow(total_row)
    stamp = dt.datetime.now(ZoneInfo(g.runtime.spec.timezone)).strftime("%Y%m%d-%H%M")
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename={report.name}-{stamp}.csv"})
