"""The permission matrix, generated from the metadata and checked through the web application.

Every object's `permissions` and `field_permissions`, the department tree and the shares
give the expected answer for each user × object × record × action through a small oracle
of this file's own (it never asks loom.security.policy). The pages must agree on every
path: lists, counts, quick search, search schemes, kanban, calendar, exports, lookups,
related tabs, detail, history, sharing, the forms and every write — no more and no fewer
records than the oracle allows, no field a role may not read, no title of a record the
user may not read, and nothing changed by a refused write. A second application adds an
overlay that hides fields where lists filter, sort and search, boards group and sum,
calendars place records and schemes select, so field security is checked on those paths too.

One application per backend serves the module; tests that change something restore it.
Objects the metadata gains later get records of their own (required fields filled from
their types and rules) and a user per new role, so the matrix grows with the metadata; to
keep the run short, every record's visibility (list, count, detail) and the refused edits
and deletes are checked for every user, the other paths for a third of the (user, object)
pairs in turn (World.full). Failing cells are collected and reported together.
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import inspect
import io
import re
from collections import defaultdict, deque
from dataclasses import dataclass
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa

from loom.compiler.conditions import Context
from loom.records.errors import ValidationError
from loom.security import sharing
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user, find_user

from conftest import create_postgres_database
from web_helpers import USERS, make_app, post, runtime_of, signed_in

SYSTEM = Actor.system()
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
EXTRA_USERS = {  # beside web_helpers.USERS: every role of roles.yaml held by someone, and a union of two
    "smgr": (["service_manager"], "service"),
    "agent2": (["service_agent"], "service"),
    "hybrid": (["sales_rep", "service_agent"], "sales_south"),
}
MATRIX_USERS = ("admin", "rep1", "rep2", "mgr", "agent", "smgr", "fin", "hybrid")
MANAGERS = {"sales": "mgr", "service": "smgr", "hq": "admin"}   # approvers of manager_of steps
PREFIX = {"customer": "Kcu", "contact": "Kco", "opportunity": "Kop", "service_request": "Ksr",
          "product": "Kpr", "contract": "Kct"}                    # titles: unique, searchable
SAMPLE = 1           # records per (user, object, class of record) for each write path, related tab...
ROTATE = 3           # every check for a third of the (user, object) pairs, the core ones for all: World.full
CORE_WRITES = {"edit", "delete", "restore"}   # refused writes every user tries on every object
FRAGMENT = {"HX-Request": "true", "HX-Target": "records"}   # the list's table alone
TOTALS: dict = {}    # cells checked, per test and backend (printed at the end of each test)


# ---- collecting cells ---------------------------------------------------------------------------

class Cells:
    """Checks of one test: every cell counts, failures are collected and reported at once."""

    def __init__(self, name):
        self.name, self.count, self.failures = name, 0, []

    def check(self, ok, where, detail=""):
        self.count += 1
        if not ok:
            self.failures.append(f"{where}: {detail}" if detail else str(where))
        return ok

    def status(self, response, expected, where):
        got = response.status_code
        ok = got in expected if isinstance(expected, (tuple, set, frozenset)) else got == expected
        return self.check(ok, where, f"status {got}, expected {expected}")

    def same(self, got, expected, where):
        got, expected = set(got), set(expected)
        return self.check(got == expected, where, f"extra {sorted(got - expected)}, missing {sorted(expected - got)}")

    def verify(self, world):
        TOTALS[(self.name, world.backend)] = self.count
        print(f"\n{self.name} [{world.backend}]: {self.count} cells, {len(self.failures)} failed")
        shown = "\n".join(self.failures[:400])
        more = f"\n... and {len(self.failures) - 400} more" if len(self.failures) > 400 else ""
        assert not self.failures, f"{len(self.failures)} of {self.count} cells failed:\n{shown}{more}"


# ---- the world: an application with users, departments, records and shares ------------------------

@dataclass(frozen=True)
class Person:
    """A user as the oracle sees them: read from the user table, not from loom's Actor."""
    name: str
    id: int
    roles: frozenset
    department: int | None
    superuser: bool


class World:
    def __init__(self, app, backend):
        self.app, self.backend = app, backend
        self.rt = runtime_of(app)
        self.spec = self.rt.spec
        self.tz = ZoneInfo(self.spec.timezone)
        self.today = dt.datetime.now(self.tz).date()
        self.objects = [o for o in self.spec.objects.values() if o.owned]
        self.prefix = dict(PREFIX)
        for i, obj in enumerate(o for o in self.objects if o.name not in PREFIX):
            self.prefix[obj.name] = "Kq" + "abcdefghijklmnopqrstuvwxyz"[i % 26]
        self.n = 0
        self._clients = {}
        self.oracle = Oracle(self)

    def full(self, user, obj) -> bool:
        """Whether this (user, object) gets every check, or the core ones only (every record's
        visibility in the list, the count and the detail page, refused edits and deletes):
        each object gets every check for a third of the users, each user for a third of the
        objects, so the run stays short however many objects the metadata has."""
        index = self.objects.index(obj) if obj in self.objects else len(self.objects) + len(obj.name)
        return (self.matrix_users.index(user) + index) % ROTATE == 0

    # users and sessions
    def uid(self, name) -> int:
        return find_user(self.rt, name)["id"]

    def actor(self, name) -> Actor:
        return actor_for(self.rt, find_user(self.rt, name))

    def actor_by_id(self, uid) -> Actor:
        with self.rt.engine.connect() as conn:
            user = self.rt.records._row(conn, self.spec.objects["user"], uid)
        return actor_for(self.rt, user)

    def client(self, name):
        if name not in self._clients:
            self._clients[name] = signed_in(self.app, name)
        return self._clients[name]

    def department(self, code) -> int:
        table = self.rt.table("department")
        with self.rt.engine.connect() as conn:
            return conn.execute(sa.select(table.c.id).where(table.c.code == code)).scalar_one()

    # raw data, read with SQL (never through the policy)
    def _attach(self, conn, obj, rows):
        for f in obj.fields.values():
            if f.type == "dictionary" and f.multiple:
                side = self.rt.schema.multi[(obj.name, f.name)]
                held = defaultdict(list)
                for rid, code in conn.execute(sa.select(side.c.record_id, side.c.code).order_by(side.c.code)):
                    held[rid].append(code)
                for r in rows:
                    r[f.name] = held.get(r["id"], [])

    def rows(self, obj, *, deleted=False) -> dict:
        obj = self.spec.objects[obj] if isinstance(obj, str) else obj
        table = self.rt.table(obj)
        with self.rt.engine.connect() as conn:
            where = table.c.deleted_at.is_not(None) if deleted else table.c.deleted_at.is_(None)
            rows = [dict(r) for r in conn.execute(sa.select(table).where(where)).mappings()]
            self._attach(conn, obj, rows)
        return {r["id"]: r for r in rows}

    def row(self, obj, id_) -> dict | None:
        obj = self.spec.objects[obj] if isinstance(obj, str) else obj
        table = self.rt.table(obj)
        with self.rt.engine.connect() as conn:
            found = conn.execute(sa.select(table).where(table.c.id == id_)).mappings().first()
            if found is None:
                return None
            rows = [dict(found)]
            self._attach(conn, obj, rows)
        return rows[0]

    def shares(self) -> list:
        table = self.rt.schema.system["share"]
        with self.rt.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(table)).mappings()]

    def fingerprint(self, obj, id_) -> tuple:
        """What a refused write must leave alone: the row itself, its shares and its history."""
        obj = self.spec.objects[obj] if isinstance(obj, str) else obj
        table, share, hist = self.rt.table(obj), self.rt.schema.system["share"], self.rt.records.history_table
        with self.rt.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == id_)).mappings().first()
            shares = set(conn.execute(sa.select(share.c.id).where(share.c.object == obj.name,
                                                                  share.c.record_id == id_)).scalars())
            entries = conn.execute(sa.select(sa.func.count()).where(hist.c.object == obj.name,
                                                                    hist.c.record_id == id_)).scalar()
        return (dict(row) if row else None), shares, entries

    def put_back(self, obj, before: tuple):
        """Undo a write that should have been refused (so one bug does not turn the rest of
        the matrix red): the row as it was, without shares it did not have."""
        obj = self.spec.objects[obj] if isinstance(obj, str) else obj
        row, shares, _entries = before
        table, share = self.rt.table(obj), self.rt.schema.system["share"]
        with self.rt.records.transaction() as conn:
            if row is not None:
                conn.execute(table.update().where(table.c.id == row["id"]).values(
                    **{k: v for k, v in row.items() if k != "id"}))
                conn.execute(share.delete().where(share.c.object == obj.name, share.c.record_id == row["id"],
                                                  share.c.id.not_in(shares or {0})))
        self.oracle.refresh()

    def lines(self, obj, id_) -> dict:
        with self.rt.engine.connect() as conn:
            return self.rt.records.lines(conn, obj, id_)

    def title(self, obj, row) -> str:
        return str(row.get(obj.title) or f"#{row['id']}")


# ---- the oracle: what the metadata allows, computed here -----------------------------------------

