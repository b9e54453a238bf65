"""Event automations: rules that act when records are created, changed, deleted or moved
through a transition (METADATA.md section 9), run inside the write that triggered them.

The engine listens to the record service (`records.listeners`). After every write, each
active automation of that object and event whose `when` holds runs its `do` actions in
order, in the same transaction:

- create: `when` holds on the new record.
- update: `when` *becomes* true: it holds after the change and did not before (what
  Salesforce calls "only when the criteria become met"), so editing a record that
  already matched does not act again, and an automation's own change cannot re-trigger
  it. Without `when`, every update that changes a field's value (not only the version).
- delete: `when` holds on the record as it was (it is in the recycle bin now).
- transition:NAME: `when` holds after the transition. (A transition is also an update.)

Actions, acting for the user whose write triggered them, with the engine's rights (the
history names that user; `$current_user` is them):
- set: fields of the triggering record, values as in transitions: literals, `$today`,
  `$now`, `$current_user`, `{field: other}` (a path through lookups too); text values
  may hold {field} placeholders. Written through the record service, so validation,
  numbering, formulas, rollups and history all apply.
- create: a record of another object; `{field: x}` and {x} placeholders read the
  triggering record.
- transition: a lifecycle transition of the triggering record (its guard still applies).
  A record not in one of the transition's `from` states is left as it is.
- notify: `to: owner` (any user field of the record, or a path such as customer.owner)
  or `to: role:NAME` (that role's active users who may read the record); the message's
  {field} placeholders are filled with display values (dictionary labels, titles of
  referenced records, formatted numbers and dates) in each language, and shown in each
  reader's.

Failures: an automation that cannot do what it says (a `create` missing a required
value, a refused transition) fails the write that triggered it: the whole transaction
rolls back and the caller gets a ValidationError naming the automation and the
problem, so a rule is never half-applied and the person saving sees why. A `notify`
with nobody to tell (no owner, a role with no users) is not a failure.

Loops cannot happen: within one write and everything it triggers, an automation runs
at most once on a record (two automations that each change what the other watches run
once each, whatever their conditions), and automations triggered by automations are
followed only `max_depth` levels deep (default 4); beyond that the deeper automation is
not run and an error naming the chain is logged. Nothing waits and nothing repeats, so
a loop ends at once.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import replace
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..i18n import Message, _
from ..metadata.build import value_of
from ..metadata.spec import AutomationSpec, FieldRef, Label, ObjectSpec, Var
from ..records.errors import RecordError, ValidationError
from ..security.actor import Actor
from . import notifications

log = logging.getLogger("loom.automations")
MAX_DEPTH = 4
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)\}")
TEXTUAL = {"text", "textarea", "email", "phone", "url"}
NOT_CHANGES = {"updated_at", "updated_by", "version", "search_text", "search_tokens"}


class _Problem:
    """What went wrong inside an automation, in the reader's language (a message parameter)."""

    def __init__(self, error: RecordError):
        self.error = error

    def text(self, lang=None) -> str:
        e = self.error
        if isinstance(e, ValidationError):
            parts = [f"{name}: {'; '.join(m.text(lang) for m in msgs)}" for name, msgs in e.fields.items()]
            parts += [m.text(lang) for m in e.errors]
            return "; ".join(parts) or e.text(lang)
        return e.text(lang)


class AutomationFailed(ValidationError):
    """An automation could not do its work; the write that triggered it is rolled back."""

    def __init__(self, automation: AutomationSpec, error: RecordError):
        super().__init__(errors=[Message(_("the automation '{automation}' could not run: {problem}"),
                                         automation=automation.label, problem=_Problem(error))])
        self.automation = automation.name
        self.cause = error


