"""Importing CSV and Excel files into any object, through the record service.

    report = import_file(runtime, actor, "customer", "customers.csv", dry_run=True)
    for p in report.problems:
        print(p.row, p.column, p.text("zh"))

Reading. CSV with the csv module: UTF-8 with or without BOM, UTF-16 with BOM (Excel's
"Unicode text"), and GB18030 (a superset of GBK) only when the file is not UTF-8; the
report says which was used. Comma, semicolon or tab separated, told by the header line.
XLSX with openpyxl in read-only mode, first (active) sheet. Rows stream from the file:
memory does not grow with the number of rows.

Columns. A header cell names a field by its name or its label in any language, ignoring
case, surrounding spaces and a required-mark `*`; `mapping` ({column: field, or "" to
skip}) overrides. Unknown columns are reported and ignored, and so are columns of fields
a file cannot set (computed, kept by the engine, read-only, or closed to the user by
field security), so an exported list imports back.

Cells. An empty cell means "not given": defaults apply to new records, an upsert keeps
the stored value. Dictionary cells by code or by label (any language); several values
separated by , ， ; ； or 、. Lookup cells by the target's title, one of its codes (an
autonumber or a unique text such as a username or a department code), or `#id`: one
query per lookup field per batch; a title several records share is reported as
ambiguous. A leading apostrophe that guards a formula (as exports write) is removed.

Checks. Everything the record service checks (coercion, required, dictionaries, lookups
and their filters, uniqueness against the database, rules, lengths), plus values that
must be unique appearing twice in the file. A dry run sends each batch through the
service's own create and update paths inside a transaction that is rolled back, so it
reports what the import would, writing nothing. Every bad row and cell is reported with
the row number the file shows (the header is row 1 of a CSV) and the column header.

Writing. New records through `bulk_create` (one transaction per batch: numbering,
mnemonics, history and permissions apply); with `upsert=FIELD`, rows whose FIELD matches
a record update it through `update` with the version read (a savepoint per row), rows
that change nothing are counted as skipped. A row with any problem is not written at
all; the other rows are.

Records created by earlier rows of the same file can be referred to by their title (a
subsidiary naming its parent company): a batch is cut before a row that refers to a row
still waiting in it, so the parent is stored first.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import hashlib
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..i18n import Message, _
from ..metadata.problems import suggest
from ..records.coerce import Invalid, coerce
from ..records.errors import Conflict, DuplicateFound, Forbidden, NotFound, RecordError, ValidationError

MAX_BYTES = int(os.environ.get("LOOM_IMPORT_MAX_BYTES") or 50 * 1024 * 1024)
RISKY = ("=", "+", "-", "@", "\t", "\r")          # what exports guard with an apostrophe
SEPARATORS = re.compile(r"[,，;；、]")
TEXTUAL = ("text", "email", "phone", "url", "autonumber", "mnemonic", "textarea")
ENCODING_NAMES = {"utf-8-sig": "UTF-8 (BOM)", "utf-8": "UTF-8", "gb18030": "GB18030", "utf-16": "UTF-16"}
SETTABLE_SYSTEM = ("owner",)


class _RollBack(Exception):
    """Ends a dry run's transaction without committing it."""


class BadFile(RecordError):
    """The file as a whole cannot be imported (empty, no header, too large, unreadable...)."""

    status = 422


# ---- the report -------------------------------------------------------------------------

@dataclass
class Problem:
    row: int | None              # as the file shows it (header = row 1 of a CSV); None: the file
    column: str | None           # the column header (or the field's label when it has no column)
    message: Message
    value: str | None = None     # the cell, shortened

    def text(self, lang=None) -> str:
        return self.message.text(lang)

    def column_text(self, lang=None) -> str:
        return self.column.text(lang) if hasattr(self.column, "text") else (self.column or "")


