"""Exporting the current list view: CSV (streamed) and XLSX.

Rows are read in keyset batches through the record service (same permission filter as
the page), so memory stays flat however many rows match. Cells that a spreadsheet would
run as a formula (= + - @ at the start) are prefixed with an apostrophe.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import tempfile
from zoneinfo import ZoneInfo

from flask import Response, send_file

from . import formatting

BATCH = 1000
RISKY = ("=", "+", "-", "@", "\t", "\r")


def export_fields(runtime, actor, obj):
    """The fields an export carries: the readable ones (field security applies)."""
    readable = runtime.records.policy.readable_fields(actor, obj)
    return [f for f in obj.fields.values() if f.type not in ("lines", "file") and f.name in readable
            and f.name not in ("deleted_at", "version") and not f.hidden]


def rows(runtime, actor, obj, where, state, lang):
    """Header, then each row as texts, batch by batch."""
    fields = export_fields(runtime, actor, obj)
    tz = ZoneInfo(runtime.spec.timezone)
    yield [f.label.text(lang) for f in fields]
    after = None
    while True:
        page = runtime.records.query(obj, actor, where=where, search=state.q, sort=state.sort or None,
                                     after=after, limit=BATCH)
        refs = formatting.collect_refs(runtime, actor, obj.name, page.rows, [f.name for f in fields])
        for r in page.rows:
            out = []
            for f in fields:
                value = r.get(f.name)
                if f.is_reference and value is not None:
                    text = refs.get((f.target, value), f"#{value}")
                else:
                    text = formatting.plain(value, runtime.spec, f, lang, tz)
                out.append("'" + text if isinstance(text, str) and text.startswith(RISKY) else text)
            yield out
        if not page.has_more:
            return
        after = page.next_cursor


def response(runtime, actor, obj, where, state, fmt, lang):
    stamp = dt.datetime.now(ZoneInfo(runtime.spec.timezone)).strftime("%Y%m%d-%H%M")
    name = f"{obj.name}-{stamp}.{fmt}"
    if fmt == "csv":
        # the header and the first row are read before the download starts, so a query the
        # service refuses (a sort on a field one may not read) is an error page, not a broken file
        table = rows(runtime, actor, obj, where, state, lang)
        first = list(itertools.islice(table, 2))

        def generate():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            yield "\ufeff"  # so Excel reads UTF-8 (Chinese) correctly
            for row in itertools.chain(first, table):
                writer.writerow(row)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        return Response(generate(), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename={name}"})
    from openpyxl import Workbook
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(obj.name[:31])
    for row in rows(runtime, actor, obj, where, state, lang):
        sheet.append(row)
    spool = tempfile.SpooledTemporaryFile(max_size=20 * 1024 * 1024)
    workbook.save(spool)
    spool.seek(0)
    return send_file(spool, as_attachment=True, download_name=name,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
