"""Lifecycles and approval flows (状态流转与审批流), run through the record service.

A transition is an update of the record's state (plus its `set` values and whatever the
person filled in), checked against the lifecycle — the record is in one of the
transition's `from` states, the actor may update the record and holds one of the
transition's roles (when it names any), its `when` guard holds, a comment is given when
required, and no approval is in flight — and written in one transaction with a history
entry carrying the comment. Locked states refuse ordinary edits; transitions still move them.

A transition with `approval:` moves the record to its `to` state and starts the flow.
The flow keeps a snapshot of its steps and outcomes (`definition`), so editing the YAML
never re-routes a flow in flight. Steps run in file order; a step whose `when` is false
is skipped; its approvers are resolved when it becomes current (a role's active users,
the submitter's department manager walking up the tree, a user field of the record, or
named users; the submitter is left out unless `allow_self_approval`). With `policy: any`
one approval completes the step, with `all` every approver's. A rejection ends the flow.
The outcome (`on_approved` / `on_rejected`) moves the record and sets its values.
Decisions lock the flow's row and change a task only while it is pending, so two
approvers at once, a double click or a late click on a finished flow give one outcome
and a clear message.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import sqlalchemy as sa

from ..i18n import Message, _
from ..metadata.build import condition as build_condition
from ..metadata.build import raw_condition, raw_value, value_of
from ..metadata.spec import ApprovalFlow, FieldRef, Label, Lifecycle, ObjectSpec, Transition, Var
from ..automations import notifications
from ..records import history
from ..records.coerce import coerce
from ..records.errors import Conflict, Forbidden, NotFound, ValidationError
from ..records.service import valid_id
from ..security.actor import Actor

UTC = dt.timezone.utc


class _Labels(tuple):
    """Labels joined in the reader's language (a message parameter)."""

    def text(self, lang=None) -> str:
        return ", ".join(x.text(lang) if hasattr(x, "text") else str(x) for x in self)