class Oracle:
    def __init__(self, world):
        self.w = world
        self.spec = world.spec
        self.refresh()

    def refresh(self):
        """Re-read what changes during the tests: departments, users and shares."""
        depts = self.w.rows("department")
        self.children = defaultdict(list)
        for d in depts.values():
            self.children[d["parent"]].append(d["id"])
        self.share_rows = self.w.shares()
        self._fetched = {}

    def person(self, name) -> Person:
        user = self.w.rows("user")
        row = next(u for u in user.values() if u["username"] == name)
        roles = frozenset(r for r in row["roles"] if r in self.spec.roles)
        return Person(name, row["id"], roles, row["department"], any(self.spec.roles[r].superuser for r in roles))

    def fetch(self, obj_name, id_):
        key = (obj_name, id_)
        if key not in self._fetched:
            self._fetched[key] = self.w.row(obj_name, id_)
        return self._fetched[key]

    def subtree(self, dept) -> set:
        out, todo = set(), [dept] if dept is not None else []
        while todo:
            d = todo.pop()
            if d not in out:
                out.add(d)
                todo.extend(self.children.get(d, ()))
        return out

    # object level
    def _owner_object(self, obj):
        return self.spec.objects[obj.child_of] if obj.child_of else obj

    def scopes(self, p: Person, obj, action) -> list:
        obj = self._owner_object(obj)
        if p.superuser:
            return ["all"]
        if obj.system:
            return ["all"] if action == "read" else []
        found = []
        for role in sorted(p.roles):
            perm = obj.permissions.get(role)
            value = getattr(perm, action) if perm is not None else None
            value = "all" if value is True else value
            if value not in (None, False, "none"):
                found.append(value)
        return found

    def pool_reader(self, p, obj) -> bool:
        """公海: the pool's roles read the records without an owner."""
        pool = getattr(obj, "pool", None)
        return pool is not None and not obj.child_of and bool(p.roles & set(pool.roles))

    def can(self, p, obj, action) -> bool:
        return bool(self.scopes(p, obj, action)) or (action == "read" and self.pool_reader(p, obj))

    # record level
    def in_scope(self, p, obj, row, scope) -> bool:
        if scope == "all":
            return True
        if scope == "own":
            return row.get("owner") == p.id
        if scope == "department":
            return p.department is not None and row.get("department") == p.department
        if scope == "department_tree":
            return row.get("department") in self.subtree(p.department)
        ctx = Context(user_id=p.id, department_id=p.department, timezone=self.w.tz, fetch=self.fetch)
        return self.w.rt.conditions.matches(obj, scope, row, ctx)

    def shared(self, p, obj, row, edit=False) -> bool:
        if p.superuser or obj.system or obj.child_of or not self.scopes(p, obj, "read"):
            return False
        return any(s["object"] == obj.name and s["record_id"] == row["id"] and (not edit or s["access"] == "edit")
                   and (s["user_id"] == p.id or (s["department_id"] is not None and s["department_id"] == p.department))
                   for s in self.share_rows)

    def _allowed(self, p, obj, row, action) -> bool:
        if obj.child_of:
            parent = self.fetch(obj.child_of, row[obj.child_of])
            return parent is not None and self._allowed(p, self.spec.objects[obj.child_of], parent, action)
        if any(self.in_scope(p, obj, row, s) for s in self.scopes(p, obj, action)):
            return True
        if action == "read" and row.get("owner") is None and self.pool_reader(p, obj):
            return True
        return action in ("read", "update") and self.shared(p, obj, row, edit=action == "update")

    def can_read(self, p, obj, row) -> bool:
        return self._allowed(p, obj, row, "read")

    def can_update(self, p, obj, row) -> bool:
        return self.can_read(p, obj, row) and self._allowed(p, obj, row, "update")

    def can_delete(self, p, obj, row) -> bool:
        return self.can_read(p, obj, row) and self._allowed(p, obj, row, "delete")

    def locked(self, obj, row) -> bool:
        lifecycle = self.spec.lifecycle_of(obj)
        state = lifecycle.states.get(row.get("state")) if lifecycle else None
        return bool(state and state.locked)

    # fields
    def readable_fields(self, p, obj) -> set:
        return self._fields(p, obj, "read")

    def updatable_fields(self, p, obj) -> set:
        return self._fields(p, obj, "update") & self._fields(p, obj, "read")

    def _fields(self, p, obj, action) -> set:
        names = set(obj.fields)
        if not p.superuser:
            for name, rule in obj.field_permissions.items():
                allowed = getattr(rule, action)
                if allowed is not None and not (p.roles & set(allowed)):
                    names.discard(name)
        return names

    def visible(self, p, obj, *, deleted=False) -> dict:
        """{id: row} of the records the person may read."""
        return {i: r for i, r in self.w.rows(obj, deleted=deleted).items() if self.can_read(p, obj, r)}

    def matches(self, p, obj, cond, row) -> bool:
        if cond is None:
            return True
        ctx = Context(user_id=p.id, department_id=p.department, timezone=self.w.tz, fetch=self.fetch)
        return self.w.rt.conditions.matches(obj, cond, row, ctx)


# ---- building the world ----------------------------------------------------------------------------

def _create(w, obj_name, owner, state, **values):
    """A record created by the system for `owner`, then taken to `state` through the lifecycle."""
    obj = w.spec.objects[obj_name]
    w.n += 1
    if obj.title not in values and obj.fields[obj.title].type in ("text", "textarea"):
        values[obj.title] = f"{w.prefix[obj_name]}{w.n:03d} {owner or 'pool'} {state or ''}".strip()
    values["owner"] = w.uid(owner) if owner else None
    record = w.rt.records.create(obj_name, values, SYSTEM, **CREATE_OPTIONS(w.rt.records))
    if state:
        _reach(w, obj, record["id"], state, owner)
    return record["id"]


def CREATE_OPTIONS(service) -> dict:  # noqa: N802
    """Fixture names look alike on purpose: no duplicate warnings for them."""
    return {"allow_duplicates": True} if "allow_duplicates" in inspect.signature(service.create).parameters else {}


def _paths(spec, lifecycle):
    """state -> steps from the initial state: ("go", t) | ("submit", t) | ("decide", approve|reject)."""
    edges = defaultdict(list)
    for t in lifecycle.transitions.values():
        for source in t.sources:
            if t.approval:
                flow = spec.workflows[t.approval]
                edges[source].append((t.to, [("submit", t)]))
                for decision, outcome in (("approve", flow.on_approved), ("reject", flow.on_rejected)):
                    if outcome.to:
                        edges[source].append((outcome.to, [("submit", t), ("decide", decision)]))
            else:
                edges[source].append((t.to, [("go", t)]))
    paths, todo = {lifecycle.initial: []}, deque([lifecycle.initial])
    while todo:
        state = todo.popleft()
        for to, steps in edges[state]:
            if to not in paths:
                paths[to] = paths[state] + steps
                todo.append(to)
    return paths


def _reach(w, obj, id_, state, owner):
    lifecycle = w.spec.lifecycle_of(obj)
    steps = _paths(w.spec, lifecycle)[state]
    workflows = w.rt.workflows
    for kind, step in steps:
        if kind == "go":
            try:
                workflows.transition(obj, id_, step.name, SYSTEM, comment="fixture")
            except ValidationError as e:   # values the new state requires (a lost reason...)
                values = {n: _value(w, obj.fields[n], owner) for n in e.fields if n in obj.fields}
                workflows.transition(obj, id_, step.name, SYSTEM, comment="fixture", values=values)
        elif kind == "submit":  # as the owner: approvers follow the submitter
            workflows.transition(obj, id_, step.name, w.actor(owner), comment="fixture")
        else:
            while True:
                flow = workflows.flows_of(obj, id_)[0]
                pending = [t for t in flow["tasks"] if t["step"] == flow["step"] and t["decision"] == "pending"]
                if flow["status"] != "pending" or not pending:
                    break
                workflows.decide(flow["id"], w.actor_by_id(pending[0]["user_id"]), step, "fixture")


def _value(w, f, owner):
    """A valid value for a field (for required ones this file has no recipe for)."""
    t = f.type
    if t == "dictionary":
        code = next(c for c, i in w.spec.dictionaries[f.dictionary].items.items() if i.active)
        return [code] if f.multiple else code
    if t in ("integer", "decimal", "money", "percent"):
        return max(f.min or 0, 1)
    if t == "date":
        return w.today.isoformat()
    if t == "datetime":
        return dt.datetime.now(w.tz).isoformat()
    if t == "boolean":
        return False
    if t == "lookup":
        rows = w.rows(f.target)
        uid = w.uid(owner) if owner else None
        return next((i for i, r in rows.items() if r.get("owner") == uid), next(iter(rows)))
    if t == "user":
        return w.uid(owner)
    return {"email": "k@example.com", "phone": "13800000000", "url": "https://example.com"}.get(
        t, f"fixture {owner}")


def _create_generic(w, obj, owner):
    """A record of an object without a recipe: required fields filled, then what its rules ask for."""
    values = _filler(w, obj, owner)
    for _attempt in range(4):
        try:
            return _create(w, obj.name, owner, None, **dict(values))
        except ValidationError as e:
            missing = {n: _value(w, obj.fields[n], owner) for n in e.fields if n in obj.fields and n not in values}
            if not missing:
                raise
            values.update(missing)
    raise AssertionError(f"no fixture for {obj.name}: add a recipe to build()")


def _filler(w, obj, owner):
    return {f.name: _value(w, f, owner) for f in obj.declared_fields
            if f.required and not f.computed and not f.readonly and f.default is None
            and f.type not in ("lines", "file")}


