"""The permission policy: one place that answers "may this actor do X" for a record, and
produces the SQL filter that limits a query to the rows the actor may read.

Scopes per role and action come from metadata (`none`, `own`, `department`,
`department_tree`, `all`, or a condition); an actor's rights are the union over their
roles; superusers may do everything. `department_tree` becomes one indexed condition,
`department IN (ids of the subtree)`, with the subtree computed from the department
table (small, and cached until a department changes) instead of a recursive query per row.
Child objects follow their parent. Users and departments are readable by everyone signed
in (they are the directory other records refer to) and writable by superusers.

Sharing (共享) adds records to what an actor may read (access `read`) or read and change
(`edit`): shares name a user or a department, and count for actors whose roles grant any
read access to the object (an object closed to a role stays closed).

Field security: `field_permissions` name the roles that may read or update a field; for
everyone else the field is absent (readable_fields) or read-only (updatable_fields).
"""
from __future__ import annotations

import threading

import sqlalchemy as sa

from ..compiler.conditions import Context
from ..metadata.spec import ObjectSpec
from .actor import Actor

ACTIONS = ("create", "read", "update", "delete", "export")


def _formula_names(expr: str) -> frozenset:
    from ..records.computed import _expression
    return _expression(expr).names


class Policy:
    def __init__(self, runtime):
        self.runtime = runtime
        self.spec = runtime.spec
        self._tree = None
        self._lock = threading.Lock()

    # ---- the department tree ---------------------------------------------------------

    def departments_changed(self):
        with self._lock:
            self._tree = None

    def _children(self, conn) -> dict:
        with self._lock:
            if self._tree is None:
                table = self.runtime.table("department")
                rows = conn.execute(sa.select(table.c.id, table.c.parent).where(table.c.deleted_at.is_(None)))
                tree: dict = {}
                for id_, parent in rows:
                    tree.setdefault(parent, []).append(id_)
                self._tree = tree
            return self._tree

    def subtree(self, conn, department_id) -> list:
        if department_id is None:
            return []
        children, out, todo = self._children(conn), [], [department_id]
        while todo:
            d = todo.pop()
            if d in out:
                continue
            out.append(d)
            todo.extend(children.get(d, ()))
        return out

    # ---- rights ------------------------------------------------------------------------

    def _owner_object(self, obj: ObjectSpec) -> ObjectSpec:
        return self.spec.objects[obj.child_of] if obj.child_of else obj

    def scopes(self, actor: Actor, obj: ObjectSpec, action: str) -> list:
        """The scopes the actor's roles grant for an action ([] = nothing)."""
        obj = self._owner_object(obj)
        if actor.superuser:
            return ["all"]
        if obj.system:
            return ["all"] if action == "read" else []
        found = []
        for role in actor.roles:
            perm = obj.permissions.get(role)
            if perm is None:
                continue
            value = getattr(perm, action)
            if value is True:
                value = "all"
            if value in (False, None, "none"):
                continue
            found.append(value)
        return ["all"] if "all" in found else found

    # ---- fields --------------------------------------------------------------------------

    def _fields(self, actor: Actor, obj: ObjectSpec, action: str) -> frozenset:
        names = set(obj.fields)
        if actor.superuser:
            return frozenset(names)
        for name, rule in obj.field_permissions.items():
            allowed = getattr(rule, action)
            if allowed is not None and not (actor.roles & set(allowed)):
                names.discard(name)
        return frozenset(names)

    def readable_fields(self, actor: Actor, obj: ObjectSpec) -> frozenset:
        """Fields the actor may read. A formula computed from a field they may not read is
        hidden with it (weighted_amount would otherwise reveal amount)."""
        names = self._fields(actor, obj, "read")
        if len(names) == len(obj.fields):
            return names
        hidden = set(obj.fields) - names
        changed = True
        while changed:
            changed = False
            for f in obj.fields.values():
                if f.type == "formula" and f.name not in hidden and _formula_names(f.expr) & hidden:
                    hidden.add(f.name)
                    changed = True
        return frozenset(set(obj.fields) - hidden)

    def updatable_fields(self, actor: Actor, obj: ObjectSpec) -> frozenset:
        return self._fields(actor, obj, "update") & self.readable_fields(actor, obj)

    # ---- sharing ---------------------------------------------------------------------------

    def _shared(self, actor: Actor, obj: ObjectSpec, table, action: str):
        """`id IN (records shared with the actor)`, or None when shares cannot apply."""
        if actor.id is None or actor.superuser or obj.system or obj.child_of:
            return None
        if not self.scopes(actor, obj, "read"):
            return None
        share = self.runtime.schema.system["share"]
        who = share.c.user_id == actor.id
        if actor.department_id is not None:
            who = sa.or_(who, share.c.department_id == actor.department_id)
        q = sa.select(share.c.record_id).where(share.c.object == obj.name, who)
        if action != "read":
            q = q.where(share.c.access == "edit")
        return table.c.id.in_(q)

    def _sees_pool(self, actor: Actor, obj: ObjectSpec) -> bool:
        """Pool roles read the records without an owner (公海)."""
        return obj.pool is not None and bool(actor.roles & set(obj.pool.roles))

    def can(self, actor: Actor, obj: ObjectSpec, action: str) -> bool:
        """Whether the actor may do `action` to some record of the object."""
        return bool(self.scopes(actor, obj, action)) or (action == "read" and self._sees_pool(actor, obj))

    def context(self, actor: Actor, conn=None, fetch=None) -> Context:
        from zoneinfo import ZoneInfo
        return Context(user_id=actor.id, department_id=actor.department_id,
                       timezone=ZoneInfo(self.spec.timezone), fetch=fetch)

    def _scope_sql(self, conn, actor, obj, table, scope):
        c = table.c
        if scope == "all":
            return sa.true()
        if scope == "own":
            return c.owner == actor.id if actor.id is not None else sa.false()
        if scope == "department":
            return c.department == actor.department_id if actor.department_id is not None else sa.false()
        if scope == "department_tree":
            ids = self.subtree(conn, actor.department_id)
            return c.department.in_(ids) if ids else sa.false()
        return self.runtime.conditions.sql(obj, scope, self.context(actor))

    def filter(self, conn, actor: Actor, obj: ObjectSpec, table=None, action: str = "read"):
        """SQL limiting `table` (the object's, or an alias) to rows the actor may `action`."""
        table = table if table is not None else self.runtime.table(obj)
        scopes = self.scopes(actor, obj, action)
        shared = self._shared(actor, obj, table, action) if action in ("read", "update") else None
        if not scopes:
            if action == "read" and self._sees_pool(actor, obj):
                pool = table.c.owner.is_(None)
                return sa.or_(pool, shared) if shared is not None else pool
            return shared if shared is not None else sa.false()
        if obj.child_of:  # rows of a child follow their parent
            parent = self.spec.objects[obj.child_of]
            ptable = self.runtime.table(parent).alias()
            inner = sa.select(ptable.c.id).where(self.filter(conn, actor, parent, ptable, action))
            return table.c[obj.child_of].in_(inner) if scopes != ["all"] else sa.true()
        parts = [self._scope_sql(conn, actor, obj, table, s) for s in scopes]
        if shared is not None and scopes != ["all"]:
            parts.append(shared)
        if action == "read" and scopes != ["all"] and self._sees_pool(actor, obj):
            parts.append(table.c.owner.is_(None))
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def allows(self, conn, actor: Actor, obj: ObjectSpec, action: str, record: dict, fetch=None) -> bool:
        """Whether the actor may `action` this record (a dict of its values)."""
        scopes = self.scopes(actor, obj, action)
        if action in ("read", "update") and record.get("id") is not None and scopes != ["all"]:
            table = self.runtime.table(obj)
            shared = self._shared(actor, obj, table, action)
            if shared is not None and conn.execute(sa.select(table.c.id).where(
                    table.c.id == record["id"], shared)).first() is not None:
                return True
        if action == "read" and record.get("owner") is None and self._sees_pool(actor, obj) and not obj.child_of:
            return True
        if not scopes:
            return False
        if obj.child_of:
            return True  # checked on the parent by the caller
        for scope in scopes:
            if scope == "all":
                return True
            if scope == "own" and actor.id is not None and record.get("owner") == actor.id:
                return True
            if scope == "department" and actor.department_id is not None \
                    and record.get("department") == actor.department_id:
                return True
            if scope == "department_tree" and record.get("department") in self.subtree(conn, actor.department_id):
                return True
            if not isinstance(scope, str) and self.runtime.conditions.matches(
                    obj, scope, record, self.context(actor, fetch=fetch)):
                return True
        return False