class Automations:
    def __init__(self, runtime, *, max_depth: int = MAX_DEPTH):
        # no runtime.records here: the record service attaches us while it is being built
        self.runtime = runtime
        self.spec = runtime.spec
        self.max_depth = max_depth
        self.timezone = ZoneInfo(self.spec.timezone)
        self.events: dict = {}        # (object, event) -> [AutomationSpec]
        self.scheduled: list = []
        for a in self.spec.automations.values():
            if not a.active:
                continue
            if a.on == "schedule":
                self.scheduled.append(a)
            else:
                self.events.setdefault((a.object, a.on), []).append(a)
        self._local = threading.local()

    def attach(self, service) -> None:
        """Listen to the record service's writes (once)."""
        if self.events and self.on_write not in service.listeners:
            service.listeners.append(self.on_write)

    @property
    def records(self):
        return self.runtime.records

    def _stack(self) -> list:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
            self._local.done = set()
            self._local.level = 0
        return stack

    @contextlib.contextmanager
    def _write(self):
        """One write and everything it triggers: what ran on which record is remembered
        until the outermost write is through."""
        self._stack()
        if self._local.level == 0:
            self._local.done.clear()
        self._local.level += 1
        try:
            yield
        finally:
            self._local.level -= 1

    # ---- events ----------------------------------------------------------------------------

    def on_write(self, conn, obj: ObjectSpec, event: str, before, after, actor: Actor) -> None:
        todo = self.events.get((obj.name, event))
        if not todo:
            return
        record = after if after is not None else before
        with self._write():
            for automation in todo:
                if self.applies(automation, conn, obj, event, before, after, actor):
                    self.run(automation, conn, obj, record, actor, event=event)

    def _holds(self, automation, conn, obj, record, actor) -> bool:
        if automation.when is None:
            return True
        return self.runtime.conditions.matches(obj, automation.when, record, self.records.context(actor, conn))

    def applies(self, automation, conn, obj, event, before, after, actor) -> bool:
        """Whether the automation runs for this write (see the module's description)."""
        if event == "update":
            if automation.when is None:
                return any(after.get(k) != before.get(k) for k in after if k not in NOT_CHANGES)
            return self._holds(automation, conn, obj, after, actor) and not self._holds(automation, conn, obj,
                                                                                         before, actor)
        return self._holds(automation, conn, obj, after if after is not None else before, actor)

    def run(self, automation: AutomationSpec, conn, obj: ObjectSpec, record: dict, actor: Actor, *,
            event: str) -> bool:
        """Do the automation's actions on a record, in order; False when it was not run
        (it already ran on this record in this write, or automations are nested too deep)."""
        with self._write():
            return self._run(automation, conn, obj, record, actor, event)

    def _run(self, automation, conn, obj, record, actor, event) -> bool:
        stack = self._stack()
        key = (automation.name, obj.name, record.get("id"))
        if key in self._local.done:
            log.debug("automation %s already ran on %s #%s in this write; not run again", *key)
            return False
        if len(stack) >= self.max_depth:
            chain = " -> ".join(f"{a} ({o} #{i})" for a, o, i in stack + [key])
            log.error("automation %s not run on %s #%s: automations triggered by automations are followed "
                      "%d levels deep at most (a loop?): %s", automation.name, obj.name, record.get("id"),
                      self.max_depth, chain)
            return False
        stack.append(key)
        self._local.done.add(key)
        try:
            for action in automation.actions:
                self._act(automation, action, conn, obj, record, actor, event)
        except AutomationFailed:
            raise
        except RecordError as e:
            log.info("automation %s failed on %s #%s: %s", automation.name, obj.name, record.get("id"), e)
            raise AutomationFailed(automation, e) from e
        finally:
            stack.pop()
        return True

    # ---- actions ---------------------------------------------------------------------------

    def _act(self, automation, action, conn, obj, record, actor, event):
        acting = actor if actor.superuser else replace(actor, superuser=True)
        svc = self.records
        kind, args = action.kind, action.args
        if kind == "notify":
            self.notify(automation, conn, obj, record, actor, args)
            return
        if kind == "create":
            target = self.spec.objects[args["object"]]
            values = self.values(target, args.get("values") or {}, obj, record, acting, conn)
            svc.create(target, values, acting, conn=conn, system=True)
            return
        current = svc._row(conn, obj, record["id"])
        if current is None or current.get("deleted_at") is not None:
            log.warning("automation %s: %s #%s is deleted; '%s' skipped", automation.name, obj.name,
                        record.get("id"), kind)
            return
        if kind == "set":
            values = self.values(obj, args, obj, current, acting, conn)
            svc.update(obj, current["id"], values, acting, version=None, conn=conn, system=True)
        elif kind == "transition":
            lifecycle = self.spec.lifecycle_of(obj)
            t = lifecycle.transitions[args] if lifecycle else None
            if t is None or current.get("state") not in t.sources:
                log.info("automation %s: %s #%s is %s; transition '%s' skipped", automation.name, obj.name,
                         current["id"], current.get("state"), args)
                return
            self.runtime.workflows.transition(obj, current["id"], args, acting, conn=conn)

    def values(self, target: ObjectSpec, values, source_obj: ObjectSpec, source: dict, actor: Actor, conn) -> dict:
        """Values to write into `target`: literals, $variables, {field: x} and {x} in texts
        read from `source` (the triggering record)."""
        out = {}
        ctx = self.records.context(actor, conn)
        lang = self.spec.default_language
        for name, raw in values.items():
            f = target.fields[name]
            value = value_of(list(raw) if isinstance(raw, tuple) else dict(raw) if isinstance(raw, dict) else raw)
            if isinstance(value, FieldRef):
                value = self.runtime.conditions.value_at(source_obj, value.path, source, ctx)[0]
            elif isinstance(value, Var):
                value = self.records._default(replace(f, default=value), actor, ctx)
            elif isinstance(value, str) and f.value_type in TEXTUAL:
                value = self.fill(value, source_obj, source, lang, conn, ctx)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    # ---- notify ----------------------------------------------------------------------------

    def recipients(self, conn, obj: ObjectSpec, record: dict, actor: Actor, to: str) -> list[int]:
        kind, _sep, role = to.partition(":")
        if kind == "role" and role:
            from ..security.organization import actor_for
            users = self.runtime.table("user")
            side = self.runtime.schema.multi[("user", "roles")]
            rows = conn.execute(sa.select(users).join(side, side.c.record_id == users.c.id).where(
                side.c.code == role, users.c.active.is_not(False), users.c.deleted_at.is_(None))
                .order_by(users.c.id)).mappings().all()
            found = [dict(row) for row in rows]
            self.records._attach_multi(conn, self.spec.objects["user"], found)   # their roles, one query
            out = [u["id"] for u in found
                   if self.records._allowed(conn, actor_for(self.runtime, u), obj, "read", record)]
            return list(dict.fromkeys(out))
        ctx = self.records.context(actor, conn)
        value = self.runtime.conditions.value_at(obj, tuple(to.split(".")), record, ctx)[0]
        if isinstance(value, (list, tuple)):
            return [v for v in value if isinstance(v, int)]
        return [value] if isinstance(value, int) else []

    def notify(self, automation, conn, obj, record, actor, args) -> list[int]:
        users = self.recipients(conn, obj, record, actor, args["to"])
        if not users:
            log.info("automation %s: nobody to notify (%s) on %s #%s", automation.name, args["to"], obj.name,
                     record.get("id"))
            return []
        raw = args["message"]
        label = Label.of(dict(raw) if isinstance(raw, dict) else raw, automation.name)
        ctx = self.records.context(actor, conn)
        texts = {lang: self.fill(label.text(lang), obj, record, lang, conn, ctx) for lang in self.spec.languages}
        return notifications.send(self.runtime, conn, users, obj.name, record.get("id"), texts,
                                  source=f"automation:{automation.name}")

    def fill(self, text: str, obj: ObjectSpec, record: dict, lang: str, conn, ctx) -> str:
        """{field} and {path.to.field} placeholders replaced by display values in `lang`;
        anything else in braces is kept as written."""
        from ..web.formatting import plain

        def one(m):
            path = tuple(m.group(1).split("."))
            try:
                value, f = self.runtime.conditions.value_at(obj, path, record, ctx)
            except (KeyError, ValueError, AttributeError):
                return m.group(0)
            if value is None or value == []:
                return ""
            if f.is_reference and f.target in self.spec.objects:
                target = self.spec.objects[f.target]
                row = ctx.fetch(f.target, value) if ctx.fetch else None
                title = row.get(target.title) if row else None
                return str(title) if title not in (None, "") else f"#{value}"
            if f.type == "state":  # the label of the state in the lifecycle of the object holding it
                fields = self.spec.resolve(obj, path)
                holder = self.spec.objects[fields[-2].target] if len(fields) > 1 else obj
                lifecycle = self.spec.lifecycle_of(holder)
                state = lifecycle.states.get(value) if lifecycle else None
                return state.label.text(lang) if state else str(value)
            return plain(value, self.spec, f, lang, self.timezone)
        return PLACEHOLDER.sub(one, text)