def build(w):
    """Records of every object, owned by users of different roles and departments, in the
    states the condition scopes care about, some shared, some in the recycle bin."""
    rt, spec = w.rt, w.spec
    for code, username in MANAGERS.items():
        rt.records.update("department", w.department(code), {"manager": w.uid(username)}, SYSTEM,
                          version=None, system=True)
    objects = spec.objects
    made = defaultdict(dict)   # object -> key -> id

    if "product" in objects:
        for owner in ("mgr", "fin"):
            for active in (True, False):
                made["product"][owner, active] = _create(
                    w, "product", owner, None, code=f"KPR-{w.n + 1:03d}", category=_first(w, "product", "category"),
                    price="10000", cost=str(decimal.Decimal("4321.77") + w.n), active=active)
    if "customer" in objects:
        lifecycle = spec.lifecycle_of(objects["customer"])
        for owner in ("rep1", "rep2", "mgr", "agent", "hybrid"):
            for state in lifecycle.states if owner != "hybrid" else ("trading",):
                made["customer"][owner, state] = _create(
                    w, "customer", owner, None, annual_revenue=str(decimal.Decimal("7315900.42") + w.n * 1000),
                    industry=_first(w, "customer", "industry"), tax_id=f"91310000MA1K{w.n:06d}",
                    credit_rating=_first(w, "customer", "credit_rating"), phone=f"0215550{w.n:04d}")
        trading = {owner: made["customer"][owner, "trading"] for owner in ("rep1", "rep2", "mgr", "agent", "hybrid")}
        # a subsidiary of another owner's customer: the related tab shows it only to its readers
        rt.records.update("customer", made["customer"]["rep2", "potential"], {"parent": trading["rep1"]}, SYSTEM,
                          version=None, system=True)
        rt.records.update("customer", made["customer"]["mgr", "dormant"], {"parent": trading["rep1"]}, SYSTEM,
                          version=None, system=True)
    if "contact" in objects:
        for owner in ("rep1", "rep2", "mgr", "agent", "hybrid"):
            for of in ("rep1", "rep2"):
                made["contact"][owner, of] = _create(
                    w, "contact", owner, None, customer=trading[of], mobile=f"1380000{w.n:04d}",
                    birthday=f"1971-03-{w.n % 27 + 1:02d}", preferences=f"prefers green tea {w.n:03d}",
                    next_contact_date=w.today.isoformat())
        for key, id_ in list(made["contact"].items()):
            if key[0] != key[1]:  # reports to the customer owner's own contact
                rt.records.update("contact", id_, {"reports_to": made["contact"][key[1], key[1]]}, SYSTEM,
                                  version=None, system=True)
    if "opportunity" in objects:
        lifecycle = spec.lifecycle_of(objects["opportunity"])
        line_product = made["product"].get(("mgr", True))
        wanted = {"rep1": tuple(lifecycle.states), "rep2": (lifecycle.initial, "won"),
                  "mgr": (lifecycle.initial, "pending_approval"), "hybrid": (lifecycle.initial,),
                  "agent": (lifecycle.initial,)}
        for owner, states in wanted.items():
            for state in (s for s in states if s in lifecycle.states):
                values = dict(customer=trading[owner], amount="500000", expected_close_date=w.today.isoformat(),
                              discount="10" if state == "pending_approval" else "0")
                if line_product and state == lifecycle.initial:
                    values["items"] = [{"product": line_product, "quantity": "2", "unit_price": "1000"}]
                made["opportunity"][owner, state] = _create(w, "opportunity", owner, state, **values)
    if "contract" in objects:
        lifecycle = spec.lifecycle_of(objects["contract"])
        wanted = {"rep1": ("draft", "approving", "approved", "active"), "rep2": ("draft", "active"),
                  "mgr": ("draft", "active")}
        for owner, states in wanted.items():
            for state in states:
                if state in lifecycle.states:
                    made["contract"][owner, state] = _create(w, "contract", owner, state, customer=trading[owner],
                                                             amount="50000")
    if "service_request" in objects:
        contacts = made["contact"]
        for owner, of, assignee, kind, state in (
                ("agent", "rep1", "agent", "CON", "assigned"),
                ("agent", "rep2", "agent2", "CON", "in_progress"),
                ("smgr", "mgr", "agent", "RET", "in_progress"),
                ("smgr", "rep1", "agent2", "INS", "registered"),
                ("rep1", "rep1", None, "CON", "registered"),
                ("rep2", "rep1", None, "RET", "registered"),
                ("mgr", "mgr", "agent", "TRN", "closed"),
                ("smgr", "hybrid", "hybrid", "CMP", "cancelled"),
                ("agent2", "agent", None, "TRN", "registered"),
                ("hybrid", "rep2", "agent", "CMP", "assigned")):
            values = dict(customer=trading[of], service_type=kind, description="fixture", serial_number=f"SN{w.n:05d}",
                          work_hours=str(decimal.Decimal("837.5") + w.n), due_date=w.today.isoformat())
            if state == "closed":
                values["resolution"] = "fixed"   # the guard of `close`
            if assignee:
                values["assignee"] = w.uid(assignee)
            if (of, of) in contacts:
                values["contact"] = contacts[of, of]
            made["service_request"][owner, of, state] = _create(w, "service_request", owner, state, **values)
    for (owner, state), id_ in made["customer"].items():   # now that their children exist
        _reach(w, objects["customer"], id_, state, owner)
    for obj in w.objects:   # objects this file has no recipe for: required fields, owners of each kind
        if obj.name not in made:
            owners = ["rep1", "mgr", "agent"] + [r for r in w.role_users if r in obj.permissions]
            if getattr(obj, "pool", None) is not None:
                owners.append(None)
            for owner in owners:
                made[obj.name][owner] = _create_generic(w, obj, owner)
    if getattr(objects.get("customer"), "pool", None) is not None:     # 公海: no owner
        for state in ("potential", "trading"):
            made["customer"]["pool", state] = _create(w, "customer", None, state, phone=f"0215551{w.n:04d}")
    if "customer" in objects:
        for owner in ("rep1", "mgr"):    # the recycle bin
            id_ = _create(w, "customer", owner, None, name=f"Kbin{w.n:03d} {owner} binned")
            rt.records.delete("customer", id_, SYSTEM)

    # shares (共享): the owner hands out read or edit access
    def share(obj, key, access, *, user=None, department=None):
        if key in made[obj]:
            sharing.share(rt, obj, made[obj][key], SYSTEM, access=access,
                          user_id=w.uid(user) if user else None,
                          department_id=w.department(department) if department else None)
    share("customer", ("rep2", "potential"), "read", user="rep1")
    share("customer", ("rep2", "dormant"), "edit", user="rep1")
    share("customer", ("mgr", "lost"), "read", department="sales_east")
    share("customer", ("rep1", "potential"), "edit", user="agent")      # beyond agent's condition scope
    share("opportunity", ("rep1", "open"), "read", user="agent")        # agent may not read opportunities at all
    share("opportunity", ("rep2", "won"), "edit", user="hybrid")
    share("contact", ("rep2", "rep2"), "read", user="rep1")
    share("contract", ("mgr", "draft"), "edit", user="rep2")
    share("contract", ("rep1", "approved"), "read", user="rep2")        # locked, and only readable
    share("service_request", ("agent2", "agent", "registered"), "read", user="agent")
    share("product", ("mgr", False), "read", user="rep1")               # an inactive product for one rep
    w.made = made
    w.oracle.refresh()


def _first(w, obj, field):
    f = w.spec.objects[obj].fields[field]
    return next(c for c, i in w.spec.dictionaries[f.dictionary].items.items() if i.active)


def open_world(backend, tmp, metadata, overlay=None):
    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp / 'perm.db'}", (lambda: None)
    else:
        url, drop = create_postgres_database()
    config = {"LOOM_DATABASE_URL": url}
    if overlay:
        config["LOOM_OVERLAY"] = str(overlay)
    app = make_app(metadata, tmp, **config)
    rt = runtime_of(app)
    for username, (roles, department) in EXTRA_USERS.items():
        create_user(rt, username, name=username.capitalize(), password="secret123", roles=roles,
                    department=department)
    held = {r for roles, _d in list(USERS.values()) + list(EXTRA_USERS.values()) for r in roles}
    codes = {d.code for d in rt.spec.departments}
    role_users = [r for r in rt.spec.roles if r not in held]
    for role in role_users:
        create_user(rt, role, name=role.capitalize(), password="secret123", roles=[role],
                    department=role if role in codes else None)
    w = World(app, backend)
    w.role_users = role_users
    w.matrix_users = MATRIX_USERS + tuple(role_users)
    return w, drop


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, crm_metadata, tmp_path_factory):
    w, drop = open_world(request.param, tmp_path_factory.mktemp(f"perm_{request.param}"), crm_metadata)
    try:
        build(w)
        yield w
    finally:
        w.rt.close()
        drop()


# ---- reading pages ------------------------------------------------------------------------------------

def ids_in(html, pattern) -> set:
    return {int(i) for i in re.findall(pattern, html)}


def list_ids(html, obj_name) -> set:
    return ids_in(html, rf'class="row-link" href="/o/{obj_name}/(\d+)')


def count_of(html) -> int | None:
    found = re.search(r'class="count">([\d,]+)', html)
    return int(found.group(1).replace(",", "")) if found else None


