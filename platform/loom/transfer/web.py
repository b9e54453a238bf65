"""The import pages: upload a file, read the check's report, import, watch the progress.

    GET  /o/<obj>/import              the upload form (objects the user may create)
    POST /o/<obj>/import              keep the file, check it in the background (a dry run)
    GET  /o/<obj>/import/template.csv a header row of the columns the user may fill
    GET  /jobs/<id>                   a job's progress or report (htmx polls it every second)
    POST /jobs/<id>/import            import the file a finished check looked at

Both the check and the import run as jobs (transfer/jobs.py), so a large file never
holds a request open; the upload waits a moment, so a small file's report is on the
first page. The uploaded file is kept under the instance folder until the import has
run (or for two days).
"""
from __future__ import annotations

import csv
import io
import secrets
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for

from ..i18n import _
from . import jobs
from .imports import MAX_BYTES, SETTABLE_SYSTEM, import_file, template

bp = Blueprint("transfer", __name__)
KEEP_SECONDS = 2 * 24 * 3600
WAIT_SECONDS = 3.0
SHOWN_PROBLEMS = 1000
SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm")


def _obj(name):
    obj = g.runtime.spec.objects.get(name)
    policy = g.runtime.records.policy
    if obj is None or obj.child_of or not policy.can(g.actor, obj, "read"):
        abort(404)
    if not policy.can(g.actor, obj, "create"):
        abort(403)
    return obj


def _folder() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tidy(folder: Path) -> None:
    """Forget uploads nobody imported."""
    limit = time.time() - KEEP_SECONDS
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
        except OSError:
            pass


def _match_fields(obj):
    """Fields an upsert may match records by."""
    readable = g.runtime.records.policy.readable_fields(g.actor, obj)
    return [f for f in obj.fields.values() if f.name in readable and f.stored and
            (f.unique or f.type == "autonumber")]


@bp.route("/o/<name>/import", methods=["GET", "POST"])
def upload(name):
    obj = _obj(name)
    match = _match_fields(obj)
    error = None
    if request.method == "POST":
        file = request.files.get("file")
        upsert = request.form.get("upsert") or None
        if upsert and upsert not in {f.name for f in match}:
            abort(400)
        suffix = Path(file.filename or "").suffix.lower() if file else ""
        if file is None or not file.filename:
            error = _("Choose a file to import.")
        elif suffix not in SUFFIXES:
            error = _("Import a CSV or Excel (.xlsx) file.")
        else:
            folder = _folder()
            _tidy(folder)
            token = secrets.token_hex(16)
            path = folder / f"{token}{suffix}"
            file.save(path)
            if path.stat().st_size > MAX_BYTES:
                path.unlink()
                error = _("The file is too large.")
            else:
                args = {"object": obj.name, "token": token, "suffix": suffix, "filename": file.filename[:200],
                        "upsert": upsert}
                job_id = _start(args, dry_run=True)
                jobs.wait(g.runtime, job_id, WAIT_SECONDS)
                return redirect(url_for("transfer.job", job_id=job_id))
    return render_template("import/upload.html", obj=obj, match=match, error=error,
                           columns=template(g.runtime, g.actor, obj, g.lang),
                           limit=f"{MAX_BYTES // 1048576} MB"), 422 if error else 200


def _start(args: dict, *, dry_run: bool) -> int:
    runtime, actor = g.runtime, g.actor
    path = _folder() / f"{args['token']}{args['suffix']}"

    def work(progress):
        try:
            report = import_file(runtime, actor, args["object"], path, upsert=args.get("upsert"),
                                 mapping=args.get("mapping"), dry_run=dry_run, progress=progress,
                                 allow_duplicates=bool(args.get("allow_duplicates")))
        finally:
            if not dry_run:
                path.unlink(missing_ok=True)
        return {"report": {lang: report.as_dict(lang, limit=SHOWN_PROBLEMS) for lang in runtime.spec.languages}}
    return jobs.submit(runtime, actor.id, "import-check" if dry_run else "import", work, args=args)


def _settable(obj):
    """[(field name, label)] a column may be read into."""
    updatable = g.runtime.records.policy.updatable_fields(g.actor, obj)
    return [(f.name, f.label.text(g.lang)) for f in obj.fields.values()
            if f.name in updatable and not f.computed and not f.readonly and f.type not in ("lines", "file")
            and (not f.system or f.name in SETTABLE_SYSTEM)]


def _job(job_id):
    job = jobs.get(g.runtime, job_id)
    if job is None or (job["user_id"] != g.actor.id and not g.actor.superuser):
        abort(404)
    return job


def _context(job):
    result = job.get("result") or {}
    args = result.get("args") or {}
    reports = result.get("report") or {}
    report = reports.get(g.lang) or next(iter(reports.values()), None)
    error = result.get("error") or {}
    obj = g.runtime.spec.objects.get(args.get("object"))
    token = args.get("token")
    waiting = token and (_folder() / f"{token}{args.get('suffix', '')}").exists()
    can_import = (job["kind"] == "import-check" and job["status"] == jobs.DONE and report is not None
                  and waiting and (report["created"] or report["updated"] or report.get("duplicates")))
    percent = int(100 * job["done"] / job["total"]) if job.get("total") else None
    mapped = dict(report["columns"]) if report else {}
    if report and report.get("key_column"):
        mapped[report["key_column"]] = args.get("upsert")
    fields = _settable(obj) if obj is not None and job["kind"] == "import-check" and waiting else []
    return dict(job=job, args=args, report=report, obj=obj, can_import=can_import, percent=percent,
                mapped=mapped, fields=fields,
                error=error.get(g.lang) or next(iter(error.values()), None),
                running=job["status"] in (jobs.QUEUED, jobs.RUNNING))


@bp.route("/jobs/<int:job_id>")
def job(job_id):
    context = _context(_job(job_id))
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        return render_template("import/_job.html", **context)
    return render_template("import/job.html", **context)


@bp.route("/jobs/<int:job_id>/import", methods=["POST"])
def run(job_id):
    job = _job(job_id)
    context = _context(job)
    if not context["can_import"]:
        abort(409)
    args = dict(context["args"], allow_duplicates=request.form.get("allow_duplicates") == "1")
    _obj(args["object"])   # may still create
    new_id = _start(args, dry_run=False)
    jobs.wait(g.runtime, new_id, WAIT_SECONDS)
    return redirect(url_for("transfer.job", job_id=new_id))


@bp.route("/jobs/<int:job_id>/check", methods=["POST"])
def check_again(job_id):
    """Check the same file again with the columns read as the user chose."""
    job = _job(job_id)
    context = _context(job)
    if job["kind"] != "import-check" or not context["fields"] or context["report"] is None:
        abort(409)
    allowed = {name for name, _label in context["fields"]} | ({context["args"]["upsert"]} - {None})
    mapping = {}
    for n, header in enumerate(context["report"].get("headers", [])):
        chosen = request.form.get(f"column-{n}", "")
        if chosen and chosen not in allowed:
            abort(400)
        mapping[header] = chosen
    args = dict(context["args"], mapping=mapping)
    _obj(args["object"])
    new_id = _start(args, dry_run=True)
    jobs.wait(g.runtime, new_id, WAIT_SECONDS)
    return redirect(url_for("transfer.job", job_id=new_id))


@bp.route("/o/<name>/import/template.csv")
def sample(name):
    obj = _obj(name)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer).writerow(template(g.runtime, g.actor, obj, g.lang))
    return Response(buffer.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename={obj.name}-template.csv"})