@dataclass
class ImportReport:
    object: str
    dry_run: bool
    format: str = ""
    encoding: str | None = None         # csv: UTF-8, UTF-8 (BOM), GB18030, UTF-16
    headers: list = field(default_factory=list)   # every column header, in the file's order
    columns: list = field(default_factory=list)   # [(header, field name)] read into records
    unknown: list = field(default_factory=list)   # headers naming no field: ignored
    ignored: list = field(default_factory=list)   # [(header, Message)] fields a file cannot set
    upsert: str | None = None
    key_column: str | None = None       # the header of the upsert field's column
    rows: int = 0                       # data rows read (blank rows not counted)
    created: int = 0                    # in a dry run: would be created
    updated: int = 0
    skipped: int = 0                    # upsert rows that would change nothing
    problems: list = field(default_factory=list)
    error_rows: int = 0                 # rows not written because of problems
    duplicates: int = 0                 # of which rows whose only problem is looking like a record that exists

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self, lang=None, limit: int | None = None) -> dict:
        problems = self.problems if limit is None else self.problems[:limit]
        return {
            "object": self.object, "dry_run": self.dry_run, "format": self.format, "encoding": self.encoding,
            "headers": list(self.headers), "columns": [list(c) for c in self.columns], "unknown": list(self.unknown),
            "ignored": [[h, m.text(lang)] for h, m in self.ignored], "upsert": self.upsert,
            "key_column": self.key_column,
            "rows": self.rows, "created": self.created, "updated": self.updated, "skipped": self.skipped,
            "error_rows": self.error_rows, "duplicates": self.duplicates, "problem_count": len(self.problems),
            "problems": [{"row": p.row, "column": p.column_text(lang), "value": p.value, "message": p.text(lang)}
                         for p in problems],
        }


# ---- reading files --------------------------------------------------------------------------

@dataclass
class Sheet:
    format: str                  # csv | xlsx
    encoding: str | None
    total: int | None            # rows in the file (header included), for progress
    rows: object                 # iterator of (row number, [cells])
    close: object