def value_tokens(w, f, value, *, html=True) -> list:
    """How a value may appear on a page (html) or in a file (only distinctive forms)."""
    if value is None or isinstance(value, bool):
        return []
    if f.type == "dictionary":   # shown as its item's label, in a badge
        items = w.spec.dictionaries[f.dictionary].items
        labels = [items[c].label.text("en") for c in (value if isinstance(value, list) else [value]) if c in items]
        return [f">{label}</span>" for label in labels] if html else []
    if isinstance(value, decimal.Decimal):
        out = {format(value, "f"), f"{value:,}"}
        if value == value.to_integral_value():
            out |= {str(int(value)), f"{int(value):,}"}
        return [t for t in out if len(t) >= 5]
    if isinstance(value, (dt.date, dt.datetime)):
        day = value.astimezone(w.tz).date() if isinstance(value, dt.datetime) else value
        near = {w.today + dt.timedelta(days=d) for d in (-1, 0, 1)}   # creation dates are on every page
        return [] if day in near else [day.isoformat()]
    if isinstance(value, int):
        return [str(value)] if value >= 10000 else []
    if isinstance(value, str):
        return [value] if len(value) >= 6 else []
    return []


def leaks(w, p, obj, text, rows, *, labels=True, html=True) -> list:
    """What `text` shows that the person may not see: fields they may not read (their
    data-field, their label, the rows' values) and titles of records they may not read."""
    oracle, found = w.oracle, []
    readable = oracle.readable_fields(p, obj)
    shown = {obj.fields[n].label.text("en") for n in readable}   # a label a readable field shares is no leak
    for f in obj.fields.values():
        if f.type == "lines":
            shown |= {c.label.text("en") for c in w.spec.objects[f.lines_object].fields.values()}
    for name in sorted(set(obj.fields) - readable):
        f = obj.fields[name]
        if f'data-field="{name}"' in text:
            found.append(f"field {name} is on the page")
        label = f.label.text("en")
        pattern = rf"(>|^|,)\s*{re.escape(label)}\s*(<|$|,)"
        if labels and label and label not in shown and re.search(pattern, text, re.M):
            found.append(f"the label of {name} ({label!r}) is shown")
        for row in rows:
            for token in value_tokens(w, f, row.get(name), html=html):
                if token in text:
                    found.append(f"the value of {name} of #{row['id']} ({token}) is shown")
    for row in rows:
        for f in obj.fields.values():
            if f.type != "lookup" or f.name not in readable or row.get(f.name) is None:
                continue
            target = w.spec.objects[f.target]
            other = oracle.fetch(f.target, row[f.name])
            if other is not None and not oracle.can_read(p, target, other):
                title = other.get(target.title)
                if isinstance(title, str) and len(title) >= 6 and title in text:
                    found.append(f"the title of {f.target} #{other['id']} ({title!r}) is shown: they may not read it")
    return found


def csv_rows(response) -> list:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def xlsx_rows(response) -> list:
    sheet = openpyxl.load_workbook(io.BytesIO(response.get_data())).active
    return [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(values_only=True)]


# ---- object pages: lists, counts, search, schemes, kanban, calendar, export, create, lookups ---------------

def test_object_pages_show_exactly_the_readable_records(world):
    w, oracle = world, world.oracle
    cells = Cells("object pages")
    month = w.today.strftime("%Y-%m")
    for user in w.matrix_users:
        p = oracle.person(user)
        client = w.client(user)
        home = client.get("/").get_data(as_text=True)
        for group in w.spec.menu:
            for item in group.items:
                if item in w.spec.objects:
                    shown = f'href="/o/{item}/"' in home
                    cells.check(shown == oracle.can(p, w.spec.objects[item], "read"), (user, item, "menu"),
                                f"menu entry shown={shown}")
        for obj in w.objects + [w.spec.objects["user"], w.spec.objects["department"]]:
            name = obj.name
            where = lambda *path: (user, name, *path)  # noqa: E731
            can_read = oracle.can(p, obj, "read")
            visible = oracle.visible(p, obj) if can_read else {}
            rows = list(visible.values())
            full = w.full(user, obj)
            if not can_read:
                urls = [f"/o/{name}/", f"/o/{name}/count", f"/o/{name}/new", f"/o/{name}/export.csv"]
                if full:
                    urls += [f"/o/{name}/trash", f"/o/{name}/?q={w.prefix.get(name, 'x')}", f"/o/{name}/lookup?q=a"]
                    urls += [f"/o/{name}/kanban"] if obj.list.kanban else []
                    urls += [f"/o/{name}/calendar"] if obj.list.calendar else []
                for url in urls:
                    cells.status(client.get(url), 404, where(url))
                continue
            # the list and its count
            response = client.get(f"/o/{name}/")
            html = response.get_data(as_text=True)
            if cells.status(response, 200, where("list")):
                cells.same(list_ids(html, name), visible, where("list"))
                for problem in leaks(w, p, obj, html, rows):
                    cells.check(False, where("list"), problem)
            cells.check(count_of(client.get(f"/o/{name}/count").get_data(as_text=True)) == len(visible),
                        where("count"), f"expected {len(visible)}")
            check_hidden_fields(w, cells, p, client, obj, visible, html)
            # creating
            expected = 200 if oracle.can(p, obj, "create") else 403
            cells.status(client.get(f"/o/{name}/new"), expected, where("new"))
            if expected == 403:
                before = len(w.rows(obj))
                response = post(client, f"/o/{name}/new", {obj.title: f"{w.prefix.get(name, 'Kx')}999 forbidden"})
                cells.status(response, 403, where("new POST"))
                cells.check(len(w.rows(obj)) == before, where("new POST"), "a record was created")
            if not oracle.can(p, obj, "export"):
                cells.status(client.get(f"/o/{name}/export.csv"), 403, where("export"))
            if not full:
                continue
            # quick search (every fixture record has the prefix in its title), schemes, the recycle bin:
            # the table fragment a search or a scheme swaps in
            if name in w.prefix:
                term = w.prefix[name]
                expected = {i for i, r in visible.items() if term.lower() in w.title(obj, r).lower()}
                response = client.get(f"/o/{name}/?q={term}", headers=FRAGMENT)
                cells.same(list_ids(response.get_data(as_text=True), name), expected, where("quick search", term))
            for scheme in obj.search.schemes:
                expected = {i for i, r in visible.items() if oracle.matches(p, obj, scheme.where, r)}
                response = client.get(f"/o/{name}/?scheme={scheme.name}", headers=FRAGMENT)
                page = response.get_data(as_text=True)
                if cells.status(response, 200, where("scheme", scheme.name)):
                    cells.same(list_ids(page, name), expected, where("scheme", scheme.name))
                    for problem in leaks(w, p, obj, page, [visible[i] for i in expected]):
                        cells.check(False, where("scheme", scheme.name), problem)
            binned = oracle.visible(p, obj, deleted=True)
            if w.rows(obj, deleted=True):
                response = client.get(f"/o/{name}/trash", headers=FRAGMENT)
                cells.same(ids_in(response.get_data(as_text=True), rf'href="/o/{name}/(\d+)\?deleted=1"'), binned,
                           where("trash"))
                count = count_of(client.get(f"/o/{name}/count?deleted=1").get_data(as_text=True))
                cells.check(count == len(binned), where("trash count"), f"{count}, expected {len(binned)}")
            # the board and the calendar
            if obj.list.kanban:
                response = client.get(f"/o/{name}/kanban")
                html = response.get_data(as_text=True)
                if cells.status(response, 200, where("kanban")):
                    cells.same(ids_in(html, r'class="kcard"[^>]*data-id="(\d+)"'), visible, where("kanban"))
                    for problem in leaks(w, p, obj, html, rows):
                        cells.check(False, where("kanban"), problem)
                if name in w.prefix:
                    term = w.prefix[name]
                    response = client.get(f"/o/{name}/kanban?q={term}")
                    cells.same(ids_in(response.get_data(as_text=True), r'class="kcard"[^>]*data-id="(\d+)"'),
                               {i for i, r in visible.items() if term.lower() in w.title(obj, r).lower()},
                               where("kanban", term))
            if obj.list.calendar:
                start = obj.list.calendar.start
                expected = {i for i, r in visible.items() if r.get(start) is not None and
                            _as_date(r[start], w.tz).strftime("%Y-%m") == month}
                response = client.get(f"/o/{name}/calendar?month={month}")
                html = response.get_data(as_text=True)
                if cells.status(response, 200, where("calendar")):
                    cells.same(ids_in(html, rf'class="event" href="/o/{name}/(\d+)"'), expected, where("calendar"))
                    for problem in leaks(w, p, obj, html, [visible[i] for i in expected]):
                        cells.check(False, where("calendar"), problem)
            # exporting
            if oracle.can(p, obj, "export"):
                for fmt in ("csv", "xlsx") if obj.name in ("customer", "contact") else ("csv",):
                    check_export(w, cells, p, client, obj, visible, fmt)
            # lookups that offer this object's records
            check_lookups(w, cells, p, client, obj, visible)
    cells.verify(w)


def _as_date(value, tz):
    return value.astimezone(tz).date() if isinstance(value, dt.datetime) else value


