"""The record service: the one way records change.

Pages, the API, the CLI, importers and automations call it with the acting user; it
checks permissions, coerces and validates (every problem at once), applies defaults,
assigns numbers, computes mnemonics, formulas, quick-search columns and rollups, saves
lines with their parent, and writes the history — all in one transaction. A failed write
changes nothing.

Single writes and bulk writes share one path (`_insert_batch`): a create is a batch of
one, so every rule has exactly one implementation.
"""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..compiler.conditions import Context
from ..i18n import Message, _
from ..metadata.spec import FieldSpec, ObjectSpec, Var
from ..security.actor import Actor
from ..security.policy import Policy
from ..storage.database import fold, write_transaction
from . import computed, duplicates, history, numbering
from .coerce import Invalid, check_range, coerce, is_empty
from .errors import Conflict, DuplicateFound, Forbidden, NotFound, Restricted, ValidationError
from .fairness import writer_lock

UTC = dt.timezone.utc
SETTABLE_SYSTEM = {"owner"}
NOT_NULL = frozenset({"id", "created_at", "updated_at", "version"})   # every object table has them, never NULL


@dataclass
class Page:
    rows: list
    has_more: bool = False
    next_cursor: str | None = None


@dataclass
class BulkResult:
    created: list = field(default_factory=list)      # ids, in input order of the rows that succeeded
    updated: list = field(default_factory=list)
    errors: list = field(default_factory=list)       # (row index, ValidationError)
    records: list = field(default_factory=list)      # a single create: the row as stored


def valid_id(value) -> bool:
    """A record id the databases can hold (a URL can carry any number)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 63


def public(row) -> dict:
    """A record as callers see it: without the engine's search and duplicate-key columns."""
    return {k: v for k, v in row.items() if k not in ("search_text", "search_tokens") and not k.startswith("dup_")}