class Workflows:
    def __init__(self, runtime):
        self.runtime = runtime
        self.spec = runtime.spec
        self.records = runtime.records
        self.approvals = runtime.schema.system["approval"]
        self.tasks = runtime.schema.system["approval_task"]

    # ---- lifecycles ----------------------------------------------------------------------

    def lifecycle(self, obj: ObjectSpec) -> Lifecycle:
        lifecycle = self.spec.lifecycle_of(obj)
        if lifecycle is None:
            raise NotFound(_("{object} has no lifecycle"), object=obj.label)
        return lifecycle

    def pending_approval(self, conn, obj: ObjectSpec, record_id: int, *, lock: bool = False):
        a = self.approvals
        q = sa.select(a).where(a.c.object == obj.name, a.c.record_id == record_id, a.c.status == "pending")
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        return conn.execute(q).mappings().first()

    def _refusal(self, conn, obj, lifecycle, t: Transition, record, actor: Actor):
        """Why the actor may not take this transition now (a Message), or None."""
        if record.get("state") not in t.sources:
            state = lifecycle.states.get(record.get("state"))
            return Message(_("'{transition}' is not possible while the record is {state}"),
                           transition=t.label, state=state.label if state else record.get("state"))
        if t.roles and not actor.superuser and not (actor.roles & set(t.roles)):
            return Message(_("only {roles} may take '{transition}'"), transition=t.label,
                           roles=_Labels(self.spec.roles[r].label if r in self.spec.roles else r for r in t.roles))
        if not self.records._allowed(conn, actor, obj, "update", record):
            # roles narrow who may move a record, never widen it: a record shared for reading,
            # or read through a wider read scope, is not one's to move
            return Message(_("you may not change this {object}"), object=obj.label)
        if t.when is not None and not self.runtime.conditions.matches(obj, t.when, record,
                                                                      self.records.context(actor, conn)):
            return Message(_("the conditions for '{transition}' are not met"), transition=t.label)
        return None

    def available(self, obj, record_id: int, actor: Actor, *, conn=None) -> list[Transition]:
        """The transitions this actor may take on this record now, in file order."""
        obj = self.records.obj(obj)
        lifecycle = self.spec.lifecycle_of(obj)
        if lifecycle is None:
            return []
        with self.records.reading(conn) as conn:
            record = self.records._readable(conn, obj, record_id, actor)
            return [t for t in lifecycle.transitions.values()
                    if self._refusal(conn, obj, lifecycle, t, record, actor) is None]

    def transition(self, obj, record_id: int, name: str, actor: Actor, *, comment: str | None = None,
                   values: dict | None = None, version: int | None = None, conn=None) -> dict:
        """Take a transition. Refused with a clear message, changing nothing, when not allowed."""
        obj = self.records.obj(obj)
        if not valid_id(record_id):
            raise NotFound(_("{object} #{id} does not exist or you may not see it"), object=obj.label, id=record_id)
        lifecycle = self.lifecycle(obj)
        t = lifecycle.transitions.get(name)
        if t is None:
            raise NotFound(_("{object} has no transition '{name}'"), object=obj.label, name=name)
        comment = (comment or "").strip() or None
        with self.records.transaction(conn) as conn:
            # lock a flow in flight before the record, in the order decide() and recall() take them,
            # so a transition racing a decision waits instead of deadlocking
            pending = self.pending_approval(conn, obj, record_id, lock=True)
            record = self.records._readable(conn, obj, record_id, actor, lock=True)
            if version is not None and record["version"] != version:
                raise Conflict(_("someone else changed this record meanwhile; reload it and try again"),
                               current=record)
            refusal = self._refusal(conn, obj, lifecycle, t, record, actor)
            if refusal is not None:
                raise Forbidden(refusal)
            if t.require_comment and not comment:
                raise ValidationError({"comment": [Message(_("a comment is required to {transition}"),
                                                           transition=t.label)]})
            if pending is not None:  # the lifecycle allows leaving the state mid-approval: the flow ends
                if t.approval:
                    raise Forbidden(_("an approval is in progress; wait for it or recall it"))
                self._close(conn, dict(pending), "cancelled")
            extra = {"state": t.to, **self._set_values(obj, t.set, record, actor, conn)}
            updated = self.records._apply_update(conn, obj, record, values or {}, actor, system=False,
                                                 comment=comment, action="transition", extra=extra)
            if t.approval:
                self._start(conn, obj, updated, t, record.get("state"), actor, comment)
            self.records.emit(conn, obj, f"transition:{t.name}", record, updated, actor)
            return updated

    def _set_values(self, obj, values, record, actor, conn) -> dict:
        """A transition's or outcome's `set` (spec values, or raw ones from a snapshot):
        literals coerced to the field's type, $variables, {field: other}."""
        out = {}
        ctx = self.records.context(actor, conn)
        for name, raw in values.items():
            value = value_of(raw) if isinstance(raw, (str, dict, list)) else raw
            f = obj.fields[name]
            if isinstance(value, FieldRef):   # a path through lookups is followed
                out[name] = self.runtime.conditions.value_at(obj, value.path, record, ctx)[0]
            elif isinstance(value, Var):
                out[name] = self.records._default(replace(f, default=value), actor, ctx)
            else:
                out[name] = coerce(f, value, self.records.timezone)
        return out

    def _note(self, conn, obj, record, actor, action, comment, changes=None):
        """A history entry that changes nothing in the record (an intermediate approval)."""
        history.record(conn, self.records.history_table, obj.name, [dict(
            record_id=record["id"], action=action, at=dt.datetime.now(UTC), user_id=actor.id,
            changes=changes, comment=comment, version=record["version"])])

    # ---- approval flows ------------------------------------------------------------------

    def _definition(self, flow: ApprovalFlow) -> dict:
        def outcome(o):
            return {"to": o.to, "set": {k: raw_value(v) for k, v in o.set.items()}}
        return {"label": list(flow.label.texts), "allow_self_approval": flow.allow_self_approval,
                "steps": [{"name": s.name, "label": list(s.label.texts), "policy": s.policy,
                           "approvers": [s.approvers.kind, list(s.approvers.value) if isinstance(s.approvers.value, tuple)
                                         else s.approvers.value], "when": raw_condition(s.when)} for s in flow.steps],
                "on_approved": outcome(flow.on_approved), "on_rejected": outcome(flow.on_rejected)}

    def _start(self, conn, obj, record, t: Transition, from_state, actor: Actor, comment):
        flow = self.spec.workflows[t.approval]
        now = dt.datetime.now(UTC)
        approval_id = conn.execute(self.approvals.insert().values(
            object=obj.name, record_id=record["id"], flow=flow.name, transition=t.name, from_state=from_state,
            submitter_id=actor.id, status="pending", step=-1, definition=self._definition(flow), comment=comment,
            created_at=now, version=1).returning(self.approvals.c.id)).scalar_one()
        approval = conn.execute(sa.select(self.approvals).where(self.approvals.c.id == approval_id)).mappings().one()
        self._advance(conn, obj, dict(approval), record, actor)

    def _users_with_role(self, conn, role) -> list[int]:
        side = self.runtime.schema.multi[("user", "roles")]
        users = self.runtime.table("user")
        q = (sa.select(users.c.id).join(side, side.c.record_id == users.c.id)
             .where(side.c.code == role, users.c.active.is_not(False), users.c.deleted_at.is_(None)))
        return [r[0] for r in conn.execute(q)]

    def _manager_of(self, conn, user_id) -> list[int]:
        """The user's department manager, walking up the tree when a department has none."""
        users, depts = self.runtime.table("user"), self.runtime.table("department")
        dept = conn.execute(sa.select(users.c.department).where(users.c.id == user_id)).scalar()
        seen = set()
        while dept is not None and dept not in seen:
            seen.add(dept)
            manager, parent = conn.execute(sa.select(depts.c.manager, depts.c.parent).where(depts.c.id == dept)).one()
            if manager is not None and manager != user_id:
                usable = conn.execute(sa.select(users.c.id).where(
                    users.c.id == manager, users.c.active.is_not(False), users.c.deleted_at.is_(None))).first()
                if usable is not None:
                    return [manager]
            dept = parent
        return []

    def _approvers(self, conn, step: dict, record: dict, submitter_id, allow_self: bool) -> list[int]:
        kind, value = step["approvers"]
        if kind == "role":
            ids = self._users_with_role(conn, value)
        elif kind == "manager_of":
            who = submitter_id if value == "submitter" else record.get("owner")
            ids = self._manager_of(conn, who)
        elif kind == "user_field":
            ids = [record[value]] if record.get(value) is not None else []
        else:  # named users
            users = self.runtime.table("user")
            ids = [r[0] for r in conn.execute(sa.select(users.c.id).where(
                users.c.username.in_(list(value)), users.c.active.is_not(False), users.c.deleted_at.is_(None)))]
        ids = list(dict.fromkeys(ids))
        return ids if allow_self else [i for i in ids if i != submitter_id]

    def _advance(self, conn, obj, approval: dict, record: dict, actor: Actor, comment=None):
        """Make the next applicable step current, or finish the flow as approved."""
        definition = approval["definition"]
        steps = definition["steps"]
        index = approval["step"] + 1
        ctx = self.records.context(actor, conn)
        now = dt.datetime.now(UTC)
        while index < len(steps):
            step = steps[index]
            when = build_condition(step["when"]) if step["when"] else None
            if when is not None and not self.runtime.conditions.matches(obj, when, record, ctx):
                conn.execute(self.tasks.insert().values(approval_id=approval["id"], step=index, user_id=None,
                                                        decision="skipped", decided_at=now))
                index += 1
                continue
            approvers = self._approvers(conn, step, record, approval["submitter_id"], definition["allow_self_approval"])
            if not approvers:
                raise ValidationError(errors=[Message(_("no one can approve the step '{step}'; ask an administrator"),
                                                      step=Label(tuple(map(tuple, step["label"]))))])
            conn.execute(self.tasks.insert(), [{"approval_id": approval["id"], "step": index, "user_id": u,
                                                "decision": "pending"} for u in approvers])
            self._update_approval(conn, approval, step=index)
            notifications.approval_requested(self.runtime, conn, obj, record, approval, approvers)
            return
        self._finish(conn, obj, approval, record, actor, "approved", comment)

    def _update_approval(self, conn, approval: dict, **values):
        a = self.approvals
        result = conn.execute(a.update().where(a.c.id == approval["id"], a.c.version == approval["version"])
                              .values(version=approval["version"] + 1, **values))
        if result.rowcount != 1:
            raise Conflict(_("the approval changed meanwhile; reload and try again"))
        approval.update(values, version=approval["version"] + 1)

    def _close(self, conn, approval, status):
        self._update_approval(conn, approval, status=status, finished_at=dt.datetime.now(UTC))
        conn.execute(self.tasks.update().where(self.tasks.c.approval_id == approval["id"],
                                               self.tasks.c.decision == "pending").values(decision="cancelled"))

    def _finish(self, conn, obj, approval, record, actor, status, comment):
        self._close(conn, approval, status)
        outcome = approval["definition"]["on_approved" if status == "approved" else "on_rejected"]
        extra = self._set_values(obj, outcome.get("set") or {}, record, actor, conn)
        if outcome.get("to"):
            extra["state"] = outcome["to"]
        if status == "recalled":
            extra = {"state": approval["from_state"]} if approval["from_state"] else {}
        current = self.records._row(conn, obj, record["id"])
        action = {"approved": "approve", "rejected": "reject", "recalled": "recall"}[status]
        self.records._apply_update(conn, obj, current, {}, actor, system=True, comment=comment, action=action,
                                   extra=extra)
        notifications.approval_finished(self.runtime, conn, obj, current, approval, status)

    def _approval_for_update(self, conn, approval_id):
        if not valid_id(approval_id):
            raise NotFound(_("approval #{id} does not exist"), id=approval_id)
        a = self.approvals
        q = sa.select(a).where(a.c.id == approval_id)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFound(_("approval #{id} does not exist"), id=approval_id)
        return dict(row)

    def decide(self, approval_id: int, actor: Actor, decision: str, comment: str | None = None, *, conn=None):
        """Approve or reject as one of the current step's approvers."""
        if decision not in ("approve", "reject"):
            raise ValidationError(errors=[Message(_("a decision is approve or reject"))])
        comment = (comment or "").strip() or None
        with self.records.transaction(conn) as conn:
            approval = self._approval_for_update(conn, approval_id)
            if approval["status"] != "pending":
                raise Conflict(_("this approval is already {status}"), status=Message(approval["status"]))
            t = self.tasks
            mine = conn.execute(sa.select(t).where(t.c.approval_id == approval_id, t.c.step == approval["step"],
                                                   t.c.user_id == actor.id)).mappings().first()
            if mine is None:
                self._not_current(conn, approval_id, actor)
            if mine["decision"] != "pending":
                raise Conflict(_("you have already decided on this step"))
            done = conn.execute(t.update().where(t.c.id == mine["id"], t.c.decision == "pending").values(
                decision="approved" if decision == "approve" else "rejected", comment=comment,
                decided_at=dt.datetime.now(UTC)))
            if done.rowcount != 1:
                raise Conflict(_("you have already decided on this step"))
            obj = self.spec.objects[approval["object"]]
            record = self.records._row(conn, obj, approval["record_id"], lock=True)
            if decision == "reject":
                self._finish(conn, obj, approval, record, actor, "rejected", comment)
                return approval
            step = approval["definition"]["steps"][approval["step"]]
            waiting = conn.execute(sa.select(sa.func.count()).where(
                t.c.approval_id == approval_id, t.c.step == approval["step"], t.c.decision == "pending")).scalar()
            if step["policy"] == "any" or waiting == 0:
                conn.execute(t.update().where(t.c.approval_id == approval_id, t.c.step == approval["step"],
                                              t.c.decision == "pending").values(decision="cancelled"))
                self._update_approval(conn, approval)
                self._advance(conn, obj, approval, record, actor, comment)   # may finish the flow
            else:
                self._update_approval(conn, approval)
            if approval["status"] == "pending":  # the flow goes on: the decision still goes on record
                self._note(conn, obj, record, actor, "approve", comment, {"step": [None, step["name"]]})
            return approval

    def _not_current(self, conn, approval_id, actor: Actor):
        """Refuse someone with no task in the current step: a Conflict when they took part in an
        earlier one (they decided, or another approver of their step decided first)."""
        t = self.tasks
        earlier = set(conn.execute(sa.select(t.c.decision).where(t.c.approval_id == approval_id,
                                                                 t.c.user_id == actor.id)).scalars())
        if earlier & {"approved", "rejected"}:
            raise Conflict(_("you have already decided on this request"))
        if "cancelled" in earlier:
            raise Conflict(_("another approver has already decided this step"))
        raise Forbidden(_("you are not an approver of the current step"))

    def recall(self, approval_id: int, actor: Actor, *, conn=None):
        """The submitter takes the request back while no one has decided."""
        with self.records.transaction(conn) as conn:
            approval = self._approval_for_update(conn, approval_id)
            if approval["status"] != "pending":
                raise Conflict(_("this approval is already {status}"), status=Message(approval["status"]))
            if approval["submitter_id"] != actor.id:
                raise Forbidden(_("only the submitter may recall a request"))
            t = self.tasks
            decided = conn.execute(sa.select(sa.func.count()).where(
                t.c.approval_id == approval_id, t.c.decision.in_(("approved", "rejected")))).scalar()
            if decided:
                raise Conflict(_("someone has already decided; it can no longer be recalled"))
            obj = self.spec.objects[approval["object"]]
            record = self.records._row(conn, obj, approval["record_id"], lock=True)
            self._finish(conn, obj, approval, record, actor, "recalled", None)
            return approval

    # ---- reading ---------------------------------------------------------------------------

    def flows_of(self, obj, record_id, *, conn=None) -> list[dict]:
        """Every approval of a record, newest first, with its tasks."""
        obj = self.records.obj(obj)
        a, t = self.approvals, self.tasks
        with self.records.reading(conn) as conn:
            flows = [dict(r) for r in conn.execute(sa.select(a).where(a.c.object == obj.name, a.c.record_id == record_id)
                                                  .order_by(a.c.id.desc())).mappings()]
            ids = [f["id"] for f in flows]
            tasks = [dict(r) for r in conn.execute(sa.select(t).where(t.c.approval_id.in_(ids))
                                                   .order_by(t.c.step, t.c.id)).mappings()] if ids else []
        for f in flows:
            f["tasks"] = [x for x in tasks if x["approval_id"] == f["id"]]
        return flows

    def inbox(self, actor: Actor, *, conn=None) -> list[dict]:
        """Pending decisions of this actor (待我审批)."""
        a, t = self.approvals, self.tasks
        with self.records.reading(conn) as conn:
            q = (sa.select(a, t.c.id.label("task_id")).join(t, t.c.approval_id == a.c.id)
                 .where(t.c.user_id == actor.id, t.c.decision == "pending", a.c.status == "pending",
                        t.c.step == a.c.step).order_by(a.c.created_at))
            return [dict(r) for r in conn.execute(q).mappings()]

    def inbox_count(self, actor: Actor) -> int:
        a, t = self.approvals, self.tasks
        with self.records.reading() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t.join(a, t.c.approval_id == a.c.id)).where(
                t.c.user_id == actor.id, t.c.decision == "pending", a.c.status == "pending",
                t.c.step == a.c.step)).scalar()

    def submitted_by(self, actor: Actor, *, conn=None) -> list[dict]:
        """Requests this actor submitted (我发起的), newest first."""
        a = self.approvals
        with self.records.reading(conn) as conn:
            return [dict(r) for r in conn.execute(sa.select(a).where(a.c.submitter_id == actor.id)
                                                  .order_by(a.c.id.desc()).limit(200)).mappings()]

    def approval(self, approval_id: int, *, conn=None) -> dict | None:
        """One approval with its tasks, or None."""
        a, t = self.approvals, self.tasks
        with self.records.reading(conn) as conn:
            row = conn.execute(sa.select(a).where(a.c.id == approval_id)).mappings().first()
            if row is None:
                return None
            tasks = [dict(r) for r in conn.execute(sa.select(t).where(t.c.approval_id == approval_id)
                                                   .order_by(t.c.step, t.c.id)).mappings()]
        return dict(row, tasks=tasks)

    @staticmethod
    def involved(approval: dict, actor: Actor) -> bool:
        """The actor submitted this approval or was asked to decide on it."""
        return actor.id is not None and (approval["submitter_id"] == actor.id
                                         or any(x["user_id"] == actor.id for x in approval["tasks"]))

    @staticmethod
    def waiting_for(approval: dict, actor: Actor) -> bool:
        """The actor has a decision to make on this approval now."""
        return approval["status"] == "pending" and any(
            x["user_id"] == actor.id and x["step"] == approval["step"] and x["decision"] == "pending"
            for x in approval["tasks"])