def check_export(w, cells, p, client, obj, visible, fmt):
    oracle = w.oracle
    where = (p.name, obj.name, f"export.{fmt}")
    response = client.get(f"/o/{obj.name}/export.{fmt}")
    if not oracle.can(p, obj, "export"):
        cells.status(response, 403, where)
        return
    if not cells.status(response, 200, where):
        return
    table = csv_rows(response) if fmt == "csv" else xlsx_rows(response)
    header, body = table[0], table[1:]
    readable = oracle.readable_fields(p, obj)
    for name in sorted(set(obj.fields) - readable):
        label = obj.fields[name].label.text("en")
        cells.check(label not in header, where, f"header has {name} ({label!r})")
    title_label = obj.fields[obj.title].label.text("en")
    if cells.check(title_label in header, where, f"no {title_label!r} column"):
        column = header.index(title_label)
        cells.same([r[column] for r in body], {w.title(obj, r) for r in visible.values()}, where)
    flat = "\n".join(",".join(r) for r in body)
    for problem in leaks(w, p, obj, flat, list(visible.values()), labels=False, html=False):
        cells.check(False, where, problem)


def check_lookups(w, cells, p, client, target, visible):
    """The type-ahead of every lookup field to `target`: readable records passing the field's filter."""
    oracle = w.oracle
    term = w.prefix.get(target.name)
    if term is None:
        return
    seen = set()
    for src in w.spec.objects.values():
        for f in src.fields.values():
            if f.type != "lookup" or f.target != target.name or f.system or f.filter in seen:
                continue
            seen.add(f.filter)   # lookups with the same filter offer the same records
            where = (p.name, target.name, f"lookup for {src.name}.{f.name}")
            response = client.get(f"/o/{target.name}/lookup?{urlencode({'q': term, 'for': f'{src.name}.{f.name}'})}")
            if not cells.status(response, 200, where):
                continue
            offered = ids_in(response.get_data(as_text=True), r'data-id="(\d+)"')
            expected = {i for i, r in visible.items() if term.lower() in w.title(target, r).lower()
                        and oracle.matches(p, target, f.filter, r)}
            cells.check(offered <= expected and len(offered) == min(15, len(expected)), where,
                        f"offered {sorted(offered)}, expected {min(15, len(expected))} of {sorted(expected)}")


# ---- record pages: detail, binned detail, history, related tabs, shares, edit form -------------------------

def test_record_pages_follow_read_rights_and_field_security(world):
    w, oracle = world, world.oracle
    cells = Cells("record pages")
    system_objects = [w.spec.objects["user"], w.spec.objects["department"]]
    for user in w.matrix_users:
        p = oracle.person(user)
        client = w.client(user)
        for obj in w.objects + system_objects:
            name = obj.name
            readable_object = oracle.can(p, obj, "read")
            rows = w.rows(obj)
            if obj.system:  # users and departments: a few of them are enough
                rows = dict(list(rows.items())[:3])
            budget = SAMPLE if w.full(user, obj) else 0
            history_budget, edit_budget, related_budget = budget, budget, defaultdict(lambda: budget)
            for id_, row in rows.items():
                where = (user, name, id_)
                readable = readable_object and oracle.can_read(p, obj, row)
                response = client.get(f"/o/{name}/{id_}")
                if not cells.status(response, 200 if readable else 404, where + ("detail",)):
                    continue
                if not readable:
                    if w.title(obj, row) in response.get_data(as_text=True):
                        cells.check(False, where + ("detail",), "the 404 page names the record")
                    continue
                html = response.get_data(as_text=True)
                full = dict(row, **w.lines(obj, id_)) if obj.owned else row
                for problem in leaks(w, p, obj, html, [full]):
                    cells.check(False, where + ("detail",), problem)
                for f in obj.fields.values():      # lines: their references too
                    if f.type == "lines":
                        child = w.spec.objects[f.lines_object]
                        for problem in leaks(w, p, child, html, full.get(f.name) or [], labels=False):
                            cells.check(False, where + ("detail lines",), problem)
                hidden = set(obj.fields) - oracle.readable_fields(p, obj)
                if hidden and history_budget:
                    history_budget -= 1
                    response = client.get(f"/o/{name}/{id_}/history")
                    if cells.status(response, 200, where + ("history",)):
                        for problem in leaks(w, p, obj, response.get_data(as_text=True), [row]):
                            cells.check(False, where + ("history",), problem)
                for index, rel in enumerate(obj.related):
                    child = w.spec.objects[rel.object]
                    children = {i: r for i, r in w.rows(child).items() if r.get(rel.via) == id_}
                    if not children or not related_budget[index]:
                        continue
                    related_budget[index] -= 1
                    response = client.get(f"/o/{name}/{id_}/related/{index}")
                    if not oracle.can(p, child, "read"):
                        cells.status(response, 404, where + (f"related {rel.object}",))
                        continue
                    if cells.status(response, 200, where + (f"related {rel.object}",)):
                        html = response.get_data(as_text=True)
                        expected = {i for i, r in children.items() if oracle.can_read(p, child, r)}
                        cells.same(ids_in(html, rf'<tr><td><a href="/o/{rel.object}/(\d+)">'), expected,
                                   where + (f"related {rel.object}",))
                        for problem in leaks(w, p, child, html, [children[i] for i in expected]):
                            cells.check(False, where + (f"related {rel.object}",), problem)
                # the edit form of a record one may change: without the fields one may not change
                # (refused edit forms are cells of test_refused_writes_change_nothing)
                if edit_budget and oracle.can_update(p, obj, row) and not oracle.locked(obj, row):
                    edit_budget -= 1
                    response = client.get(f"/o/{name}/{id_}/edit")
                    if cells.status(response, 200, where + ("edit form",)):
                        html = response.get_data(as_text=True)
                        for fname in sorted(set(obj.fields) - oracle.updatable_fields(p, obj)):
                            cells.check(f'name="{fname}"' not in html, where + ("edit form",), f"{fname} is an input")
                        for problem in leaks(w, p, obj, html, [row]):
                            cells.check(False, where + ("edit form",), problem)
            for id_, row in w.rows(obj, deleted=True).items():
                where = (user, name, id_, "binned")
                readable = readable_object and oracle.can_read(p, obj, row)
                cells.status(client.get(f"/o/{name}/{id_}"), 404, where + ("detail",))
                cells.status(client.get(f"/o/{name}/{id_}?deleted=1"), 200 if readable else 404,
                             where + ("detail ?deleted=1",))
    # child objects have no pages of their own: they are read with their parent
    for obj in w.spec.objects.values():
        if obj.child_of:
            some = next(iter(w.rows(obj)), 0)
            for user in w.matrix_users:
                for url in (f"/o/{obj.name}/", f"/o/{obj.name}/{some}", f"/o/{obj.name}/new",
                            f"/o/{obj.name}/export.csv", f"/o/{obj.name}/{some}/edit"):
                    cells.status(w.client(user).get(url), 404, (user, obj.name, url))
    cells.verify(w)


# ---- writes: refused ones change nothing -------------------------------------------------------------------

def _transition_for(lifecycle, row):
    for t in lifecycle.transitions.values():
        if row.get("state") in t.sources:
            return t
    return next(iter(lifecycle.transitions.values()))


def write_attempts(w, p, obj, row, *, deleted=False):
    """(path, url, data, expected status or None when the write would be allowed) for one record."""
    oracle, name, id_ = w.oracle, obj.name, row["id"]
    readable = oracle.can(p, obj, "read") and oracle.can_read(p, obj, row)
    out = []
    if deleted:
        expected = None if readable and oracle.can_delete(p, obj, row) else (403 if readable else 404)
        out += [("restore", f"/o/{name}/{id_}/restore", {}, expected),
                ("purge", f"/o/{name}/{id_}/purge", {}, expected)]
        return out
    locked = oracle.locked(obj, row)
    update = 404 if not readable else (403 if not oracle.can_update(p, obj, row) else None)
    edit = update or (403 if locked else None)
    delete = 404 if not readable else (403 if not oracle.can_delete(p, obj, row) or locked else None)
    title = obj.fields[obj.title]
    new_title = f"{w.title(obj, row)} changed" if title.type in ("text", "textarea") else ""
    out += [("edit form", f"/o/{name}/{id_}/edit", None, edit),
            ("edit", f"/o/{name}/{id_}/edit", {"_version": str(row["version"]), obj.title: new_title}, edit),
            ("delete", f"/o/{name}/{id_}/delete", {}, delete),
            ("bulk delete", f"/o/{name}/bulk", {"action": "delete", "ids": [str(id_)]}, delete)]
    if not readable:  # reading paths of a record one may not read
        out += [(path, f"/o/{name}/{id_}{suffix}", None, 404) for path, suffix in (
            ("history", "/history"), ("shares", "/shares"), ("related", "/related/0"),
            ("approvals panel", "/approvals"), ("diagram", "/diagram.svg"))]
    if obj.owned:
        out += [("assign", f"/o/{name}/{id_}/assign", {"owner": str(p.id)}, update),
                ("bulk assign", f"/o/{name}/bulk", {"action": "assign", "ids": [str(id_)], "owner": str(p.id)}, edit),
                ("share with oneself", f"/o/{name}/{id_}/share", {"target": f"user:{p.id}", "access": "edit"}, update)]
    lifecycle = w.spec.lifecycle_of(obj)
    if lifecycle:
        t = _transition_for(lifecycle, row)
        role = p.superuser or not t.roles or bool(p.roles & set(t.roles))
        expected = 404 if not readable else (403 if update or not role else None)
        out += [("transition form", f"/o/{name}/{id_}/transition/{t.name}", None, 404 if not readable else update),
                (f"transition {t.name}", f"/o/{name}/{id_}/transition/{t.name}",
                 {"comment": "matrix", "version": str(row["version"])}, expected)]
    if obj.list.kanban:
        group = obj.list.kanban.group_by
        other = next((c for c in _lane_values(w, obj) if c != row.get(group)), None)
        if other is not None:
            out.append(("kanban move", f"/o/{name}/{id_}/move", {"value": other, "version": str(row["version"])}, edit))
    return out