def _short(value, n: int = 60) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= n else text[:n - 1] + "…"


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{max(1, n // 1024)} KB"


def open_sheet(path, max_bytes: int = MAX_BYTES) -> Sheet:
    """The rows of a CSV or XLSX file (told by its content, not its name)."""
    size = os.path.getsize(path)
    if size == 0:
        raise BadFile(_("the file is empty"))
    if size > max_bytes:
        raise BadFile(_("the file is larger than {limit} (it has {size})"), limit=_size(max_bytes), size=_size(size))
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return _xlsx(path)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise BadFile(_("old Excel files (.xls) cannot be read; save the file as .xlsx or CSV"))
    return _csv(path)


def _encoding(path) -> str:
    """utf-8-sig / utf-16 by their BOM; utf-8 when the whole file decodes; else gb18030."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise BadFile(_("the file is neither UTF-8 nor GB18030 (GBK) text; save it as CSV UTF-8"))


def _delimiter(line: str) -> str:
    """The separator the header line uses most, outside quotes."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in counts:
            counts[c] += 1
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else ","


def _csv(path) -> Sheet:
    encoding = _encoding(path)
    # a cell may be as large as the file (the field's max_length speaks for itself)
    csv.field_size_limit(max(csv.field_size_limit(), MAX_BYTES, os.path.getsize(path)))
    with open(path, encoding=encoding, newline="") as f:
        first = ""
        for line in f:
            if line.strip():
                first = line
                break
    delimiter = _delimiter(first)
    total = 0
    with open(path, encoding=encoding, newline="") as f:
        try:
            for total, _cells in enumerate(csv.reader(f, delimiter=delimiter), start=1):
                pass
        except csv.Error as e:
            raise BadFile(_("the file is not valid CSV near row {row}: {error}"), row=total + 1, error=str(e)) from None
    handle = open(path, encoding=encoding, newline="")

    def rows():
        try:
            yield from enumerate(csv.reader(handle, delimiter=delimiter), start=1)
        except csv.Error as e:   # pragma: no cover - found by the counting pass above
            raise BadFile(_("the file is not valid CSV: {error}"), error=str(e)) from None
    return Sheet("csv", encoding, total, rows(), handle.close)


def _xlsx(path) -> Sheet:
    from openpyxl import load_workbook
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise BadFile(_("the file is not a readable Excel workbook: {error}"), error=str(e)[:200]) from None
    sheet = workbook.active or (workbook.worksheets[0] if workbook.worksheets else None)
    if sheet is None:
        workbook.close()
        raise BadFile(_("the file is empty"))
    start = sheet.min_row or 1

    def rows():
        for n, cells in enumerate(sheet.iter_rows(values_only=True), start=start):
            yield n, list(cells)
    return Sheet("xlsx", None, sheet.max_row, rows(), workbook.close)


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def normalize(text) -> str:
    """A header or label for matching: width-folded, case-folded, trimmed, without a * mark."""
    s = unicodedata.normalize("NFKC", str(text)).replace("\ufeff", "").strip().strip("*").strip()
    return " ".join(s.casefold().split())


_LOCAL_DATETIME = re.compile(r"^\s*(\d{4})[/.年-](\d{1,2})[/.月-](\d{1,2})日?(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$")


def _datetime_text(value: str) -> str:
    """2024/1/2 9:05 (how spreadsheets write local date-times) as ISO 8601."""
    m = _LOCAL_DATETIME.match(value)
    if not m:
        return value
    y, mo, d, h, mi, sec = m.groups()
    return f"{y}-{int(mo):02d}-{int(d):02d} {int(h or 0):02d}:{int(mi or 0):02d}:{int(sec or 0):02d}"


def _cell(value):
    """A cell as the service should see it (None when empty)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        if len(value) > 1 and value[0] == "'" and value[1] in RISKY:
            return value[1:]
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    return value


# ---- the importer ---------------------------------------------------------------------------

@dataclass
class _Row:
    number: int
    values: dict = field(default_factory=dict)      # field -> value for the service
    cells: dict = field(default_factory=dict)       # field -> the cell as written (for the report)
    refs: dict = field(default_factory=dict)        # lookup field -> text to resolve
    problems: list = field(default_factory=list)
    bad: set = field(default_factory=set)           # fields with a problem found here
    key: object = None                              # the upsert key's value
    existing: dict | None = None                    # the record an upsert row updates
    duplicate: bool = False                         # a warning duplicate rule matched


class Importer:
    def __init__(self, runtime, actor, obj, *, mapping: dict | None = None, upsert: str | None = None,
                 batch_size: int = 500, dry_run: bool = False, progress=None, max_bytes: int = MAX_BYTES,
                 allow_duplicates: bool = False):
        self.runtime = runtime
        self.service = runtime.records
        self.policy = self.service.policy
        self.spec = runtime.spec
        self.obj = self.service.obj(obj)
        self.actor = actor
        self.mapping = dict(mapping or {})
        self.upsert = upsert
        self.batch_size = max(1, int(batch_size))
        self.dry_run = dry_run
        self.progress = progress
        self.max_bytes = max_bytes
        self.allow_duplicates = allow_duplicates
        self.tz = ZoneInfo(self.spec.timezone)
        self.table = runtime.schema.table(self.obj)
        self.report = ImportReport(self.obj.name, dry_run, upsert=upsert)
        self.seen: dict = {}            # dry run: field -> {hash of value: row}, uniqueness within the file
        self.titles: set = set()        # dry run: titles of rows that would be created (self-references)
        self._dictionaries: dict = {}

    # ---- columns ----------------------------------------------------------------------

    def _field_index(self) -> dict:
        readable = self.policy.readable_fields(self.actor, self.obj)
        index: dict = {}
        fields = [f for f in self.obj.fields.values() if f.name in readable]
        for f in fields:
            index.setdefault(normalize(f.name), f)
        for f in fields:
            for _lang, text in f.label.texts:
                index.setdefault(normalize(text), f)
        return index

    def _columns(self, header: list) -> list:
        """[(position, header, field)] of the columns read into records; fills the report."""
        obj, report = self.obj, self.report
        index = self._field_index()
        updatable = self.policy.updatable_fields(self.actor, self.obj)
        headers = {normalize(h): i for i, h in enumerate(header) if not _blank(h)}
        override = {}
        for column, name in self.mapping.items():
            if normalize(column) not in headers:
                raise BadFile(_("the mapping names column '{column}', which the file does not have"), column=column)
            if name and name not in obj.fields:
                raise BadFile(_("the mapping names field '{field}', which {object} does not have{hint}"),
                              field=name, object=obj.label, hint=suggest(name, obj.fields, list_all=False))
            override[headers[normalize(column)]] = obj.fields[name] if name else None
        key = None
        if self.upsert:
            key = obj.fields.get(self.upsert)
            if key is None:
                raise BadFile(_("there is no field '{field}' to match records by{hint}"),
                              field=self.upsert, hint=suggest(self.upsert, obj.fields, list_all=False))
            if not (key.unique or key.type == "autonumber" or key.name == "id") or not key.stored:
                raise BadFile(_("{field} cannot be used to match records: its values are not unique"), field=key.label)
        columns, taken, matched = [], {}, 0
        for i, raw in enumerate(header):
            if _blank(raw):
                continue
            text = str(raw).strip()
            report.headers.append(text)
            f = override[i] if i in override else index.get(normalize(raw))
            if i in override and f is None:
                continue                       # skipped on purpose
            if f is None or f.name not in self.policy.readable_fields(self.actor, obj):
                report.unknown.append(text)
                continue
            matched += 1
            if f.name in taken:
                raise BadFile(_("columns '{first}' and '{second}' both give {field}"), first=taken[f.name],
                              second=text, field=f.label)
            taken[f.name] = text
            if key is not None and f.name == key.name:
                self.key_column = (i, text, f)
                report.key_column = text
                if f.computed or f.system:
                    continue                   # matches records; not a value to set
            if f.type in ("lines", "file"):
                report.ignored.append((text, Message(_("{field} cannot be imported from a file"), field=f.label)))
            elif f.computed or (f.system and f.name not in SETTABLE_SYSTEM):
                report.ignored.append((text, Message(_("{field} is filled in by Loom"), field=f.label)))
            elif f.readonly:
                report.ignored.append((text, Message(_("{field} is read-only"), field=f.label)))
            elif f.name not in updatable:
                report.ignored.append((text, Message(_("you may not set {field}"), field=f.label)))
            else:
                columns.append((i, text, f))
        if not matched:
            cells = ", ".join(str(h).strip() for h in header if not _blank(h))[:200]
            raise BadFile(_("the first row should name the columns (field names or labels); none of its cells "
                            "does: {cells}"), cells=cells)
        if key is not None and key.name not in taken:
            raise BadFile(_("the file has no column for {field}, which matches the records to update"), field=key.label)
        if key is None:
            given = {f.name for _i, _h, f in columns}
            for f in obj.fields.values():
                if f.required and f.show_if is None and not f.system and not f.computed and f.default is None \
                        and f.name not in given and f.type != "lines":
                    raise BadFile(_("the file has no column for {field}, which is required"), field=f.label)
        report.columns = [(h, f.name) for _i, h, f in columns]
        self.unique = [(h, f) for _i, h, f in columns if f.unique and f.stored]
        self.self_refs = [f for _i, _h, f in columns if f.is_reference and f.target == obj.name]
        title = obj.fields.get(obj.title)
        self.title_column = next((i for i, _h, f in columns if title is not None and f.name == title.name), None)
        return columns

    # ---- cells ----------------------------------------------------------------------------

    def _dictionary_index(self, f) -> dict:
        """normalized code or label -> code (None when several items share the label)."""
        if f.dictionary not in self._dictionaries:
            items = self.spec.dictionaries[f.dictionary].items
            index: dict = {}
            for code in items:
                index[code] = code
                index.setdefault(normalize(code), code)
            labels: dict = {}
            for code, item in items.items():
                for _lang, text in item.label.texts:
                    labels.setdefault(normalize(text), set()).add(code)
            for key, codes in labels.items():
                if key not in index:
                    index[key] = next(iter(codes)) if len(codes) == 1 else None
            self._dictionaries[f.dictionary] = index
        return self._dictionaries[f.dictionary]

    def _dictionary(self, row: _Row, header, f, value):
        index = self._dictionary_index(f)
        parts = [p.strip() for p in SEPARATORS.split(value)] if f.multiple and isinstance(value, str) else [value]
        codes = []
        for part in parts:
            if _blank(part):
                continue
            text = str(part).strip()
            key = text if text in index else normalize(text)
            if key in index and index[key] is None:
                dictionary = self.spec.dictionaries[f.dictionary]
                self._problem(row, header, f, Message(_("'{value}' is the label of several items of {dictionary}; "
                                                        "give the code"), value=_short(text, 40),
                                                      dictionary=dictionary.label), text)
                return None
            codes.append(index.get(key, text))     # unknown: the service says it is not an item
        return codes if f.multiple else (codes[0] if codes else None)

    def _problem(self, row: _Row, header, f, message: Message, value=None):
        row.problems.append(Problem(row.number, header, message, _short(value)))
        if f is not None:
            row.bad.add(f.name)

    def _row(self, number, cells, columns) -> _Row:
        row = _Row(number)
        for i, header, f in columns:
            value = _cell(cells[i]) if i < len(cells) else None
            if value is None:
                continue
            row.cells[f.name] = value
            if f.is_reference:
                row.refs[f.name] = str(value).strip()
            elif f.type == "dictionary":
                code = self._dictionary(row, header, f, value)
                if code is not None:
                    row.values[f.name] = code
            elif f.value_type == "datetime" and isinstance(value, str):
                row.values[f.name] = _datetime_text(value)
            else:
                row.values[f.name] = value
        if self.upsert:
            i, _header, f = self.key_column
            value = _cell(cells[i]) if i < len(cells) else None
            if value is not None:
                text = str(value).strip()
                row.key = text.lstrip("#") if f.name == "id" else text
        return row

    # ---- lookups, one query per field per batch -----------------------------------------

    def _resolve(self, conn, rows: list, headers: dict):
        for name in {n for r in rows for n in r.refs}:
            f = self.obj.fields[name]
            texts = {r.refs[name] for r in rows if name in r.refs}
            found = self._find(conn, f, texts)
            target = self.spec.objects[f.target]
            for r in rows:
                text = r.refs.get(name)
                if text is None:
                    continue
                ids = found.get(text, ())
                if len(ids) == 1:
                    r.values[name] = next(iter(ids))
                elif self.dry_run and f.target == self.obj.name and text in self.titles:
                    pass                       # a record an earlier row of the file would create
                elif not ids:
                    self._problem(r, headers[name], f, Message(_("no {object} '{value}' (give its title, code or #id)"),
                                                               object=target.label, value=_short(text, 40)), text)
                else:
                    self._problem(r, headers[name], f, Message(_("'{value}' matches {n} {object} records; give the "
                                                                 "code or #id"), value=_short(text, 40), n=len(ids),
                                                               object=target.label), text)

    def _find(self, conn, f, texts: set) -> dict:
        """{text: {ids}}: by #id, else by a code of the target, else by its title."""
        target = self.spec.objects[f.target]
        table = self.runtime.schema.table(target)
        out: dict = {}
        rest = set()
        for text in texts:
            if re.fullmatch(r"#\d{1,10}", text):
                out[text] = {int(text[1:])}    # existence and rights: the service checks
            else:
                rest.add(text)
        if not rest:
            return out
        codes = [c.name for c in target.fields.values() if c.stored and c.name != target.title and
                 (c.type == "autonumber" or (c.unique and c.value_type in TEXTUAL))]
        title = target.fields.get(target.title)
        titled = title is not None and title.stored and title.value_type in TEXTUAL
        names = codes + ([title.name] if titled else [])
        if not names:
            return out
        by_code: dict = {}
        by_title: dict = {}
        values = sorted(rest)
        for start in range(0, len(values), 500):
            part = values[start:start + 500]
            q = sa.select(table.c.id, *[table.c[n] for n in names]).where(
                table.c.deleted_at.is_(None), sa.or_(*[table.c[n].in_(part) for n in names]),
                self.policy.filter(conn, self.actor, target, table))
            for row in conn.execute(q):
                for n, value in zip(names, row[1:]):
                    if value in rest:
                        (by_title if titled and n == title.name else by_code).setdefault(value, set()).add(row[0])
        for text in rest:
            ids = by_code.get(text) or by_title.get(text)
            if ids:
                out[text] = ids
        return out

    # ---- uniqueness within the file (dry run: earlier batches were rolled back) ----------

    def _digest(self, value) -> bytes:
        return hashlib.blake2b(str(value).strip().encode(), digest_size=8).digest()

    def _within_file(self, rows: list, columns: list):
        """Values earlier batches would have stored (within a batch the service compares)."""
        for header, f in self.unique:
            seen = self.seen.setdefault(f.name, {})
            for r in rows:
                value = r.values.get(f.name)
                if value is not None and f.name not in r.bad and self._digest(value) in seen:
                    self._problem(r, header, f, Message(_("'{value}' appears more than once in the file (first in "
                                                          "row {row})"), value=_short(value, 40),
                                                        row=seen[self._digest(value)]), value)

    def _remember(self, r: _Row):
        """A dry run: what a row that would be stored takes (values that must be unique, its title)."""
        for _header, f in self.unique:
            value = r.values.get(f.name)
            if value is not None:
                self.seen.setdefault(f.name, {}).setdefault(self._digest(value), r.number)
        if self.self_refs and self.title_column is not None:
            title = r.values.get(self.obj.title)
            if title is not None:
                self.titles.add(str(title).strip())

    # ---- upsert: which rows update which record ------------------------------------------

    def _match(self, conn, rows: list):
        i, header, key = self.key_column
        wanted: dict = {}
        for r in rows:
            if r.key is None:
                continue
            try:
                value = coerce(key, r.key, self.tz) if key.name != "id" else int(r.key)
            except (Invalid, ValueError):
                self._problem(r, header, key, Message(_("'{value}' is not a valid {field}"),
                                                      value=_short(r.key, 40), field=key.label), r.key)
                continue
            if value in wanted:
                self._problem(r, header, key, Message(_("'{value}' appears more than once in the file (first in "
                                                        "row {row})"), value=_short(value, 40),
                                                      row=wanted[value][0].number), r.key)
                continue
            wanted.setdefault(value, []).append(r)
        if not wanted:
            return
        column = self.table.c[key.name]
        found: dict = {}
        for record in conn.execute(sa.select(self.table).where(column.in_(list(wanted)),
                                                               self.table.c.deleted_at.is_(None))).mappings():
            found.setdefault(record[key.name], []).append(dict(record))
        records = [rec for recs in found.values() for rec in recs]
        self.service._attach_multi(conn, self.obj, records)
        for value, matched in wanted.items():
            r = matched[0]
            existing = found.get(value, [])
            if len(existing) > 1:
                self._problem(r, header, key, Message(_("{n} records have {field} '{value}'"), n=len(existing),
                                                      field=key.label, value=_short(value, 40)), r.key)
            elif existing:
                r.existing = existing[0]
            elif key.computed or key.system:
                self._problem(r, header, key, Message(_("no {object} has {field} '{value}'"), object=self.obj.label,
                                                      field=key.label, value=_short(value, 40)), r.key)

    def _unchanged(self, r: _Row) -> bool:
        for name, value in r.values.items():
            f = self.obj.fields[name]
            try:
                typed = coerce(f, value, self.tz)
            except Invalid:
                return False
            current = r.existing.get(name)
            if f.type == "dictionary" and f.multiple:
                if sorted(typed or []) != sorted(current or []):
                    return False
            elif typed != current:
                return False
        return True

    # ---- the service's verdict -------------------------------------------------------------

    @contextlib.contextmanager
    def _rolled_back(self):
        """A write transaction of the service that is always rolled back (what a dry run
        writes vanishes, numbers taken included)."""
        try:
            with self.service.transaction() as conn:
                yield conn
                raise _RollBack
        except _RollBack:
            pass

    def _creates(self, conn, rows: list) -> list:
        """The service's errors for creating the rows (in conn, which the caller rolls back)."""
        values = [self._values(r) for r in rows]
        try:
            with conn.begin_nested():
                result = self.service._insert_batch(conn, self.obj, values, self.actor,
                                                    allow_duplicates=self.allow_duplicates)
            errors = dict(result.errors)
        except IntegrityError:             # a race with another writer: row by row
            errors = {}
            for n, v in enumerate(values):
                try:
                    with conn.begin_nested():
                        one = self.service._insert_batch(conn, self.obj, [v], self.actor,
                                                         allow_duplicates=self.allow_duplicates)
                    if one.errors:
                        errors[n] = one.errors[0][1]
                except IntegrityError as e:
                    errors[n] = self.service._integrity_error(self.obj, e)
        except Forbidden as e:
            errors = {n: e for n in range(len(rows))}
        return [errors.get(n) for n in range(len(rows))]

    def _updates(self, conn, rows: list) -> list:
        """Update each row's record, a savepoint each; [error or None]."""
        out = []
        for r in rows:
            try:
                with conn.begin_nested():
                    self.service.update(self.obj, r.existing["id"], self._values(r), self.actor,
                                        version=r.existing["version"], conn=conn,
                                        allow_duplicates=self.allow_duplicates)
                out.append(None)
            except (ValidationError, Conflict) as e:
                out.append(e)
            except (NotFound, Forbidden):
                i, header, key = self.key_column
                out.append(Forbidden(_("you may not change the {object} with {field} '{value}'"),
                                     object=self.obj.label, field=key.label, value=_short(r.key, 40)))
        return out

    def _values(self, r: _Row) -> dict:
        return {k: v for k, v in r.values.items() if k not in r.bad}

    def _add_errors(self, r: _Row, error, headers: dict):
        if error is None:
            return
        if isinstance(error, DuplicateFound):
            r.duplicate = True
        if isinstance(error, ValidationError):
            for name, messages in error.fields.items():
                if name in r.bad:
                    continue   # already explained (the value was left out to check the rest)
                f = self.obj.fields.get(name)
                header = headers.get(name) or (f.label if f is not None else name)
                for m in messages:
                    r.problems.append(Problem(r.number, header, m, _short(r.cells.get(name))))
            for m in error.errors:
                r.problems.append(Problem(r.number, None, m))
        else:
            r.problems.append(Problem(r.number, None, error.msg))

    # ---- a batch ---------------------------------------------------------------------------

    def _batch(self, rows: list, columns: list):
        headers = {f.name: h for _i, h, f in columns}
        if self.upsert:
            headers.setdefault(self.key_column[2].name, self.key_column[1])
        with self.service.reading() as conn:
            self._resolve(conn, rows, headers)
            if self.upsert:
                self._match(conn, rows)
        if self.dry_run:
            self._within_file(rows, columns)
        can_create = self.policy.can(self.actor, self.obj, "create")
        creates, updates, later = [], [], []
        for r in rows:
            if r.existing is not None and self._unchanged(r) and not r.problems:
                self.report.skipped += 1
            elif r.problems and r.existing is None and r.key is not None and self.upsert and \
                    (self.key_column[2].computed or self.key_column[2].system):
                continue                       # an unknown key: nothing more to say
            elif r.existing is None and not can_create:
                r.problems.append(Problem(r.number, None, Message(_("you may not create {object} records"),
                                                                  object=self.obj.label)))
            elif r.problems:
                later.append(r)                # checked for its other cells; never written
            elif r.existing is not None:
                updates.append(r)
            else:
                creates.append(r)
        if self.dry_run:
            with self._rolled_back() as conn:
                for r, error in zip(creates, self._creates(conn, creates) if creates else []):
                    self._add_errors(r, error, headers)
                for r, error in zip(updates, self._updates(conn, updates)):
                    self._add_errors(r, error, headers)
                self._check_later(conn, later, headers)
        else:
            if creates:
                result = self.service.bulk_create(self.obj, [self._values(r) for r in creates], self.actor,
                                                  batch_size=len(creates), allow_duplicates=self.allow_duplicates)
                for n, error in result.errors:
                    self._add_errors(creates[n], error, headers)
            if updates:
                with self.service.transaction() as conn:
                    for r, error in zip(updates, self._updates(conn, updates)):
                        self._add_errors(r, error, headers)
            if later:
                with self._rolled_back() as conn:
                    self._check_later(conn, later, headers)
        created, updated = {id(r) for r in creates}, {id(r) for r in updates}
        for r in rows:
            if r.problems:
                self.report.problems.extend(r.problems)
                self.report.error_rows += 1
                if r.duplicate and not r.bad:
                    self.report.duplicates += 1
            elif id(r) in created:
                self.report.created += 1
                if self.dry_run:
                    self._remember(r)
            elif id(r) in updated:
                self.report.updated += 1

    def _check_later(self, conn, rows: list, headers: dict):
        """The service's word on the other cells of rows that already have a problem."""
        new = [r for r in rows if r.existing is None]
        old = [r for r in rows if r.existing is not None]
        for r, error in zip(new, self._creates(conn, new) if new else []):
            self._add_errors(r, error, headers)
        for r, error in zip(old, self._updates(conn, old)):
            self._add_errors(r, error, headers)

    # ---- the whole file --------------------------------------------------------------------

    def run(self, path) -> ImportReport:
        if not self.upsert and not self.policy.can(self.actor, self.obj, "create"):
            raise Forbidden(_("you may not create {object} records"), object=self.obj.label)
        sheet = open_sheet(path, self.max_bytes)
        report = self.report
        report.format, report.encoding = sheet.format, ENCODING_NAMES.get(sheet.encoding, sheet.encoding)
        try:
            rows = iter(sheet.rows)
            header = None
            for number, cells in rows:
                if not all(_blank(c) for c in cells):
                    header, header_row = cells, number
                    break
            if header is None:
                raise BadFile(_("the file is empty"))
            columns = self._columns(header)
            total = max(0, (sheet.total or 0) - header_row)
            batch, waiting = [], set()
            done = 0
            for number, cells in rows:
                done = number - header_row
                if all(_blank(c) for c in cells):
                    continue
                report.rows += 1
                row = self._row(number, cells, columns)
                if self.self_refs and any(row.refs.get(f.name) in waiting for f in self.self_refs):
                    self._batch(batch, columns)            # store the row it refers to first
                    batch, waiting = [], set()
                batch.append(row)
                if self.self_refs and self.title_column is not None and self.obj.title in row.values:
                    waiting.add(str(row.values[self.obj.title]).strip())
                if len(batch) >= self.batch_size:
                    self._batch(batch, columns)
                    batch, waiting = [], set()
                    if self.progress:
                        self.progress(done, max(total, done))
            if not report.rows:
                raise BadFile(_("there are no rows below the header"))
            if batch:
                self._batch(batch, columns)
            if self.progress:
                self.progress(max(total, done), max(total, done))
        finally:
            sheet.close()
        return report


def import_file(runtime, actor, obj, path, *, mapping=None, upsert=None, batch_size=500, dry_run=False,
                progress=None, max_bytes=MAX_BYTES, allow_duplicates=False) -> ImportReport:
    """Import a CSV or XLSX file into `obj` as `actor`. Raises BadFile when the file as a
    whole cannot be imported, Forbidden when the actor may not create records of `obj`;
    row problems are in the report. Rows that a warning duplicate rule (查重) finds like an
    existing record are reported, and imported only with allow_duplicates."""
    return Importer(runtime, actor, obj, mapping=mapping, upsert=upsert, batch_size=batch_size, dry_run=dry_run,
                    progress=progress, max_bytes=max_bytes, allow_duplicates=allow_duplicates).run(path)


def template(runtime, actor, obj, lang=None) -> list:
    """Headers of the columns a file for `obj` may have (what `actor` may set), in `lang`."""
    obj = runtime.records.obj(obj)
    updatable = runtime.records.policy.updatable_fields(actor, obj)
    return [f.label.text(lang) for f in obj.fields.values()
            if f.name in updatable and not f.computed and not f.readonly and f.type not in ("lines", "file")
            and (not f.system or f.name in SETTABLE_SYSTEM)]
