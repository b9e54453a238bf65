"""Exporting an object's records: CSV, XLSX and JSON, streamed.

    with open("customers.csv", "wb") as out:
        for chunk in export(runtime, actor, "customer", "csv", lang="zh"):
            out.write(chunk)

CSV and XLSX carry what a person reads, exactly as the list page's export does (the rows
come from web/export.py: labels of dictionary items, titles of referenced records, the
formula guard): they import back. Records come in the order they were created (keyset
pages on the primary key: every page is an index range, on SQLite too, where the list's
default sort by update time makes SQLite sort the matching rows again for every page). JSON is for programs and keeps everything: typed
values (decimals as exact strings, dates and datetimes in ISO 8601 with their offset),
multi-value fields as lists, references as ids, and each `lines` field as a list of its
rows. Every format holds only what the actor may read (permission scopes and field
security) and needs the `export` permission. Records are read in keyset pages of
BATCH, so memory stays flat however many there are.
"""
from __future__ import annotations

import csv
import io
import json
import tempfile
from types import SimpleNamespace

import sqlalchemy as sa

from ..i18n import Message, _
from ..records.errors import Forbidden, ValidationError
from ..records.history import jsonable

FORMATS = ("csv", "xlsx", "json")
BATCH = 1000
CHUNK = 1 << 16
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def export(runtime, actor, obj, format: str = "csv", *, where=None, search: str | None = None,
           lang: str | None = None):
    """The export as an iterator of bytes. `where` is a condition (or its JSON form)."""
    service = runtime.records
    obj = service.obj(obj)
    if format not in FORMATS:
        raise ValidationError(errors=[Message(_("unknown export format '{format}' (csv, xlsx or json)"),
                                              format=format)])
    if not service.policy.can(actor, obj, "export"):
        raise Forbidden(_("you may not export {object} records"), object=obj.label)
    lang = lang or runtime.spec.default_language
    if format == "json":
        return _json(runtime, actor, obj, where, search)
    if format == "csv":
        return _csv(runtime, actor, obj, where, search, lang)
    return _xlsx(runtime, actor, obj, where, search, lang)


def write(runtime, actor, obj, format: str, out, **options) -> None:
    """Write the export to a binary stream."""
    for chunk in export(runtime, actor, obj, format, **options):
        out.write(chunk)


def _rows(runtime, actor, obj, where, search, lang):
    from ..web.export import rows   # the list page's rows: one definition of what a sheet shows
    return rows(runtime, actor, obj, where, SimpleNamespace(q=search, sort=["id"]), lang)


def _csv(runtime, actor, obj, where, search, lang):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")            # so Excel reads UTF-8 (Chinese) correctly
    for row in _rows(runtime, actor, obj, where, search, lang):
        writer.writerow(row)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _xlsx(runtime, actor, obj, where, search, lang):
    from openpyxl import Workbook
    workbook = Workbook(write_only=True)   # rows go to a temporary file as they come
    sheet = workbook.create_sheet(obj.name[:31])
    for row in _rows(runtime, actor, obj, where, search, lang):
        sheet.append(row)
    with tempfile.TemporaryFile() as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk


def _json_fields(runtime, actor, obj) -> list:
    readable = runtime.records.policy.readable_fields(actor, obj)
    return [name for name, f in obj.fields.items() if name in readable and name != "deleted_at"]


def _lines(conn, runtime, actor, obj, ids: list) -> dict:
    """{lines field: {parent id: [rows]}} for a page of parents: one query per lines field."""
    out = {}
    service = runtime.records
    for name, f in obj.fields.items():
        if f.type != "lines" or name not in service.policy.readable_fields(actor, obj):
            continue
        child = runtime.spec.objects[f.lines_object]
        table = runtime.schema.table(child)
        rows = [dict(r) for r in conn.execute(sa.select(table).where(table.c[obj.name].in_(ids))
                                              .order_by(table.c[obj.name], table.c.line_no, table.c.id)).mappings()]
        service._attach_multi(conn, child, rows)
        keep = ["id", "line_no"] + [n for n in _json_fields(runtime, actor, child) if n not in ("id", obj.name)]
        grouped: dict = {}
        for r in rows:
            grouped.setdefault(r[obj.name], []).append({k: r.get(k) for k in keep if k in r})
        out[name] = grouped
    return out


def _json(runtime, actor, obj, where, search):
    service = runtime.records
    names = _json_fields(runtime, actor, obj)
    first = True
    after = None
    yield b"["
    while True:
        page = service.query(obj, actor, where=where, search=search, sort=["id"], after=after, limit=BATCH)
        with service.reading() as conn:
            lines = _lines(conn, runtime, actor, obj, [r["id"] for r in page.rows]) if page.rows else {}
        parts = []
        for r in page.rows:
            record = {n: r.get(n) for n in names if obj.fields[n].type != "lines"}
            for name, grouped in lines.items():
                record[name] = grouped.get(r["id"], [])
            parts.append(json.dumps(record, ensure_ascii=False, default=jsonable))
        if parts:
            yield (("\n" if first else ",\n") + ",\n".join(parts)).encode("utf-8")
            first = False
        if not page.has_more:
            break
        after = page.next_cursor
    yield b"\n]\n"