def _lane_values(w, obj):
    f = obj.fields[obj.list.kanban.group_by]
    if f.type == "dictionary":
        return list(w.spec.dictionaries[f.dictionary].items)
    if f.type == "state":
        return list(w.spec.lifecycle_of(obj).states)
    return []


def test_refused_writes_change_nothing(world):
    """Every write path, for records of each class (unreadable, readable only, locked,
    not deletable, binned), answers 404 or 403 as the metadata says and changes nothing."""
    w, oracle = world, world.oracle
    cells = Cells("refused writes")
    everything = {obj.name: w.rows(obj) for obj in w.objects}
    for user in w.matrix_users:
        p = oracle.person(user)
        client = w.client(user)
        for obj in w.objects + [w.spec.objects["user"], w.spec.objects["department"]]:
            seen = defaultdict(int)   # (path, expected) -> records tried
            full = w.full(user, obj)
            for deleted in (False, True):
                for id_, row in sorted(w.rows(obj, deleted=deleted).items()):
                    for path, url, data, expected in write_attempts(w, p, obj, row, deleted=deleted):
                        if expected is None or seen[path, expected] >= SAMPLE or not (full or path in CORE_WRITES):
                            continue
                        seen[path, expected] += 1
                        where = (user, obj.name, id_, path)
                        before = w.fingerprint(obj, id_)
                        response = client.get(url) if data is None else post(client, url, data)
                        cells.status(response, expected, where)
                        after = w.fingerprint(obj, id_)
                        if not cells.check(after == before, where, "the refused write changed the record"):
                            w.put_back(obj, before)
    # nothing else changed either (cascades, rollups, shares)
    for obj in w.objects:
        now = w.rows(obj)
        for id_, row in everything[obj.name].items():
            cells.check(now.get(id_, {}).get("version") == row["version"], (obj.name, id_, "after all writes"),
                        "changed by a refused write")
    bulk_mixed(w, cells)
    cells.verify(w)


def bulk_mixed(w, cells):
    """A bulk delete of a record one may delete and one one may not read: all or nothing."""
    oracle = w.oracle
    for user in w.matrix_users:
        p = oracle.person(user)
        for obj in w.objects:
            if not (w.full(user, obj) and oracle.can(p, obj, "delete")):
                continue
            other = next((r for r in w.rows(obj).values() if not oracle.can_read(p, obj, r)), None)
            try:
                mine = w.row(obj, _create_generic(w, obj, user))
            except (AssertionError, ValidationError):
                continue
            if other is None or not oracle.can_delete(p, obj, mine) or oracle.locked(obj, mine):
                w.rt.records.delete(obj.name, mine["id"], SYSTEM)
                continue
            before = w.fingerprint(obj, mine["id"])
            response = post(w.client(user), f"/o/{obj.name}/bulk",
                            {"action": "delete", "ids": [str(mine["id"]), str(other["id"])]})
            where = (user, obj.name, "bulk delete of a deletable and an unreadable record")
            cells.status(response, 404, where)
            cells.check(w.fingerprint(obj, mine["id"]) == before, where, "the deletable one was deleted")
            w.rt.records.delete(obj.name, mine["id"], SYSTEM)
            w.rt.records.purge(obj.name, mine["id"], SYSTEM)


# ---- forms: fields one may not read or change cannot be posted ---------------------------------------

def _posted_value(f, row, w):
    """A new value for a field, as a form would post it."""
    t = f.type
    current = row.get(f.name)
    if t in ("money", "decimal", "percent", "integer"):
        return str(int(current or 0) + 7) if t == "integer" else str(decimal.Decimal(current or 0) + 7)
    if t == "date":
        return "1999-09-09"
    if t == "boolean":
        return "y"
    if t == "dictionary":
        codes = [c for c in w.spec.dictionaries[f.dictionary].items if c != current]
        return codes[0]
    if t in ("user", "department", "lookup"):
        return str(w.uid("admin")) if t == "user" else "1"
    return "posted 9Q7"


def test_forms_ignore_fields_one_may_not_read_or_change(world):
    """Posting a hidden or read-only field (or a system one) through the edit and create
    forms leaves it as it was: only the fields the role may update are taken."""
    w, oracle = world, world.oracle
    cells = Cells("posted fields")
    for user in w.matrix_users:
        p = oracle.person(user)
        client = w.client(user)
        for obj in w.objects:
            forbidden = [f for n, f in obj.fields.items() if n not in oracle.updatable_fields(p, obj)
                         and not f.computed and f.type not in ("lines", "file")]
            forbidden += [obj.fields[n] for n in ("department", "state", "created_by", "version")
                          if n in obj.fields and obj.fields[n] not in forbidden]
            target = next((r for r in w.rows(obj).values() if oracle.can_update(p, obj, r) and not oracle.locked(obj, r)
                           and not any(w.lines(obj, r["id"]).values())), None)
            if target is None:
                continue
            data = {"_version": str(target["version"])}
            data.update({f.name: _posted_value(f, target, w) for f in forbidden})
            response = post(client, f"/o/{obj.name}/{target['id']}/edit", data)
            where = (user, obj.name, target["id"], "edit with " + ", ".join(f.name for f in forbidden))
            cells.status(response, (302, 422), where)
            after = w.row(obj, target["id"])
            for f in forbidden:
                if f.name not in ("version",):
                    cells.check(after.get(f.name) == target.get(f.name), where + (f.name,),
                                f"{target.get(f.name)!r} became {after.get(f.name)!r}")
    # creating: the hidden and read-only fields of a posted new record stay empty
    recipes = {"customer": lambda w: {"name": "Kcu posted new", "category": _first(w, "customer", "category")},
               "service_request": lambda w: {
                   "subject": "Ksr posted new", "customer": str(w.made["customer"]["rep1", "trading"]),
                   "service_type": "CON", "priority": "normal", "description": "posted",
                   "reported_at": dt.datetime.now(w.tz).strftime("%Y-%m-%dT%H:%M")},
               "contact": lambda w: {"name": "Kco posted new", "customer": str(w.made["customer"]["rep1", "trading"]),
                                     "mobile": "13900000000"}}
    for user in w.matrix_users:
        p = oracle.person(user)
        for name, recipe in recipes.items():
            obj = w.spec.objects.get(name)
            if obj is None or not oracle.can(p, obj, "create"):
                continue
            forbidden = [f for n, f in obj.fields.items() if n not in oracle.updatable_fields(p, obj)
                         and not f.computed and f.type not in ("lines", "file") and not f.system]
            if not forbidden:
                continue
            data = recipe(w)
            customer = w.row("customer", int(data["customer"])) if "customer" in data else None
            if customer is not None and not oracle.can_read(p, w.spec.objects["customer"], customer):
                continue   # a lookup one may not choose
            data.update({f.name: _posted_value(f, {}, w) for f in forbidden}, _allow_duplicates="1")
            response = post(w.client(user), f"/o/{name}/new", data)
            where = (user, name, "new with " + ", ".join(f.name for f in forbidden))
            if not cells.status(response, 302, where):
                continue
            id_ = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
            created = w.row(obj, id_)
            for f in forbidden:
                default = None if f.default is None else created.get(f.name)
                cells.check(created.get(f.name) == default and str(created.get(f.name)) != data[f.name],
                            where + (f.name,), f"took the posted {created.get(f.name)!r}")
            w.rt.records.delete(name, id_, SYSTEM)
            w.rt.records.purge(name, id_, SYSTEM)
    cells.verify(w)


# ---- sharing, demotion, disabling: rights follow the current state on the next request ----------------------