def encode_cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps([history.jsonable(v) for v in values]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> list:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise ValidationError(errors=[Message(_("the page cursor is not valid"))]) from None
    if not isinstance(data, list):
        raise ValidationError(errors=[Message(_("the page cursor is not valid"))])
    return data


class RecordService:
    def __init__(self, runtime):
        self.runtime = runtime
        self.spec = runtime.spec
        self.schema = runtime.schema
        self.conditions = runtime.conditions
        self.policy = Policy(runtime)
        self.timezone = ZoneInfo(self.spec.timezone)
        self._writers = writer_lock(runtime.engine)
        self._statements: dict = {}       # table name -> a statement built once
        self.history_table = self.schema.system["history"]
        self.counter_table = self.schema.system["counter"]
        # (child object) -> [(parent object, rollup field)]
        self.rollups_by_child: dict = {}
        # (target object) -> [(referring object, field)]
        self.references: dict = {}
        for obj in self.spec.objects.values():
            for f in obj.fields.values():
                if f.type == "rollup":
                    self.rollups_by_child.setdefault(f.rollup.child, []).append((obj, f))
                if f.is_reference and not f.system and f.name != obj.child_of:
                    self.references.setdefault(f.target, []).append((obj, f))
        self._formulas = {name: computed.formula_order(obj) for name, obj in self.spec.objects.items()}
        # Who hears about writes (automations): listener(conn, obj, event, before, after, actor),
        # called inside the writing transaction, so what a listener does commits or rolls back with it.
        self.listeners: list = []

    # ---- plumbing ------------------------------------------------------------------------

    def obj(self, name) -> ObjectSpec:
        if isinstance(name, ObjectSpec):
            return name
        try:
            return self.spec.object(name)
        except KeyError as e:
            raise NotFound(str(e).strip("'\"")) from None

    @contextlib.contextmanager
    def transaction(self, conn=None):
        """Join the caller's transaction, or open a write transaction of our own (on SQLite
        after the writers queued before it: see fairness.py)."""
        if conn is not None:
            yield conn
            return
        turn = self._writers.turn() if self._writers else contextlib.nullcontext()
        with turn, write_transaction(self.runtime.engine) as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self, conn=None):
        if conn is not None:
            yield conn
            return
        with self.runtime.engine.connect() as conn:
            yield conn

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def context(self, actor: Actor, conn) -> Context:
        cache: dict = {}

        def fetch(obj_name, id_):
            key = (obj_name, id_)
            if key not in cache:
                table = self.schema.table(obj_name)
                row = conn.execute(sa.select(table).where(table.c.id == id_)).mappings().first()
                record = dict(row) if row else None
                if record is not None:  # with its multi-value lists, as conditions expect
                    self._attach_multi(conn, self.spec.objects[obj_name], [record])
                cache[key] = record
            return cache[key]
        return Context(user_id=actor.id, department_id=actor.department_id, now=self.now(),
                       timezone=self.timezone, fetch=fetch)

    # ---- reading -----------------------------------------------------------------------

    def _row(self, conn, obj: ObjectSpec, id_, *, lock=False) -> dict | None:
        table = self.schema.table(obj)
        q = sa.select(table).where(table.c.id == id_)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        if row is None:
            return None
        record = public(row)
        self._attach_multi(conn, obj, [record])
        return record

    def _attach_multi(self, conn, obj: ObjectSpec, records: list) -> None:
        ids = [r["id"] for r in records]
        for f in obj.fields.values():
            if f.type == "dictionary" and f.multiple:
                side = self.schema.multi[(obj.name, f.name)]
                held: dict = {i: [] for i in ids}
                if ids:
                    for rid, code in conn.execute(sa.select(side.c.record_id, side.c.code)
                                                  .where(side.c.record_id.in_(ids)).order_by(side.c.code)):
                        held[rid].append(code)
                for r in records:
                    r[f.name] = held.get(r["id"], [])

    def lines(self, conn, obj: ObjectSpec, record_id) -> dict:
        """{lines field: [child rows in order]} of one record."""
        out = {}
        for f in obj.fields.values():
            if f.type == "lines":
                child = self.spec.objects[f.lines_object]
                table = self.schema.table(child)
                rows = [public(r) for r in conn.execute(
                    sa.select(table).where(table.c[obj.name] == record_id, table.c.deleted_at.is_(None))
                    .order_by(table.c.line_no, table.c.id)).mappings()]
                self._attach_multi(conn, child, rows)
                out[f.name] = rows
        return out

    def get(self, obj, id_, actor: Actor, *, conn=None, deleted: bool = False, with_lines: bool = True) -> dict:
        """One record the actor may read; NotFound otherwise (no hint whether it exists)."""
        obj = self.obj(obj)
        with self.reading(conn) as conn:
            record = self._readable(conn, obj, id_, actor, deleted=deleted)
            if with_lines:
                record.update(self.lines(conn, obj, record["id"]))
            return self.visible(actor, obj, record)

    def visible(self, actor: Actor, obj: ObjectSpec, record: dict) -> dict:
        """The record without the fields the actor may not read (field security)."""
        if actor.superuser or not obj.field_permissions:
            return record
        readable = self.policy.readable_fields(actor, obj)
        return {k: v for k, v in record.items() if k in readable or k not in obj.fields}

    def _readable(self, conn, obj, id_, actor, *, deleted=False, lock=False):
        record = self._row(conn, obj, id_, lock=lock) if valid_id(id_) else None
        if record is None or (record.get("deleted_at") is not None) != deleted:
            raise NotFound(_("{object} #{id} does not exist or you may not see it"), object=obj.label, id=id_)
        if not self._allowed(conn, actor, obj, "read", record):
            raise NotFound(_("{object} #{id} does not exist or you may not see it"), object=obj.label, id=id_)
        return record

    def _allowed(self, conn, actor, obj, action, record) -> bool:
        if obj.child_of:
            parent = self.spec.objects[obj.child_of]
            parent_row = self._row(conn, parent, record.get(obj.child_of))
            return parent_row is not None and self._allowed(conn, actor, parent, action, parent_row)
        return self.policy.allows(conn, actor, obj, action, record, self.context(actor, conn).fetch)

    def search_clause(self, obj: ObjectSpec, table, term: str, conn=None, actor: Actor | None = None):
        """Rows whose quick-search fields contain `term` (see records/search.py for indexes)."""
        from .search import search_clause
        hidden = set(obj.search.quick) - self.policy.readable_fields(actor, obj) if actor is not None else set()
        return search_clause(self, obj, table, term, conn, hidden=hidden)

    def _sort(self, obj: ObjectSpec, sort):
        keys = list(sort or obj.list.sort)
        normalized = []
        for key in keys:
            name, desc = (key.lstrip("-"), key.startswith("-")) if isinstance(key, str) else key
            f = obj.fields.get(name)
            if f is None or not f.stored or f.type in ("textarea", "lines", "file"):
                raise ValidationError(errors=[Message(_("cannot sort on '{field}'"), field=name)])
            normalized.append((name, desc))
        if not any(n == "id" for n, _d in normalized):
            normalized.append(("id", normalized[-1][1] if normalized else True))
        return normalized

    def select(self, conn, obj, actor: Actor, *, where=None, search: str | None = None,
               deleted: bool = False, table=None):
        """The filtered statement over the object's table (no order, no limit)."""
        obj = self.obj(obj)
        table = table if table is not None else self.schema.table(obj)
        q = sa.select(table).where(table.c.deleted_at.is_not(None) if deleted else table.c.deleted_at.is_(None))
        q = q.where(self.policy.filter(conn, actor, obj, table))
        if isinstance(where, dict):  # as written in YAML or JSON: checked like metadata
            from .conditions_input import parse_condition
            where = parse_condition(self.spec, obj.name, where)
        if where is not None:
            q = q.where(self.conditions.sql(obj, where, self.context(actor, conn)))
        if search and search.strip():
            q = q.where(self.search_clause(obj, table, search.strip(), conn, actor))
        return q

    def query(self, obj, actor: Actor, *, where=None, search: str | None = None, sort=None,
              limit: int = 50, after: str | None = None, offset: int = 0, deleted: bool = False,
              conn=None) -> Page:
        """A page of readable records: conditions, quick search, sort, keyset or offset paging."""
        obj = self.obj(obj)
        limit = max(1, min(int(limit), 1000))
        table = self.schema.table(obj)
        keys = self._sort(obj, sort)
        hidden = [n for n, _d in keys if n not in self.policy.readable_fields(actor, obj)]
        if hidden:  # sorting on a field one may not read would reveal its values
            raise ValidationError(errors=[Message(_("cannot sort on '{field}'"), field=hidden[0])])
        with self.reading(conn) as conn:
            q = self.select(conn, obj, actor, where=where, search=search, deleted=deleted)
            if after:
                q = q.where(self._after(obj, table, keys, decode_cursor(after)))
            # NULLS LAST only where a NULL can be: on a NOT NULL column it changes nothing in the
            # order but keeps PostgreSQL from walking its (updated_at, id) index backwards, so the
            # default list would sort the whole table for every page
            order = [table.c[n].desc() if d else table.c[n].asc() for n, d in keys]
            order = [o if n in NOT_NULL else o.nulls_last() for o, (n, _d) in zip(order, keys)]
            q = q.order_by(*order).limit(limit + 1)
            if offset and not after:
                q = q.offset(max(0, int(offset)))
            rows = [public(r) for r in conn.execute(q).mappings()]
            has_more = len(rows) > limit
            rows = rows[:limit]
            self._attach_multi(conn, obj, rows)
        cursor = encode_cursor([rows[-1][n] for n, _d in keys]) if has_more and rows else None
        return Page([self.visible(actor, obj, r) for r in rows], has_more, cursor)

    def _after(self, obj: ObjectSpec, table, keys, values):
        """Rows after the given sort values, NULLs last in either direction (keyset paging)."""
        if len(values) != len(keys):
            raise ValidationError(errors=[Message(_("the page cursor is not valid"))])
        typed = []
        for (name, _desc), raw in zip(keys, values):
            try:
                typed.append(coerce(obj.fields[name], raw, self.timezone) if raw is not None else None)
            except Invalid:
                raise ValidationError(errors=[Message(_("the page cursor is not valid"))]) from None
        same_direction = len({d for _n, d in keys}) == 1
        if same_direction and all(n in NOT_NULL for n, _d in keys):
            row = sa.tuple_(*[table.c[n] for n, _d in keys])
            return row < tuple(typed) if keys[0][1] else row > tuple(typed)
        clauses = []
        for i, ((name, desc), value) in enumerate(zip(keys, typed)):
            col = table.c[name]
            equal = [table.c[n].is_(None) if v is None else table.c[n] == v for (n, _d), v in zip(keys[:i], typed[:i])]
            if value is None:
                continue  # nothing sorts after NULL within this key
            beyond = col < value if desc else col > value
            if name not in NOT_NULL:
                beyond = sa.or_(beyond, col.is_(None))
            clauses.append(sa.and_(*equal, beyond))
        return sa.or_(*clauses) if clauses else sa.false()

    def count(self, obj, actor: Actor, *, where=None, search=None, deleted=False, cap: int | None = 1000,
              conn=None) -> int:
        """Matching rows, counting at most cap + 1 (show "1,000+" rather than scan a million)."""
        obj = self.obj(obj)
        with self.reading(conn) as conn:
            q = self.select(conn, obj, actor, where=where, search=search, deleted=deleted).with_only_columns(sa.literal(1))
            if cap is not None:
                q = q.limit(cap + 1)
            return conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()

    def titles(self, obj, ids, actor: Actor | None = None, *, conn=None) -> dict:
        """{id: title} for display of references, one query for all ids."""
        obj = self.obj(obj)
        ids = {i for i in ids if i is not None}
        if not ids:
            return {}
        table = self.schema.table(obj)
        title = table.c[obj.title] if obj.title in table.c else table.c.id
        with self.reading(conn) as conn:
            q = sa.select(table.c.id, title).where(table.c.id.in_(ids))
            if actor is not None:
                q = q.where(self.policy.filter(conn, actor, obj, table))
            return {i: (t if t not in (None, "") else f"#{i}") for i, t in conn.execute(q)}

    def history(self, obj, id_, actor: Actor, *, conn=None) -> list[dict]:
        obj = self.obj(obj)
        with self.reading(conn) as conn:
            self._readable(conn, obj, id_, actor, deleted=valid_id(id_) and self._is_deleted(conn, obj, id_))
            entries = history.read(conn, self.history_table, obj.name, id_)
        readable = self.policy.readable_fields(actor, obj)
        for entry in entries:
            if entry["changes"]:
                entry["changes"] = {k: v for k, v in entry["changes"].items() if k in readable or k not in obj.fields}
        return entries

    def _is_deleted(self, conn, obj, id_) -> bool:
        table = self.schema.table(obj)
        return conn.execute(sa.select(table.c.deleted_at.is_not(None)).where(table.c.id == id_)).scalar() or False

    # ---- preparing values ----------------------------------------------------------------

    def _input(self, obj: ObjectSpec, values: dict, *, creating: bool, system: bool, actor: Actor | None = None):
        """Coerce the given values; (typed values, lines, field errors)."""
        typed, lines, errors = {}, {}, {}
        updatable = self.policy.updatable_fields(actor, obj) if actor is not None and not system else None
        for name, raw in values.items():
            f = obj.fields.get(name)
            if f is None or (updatable is not None and name not in self.policy.readable_fields(actor, obj)):
                errors.setdefault(name, []).append(Message(_("there is no field '{field}'"), field=name))
                continue
            if updatable is not None and name not in updatable:
                errors.setdefault(name, []).append(Message(_("you may not change '{field}'"), field=f.label))
                continue
            if f.type == "lines":
                if not isinstance(raw, (list, tuple)):
                    errors.setdefault(name, []).append(Message(_("expected a list of rows")))
                else:
                    lines[name] = list(raw)
                continue
            if f.system and name not in SETTABLE_SYSTEM and not (system and name == "department"):
                msg = _("the state changes only through transitions") if name == "state" else \
                    _("'{field}' is kept by the engine and cannot be set")
                errors.setdefault(name, []).append(Message(msg, field=name))
                continue
            if f.computed:
                errors.setdefault(name, []).append(Message(_("'{field}' is computed and cannot be set"), field=name))
                continue
            if f.readonly and not system:
                errors.setdefault(name, []).append(Message(_("'{field}' is read-only"), field=name))
                continue
            try:
                typed[name] = coerce(f, raw, self.timezone)
            except Invalid as e:
                errors.setdefault(name, []).append(e.msg)
        return typed, lines, errors

    def _default(self, f: FieldSpec, actor: Actor, ctx: Context):
        value = f.default
        if isinstance(value, Var):
            if value.name == "current_user":
                return actor.id
            if value.name == "current_department":
                return actor.department_id
            if value.name == "today":
                return ctx.today + dt.timedelta(days=value.offset)
            return ctx.now + dt.timedelta(**{"hours" if value.unit == "h" else "days": value.offset})
        if f.type == "dictionary" and f.multiple:
            return list(value) if value else []
        return coerce(f, value, self.timezone) if value is not None else None

    def _compute(self, obj: ObjectSpec, record: dict, ctx: Context, *, search: bool = True):
        for f in obj.fields.values():
            if f.type == "mnemonic":
                record[f.name] = computed.mnemonic(record.get(f.source))
        context = {"today": ctx.today, "now": ctx.now}
        for f in self._formulas[obj.name]:
            record[f.name] = computed.evaluate_formula(f, record, context)
        if search:
            self._search_columns(obj, record)

    def _search_columns(self, obj: ObjectSpec, record: dict):
        if obj.search.quick:
            record["search_text"], record["search_tokens"] = computed.search_columns(
                [record.get(n) for n in obj.search.quick])

    def _validate(self, conn, obj: ObjectSpec, record: dict, before: dict | None, actor: Actor,
                  ctx: Context, errors: dict):
        """Checks on the complete new record; appends to `errors`."""
        def add(name, message, **params):
            errors.setdefault(name, []).append(Message(message, **params))

        for f in obj.fields.values():
            if f.system or f.computed or f.type == "lines" or f.name in errors:
                continue
            value = record.get(f.name)
            visible = f.show_if is None or self.conditions.matches(obj, f.show_if, record, ctx)
            required = f.required or (f.required_if is not None and self.conditions.matches(obj, f.required_if, record, ctx))
            if visible and required and is_empty(value):
                add(f.name, _("{label} is required"), label=f.label)
                continue
            if value is None or value == []:
                continue
            try:
                check_range(f, value, ctx)
            except Invalid as e:
                errors.setdefault(f.name, []).append(e.msg)
            if f.type == "dictionary":
                dictionary = self.spec.dictionaries[f.dictionary]
                held = before.get(f.name) if before else None
                held = set(held or []) if f.multiple else {held}
                for code in (value if f.multiple else [value]):
                    item = dictionary.items.get(code)
                    if item is None:
                        add(f.name, _("'{code}' is not an item of {dictionary}"), code=code, dictionary=dictionary.label)
                    elif not item.active and code not in held:
                        add(f.name, _("'{code}' is no longer in use"), code=code)
        for rule in obj.rules:
            if rule.when is not None and not self.conditions.matches(obj, rule.when, record, ctx):
                continue
            if not self.conditions.matches(obj, rule.condition, record, ctx):
                # the rule's own bilingual text ("message" would clash with Message's argument)
                target = next((n for n in rule.fields if n in obj.fields), "")
                errors.setdefault(target, []).append(Message("{text}", text=rule.message))

    def _check_batch(self, conn, obj: ObjectSpec, records: list, befores: list, actor: Actor, ctx: Context,
                     errors: list):
        """Checks that need the database, done once for a whole batch: lookups that must
        exist, be readable and pass their filter; unique values."""
        table = self.schema.table(obj)
        for f in obj.fields.values():
            if f.is_reference and not (f.system and f.name != "owner") and f.name != obj.child_of:
                wanted = {}
                for i, r in enumerate(records):
                    v = r.get(f.name)
                    if v is not None and (befores[i] is None or befores[i].get(f.name) != v) and f.name not in errors[i]:
                        wanted.setdefault(v, []).append(i)
                if not wanted:
                    continue
                target = self.spec.objects[f.target]
                ttable = self.schema.table(target)
                q = sa.select(ttable.c.id).where(ttable.c.id.in_(list(wanted)), ttable.c.deleted_at.is_(None),
                                                 self.policy.filter(conn, actor, target, ttable))
                if f.filter is not None:
                    q = q.where(self.conditions.sql(target, f.filter, ctx))
                if f.type == "user":
                    q = q.where(ttable.c.active.is_not(False))
                found = {row[0] for row in conn.execute(q)}
                for v, rows in wanted.items():
                    if v not in found:
                        for i in rows:
                            errors[i].setdefault(f.name, []).append(Message(
                                _("{object} #{id} does not exist, is deleted, or may not be chosen here"),
                                object=target.label, id=v))
            if f.unique and f.stored:
                seen: dict = {}
                for i, r in enumerate(records):
                    v = r.get(f.name)
                    if v is None or f.name in errors[i]:
                        continue
                    if v in seen:
                        errors[i].setdefault(f.name, []).append(Message(_("'{value}' is already used by another record"), value=v))
                    seen.setdefault(v, i)
                if not seen:
                    continue
                own = [r["id"] for r in records if r.get("id") is not None]
                q = sa.select(table.c[f.name]).where(table.c[f.name].in_(list(seen)), table.c.deleted_at.is_(None))
                if own:
                    q = q.where(table.c.id.not_in(own))
                for (v,) in conn.execute(q):
                    errors[seen[v]].setdefault(f.name, []).append(
                        Message(_("'{value}' is already used by another record"), value=v))

    def _check_duplicates(self, conn, obj, records, actor, errors, allow: bool) -> list:
        """Store each record's duplicate keys; a blocking match is a field error, a warning
        one a DuplicateFound per record (None when allowed or clean)."""
        warnings = [None] * len(records)
        if not obj.duplicates:
            return warnings
        seen: dict = {}
        for i, record in enumerate(records):
            if not record:
                continue
            record.update(duplicates.keys(obj, record))
            if errors[i]:
                continue
            matches = duplicates.find(conn, self.runtime, obj, record, actor)
            for rule in obj.duplicates:  # rows of one import that repeat each other
                k = record.get(rule.column)
                if k is not None and (rule.name, k) in seen:
                    errors[i].setdefault(rule.fields[0], []).append(Message(
                        _("the same {object} as row {row} of this batch"), object=obj.label, row=seen[(rule.name, k)] + 1))
                elif k is not None:
                    seen[(rule.name, k)] = i
            blocking = [m for m in matches if m.rule.action == "block"]
            warning = [m for m in matches if m.rule.action == "warn"]
            for m in blocking:
                errors[i].setdefault(m.rule.fields[0], []).append(self._duplicate_message(obj, m))
            if warning and not allow and not errors[i]:
                fields: dict = {}
                for m in warning:
                    fields.setdefault(m.rule.fields[0], []).append(self._duplicate_message(obj, m))
                warnings[i] = DuplicateFound(fields, warning)
                errors[i].update(fields)
        return warnings

    def _duplicate_message(self, obj, match) -> Message:
        if match.readable:
            return Message(_("looks like {title} (#{id}), which already exists"), title=match.title, id=match.id)
        if match.rule.reveal == "owner" and match.owner is not None:
            owner = self.titles("user", {match.owner}).get(match.owner, "")
            return Message(_("a {object} owned by {owner} looks like the same one"), object=obj.label, owner=owner)
        return Message(_("a {object} you may not see looks like the same one"), object=obj.label)

    def _raise(self, errors: dict, row=None):
        form = errors.pop("", [])
        raise ValidationError(errors, form, row=row)

    # ---- creating --------------------------------------------------------------------------

    def create(self, obj, values: dict, actor: Actor, *, conn=None, system: bool = False,
               allow_duplicates: bool = False) -> dict:
        """Create one record; ValidationError lists every problem (DuplicateFound when a
        warning duplicate rule matched: confirm with allow_duplicates=True)."""
        obj = self.obj(obj)
        with self._unique_race(obj), self.transaction(conn) as conn:
            result = self._insert_batch(conn, obj, [values], actor, system=system, allow_duplicates=allow_duplicates)
            if result.errors:
                raise result.errors[0][1]
            id_ = result.created[0]
            if self.listeners or any(obj.fields[n].type == "lines" for n in values if n in obj.fields):
                return self._row(conn, obj, id_) | self.lines(conn, obj, id_)  # rolled up / automated since
            return result.records[0] | {f.name: [] for f in obj.fields.values() if f.type == "lines"}

    def bulk_create(self, obj, rows, actor: Actor, *, batch_size: int = 500, system: bool = False,
                    progress=None, allow_duplicates: bool = False) -> BulkResult:
        """Create many records, one transaction per batch (so numbering locks are held for
        one batch at a time). Rows with problems are skipped and reported; a row never
        leaves partial data."""
        obj = self.obj(obj)
        total = BulkResult()
        batch, start = [], 0
        for values in rows:
            batch.append(values)
            if len(batch) >= batch_size:
                self._bulk_batch(obj, batch, start, actor, system, total, allow_duplicates)
                start += len(batch)
                batch = []
                if progress:
                    progress(start)
        if batch:
            self._bulk_batch(obj, batch, start, actor, system, total, allow_duplicates)
            if progress:
                progress(start + len(batch))
        return total

    def _bulk_batch(self, obj, batch, start, actor, system, total: BulkResult, allow_duplicates=False):
        try:
            with self.transaction() as conn:
                result = self._insert_batch(conn, obj, batch, actor, system=system, allow_duplicates=allow_duplicates)
        except (IntegrityError, ValidationError):
            # a race with another writer (a unique value taken meanwhile), or an automation
            # that failed for one row: row by row, so one row cannot sink its batch
            result = BulkResult()
            for i, values in enumerate(batch):
                try:
                    with self.transaction() as conn:
                        one = self._insert_batch(conn, obj, [values], actor, system=system,
                                                 allow_duplicates=allow_duplicates)
                    result.created += one.created
                    result.errors += [(i, e) for _j, e in one.errors]
                except IntegrityError as e:
                    result.errors.append((i, self._integrity_error(obj, e)))
                except ValidationError as e:
                    result.errors.append((i, e))
        total.created += result.created
        for i, e in result.errors:
            e.row = start + i  # the row's place in the whole import, not in its batch
            total.errors.append((start + i, e))

    @contextlib.contextmanager
    def _unique_race(self, obj):
        """A unique value taken by a concurrent writer after our check (the unique index
        refuses it): the same ValidationError the check gives, not a database error."""
        try:
            yield
        except IntegrityError as e:
            raise self._integrity_error(obj, e) from None

    def _integrity_error(self, obj, error) -> ValidationError:
        text = str(error.orig)
        # PostgreSQL: 'Key (name)=(Acme) already exists'; SQLite: 'UNIQUE constraint failed: customer.name'
        found = re.search(r"Key \((\w+)\)=\((.*)\) already exists", text) or \
            re.search(r"UNIQUE constraint failed: [\w.]*?\.(\w+)\b", text)
        f = obj.fields.get(found.group(1)) if found else None
        if f is not None and f.unique:
            if found.lastindex == 2:
                return ValidationError({f.name: [Message(_("'{value}' is already used by another record"),
                                                         value=found.group(2))]})
            return ValidationError({f.name: [Message(_("this value is already used by another record"))]})
        return ValidationError(errors=[Message(_("the record conflicts with another one; try again"))])

    def _insert_batch(self, conn, obj: ObjectSpec, batch: list, actor: Actor, *, system=False,
                      allow_duplicates=False) -> BulkResult:
        if not system and not self.policy.can(actor, obj, "create"):
            raise Forbidden(_("you may not create {object} records"), object=obj.label)
        ctx = self.context(actor, conn)
        now = ctx.now
        records, all_lines, errors = [], [], []
        for values in batch:
            if not isinstance(values, dict):
                records.append({})
                all_lines.append({})
                errors.append({"": [Message(_("expected a record (a mapping of field to value)"))]})
                continue
            typed, lines, errs = self._input(obj, values, creating=True, system=system, actor=actor)
            record = {}
            for f in obj.fields.values():
                if f.name in typed:
                    record[f.name] = typed[f.name]
                elif f.default is not None and not f.system and f.name not in errs:
                    try:
                        record[f.name] = self._default(f, actor, ctx)
                    except Invalid as e:
                        errs.setdefault(f.name, []).append(e.msg)
                elif f.type == "dictionary" and f.multiple:
                    record[f.name] = []
            if obj.owned:
                record.setdefault("owner", actor.id)
            record.update(created_at=now, updated_at=now, created_by=actor.id, updated_by=actor.id, version=1)
            if obj.lifecycle:
                record["state"] = self.spec.workflows[obj.lifecycle].initial
            for f in obj.fields.values():
                if f.type == "rollup" and f.rollup.agg == "count":
                    record[f.name] = 0  # a new record has no children yet
            records.append(record)
            all_lines.append(lines)
            errors.append(errs)
        self._departments(conn, obj, records, actor, [None] * len(records))
        for record, errs in zip(records, errors):
            if record:
                self._compute(obj, record, ctx, search=False)  # after numbering, below
                self._validate(conn, obj, record, None, actor, ctx, errs)
        self._check_batch(conn, obj, records, [None] * len(records), actor, ctx, errors)
        warnings = self._check_duplicates(conn, obj, records, actor, errors, allow_duplicates)
        for i, lines in enumerate(all_lines):
            self._check_lines(conn, obj, lines, records[i], actor, ctx, errors[i])
        result = BulkResult()
        good = [i for i, e in enumerate(errors) if not e]
        for i, e in enumerate(errors):
            if warnings[i] is not None and set(e) == set(warnings[i].fields):
                warnings[i].row = i
                result.errors.append((i, warnings[i]))   # only a possible duplicate: the caller may confirm
            elif e:
                result.errors.append((i, ValidationError(dict((k, v) for k, v in e.items() if k),
                                                         e.get("", []), row=i)))
        if not good:
            return result
        rows = [records[i] for i in good]
        self._number(conn, obj, rows, "create", now)
        for r in rows:
            self._search_columns(obj, r)
        table = self.schema.table(obj)
        columns = [c for c in table.c.keys() if c != "id"]
        payload = [{c: r.get(c) for c in columns} for r in rows]
        if len(payload) == 1:  # a create: RETURNING gives the row as stored, no read afterwards
            stored = public(conn.execute(self._insert_returning(table), payload[0]).mappings().one())
            for f in obj.fields.values():
                if f.type == "dictionary" and f.multiple:
                    stored[f.name] = sorted(rows[0].get(f.name) or [])
            result.records.append(stored)
            ids = [stored["id"]]
        else:
            ids = self._insert_many(conn, table, payload)
        for r, id_ in zip(rows, ids):
            r["id"] = id_
        self._save_multi(conn, obj, rows, replace=False)
        entries = []
        for i, r in zip(good, rows):
            saved_lines = self._save_lines(conn, obj, r, all_lines[i], actor, ctx, creating=True)
            changes = history.diff({}, r, [f.name for f in obj.fields.values() if f.type != "lines"])
            if saved_lines:
                changes.update(saved_lines)
            entries.append(dict(record_id=r["id"], action="create", at=now, user_id=actor.id, changes=changes,
                                version=1))
        history.record(conn, self.history_table, obj.name, entries)
        self._after_write(conn, obj, [({}, r) for r in rows], ctx)
        for r in rows:
            self.emit(conn, obj, "create", None, r, actor)
        result.created = ids
        return result

    def _insert_returning(self, table):
        """INSERT ... RETURNING every column, built once per table: building it per create
        (and its cache key) cost more than running it."""
        stmt = self._statements.get(table.name)
        if stmt is None:
            stmt = self._statements[table.name] = table.insert().returning(*table.c)
        return stmt

    def _insert_many(self, conn, table, payload) -> list[int]:
        """Insert rows; their ids in the order given. PostgreSQL returns them in that order
        from one statement. SQLite would run a statement per row to promise the order, so
        the rows go in with one executemany and the new ids are read back: inside the write
        transaction no one else inserts, and SQLite gives each new row the next rowid."""
        if conn.dialect.name != "sqlite":
            return [row[0] for row in conn.execute(
                table.insert().returning(table.c.id, sort_by_parameter_order=True), payload)]
        before = conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
        conn.execute(table.insert(), payload)
        ids = list(conn.execute(sa.select(table.c.id).where(table.c.id > before).order_by(table.c.id)).scalars())
        if len(ids) != len(payload):  # pragma: no cover - only if rowids stopped growing
            raise RuntimeError(f"inserted {len(payload)} rows into {table.name} but found {len(ids)} new ids")
        return ids

    def _departments(self, conn, obj, records, actor, befores):
        """A record's department follows its owner's (unless set by the system)."""
        if not obj.owned:
            return
        owners = {r.get("owner") for r, b in zip(records, befores) if r and (b is None or b.get("owner") != r.get("owner"))}
        owners.discard(None)
        depts = {}
        if owners:
            users = self.schema.table("user")
            depts = dict(conn.execute(sa.select(users.c.id, users.c.department).where(users.c.id.in_(owners))).all())
        for r, b in zip(records, befores):
            if not r or not (b is None or b.get("owner") != r.get("owner")):
                continue
            if b is None and r.get("department") is not None:
                continue  # set explicitly by the system
            owner = r.get("owner")
            r["department"] = actor.department_id if owner == actor.id and owner is not None else depts.get(owner)

    def _number(self, conn, obj: ObjectSpec, rows: list, event: str, now: dt.datetime, state: str | None = None):
        for f in obj.fields.values():
            if f.type != "autonumber":
                continue
            due = [r for r in rows if r.get(f.name) is None and
                   ((event == "create" and f.assign_on == "create") or (state is not None and f.assign_on == state))]
            if not due:
                continue
            dept_codes = {}
            if any(t[0] == "dept" for t in f.numbering.tokens):
                depts = self.schema.table("department")
                ids = {r.get("department") for r in due} - {None}
                dept_codes = dict(conn.execute(sa.select(depts.c.id, depts.c.code).where(depts.c.id.in_(ids))).all()) if ids else {}
            numbering.assign(conn, self.counter_table, obj, f, due, now.astimezone(self.timezone).date(), dept_codes)

    def _save_multi(self, conn, obj, rows, *, replace: bool, only=None):
        for f in obj.fields.values():
            if not (f.type == "dictionary" and f.multiple) or (only is not None and f.name not in only):
                continue
            side = self.schema.multi[(obj.name, f.name)]
            if replace:
                conn.execute(side.delete().where(side.c.record_id.in_([r["id"] for r in rows])))
            payload = [{"record_id": r["id"], "code": code} for r in rows for code in (r.get(f.name) or [])]
            if payload:
                conn.execute(side.insert(), payload)

    # ---- lines -----------------------------------------------------------------------------

    def _check_lines(self, conn, obj, lines: dict, parent: dict, actor, ctx, errors: dict):
        """Coerce and check the rows of each given lines field. A row carrying the id of one
        of the parent's lines changes that line: the fields it leaves out keep their values."""
        for name, rows in lines.items():
            child = self.spec.objects[obj.fields[name].lines_object]
            existing = self._existing_lines(conn, obj, child, parent.get("id"))
            prepared = []
            for i, raw in enumerate(rows):
                if not isinstance(raw, dict):
                    errors.setdefault(f"{name}[{i}]", []).append(Message(_("expected a row")))
                    continue
                before = existing.get(raw.get("id"))
                values = {k: v for k, v in raw.items() if k not in ("id", "line_no", obj.name)}
                typed, _lines, errs = self._input(child, values, creating=before is None, system=False)
                record = {f.name: (before or {}).get(f.name) for f in child.declared_fields if f.type != "lines"}
                record.update(typed)
                if before is None:
                    for f in child.declared_fields:
                        if f.name not in typed and f.default is not None:
                            record[f.name] = self._default(f, actor, ctx)
                record.update(id=before["id"] if before else None, **{obj.name: parent.get("id")})
                self._compute(child, record, ctx)
                self._validate(conn, child, record, before, actor, ctx, errs)
                row_errors = [errs]
                self._check_batch(conn, child, [record], [before], actor, ctx, row_errors)
                for fname, msgs in errs.items():
                    errors.setdefault(f"{name}[{i}].{fname}" if fname else f"{name}[{i}]", []).extend(msgs)
                prepared.append(record)
            lines[name] = prepared

    def _existing_lines(self, conn, obj, child, parent_id) -> dict:
        """{id: row} of a parent's lines (none yet for a new parent)."""
        if parent_id is None:
            return {}
        table = self.schema.table(child)
        found = [dict(r) for r in conn.execute(sa.select(table).where(
            table.c[obj.name] == parent_id, table.c.deleted_at.is_(None))).mappings()]
        self._attach_multi(conn, child, found)
        return {r["id"]: r for r in found}

    def _save_lines(self, conn, obj, parent: dict, lines: dict, actor, ctx, *, creating: bool) -> dict:
        """Replace the rows of each given lines field; {field: [count before, count after]}."""
        summary = {}
        for name, rows in lines.items():
            child = self.spec.objects[obj.fields[name].lines_object]
            table = self.schema.table(child)
            existing = {r["id"]: dict(r) for r in conn.execute(
                sa.select(table).where(table.c[obj.name] == parent["id"])).mappings()}
            keep = set()
            for n, row in enumerate(rows, start=1):
                values = {k: v for k, v in row.items() if k in table.c and k not in ("id",)}
                values.update({obj.name: parent["id"], "line_no": n, "updated_at": ctx.now, "updated_by": actor.id})
                if row.get("id") in existing:
                    keep.add(row["id"])
                    conn.execute(table.update().where(table.c.id == row["id"]).values(
                        **values, version=existing[row["id"]]["version"] + 1))
                    row_id = row["id"]
                else:
                    values.update(created_at=ctx.now, created_by=actor.id, version=1)
                    row_id = conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one()
                row["id"] = row_id
            self._save_multi(conn, child, rows, replace=True)
            gone = set(existing) - keep
            if gone:
                conn.execute(table.delete().where(table.c.id.in_(gone)))
            summary[name] = [len(existing), len(rows)]
            self._rollups_for_child(conn, child, {parent["id"]}, ctx)
        return summary

    def emit(self, conn, obj: ObjectSpec, event: str, before, after, actor: Actor) -> None:
        """Tell the listeners about a write (create, update, delete, transition:NAME)."""
        for listener in self.listeners:
            listener(conn, obj, event, before, after, actor)

    # ---- after a write: rollups ------------------------------------------------------------

    def _after_write(self, conn, obj: ObjectSpec, pairs, ctx):
        """Keep rollups right: pairs of (before, after) of changed records of `obj`."""
        for parent, f in self.rollups_by_child.get(obj.name, ()):
            via = f.rollup.via
            ids = set()
            for before, after in pairs:
                ids.update(v for v in (before.get(via), after.get(via)) if v is not None)
            if ids:
                self._recompute_rollups(conn, parent, ids, ctx)

    def _rollups_for_child(self, conn, child: ObjectSpec, parent_ids: set, ctx):
        for parent, f in self.rollups_by_child.get(child.name, ()):
            self._recompute_rollups(conn, parent, parent_ids, ctx)

    def _recompute_rollups(self, conn, parent: ObjectSpec, ids: set, ctx):
        ptable = self.schema.table(parent)
        fields = [f for f in parent.fields.values() if f.type == "rollup"]
        values = {i: {} for i in ids}
        for f in fields:
            r = f.rollup
            child = self.spec.objects[r.child]
            ctable = self.schema.table(child)
            via = ctable.c[r.via]
            if r.agg == "count":
                agg = sa.func.count()
            elif r.agg == "avg":
                agg = sa.func.avg(ctable.c[r.field])
            else:
                agg = getattr(sa.func, r.agg)(ctable.c[r.field])
            q = sa.select(via, agg).where(via.in_(ids), ctable.c.deleted_at.is_(None)).group_by(via)
            if r.where is not None:
                q = q.where(self.conditions.sql(child, r.where, ctx))
            found = dict(conn.execute(q).all())
            quantum = decimal.Decimal(1).scaleb(-(f.scale if f.scale is not None else 2))
            for i in ids:
                v = found.get(i)
                if r.agg == "count":
                    v = int(v or 0)
                elif v is not None and f.value_type in ("date", "datetime", "integer"):
                    v = coerce(f, v, self.timezone)   # a min/max of dates stays a date
                elif v is not None:
                    v = decimal.Decimal(str(v)).quantize(quantum, rounding=decimal.ROUND_HALF_UP)
                values[i][f.name] = v
        current = {row["id"]: dict(row) for row in conn.execute(sa.select(ptable).where(ptable.c.id.in_(ids))).mappings()}
        changed_pairs = []
        for i, new in values.items():
            before = current.get(i)
            if before is None:
                continue
            after = dict(before, **new)
            self._compute(parent, after, ctx)
            delta = {k: after[k] for k in after if k in ptable.c and after[k] != before.get(k)}
            if delta:
                conn.execute(ptable.update().where(ptable.c.id == i).values(**delta))
                changed_pairs.append((before, after))
        if changed_pairs:
            self._after_write(conn, parent, changed_pairs, ctx)

    # ---- updating --------------------------------------------------------------------------

    def update(self, obj, id_, values: dict, actor: Actor, *, version: int | None, conn=None,
               system: bool = False, _transition: str | None = None, allow_duplicates: bool = False) -> dict:
        """Change a record. `version` is the one the caller read: a stale update is refused
        with the fields changed meanwhile, never silently overwritten."""
        obj = self.obj(obj)
        if version is None and not system:
            raise ValidationError(errors=[Message(_("the version you read is required to update a record"))])
        with self._unique_race(obj), self.transaction(conn) as conn:
            before = self._readable(conn, obj, id_, actor, lock=True)
            if not system and not self._allowed(conn, actor, obj, "update", before):
                raise Forbidden(_("you may not change this {object}"), object=obj.label)
            if version is not None and before["version"] != version:
                fields = history.changed_since(conn, self.history_table, obj.name, id_, version)
                raise Conflict(_("someone else changed this record meanwhile ({changed}); reload it and apply your change again"),
                               fields=fields, current=before, changed=", ".join(fields) or "-")
            self._check_locked(obj, before, system or _transition is not None)
            return self._apply_update(conn, obj, before, values, actor, system=system, comment=None,
                                      allow_duplicates=allow_duplicates)

    def _check_locked(self, obj, record, allowed):
        lifecycle = self.spec.lifecycle_of(obj)
        if lifecycle and not allowed:
            state = lifecycle.states.get(record.get("state"))
            if state is not None and state.locked:
                raise Forbidden(_("the record is locked while it is {state}"), state=state.label)

    def _apply_update(self, conn, obj, before, values, actor, *, system, comment, action="update",
                      extra: dict | None = None, allow_duplicates: bool = False) -> dict:
        ctx = self.context(actor, conn)
        typed, lines, errors = self._input(obj, values, creating=False, system=system, actor=actor)
        after = dict(before)
        after.update(typed)
        if extra:
            after.update(extra)
        after.update(updated_at=ctx.now, updated_by=actor.id, version=before["version"] + 1)
        self._departments(conn, obj, [after], actor, [before])
        self._compute(obj, after, ctx)
        self._validate(conn, obj, after, before, actor, ctx, errors)
        batch_errors = [errors]
        self._check_batch(conn, obj, [after], [before], actor, ctx, batch_errors)
        self._check_lines(conn, obj, lines, after, actor, ctx, errors)
        if errors:
            self._raise(errors)
        changed = any(after.get(f) != before.get(f) for rule in obj.duplicates for f in rule.fields)
        if changed:  # only a change to what identifies the record can make it a duplicate
            warnings = self._check_duplicates(conn, obj, [after], actor, batch_errors, allow_duplicates or system)
            if warnings[0] is not None and set(errors) == set(warnings[0].fields):
                raise warnings[0]   # only a possible duplicate: the caller may confirm
            if errors:
                self._raise(errors)
        else:
            after.update(duplicates.keys(obj, after))
        if extra and "state" in extra:
            self._number(conn, obj, [after], "state", ctx.now, state=extra["state"])
            self._search_columns(obj, after)  # a new number must be findable
        table = self.schema.table(obj)
        delta = {k: after[k] for k in table.c.keys() if k != "id" and after.get(k) != before.get(k)}
        delta["version"] = after["version"]
        result = conn.execute(table.update().where(table.c.id == before["id"], table.c.version == before["version"])
                              .values(**delta))
        if result.rowcount != 1:
            raise Conflict(_("someone else changed this record meanwhile; reload it and apply your change again"),
                           current=None)
        multi = [f.name for f in obj.fields.values() if f.type == "dictionary" and f.multiple
                 and after.get(f.name) != before.get(f.name)]
        if multi:
            self._save_multi(conn, obj, [after], replace=True, only=multi)
        changes = history.diff(before, after, [f.name for f in obj.fields.values() if f.type != "lines"])
        changes.update(self._save_lines(conn, obj, after, lines, actor, ctx, creating=False))
        history.record(conn, self.history_table, obj.name, [dict(
            record_id=before["id"], action=action, at=ctx.now, user_id=actor.id, changes=changes,
            comment=comment, version=after["version"])])
        self._after_write(conn, obj, [(before, after)], ctx)
        if action in ("update", "transition", "assign"):
            self.emit(conn, obj, "update", before, after, actor)
        if obj.name == "department":
            self.policy.departments_changed()
        return self._row(conn, obj, before["id"]) | self.lines(conn, obj, before["id"])

    # ---- deleting, restoring, purging -----------------------------------------------------

    def _referrers(self, conn, obj: ObjectSpec, id_, *, include_deleted=False):
        """[(object, field, [(id, title)])] of records referring to this one."""
        out = []
        for other, f in self.references.get(obj.name, ()):
            table = self.schema.table(other)
            q = sa.select(table.c.id, table.c[other.title] if other.title in table.c else table.c.id).where(
                table.c[f.name] == id_)
            if not include_deleted:
                q = q.where(table.c.deleted_at.is_(None))
            rows = conn.execute(q.limit(6)).all()
            if rows:
                out.append((other, f, rows))
        return out

    def delete(self, obj, id_, actor: Actor, *, conn=None, system: bool = False) -> None:
        """Move a record to the recycle bin, following on_delete of records that refer to it."""
        obj = self.obj(obj)
        with self.transaction(conn) as conn:
            record = self._readable(conn, obj, id_, actor, lock=True)
            if not system and not self._allowed(conn, actor, obj, "delete", record):
                raise Forbidden(_("you may not delete this {object}"), object=obj.label)
            self._check_locked(obj, record, system)
            self._soft_delete(conn, obj, record, actor, set())

    def _cancel_approvals(self, conn, obj, record_id):
        """A deleted record's pending approvals end, so they leave approvers' inboxes."""
        approvals, tasks = self.schema.system["approval"], self.schema.system["approval_task"]
        pending = sa.select(approvals.c.id).where(approvals.c.object == obj.name, approvals.c.record_id == record_id,
                                                  approvals.c.status == "pending")
        conn.execute(tasks.update().where(tasks.c.approval_id.in_(pending), tasks.c.decision == "pending")
                     .values(decision="cancelled"))
        conn.execute(approvals.update().where(approvals.c.id.in_(pending))
                     .values(status="cancelled", finished_at=self.now(), version=approvals.c.version + 1))

    def _soft_delete(self, conn, obj, record, actor, seen: set):
        key = (obj.name, record["id"])
        if key in seen:
            return
        seen.add(key)
        ctx = self.context(actor, conn)
        blocking = [(o, f, rows) for o, f, rows in self._referrers(conn, obj, record["id"]) if f.on_delete == "restrict"]
        if blocking:
            names = "; ".join(f"{o.label.text('en')} {', '.join(str(t) for _i, t in rows[:5])}" for o, f, rows in blocking)
            raise Restricted(_("cannot delete: other records refer to it ({names})"), references=[
                (o.name, i, t) for o, f, rows in blocking for i, t in rows], names=names)
        self._cancel_approvals(conn, obj, record["id"])
        for other, f, _rows in self._referrers(conn, obj, record["id"]):
            table = self.schema.table(other)
            if f.on_delete == "set_null":
                for row in conn.execute(sa.select(table).where(table.c[f.name] == record["id"],
                                                               table.c.deleted_at.is_(None))).mappings().all():
                    self._set_null(conn, other, f, dict(row), actor)
            elif f.on_delete == "cascade":
                for row in conn.execute(sa.select(table).where(table.c[f.name] == record["id"],
                                                               table.c.deleted_at.is_(None))).mappings():
                    self._soft_delete(conn, other, dict(row), actor, seen)
        table = self.schema.table(obj)
        conn.execute(table.update().where(table.c.id == record["id"]).values(
            deleted_at=ctx.now, updated_at=ctx.now, updated_by=actor.id, version=record["version"] + 1))
        history.record(conn, self.history_table, obj.name, [dict(
            record_id=record["id"], action="delete", at=ctx.now, user_id=actor.id, version=record["version"] + 1)])
        self._after_write(conn, obj, [(record, dict(record, deleted_at=ctx.now))], ctx)
        self.emit(conn, obj, "delete", record, None, actor)

    def _set_null(self, conn, other, f, row, actor):
        """Clear a referring record's lookup; when that would break one of its rules, the
        delete is refused naming the record (not a field error about another object)."""
        try:
            self._apply_update(conn, other, row | self._multi_of(conn, other, row["id"]), {},
                               actor, system=True, comment=None, extra={f.name: None})
        except ValidationError as e:
            title = row.get(other.title) or f"#{row['id']}"
            problems = "; ".join([m.text("en") for msgs in e.fields.values() for m in msgs]
                                 + [m.text("en") for m in e.errors])
            raise Restricted(_("cannot delete: other records refer to it ({names})"),
                             references=[(other.name, row["id"], title)],
                             names=f"{other.label.text('en')} {title}: {problems}") from None

    def _multi_of(self, conn, obj, id_) -> dict:
        holder = [{"id": id_}]
        self._attach_multi(conn, obj, holder)
        return {k: v for k, v in holder[0].items() if k != "id"}

    def restore(self, obj, id_, actor: Actor, *, conn=None) -> dict:
        """Bring a record back from the recycle bin (its unique values must still be free,
        and the records it refers to must not be in the bin themselves)."""
        obj = self.obj(obj)
        with self._unique_race(obj), self.transaction(conn) as conn:
            record = self._readable(conn, obj, id_, actor, deleted=True, lock=True)
            if not self._allowed(conn, actor, obj, "delete", record):
                raise Forbidden(_("you may not restore this {object}"), object=obj.label)
            ctx = self.context(actor, conn)
            errors = [{}]
            self._check_batch(conn, obj, [dict(record, deleted_at=None)], [record], actor, ctx, errors)
            unique = {k: v for k, v in errors[0].items() if obj.fields[k].unique}
            unique.update(self._binned_references(conn, obj, record))
            if unique:
                self._raise(unique)
            table = self.schema.table(obj)
            conn.execute(table.update().where(table.c.id == id_).values(
                deleted_at=None, updated_at=ctx.now, updated_by=actor.id, version=record["version"] + 1))
            history.record(conn, self.history_table, obj.name, [dict(
                record_id=id_, action="restore", at=ctx.now, user_id=actor.id, version=record["version"] + 1)])
            self._after_write(conn, obj, [(dict(record), dict(record, deleted_at=None))], ctx)
            return self._row(conn, obj, id_)

    def _binned_references(self, conn, obj, record) -> dict:
        """{field: [message]} for lookups pointing at records in the recycle bin: a restored
        record must not refer to a deleted one (restore that one first)."""
        errors = {}
        for f in obj.fields.values():
            value = record.get(f.name)
            if value is None or not f.is_reference or f.system or f.name == obj.child_of:
                continue
            target = self.spec.objects[f.target]
            table = self.schema.table(target)
            if conn.execute(sa.select(table.c.deleted_at.is_not(None)).where(table.c.id == value)).scalar():
                errors[f.name] = [Message(_("{object} #{id} is in the recycle bin; restore it first"),
                                          object=target.label, id=value)]
        return errors

    def purge(self, obj, id_, actor: Actor, *, conn=None) -> None:
        """Remove a record from the recycle bin for good."""
        obj = self.obj(obj)
        with self.transaction(conn) as conn:
            record = self._readable(conn, obj, id_, actor, deleted=True, lock=True)
            if not self._allowed(conn, actor, obj, "delete", record):
                raise Forbidden(_("you may not purge this {object}"), object=obj.label)
            blocking = [(o, f, rows) for o, f, rows in self._referrers(conn, obj, id_, include_deleted=True)
                        if f.on_delete == "restrict"]
            if blocking:
                names = "; ".join(f"{o.label.text('en')} {', '.join(str(t) for _i, t in rows[:5])}" for o, f, rows in blocking)
                raise Restricted(_("cannot purge: other records, in the recycle bin too, refer to it ({names})"),
                                 references=[(o.name, i, t) for o, f, rows in blocking for i, t in rows],
                                 names=names)
            ctx = self.context(actor, conn)
            table = self.schema.table(obj)
            conn.execute(table.delete().where(table.c.id == id_))
            history.record(conn, self.history_table, obj.name, [dict(
                record_id=id_, action="purge", at=ctx.now, user_id=actor.id)])