def test_sharing_gives_read_and_edit_only_with_edit_access(world):
    w, oracle = world, world.oracle
    cells = Cells("sharing")
    rt = w.rt
    for name in ("customer", "contract", "opportunity"):
        obj = w.spec.objects.get(name)
        if obj is None:
            continue
        values = {"customer": {}, "contract": {"customer": w.made["customer"]["rep2", "trading"], "amount": "1000"},
                  "opportunity": {"customer": w.made["customer"]["rep2", "trading"], "amount": "1000",
                                  "expected_close_date": w.today.isoformat()}}[name]
        id_ = _create(w, name, "rep2", None, **values)
        title = w.title(obj, w.row(obj, id_))
        owner, reader, outsider = w.client("rep2"), w.client("rep1"), w.client("agent")
        where = lambda *path: (name, id_, *path)  # noqa: E731

        def rep1_sees():
            return id_ in list_ids(reader.get(f"/o/{name}/").get_data(as_text=True), name)

        cells.status(reader.get(f"/o/{name}/{id_}"), 404, where("before sharing"))
        cells.check(not rep1_sees(), where("list before sharing"))
        response = post(owner, f"/o/{name}/{id_}/share", {"target": f"user:{w.uid('rep1')}", "access": "read"})
        cells.status(response, 302, where("share read"))
        cells.status(reader.get(f"/o/{name}/{id_}"), 200, where("shared read: detail"))
        cells.check(rep1_sees(), where("shared read: list"))
        version = w.row(obj, id_)["version"]
        response = post(reader, f"/o/{name}/{id_}/edit", {"_version": str(version), obj.title: title + " by rep1"})
        cells.status(response, 403, where("shared read: edit"))
        cells.status(reader.get(f"/o/{name}/{id_}/edit"), 403, where("shared read: edit form"))
        response = post(reader, f"/o/{name}/{id_}/share", {"target": f"user:{w.uid('rep1')}", "access": "edit"})
        cells.status(response, 403, where("shared read: upgrade oneself"))
        cells.check(w.row(obj, id_)["version"] == version, where("shared read"), "changed")
        # an object the role may not read stays closed whatever is shared
        response = post(owner, f"/o/{name}/{id_}/share", {"target": f"user:{w.uid('agent')}", "access": "edit"})
        cells.status(response, 302, where("share with agent"))
        expected = 200 if oracle.can(oracle.person("agent"), obj, "read") else 404
        cells.status(outsider.get(f"/o/{name}/{id_}"), expected, where("shared with a role without read"))
        # edit access
        response = post(owner, f"/o/{name}/{id_}/share", {"target": f"user:{w.uid('rep1')}", "access": "edit"})
        cells.status(response, 302, where("share edit"))
        cells.status(reader.get(f"/o/{name}/{id_}/edit"), 200, where("shared edit: edit form"))
        response = post(reader, f"/o/{name}/{id_}/edit", {"_version": str(w.row(obj, id_)["version"]),
                                                           obj.title: title + " by rep1"})
        cells.status(response, 302, where("shared edit: edit"))
        cells.check(w.row(obj, id_)[obj.title] == title + " by rep1", where("shared edit"), "not saved")
        cells.status(post(reader, f"/o/{name}/{id_}/delete"), 403, where("shared edit: delete"))
        cells.check(w.row(obj, id_)["deleted_at"] is None, where("shared edit: delete"), "deleted")
        # a department share reaches its members only
        shares = [s for s in w.shares() if s["object"] == name and s["record_id"] == id_]
        for s in shares:
            response = post(owner, f"/o/{name}/{id_}/share/{s['id']}/delete")
            cells.status(response, 302, where("unshare"))
        cells.status(reader.get(f"/o/{name}/{id_}"), 404, where("after unsharing"))
        post(owner, f"/o/{name}/{id_}/share", {"target": f"department:{w.department('sales_east')}", "access": "read"})
        cells.status(reader.get(f"/o/{name}/{id_}"), 200, where("department share, member"))
        cells.status(w.client("hybrid").get(f"/o/{name}/{id_}"), 404, where("department share, outsider"))
        rt.records.delete(name, id_, SYSTEM)
        rt.records.purge(name, id_, SYSTEM)
        with rt.records.transaction() as conn:
            table = rt.schema.system["share"]
            conn.execute(table.delete().where(table.c.object == name, table.c.record_id == id_))
    w.oracle.refresh()
    cells.verify(w)


def test_a_demoted_or_moved_user_loses_old_rights_on_the_next_request(world):
    w, rt = world, world.rt
    cells = Cells("demotion")
    user = create_user(rt, "movable", name="Movable", password="secret123", roles=["sales_manager"], department="sales")
    client = signed_in(w.app, "movable")
    customer = w.made["customer"]["rep1", "trading"]
    opp = w.made["opportunity"]["rep1", "open"]

    def change(**values):
        record = rt.records.get("user", user["id"], SYSTEM)
        rt.records.update("user", user["id"], values, SYSTEM, version=record["version"], system=True)

    cells.status(client.get(f"/o/customer/{customer}"), 200, ("manager", "rep1's customer"))
    cells.status(client.get("/o/customer/export.csv"), 200, ("manager", "export"))
    change(department=w.department("sales_north"))     # moved: the tree below sales_north only
    cells.status(client.get(f"/o/customer/{customer}"), 404, ("moved to sales_north", "rep1's customer"))
    cells.status(client.get(f"/o/customer/{w.made['customer']['rep2', 'trading']}"), 200,
                 ("moved to sales_north", "rep2's customer"))
    change(department=w.department("sales"), roles=["sales_rep"])   # demoted
    cells.status(client.get(f"/o/customer/{customer}"), 404, ("demoted", "rep1's customer"))
    cells.status(client.get(f"/o/opportunity/{opp}/edit"), 404, ("demoted", "rep1's opportunity"))
    cells.status(client.get("/o/customer/export.csv"), 403, ("demoted", "export"))
    w.oracle.refresh()
    cells.same(list_ids(client.get("/o/customer/").get_data(as_text=True), "customer"),
               w.oracle.visible(w.oracle.person("movable"), w.spec.objects["customer"]), ("demoted", "customer list"))
    change(roles=["service_agent"])
    cells.status(client.get("/o/opportunity/"), 404, ("now an agent", "opportunities"))
    cells.status(client.get("/o/customer/new"), 403, ("now an agent", "new customer"))
    change(roles=["admin"])
    cells.status(client.get("/admin/"), 200, ("promoted", "admin"))
    change(roles=["finance"])
    cells.status(client.get("/admin/"), 403, ("demoted from admin", "admin"))
    cells.status(client.get(f"/o/customer/{customer}/edit"), 403, ("demoted from admin", "edit"))
    # disabled: the session ends at once
    change(active=False)
    response = client.get(f"/o/customer/{customer}")
    cells.check(response.status_code == 302 and "/login" in response.headers["Location"], ("disabled", "detail"),
                f"status {response.status_code}")
    response = client.get("/o/customer/", headers={"HX-Request": "true"})
    cells.status(response, 401, ("disabled", "htmx list"))
    change(active=True)
    response = client.get("/o/customer/")
    cells.check(response.status_code == 302, ("enabled again", "old session"), "the ended session came back")
    rt.records.delete("user", user["id"], SYSTEM)
    cells.verify(w)


# ---- approvals, admin pages, users and departments ------------------------------------------------------------

def test_approval_pages_for_the_involved_and_the_readers_only(world):
    w, oracle = world, world.oracle
    cells = Cells("approvals")
    for obj in w.objects:
        for id_, row in w.rows(obj).items():
            for flow in w.rt.workflows.flows_of(obj, id_):
                involved = {flow["submitter_id"]} | {t["user_id"] for t in flow["tasks"]}
                current = {t["user_id"] for t in flow["tasks"] if t["step"] == flow["step"]
                           and t["decision"] == "pending"} if flow["status"] == "pending" else set()
                for user in w.matrix_users:
                    p = oracle.person(user)
                    where = (user, obj.name, id_, f"approval {flow['id']}")
                    allowed = p.id in involved or (oracle.can(p, obj, "read") and oracle.can_read(p, obj, row))
                    response = w.client(user).get(f"/approvals/{flow['id']}")
                    if cells.status(response, 200 if allowed else 404, where) and allowed:
                        for problem in leaks(w, p, obj, response.get_data(as_text=True), [row]):
                            cells.check(False, where, problem)
                    if p.id not in current and flow["status"] == "pending":
                        before = w.rt.workflows.approval(flow["id"])
                        response = post(w.client(user), f"/approvals/{flow['id']}/approve", {"comment": "x"})
                        cells.status(response, (403, 409) if allowed else 404, where + ("approve",))
                        if p.id != flow["submitter_id"]:
                            response = post(w.client(user), f"/approvals/{flow['id']}/recall", {})
                            cells.status(response, (403, 409) if allowed else 404, where + ("recall",))
                        cells.check(w.rt.workflows.approval(flow["id"]) == before, where, "the approval changed")
    cells.check(cells.count > 0, "approvals", "the fixture has no approvals")
    cells.verify(w)


def test_admin_users_and_departments(world):
    w, oracle = world, world.oracle
    cells = Cells("admin and directory")
    for user in w.matrix_users:
        p = oracle.person(user)
        client = w.client(user)
        for url in ("/admin/", "/admin/roles", "/admin/logins", "/admin/operations", "/admin/transfer",
                    "/admin/workflows"):
            cells.status(client.get(url), 200 if p.superuser else 403, (user, url))
        if not p.superuser:
            response = post(client, "/admin/transfer", {"from": str(w.uid("rep2")), "to": str(p.id)})
            cells.status(response, 403, (user, "transfer"))
        for name in ("user", "department"):
            expected = set(w.rows(name))
            cells.same(list_ids(client.get(f"/o/{name}/").get_data(as_text=True), name), expected, (user, name, "list"))
        if p.superuser:
            continue
        me = p.id
        response = post(client, f"/o/user/{me}/edit", {"_version": str(w.row("user", me)["version"]),
                                                      "name": "Promoted", "roles": "admin"})
        cells.status(response, 403, (user, "edit own user record"))
        cells.check(set(w.row("user", me)["roles"]) == set(p.roles), (user, "own roles"), "changed")
    cells.verify(w)


# ---- field security on every path, with fields hidden where lists, search, boards and calendars use them ----

# The shipped CRM hides no field that a list filters, sorts or quick-searches on, that a board
# groups or sums by, that a calendar places records by or that a scheme selects on. This overlay
# does (only adding field_permissions, list columns and filters and one scheme), so that each
# of those paths has something to hide.
OVERLAY = {
    "objects/customer.yaml": """\
extends: customer
list:
  columns: [code, name, category, industry, region, value_class, state, owner, annual_revenue]
  filters: [category, industry, region, value_class, state, owner, annual_revenue]
search:
  schemes:
    - {name: big_revenue, label: {en: Big revenue}, where: {field: annual_revenue, op: gte, value: 5000000}}
field_permissions:
  industry: {read: [sales_manager]}
  phone: {read: [sales_manager, sales_rep]}
""",
    "objects/opportunity.yaml": """\
extends: opportunity
field_permissions:
  amount: {read: [sales_manager]}
  weighted_amount: {read: [sales_manager]}
  stage: {read: [sales_manager, sales_rep]}
""",
    "objects/contact.yaml": """\
extends: contact
field_permissions:
  next_contact_date: {read: [sales_rep, sales_manager]}
""",
}
OVERLAY_USERS = ("rep1", "mgr", "agent", "smgr", "fin")


@pytest.fixture(scope="module", params=BACKENDS)
def overlay_world(request, crm_metadata, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"perm_overlay_{request.param}")
    for path, text in OVERLAY.items():
        (tmp / "overlay" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "overlay" / path).write_text(text)
    w, drop = open_world(request.param, tmp, crm_metadata, overlay=tmp / "overlay")
    try:
        spec = w.spec
        industries = [c for c, i in spec.dictionaries[spec.objects["customer"].fields["industry"].dictionary]
                      .items.items() if i.active]
        stages = [c for c, i in spec.dictionaries[spec.objects["opportunity"].fields["stage"].dictionary]
                  .items.items() if i.active]
        for n, owner in enumerate(("rep1", "rep2", "mgr", "agent")):
            for k, state in enumerate(("potential", "trading")):
                customer = _create(w, "customer", owner, state, industry=industries[(2 * n + k) % len(industries)],
                                   phone=f"0215559{n}{k}77", annual_revenue=str(1000000 + 3000000 * k + n))
                if state == "trading":
                    _create(w, "contact", owner, None, customer=customer, mobile=f"1390000{n}{k}11",
                            next_contact_date=(w.today + dt.timedelta(days=n)).isoformat())
                    for m, amount in enumerate(("2000000", "1000")):
                        _create(w, "opportunity", owner, None, customer=customer, amount=amount,
                                stage=stages[(n + m) % len(stages)],
                                expected_close_date=(w.today + dt.timedelta(days=m)).isoformat())
        w.oracle.refresh()
        yield w
    finally:
        w.rt.close()
        drop()


def _references(cond) -> set:
    """The fields a condition looks at (first step of each path)."""
    if cond is None:
        return set()
    out = set()
    path = getattr(cond, "path", None)
    if isinstance(path, tuple) and path and isinstance(path[0], str):
        out.add(path[0])
    for attr in ("items", "item", "value"):
        value = getattr(cond, attr, None)
        for part in value if isinstance(value, tuple) else (value,):
            if part is not None and hasattr(part, "__dataclass_fields__"):
                out |= _references(part)
    return out


def check_hidden_fields(w, cells, p, client, obj, visible, html):
    """Fields the person may not read cannot sort, filter, quick-search or select a scheme's
    records (`html`: the full list page)."""
    name, rows = obj.name, list(visible.values())
    hidden = sorted(set(obj.fields) - w.oracle.readable_fields(p, obj))
    where = lambda *path: (p.name, name, *path)  # noqa: E731
    default_order = re.findall(rf'class="row-link" href="/o/{name}/(\d+)', html)
    for h in hidden:
        f = obj.fields[h]
        sample = next((r for r in rows if r.get(h) not in (None, "", [])), None)
        # sorting: refused, or not applied
        if f.stored and f.type not in ("textarea", "lines", "file"):
            for key in (h, f"-{h}"):
                response = client.get(f"/o/{name}/?s={key}", headers=FRAGMENT)
                order = re.findall(rf'class="row-link" href="/o/{name}/(\d+)', response.get_data(as_text=True))
                cells.check(400 <= response.status_code < 500 or order == default_order, where("sort", key),
                            f"status {response.status_code}, order {order}")
                if w.oracle.can(p, obj, "export"):
                    response = client.get(f"/o/{name}/export.csv?s={key}")
                    body = [r[0] for r in csv_rows(response)[1:]] if response.status_code == 200 else []
                    plain = [r[0] for r in csv_rows(client.get(f"/o/{name}/export.csv"))[1:]]
                    cells.check(400 <= response.status_code < 500 or body == plain, where("export sort", key),
                                f"status {response.status_code}")
        # filtering: ignored (or refused)
        if sample is not None:
            value = sample[h]
            text = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)
            params = ({f"f.{h}.from": text, f"f.{h}.to": text} if f.value_type in
                      ("integer", "decimal", "percent", "money", "date", "datetime", "formula", "rollup")
                      else {f"f.{h}": text})
            response = client.get(f"/o/{name}/?{urlencode(params)}", headers=FRAGMENT)
            cells.check(400 <= response.status_code < 500 or
                        list_ids(response.get_data(as_text=True), name) == set(visible),
                        where("filter", h), f"status {response.status_code}, ids "
                        f"{sorted(list_ids(response.get_data(as_text=True), name))} of {sorted(visible)}")
            count = count_of(client.get(f"/o/{name}/count?{urlencode(params)}").get_data(as_text=True))
            cells.check(count in (None, len(visible)), where("count filter", h), f"{count} of {len(visible)}")
        # quick search: a term only the hidden field holds finds nothing
        if h in obj.search.quick and sample is not None:
            term = str(sample[h])
            quick = [n for n in obj.search.quick if n not in hidden]
            expected = {i for i, r in visible.items()
                        if any(term.lower() in str(r.get(n) or "").lower() for n in quick)}
            response = client.get(f"/o/{name}/?{urlencode({'q': term})}", headers=FRAGMENT)
            cells.same(list_ids(response.get_data(as_text=True), name), expected, where("quick search", h))
        # schemes that select on the field: not offered, not applied
        for scheme in obj.search.schemes:
            if h not in _references(scheme.where):
                continue
            cells.check(f"?scheme={scheme.name}\"" not in html, where("scheme offered", scheme.name))
            response = client.get(f"/o/{name}/?scheme={scheme.name}", headers=FRAGMENT)
            cells.check(400 <= response.status_code < 500 or
                        list_ids(response.get_data(as_text=True), name) == set(visible),
                        where("scheme", scheme.name), f"status {response.status_code}")


def test_field_security_on_every_path(overlay_world):
    """A field a role may not read is nowhere for them: not a list column, not an export
    header or cell, not on a board or a calendar, and it cannot filter, sort, quick-search
    or select a scheme's records."""
    w, oracle = overlay_world, overlay_world.oracle
    cells = Cells("field security")
    month = w.today.strftime("%Y-%m")
    for user in OVERLAY_USERS:
        p = oracle.person(user)
        client = w.client(user)
        for name in ("customer", "contact", "opportunity"):
            obj = w.spec.objects[name]
            if not oracle.can(p, obj, "read"):
                continue
            visible = oracle.visible(p, obj)
            rows = list(visible.values())
            hidden = sorted(set(obj.fields) - oracle.readable_fields(p, obj))
            where = lambda *path: (user, name, *path)  # noqa: E731
            page = client.get(f"/o/{name}/")
            html = page.get_data(as_text=True)
            cells.same(list_ids(html, name), visible, where("list"))
            for problem in leaks(w, p, obj, html, rows):
                cells.check(False, where("list"), problem)
            check_hidden_fields(w, cells, p, client, obj, visible, html)
            # exports
            if oracle.can(p, obj, "export"):
                check_export(w, cells, p, client, obj, visible, "csv")
            # boards: no board grouped by a hidden field, no hidden sums, no hidden card fields
            kanban = obj.list.kanban
            if kanban:
                response = client.get(f"/o/{name}/kanban")
                if kanban.group_by in hidden:
                    cells.status(response, (403, 404), where("kanban grouped by", kanban.group_by))
                elif cells.status(response, 200, where("kanban")):
                    html = response.get_data(as_text=True)
                    cells.same(ids_in(html, r'class="kcard"[^>]*data-id="(\d+)"'), visible, where("kanban"))
                    for problem in leaks(w, p, obj, html, rows):
                        cells.check(False, where("kanban"), problem)
                    if kanban.sum in hidden:
                        cells.check("lane-total" not in html, where("kanban sum", kanban.sum), "lane totals shown")
            calendar = obj.list.calendar
            if calendar:
                response = client.get(f"/o/{name}/calendar?month={month}")
                if calendar.start in hidden:
                    cells.status(response, (403, 404), where("calendar by", calendar.start))
                elif cells.status(response, 200, where("calendar")):
                    html = response.get_data(as_text=True)
                    for problem in leaks(w, p, obj, html, rows):
                        cells.check(False, where("calendar"), problem)
            # a detail page and its history
            for row in rows[:1]:
                for suffix in ("", "/history"):
                    response = client.get(f"/o/{name}/{row['id']}{suffix}")
                    if cells.status(response, 200, where(row["id"], suffix or "detail")):
                        for problem in leaks(w, p, obj, response.get_data(as_text=True), [row]):
                            cells.check(False, where(row["id"], suffix or "detail"), problem)
    cells.verify(w)


def test_zz_matrix_size(world):
    """Not a check: the number of cells the matrix checked on this backend."""
    total = sum(n for (name, backend), n in TOTALS.items() if backend == world.backend)
    print(f"\npermission matrix [{world.backend}]: {total} cells")
