"""Automations and notifications, on SQLite and PostgreSQL.

A small application of its own (FILES below) uses every construct: event automations on
create, update ("becomes true"), delete and transition:NAME with each action (set,
create, transition, notify to a user field, a path and a role), two automations that
would trigger each other for ever (ping/pong), a chain deeper than the depth limit
(step), failures that roll back the write, and scheduled automations (daily and every
6h) run once per period, idempotent across re-runs and crashes. Then the shipped CRM's
automations, the notification pages and the bell (Flask's test client), the scheduler
thread, `loom automations run|list`, and the job interface (RQ when it is installed and
Redis answers at 127.0.0.1:6379).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from loom import jobs
from loom.automations import notifications
from loom.automations.engine import AutomationFailed
from loom.automations.schedule import period_of, run_due
from loom.cli import main as cli
from loom.i18n import Message
from loom.metadata import load_spec
from loom.records.errors import ValidationError
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user, find_user
from loom.storage.database import create_engine

from conftest import create_postgres_database
from web_helpers import actor as web_actor
from web_helpers import create, make_app, post, runtime_of, signed_in

SYSTEM = Actor.system()
TZ = dt.timezone(dt.timedelta(hours=8))   # the application's Asia/Shanghai (no DST)

FILES = {
    "app.yaml": """
        app: autotest
        label: {en: Automation tests, zh: 自动化测试}
        languages: [zh, en]
        default_language: zh
        timezone: Asia/Shanghai
        menu:
          - {name: main, label: {en: Main, zh: 主菜单}, items: [ticket, account, task, step]}
    """,
    "roles.yaml": """
        roles:
          - {name: admin, label: {en: Administrator, zh: 管理员}, superuser: true}
          - {name: rep, label: {en: Rep, zh: 代表}}
          - {name: manager, label: {en: Manager, zh: 经理}}
          - {name: support, label: {en: Support, zh: 支持}}
        departments:
          - {code: hq, name: 总部}
          - {code: east, name: 华东, parent: hq}
          - {code: west, name: 华西, parent: hq}
    """,
    "dictionaries/all.yaml": """
        dictionaries:
          - dictionary: priority
            label: {en: Priority, zh: 优先级}
            items:
              - {code: low, label: {en: Low, zh: 低}}
              - {code: normal, label: {en: Normal, zh: 普通}}
              - {code: high, label: {en: High, zh: 高}}
          - dictionary: tier
            label: {en: Tier, zh: 等级}
            items:
              - {code: A, label: {en: Key account, zh: 重点客户}}
              - {code: B, label: {en: Regular, zh: 普通客户}}
    """,
    "objects/account.yaml": """
        object: account
        label: {en: Account, zh: 客户}
        title: name
        fields:
          - {name: name, type: text, required: true, unique: true, max_length: 100, label: {en: Name, zh: 名称}}
          - {name: tier, type: dictionary, dictionary: tier, default: B, label: {en: Tier, zh: 等级}}
          - {name: manager, type: user, label: {en: Manager, zh: 客户经理}}
          - {name: pinged, type: datetime, label: {en: Pinged, zh: 甲}}
          - {name: ponged, type: datetime, label: {en: Ponged, zh: 乙}}
        permissions:
          rep: {create: true, read: own, update: own}
          manager: {create: true, read: department_tree, update: department_tree}
          support: {read: all}
    """,
    "objects/ticket.yaml": """
        object: ticket
        label: {en: Ticket, zh: 工单}
        title: title
        lifecycle: ticket_flow
        fields:
          - {name: title, type: text, required: true, max_length: 100, label: {en: Title, zh: 标题}}
          - {name: account, type: lookup, target: account, on_delete: set_null, label: {en: Account, zh: 客户}}
          - {name: priority, type: dictionary, dictionary: priority, default: normal, label: {en: Priority, zh: 优先级}}
          - {name: due, type: date, label: {en: Due, zh: 到期日}}
          - {name: assignee, type: user, label: {en: Assignee, zh: 处理人}}
          - {name: escalated, type: boolean, default: false, label: {en: Escalated, zh: 已升级}}
          - {name: escalated_on, type: date, label: {en: Escalated on, zh: 升级日期}}
          - {name: escalated_by, type: user, label: {en: Escalated by, zh: 升级人}}
          - {name: amount, type: money, label: {en: Amount, zh: 金额}}
          - {name: note, type: text, max_length: 100, label: {en: Note, zh: 备注}}
        permissions:
          rep: {create: true, read: own, update: own, delete: own}
          manager: {create: true, read: department_tree, update: department_tree}
          support: {create: true, read: all, update: all}
    """,
    "objects/task.yaml": """
        object: task
        label: {en: Task, zh: 任务}
        title: subject
        fields:
          - {name: subject, type: text, required: true, max_length: 200, label: {en: Subject, zh: 主题}}
          - {name: ticket, type: lookup, target: ticket, on_delete: set_null, label: {en: Ticket, zh: 工单}}
          - {name: due, type: date, label: {en: Due, zh: 到期日}}
          - {name: kind, type: text, max_length: 20, label: {en: Kind, zh: 类型}}
        permissions:
          rep: {create: true, read: own, update: own}
    """,
    "objects/step.yaml": """
        object: step
        label: {en: Step, zh: 步骤}
        title: name
        fields:
          - {name: name, type: text, required: true, max_length: 200, label: {en: Name, zh: 名称}}
          - {name: parent, type: lookup, target: step, on_delete: set_null, label: {en: Parent, zh: 上级}}
    """,
    "workflows/ticket_flow.yaml": """
        workflow: ticket_flow
        kind: lifecycle
        object: ticket
        label: {en: Ticket flow, zh: 工单流程}
        states:
          - {name: new, label: {en: New, zh: 新建}, initial: true}
          - {name: open, label: {en: Open, zh: 处理中}}
          - {name: done, label: {en: Done, zh: 完成}, final: true}
        transitions:
          - {name: start, label: {en: Start, zh: 开始}, from: new, to: open, roles: [support]}
          - {name: finish, label: {en: Finish, zh: 完成}, from: open, to: done, roles: [support],
             when: {field: note, op: not_null}}
    """,
    # ---- event automations ----
    "automations/urgent_ticket.yaml": """
        automation: urgent_ticket
        object: ticket
        label: {en: Urgent ticket, zh: 紧急工单}
        on: create
        when: {field: priority, op: eq, value: high}
        do:
          - set: {escalated: true, escalated_on: $today, escalated_by: $current_user}
          - create: {object: task, values: {subject: "Call about {title} ({account})", ticket: {field: id},
                                            due: $today+1d, kind: call, owner: {field: assignee}}}
          - notify: {to: assignee, message: {en: "Urgent: {title} ({account}), {priority}, {amount}",
                                             zh: "紧急工单: {title}（{account}），{priority}，{amount}"}}
    """,
    "automations/escalated.yaml": """
        automation: escalated
        object: ticket
        label: {en: Escalated, zh: 已升级}
        on: update
        when: {field: escalated, op: eq, value: true}
        do:
          - notify: {to: "role:manager", message: {en: "Escalated: {title} by {escalated_by}",
                                                   zh: "工单升级: {title}，升级人 {escalated_by}"}}
    """,
    "automations/started.yaml": """
        automation: started
        object: ticket
        label: {en: Started, zh: 已开始}
        on: transition:start
        do:
          - notify: {to: owner, message: {en: "Work started on {title} ({state})", zh: "开始处理: {title}（{state}）"}}
    """,
    "automations/resolved.yaml": """
        automation: resolved
        object: ticket
        label: {en: Resolved, zh: 已解决}
        on: update
        when: {field: note, op: eq, value: resolved}
        do:
          - transition: finish
    """,
    "automations/exploding.yaml": """
        automation: exploding
        object: ticket
        label: {en: Exploding rule, zh: 出错的规则}
        on: update
        when: {field: note, op: eq, value: explode}
        do:
          - notify: {to: owner, message: never sent}
          - create: {object: task, values: {kind: broken}}
    """,
    "automations/deleted.yaml": """
        automation: deleted
        object: ticket
        label: {en: Deleted, zh: 已删除}
        on: delete
        when: {field: priority, op: ne, value: low}
        do:
          - notify: {to: "role:support", message: {en: "Deleted: {title}", zh: "已删除: {title}"}}
    """,
    "automations/switched_off.yaml": """
        automation: switched_off
        object: ticket
        on: create
        active: false
        do:
          - set: {note: should never be set}
    """,
    "automations/ping.yaml": """
        automation: ping
        object: account
        on: update
        do:
          - set: {pinged: $now}
    """,
    "automations/pong.yaml": """
        automation: pong
        object: account
        on: update
        do:
          - set: {ponged: $now}
    """,
    "automations/chain.yaml": """
        automation: chain
        object: step
        on: create
        do:
          - create: {object: step, values: {name: "after {name}", parent: {field: id}}}
    """,
    # ---- scheduled automations ----
    "automations/overdue.yaml": """
        automation: overdue
        object: ticket
        label: {en: Overdue tickets, zh: 超期工单}
        on: schedule
        every: 1d
        when: {all: [{field: due, op: lt, value: $today}, {field: state, op: ne, value: done}]}
        do:
          - notify: {to: assignee, message: {en: "Overdue: {title}, due {due}", zh: "工单超期: {title}，到期日 {due}"}}
    """,
    "automations/review.yaml": """
        automation: review
        object: account
        on: schedule
        every: 6h
        when: {field: tier, op: eq, value: A}
        do:
          - notify: {to: manager, message: "Review {name}"}
    """,
}

USERS = {  # username: (roles, department, language)
    "admin": (["admin"], "hq", None),
    "rep1": (["rep"], "east", None),
    "rep2": (["rep"], "west", "en"),
    "boss_east": (["manager"], "east", "en"),
    "boss_west": (["manager"], "west", None),
    "help1": (["support"], "hq", None),
    "help2": (["support"], "hq", "en"),
}


def write_root(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def open_app(root: Path, url: str) -> SimpleNamespace:
    runtime = Runtime(load_spec(write_root(root)), create_engine(url))
    runtime.setup()
    ids = {}
    for username, (roles, department, language) in USERS.items():
        user = create_user(runtime, username, name=username.capitalize(), roles=roles, department=department)
        if language:
            runtime.records.update("user", user["id"], {"language": language}, SYSTEM, version=user["version"])
        ids[username] = user["id"]
    actors = {u: actor_for(runtime, find_user(runtime, u)) for u in USERS}
    return SimpleNamespace(rt=runtime, svc=runtime.records, url=url, root=root, ids=ids, actor=actors.__getitem__,
                           name_of={v: k for k, v in ids.items()})


def _backend(request, tmp):
    if request.param == "sqlite":
        return f"sqlite:///{tmp / 'auto.db'}", (lambda: None)
    return create_postgres_database()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def app(request, tmp_path_factory):
    """The application on a database of its own for this module, per backend (event tests)."""
    tmp = tmp_path_factory.mktemp(f"auto_{request.param}")
    url, drop = _backend(request, tmp)
    a = open_app(tmp / "metadata", url)
    try:
        yield a
    finally:
        a.rt.close()
        drop()


@pytest.fixture(params=BACKENDS)
def fresh(request, tmp_path):
    """The application on an empty database (scheduled runs scan whole tables)."""
    url, drop = _backend(request, tmp_path)
    a = open_app(tmp_path / "metadata", url)
    try:
        yield a
    finally:
        a.rt.close()
        drop()


def inbox(a, username, **kw) -> list[str]:
    """The texts of a user's notifications, oldest first."""
    rows, _more = notifications.listing(a.rt, a.ids[username], limit=1000, **kw)
    return [r["message"] for r in reversed(rows)]


def everyone(a) -> dict:
    return {u: inbox(a, u) for u in USERS if inbox(a, u)}


def clear(a):
    with a.rt.engine.begin() as conn:
        conn.execute(a.rt.schema.system["notification"].delete())


def account(a, name, user="boss_east", **values):
    return a.svc.create("account", {"name": name, **values}, a.actor(user))


def ticket(a, title, user="rep1", **values):
    return a.svc.create("ticket", {"title": title, **values}, a.actor(user))


def get(a, obj, id_):
    return a.svc.get(obj, id_, SYSTEM, with_lines=False)


def tasks_of(a, ticket_id):
    t = a.rt.table("task")
    with a.rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(t).where(t.c.ticket == ticket_id).order_by(t.c.id)).mappings()]


def today() -> dt.date:
    return dt.datetime.now(TZ).date()


# ---- event automations ---------------------------------------------------------------------

def test_create_runs_set_create_and_notify_in_order(app):
    clear(app)
    acct = account(app, "Acme 东方", user="rep1", manager=app.ids["boss_east"])
    t = ticket(app, "Printer on fire", priority="high", account=acct["id"], assignee=app.ids["help1"],
               amount="12345.5")
    stored = get(app, "ticket", t["id"])
    assert stored["escalated"] is True and stored["escalated_on"] == today()
    assert stored["escalated_by"] == app.ids["rep1"]          # $current_user: who triggered it
    assert stored["version"] == 2
    [task] = tasks_of(app, t["id"])
    assert task["subject"] == "Call about Printer on fire (Acme 东方)" and task["kind"] == "call"
    assert task["due"] == today() + dt.timedelta(days=1) and task["owner"] == app.ids["help1"]
    # help1 reads Chinese (no language of their own: the application's default)
    assert inbox(app, "help1") == ["紧急工单: Printer on fire（Acme 东方），高，12,345.50"]
    # the set made `escalated` true: the update automation ran, one level deeper
    assert inbox(app, "boss_east") == ["Escalated: Printer on fire by Rep1"]
    # a role's users only when they may read the record (boss_west's scope is the west)
    assert inbox(app, "boss_west") == []
    history = app.svc.history("ticket", t["id"], SYSTEM)
    assert [h["action"] for h in reversed(history)] == ["create", "update"]
    assert history[0]["user_id"] == app.ids["rep1"]


def test_when_that_does_not_hold_does_nothing(app):
    clear(app)
    t = ticket(app, "Quiet one", priority="normal", assignee=app.ids["help1"])
    assert get(app, "ticket", t["id"])["escalated"] is False and get(app, "ticket", t["id"])["version"] == 1
    assert tasks_of(app, t["id"]) == [] and everyone(app) == {}
    assert get(app, "ticket", t["id"])["note"] is None       # the inactive automation never runs


def test_update_runs_when_the_condition_becomes_true_only(app):
    clear(app)
    t = ticket(app, "Slow burn")
    t = app.svc.update("ticket", t["id"], {"escalated": True}, app.actor("rep1"), version=t["version"])
    assert inbox(app, "boss_east") == ["Escalated: Slow burn by "]       # nobody in escalated_by: empty
    t = app.svc.update("ticket", t["id"], {"note": "still escalated"}, app.actor("rep1"), version=t["version"])
    assert len(inbox(app, "boss_east")) == 1                  # already true before: not again
    t = app.svc.update("ticket", t["id"], {"escalated": False}, app.actor("rep1"), version=t["version"])
    app.svc.update("ticket", t["id"], {"escalated": True}, app.actor("rep1"), version=t["version"])
    assert len(inbox(app, "boss_east")) == 2                  # false, then true again: runs again


def test_transition_event_and_transition_action(app):
    clear(app)
    t = ticket(app, "Move me", assignee=app.ids["help1"])
    app.rt.workflows.transition("ticket", t["id"], "start", app.actor("help1"))
    assert inbox(app, "rep1") == ["开始处理: Move me（处理中）"]  # the owner; the state's label
    t = get(app, "ticket", t["id"])
    # the automation takes `finish` for help1 (support may); the guard holds (a note is set)
    app.svc.update("ticket", t["id"], {"note": "resolved"}, app.actor("help1"), version=t["version"])
    assert get(app, "ticket", t["id"])["state"] == "done"
    history = [h["action"] for h in reversed(app.svc.history("ticket", t["id"], SYSTEM))]
    assert history == ["create", "transition", "update", "transition"]


def test_transition_action_from_another_state_is_left_alone(app):
    t = ticket(app, "Not started")
    t = app.svc.update("ticket", t["id"], {"note": "resolved"}, app.actor("rep1"), version=t["version"])
    assert t["state"] == "new" and t["note"] == "resolved"


def test_transition_action_runs_with_the_engine_rights(app):
    """rep1 may not take `finish` (support only); the automation acting for them may."""
    t = ticket(app, "Rep's ticket")
    app.rt.workflows.transition("ticket", t["id"], "start", app.actor("help1"))
    t = get(app, "ticket", t["id"])
    app.svc.update("ticket", t["id"], {"note": "resolved"}, app.actor("rep1"), version=t["version"])
    assert get(app, "ticket", t["id"])["state"] == "done"


def test_delete_event(app):
    clear(app)
    keep = ticket(app, "Low one", priority="low")
    gone = ticket(app, "Bin me")
    app.svc.delete("ticket", keep["id"], app.actor("rep1"))
    app.svc.delete("ticket", gone["id"], app.actor("rep1"))
    assert inbox(app, "help1") == ["已删除: Bin me"] and inbox(app, "help2") == ["Deleted: Bin me"]


def test_a_failing_automation_rolls_back_the_write(app):
    clear(app)
    t = ticket(app, "Fragile", note="fine")
    with pytest.raises(ValidationError) as e:
        app.svc.update("ticket", t["id"], {"note": "explode"}, app.actor("rep1"), version=t["version"])
    assert isinstance(e.value, AutomationFailed) and e.value.automation == "exploding"
    assert e.value.text("en").startswith("the automation 'Exploding rule' could not run: subject: ")
    assert "出错的规则" in e.value.text("zh") and "无法执行" in e.value.text("zh")
    stored = get(app, "ticket", t["id"])
    assert stored["note"] == "fine" and stored["version"] == t["version"]    # nothing of the write is left
    assert inbox(app, "rep1") == [] and tasks_of(app, t["id"]) == []         # nor of the automation


def test_a_failing_automation_rolls_back_a_create(app, monkeypatch):
    t = app.rt.table("ticket")
    with app.rt.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
    monkeypatch.setattr(app.rt.automations, "events", {
        ("ticket", "create"): [app.rt.spec.automations["exploding"]]})
    with pytest.raises(AutomationFailed):
        ticket(app, "Never stored", note="explode")
    with app.rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() == before


def test_automations_that_trigger_each_other_stop(app):
    """ping and pong both act on every change of an account: each one's write is a change
    the other sees. Each runs once per write; neither runs again while it is running."""
    a = account(app, "Loopy")
    a = app.svc.update("account", a["id"], {"tier": "A"}, app.actor("boss_east"), version=a["version"])
    assert a["pinged"] is not None and a["ponged"] is not None
    history = [h["action"] for h in reversed(app.svc.history("account", a["id"], SYSTEM))]
    assert history == ["create", "update", "update", "update"]      # the change, ping's, pong's
    a = app.svc.update("account", a["id"], {"tier": "B"}, app.actor("boss_east"), version=a["version"])
    assert len(app.svc.history("account", a["id"], SYSTEM)) == 7


def test_depth_limit_ends_a_chain_with_an_error_in_the_log(app, caplog):
    caplog.set_level(logging.ERROR, logger="loom.automations")
    first = app.svc.create("step", {"name": "s"}, app.actor("admin"))
    s = app.rt.table("step")
    with app.rt.engine.connect() as conn:
        names = list(conn.execute(sa.select(s.c.name).where(s.c.id >= first["id"]).order_by(s.c.id)).scalars())
    depth = app.rt.automations.max_depth
    assert names == ["s"] + ["after " * i + "s" for i in range(1, depth + 1)]
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage().startswith("automation chain not run on step #")
    assert f"followed {depth} levels deep at most" in error.getMessage() and "chain (step #" in error.getMessage()


def test_depth_is_per_write(app):
    """A chain stopped by the limit leaves nothing behind for the next write."""
    assert app.rt.automations._stack() == []
    app.svc.create("step", {"name": "again"}, app.actor("admin"))
    assert app.rt.automations._stack() == []


# ---- notifications ---------------------------------------------------------------------------

def test_notifications_belong_to_their_user(app):
    clear(app)
    ticket(app, "For help1", priority="high", assignee=app.ids["help1"])
    rt, help1, help2 = app.rt, app.ids["help1"], app.ids["help2"]
    [mine] = notifications.listing(rt, help1)[0]
    assert notifications.get(rt, help2, mine["id"]) is None
    assert notifications.mark_read(rt, help2, [mine["id"]]) == 0 and notifications.mark_read(rt, help2) == 0
    assert notifications.unread_count(rt, help1) == 1 and notifications.unread_count(rt, help2) == 0
    assert notifications.mark_read(rt, help1, [mine["id"]]) == 1
    assert notifications.unread_count(rt, help1) == 0
    assert notifications.listing(rt, help1, unread=True)[0] == []


def test_notification_text_in_each_language(app):
    clear(app)
    ticket(app, "Bilingual", priority="high", assignee=app.ids["help2"], amount=7)
    [row] = notifications.listing(app.rt, app.ids["help2"])[0]
    assert row["message"] == "Urgent: Bilingual (), High, 7.00"        # help2 reads English
    assert notifications.text_of(row, "zh") == "紧急工单: Bilingual（），高，7.00"
    assert row["object"] == "ticket" and row["source"] == "automation:urgent_ticket"


def test_inactive_users_are_not_notified(app):
    clear(app)
    boss = get(app, "user", app.ids["boss_west"])
    app.svc.update("user", boss["id"], {"active": False}, SYSTEM, version=boss["version"])
    try:
        with app.svc.transaction() as conn:
            sent = notifications.send(app.rt, conn, [app.ids["boss_west"], app.ids["rep2"], app.ids["rep2"]],
                                      None, None, {"zh": "你好", "en": "Hello"})
        assert sent == [app.ids["rep2"]] and inbox(app, "rep2") == ["Hello"] and inbox(app, "boss_west") == []
    finally:
        boss = get(app, "user", app.ids["boss_west"])
        app.svc.update("user", boss["id"], {"active": True}, SYSTEM, version=boss["version"])


# ---- scheduled automations -------------------------------------------------------------------

def at(day: dt.date, hour=9) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def test_periods():
    tz = dt.timezone(dt.timedelta(hours=8))
    assert period_of(dt.datetime(2025, 3, 1, 23, 59, tzinfo=tz), "1d", tz) == "2025-03-01T00:00"
    assert period_of(dt.datetime(2025, 3, 1, 16, 30, tzinfo=dt.timezone.utc), "1d", tz) == "2025-03-02T00:00"
    assert period_of(dt.datetime(2025, 3, 1, 13, 0, tzinfo=tz), "6h", tz) == "2025-03-01T12:00"
    assert period_of(dt.datetime(2025, 3, 1, 13, 44, tzinfo=tz), "30m", tz) == "2025-03-01T13:30"


def test_schedule_runs_once_per_period(fresh):
    a = fresh
    d = today()
    late = [ticket(a, f"Late {i}", assignee=a.ids["help1"], due=d - dt.timedelta(days=1)) for i in range(3)]
    ticket(a, "Not yet", assignee=a.ids["help1"], due=d)
    ticket(a, "No date", assignee=a.ids["help1"])
    [report] = run_due(a.rt, at(d), only={"overdue"})
    assert (report.ran, report.matched, report.acted, report.failed) == (True, 3, 3, 0)
    assert inbox(a, "help1") == [f"工单超期: Late {i}，到期日 {d - dt.timedelta(days=1)}" for i in range(3)]
    [again] = run_due(a.rt, at(d, 20), only={"overdue"})                 # later the same day
    assert not again.ran and again.reason == "already done" and len(inbox(a, "help1")) == 3
    app_done = a.rt.schema.system["automation_done"]
    next_day = d + dt.timedelta(days=1)
    [tomorrow] = run_due(a.rt, at(next_day), only={"overdue"})           # the next day: again, and "Not yet" too
    assert tomorrow.ran and tomorrow.acted == 4 and len(inbox(a, "help1")) == 7
    with a.rt.engine.connect() as conn:                                 # claims of older periods are gone
        periods = set(conn.execute(sa.select(app_done.c.period)).scalars())
    assert periods == {period_of(at(next_day), "1d", TZ)}
    a.rt.workflows.transition("ticket", late[0]["id"], "start", a.actor("help1"))
    t = get(a, "ticket", late[0]["id"])
    a.svc.update("ticket", t["id"], {"note": "resolved"}, a.actor("help1"), version=t["version"])
    [third] = run_due(a.rt, at(next_day + dt.timedelta(days=1)), only={"overdue"})
    assert third.acted == 3                                             # done: no longer matches


def test_schedule_every_6h(fresh):
    a = fresh
    account(a, "Key", tier="A", manager=a.ids["boss_east"])
    account(a, "Plain", manager=a.ids["boss_east"])
    d = today()
    for hour, expected in ((1, 1), (5, 1), (6, 2), (11, 2), (12, 3), (23, 4)):
        run_due(a.rt, at(d, hour), only={"review"})
        assert len(inbox(a, "boss_east")) == expected, hour
    assert inbox(a, "boss_east")[0] == "Review Key"


def test_schedule_is_idempotent_after_a_crash(fresh, monkeypatch):
    a = fresh
    d = today()
    for i in range(5):
        ticket(a, f"T{i}", assignee=a.ids["help2"], due=d - dt.timedelta(days=3))
    real = notifications.send
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies mid-run (a BaseException: nothing catches it)
        return real(*args, **kwargs)
    monkeypatch.setattr(notifications, "send", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_due(a.rt, at(d), only={"overdue"}, batch_size=2)
    assert inbox(a, "help2") == ["Overdue: T0, due " + str(d - dt.timedelta(days=3)),
                                 "Overdue: T1, due " + str(d - dt.timedelta(days=3))]
    monkeypatch.setattr(notifications, "send", real)
    [report] = run_due(a.rt, at(d, 10), only={"overdue"}, batch_size=2)  # the same period: the rest only
    assert report.ran and report.acted == 3
    assert [m.split(",")[0] for m in inbox(a, "help2")] == [f"Overdue: T{i}" for i in range(5)]
    assert not run_due(a.rt, at(d, 11), only={"overdue"})[0].ran


def test_a_live_lease_keeps_a_second_runner_out(fresh):
    a = fresh
    d = today()
    ticket(a, "Leased", assignee=a.ids["help1"], due=d - dt.timedelta(days=1))
    runs = a.rt.schema.system["automation_run"]
    period = period_of(at(d), "1d", TZ)
    wall = dt.datetime.now(dt.timezone.utc)
    with a.rt.engine.begin() as conn:
        conn.execute(runs.insert().values(automation="overdue", running_period=period,
                                          lease_until=wall + dt.timedelta(minutes=5), started_at=wall))
    [report] = run_due(a.rt, at(d), only={"overdue"})
    assert not report.ran and report.reason == "running elsewhere" and inbox(a, "help1") == []
    with a.rt.engine.begin() as conn:                                    # the runner died: its lease runs out
        conn.execute(runs.update().values(lease_until=wall - dt.timedelta(seconds=1)))
    [report] = run_due(a.rt, at(d), only={"overdue"})
    assert report.ran and report.acted == 1


def test_a_failing_record_is_counted_and_the_others_go_on(fresh, caplog):
    a = fresh
    d = today()
    for i in range(3):
        ticket(a, f"F{i}", assignee=a.ids["help1"], due=d - dt.timedelta(days=1))
    real = a.rt.automations.notify

    def fussy(automation, conn, obj, record, actor, args):
        if record["title"] == "F1":
            raise ValidationError(errors=[Message("no")])
        return real(automation, conn, obj, record, actor, args)
    a.rt.automations.notify = fussy
    try:
        [report] = run_due(a.rt, at(d), only={"overdue"})
    finally:
        del a.rt.automations.notify
    assert (report.acted, report.failed) == (2, 1) and "ticket #" in report.errors[0]
    assert len(inbox(a, "help1")) == 2


def test_the_crm_automations(tmp_path, crm_metadata):
    app = make_app(crm_metadata, tmp_path)
    rt = runtime_of(app)
    mgr, rep = web_actor(app, "mgr"), web_actor(app, "rep1")
    customer = rt.records.create("customer", {"name": "重点 ACME", "value_class": "A", "credit_rating": "AAA",
                                              "owner": rep.id}, mgr)
    [(message, texts)] = [(n["message"], n["texts"]) for n in notifications.listing(rt, mgr.id)[0]]
    assert message == "新增重点客户: 重点 ACME，负责人 Rep1" and texts["en"] == "New key account: 重点 ACME, owned by Rep1"
    contact = rt.records.create("contact", {"name": "张三", "customer": customer["id"], "mobile": "13800138000",
                                            "next_contact_date": today() - dt.timedelta(days=1)}, rep)
    request = rt.records.create("service_request", {
        "subject": "坏了", "customer": customer["id"], "service_type": "REP", "description": "不转",
        "due_date": today() - dt.timedelta(days=2), "assignee": web_actor(app, "agent").id}, SYSTEM)
    reports = {r.automation: r for r in run_due(rt, at(today()))}
    assert reports["contact_follow_up_due"].acted == 1 and reports["service_request_overdue"].acted == 1
    assert get_ns(rt, "service_request", request["id"])["priority"] == "high"
    [follow] = notifications.listing(rt, rep.id)[0]
    assert follow["object"] == "contact" and follow["record_id"] == contact["id"] and "张三" in follow["message"]
    [overdue] = notifications.listing(rt, web_actor(app, "agent").id)[0]
    assert overdue["message"].startswith("工单超期: SR") and "优先级已提升为高" in overdue["message"]


def get_ns(rt, obj, id_):
    return rt.records.get(obj, id_, SYSTEM, with_lines=False)


# ---- the pages and the bell -------------------------------------------------------------------

@pytest.fixture(scope="module")
def crm(crm_metadata, tmp_path_factory):
    return make_app(crm_metadata, tmp_path_factory.mktemp("crm_web"))


def _key_account(app, name):
    return create(app, "mgr", "customer", name=name, value_class="A", credit_rating="AAA",
                  owner=web_actor(app, "rep1").id)


def _bell(html) -> str | None:
    m = re.search(r'<a class="bell"[^>]*>.*?</a>', html, re.S)
    assert m, "no bell in the top bar"
    badge = re.search(r'count-badge"[^>]*>([^<]+)<', m.group(0))
    return badge.group(1) if badge else None


def test_bell_and_page(crm):
    mgr = signed_in(crm, "mgr")
    rt = runtime_of(crm)
    notifications.mark_read(rt, web_actor(crm, "mgr").id)
    assert _bell(mgr.get("/").get_data(as_text=True)) is None
    first = _key_account(crm, "Bell One")
    _key_account(crm, "Bell Two")
    assert _bell(mgr.get("/").get_data(as_text=True)) == "2"
    page = mgr.get("/notifications").get_data(as_text=True)
    assert "New key account: Bell Two, owned by Rep1" in page and "Mark all as read" in page
    assert page.index("Bell Two") < page.index("Bell One")                       # newest first
    zh = signed_in(crm, "mgr", lang="zh").get("/notifications").get_data(as_text=True)
    assert "新增重点客户: Bell One，负责人 Rep1" in zh and "全部标为已读" in zh
    [row] = [n for n in notifications.listing(rt, web_actor(crm, "mgr").id)[0] if n["record_id"] == first["id"]]
    response = post(mgr, f"/notifications/{row['id']}/open")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/o/customer/{first['id']}")
    assert _bell(mgr.get("/").get_data(as_text=True)) == "1"
    assert "Bell Two" in mgr.get("/notifications?unread=1").get_data(as_text=True)
    assert "Bell One" not in mgr.get("/notifications?unread=1").get_data(as_text=True)
    response = post(mgr, "/notifications/read", {"next": "/notifications?unread=1"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/notifications?unread=1")
    assert _bell(mgr.get("/").get_data(as_text=True)) is None
    assert "No notifications." in mgr.get("/notifications?unread=1").get_data(as_text=True)


def test_pages_show_only_ones_own(crm):
    _key_account(crm, "Private Co")
    mgr_id = web_actor(crm, "mgr").id
    [row] = [n for n in notifications.listing(runtime_of(crm), mgr_id)[0] if "Private Co" in n["message"]]
    rep = signed_in(crm, "rep1")
    assert "Private Co" not in rep.get("/notifications").get_data(as_text=True)
    assert post(rep, f"/notifications/{row['id']}/read").status_code == 404
    assert post(rep, f"/notifications/{row['id']}/open").status_code == 404
    post(rep, "/notifications/read")
    assert notifications.get(runtime_of(crm), mgr_id, row["id"])["read_at"] is None
    assert crm.test_client().get("/notifications").status_code == 302          # signed out: to the sign-in page


def test_mark_one_read_and_paging(crm, monkeypatch):
    from loom.automations import web as automations_web
    mgr = signed_in(crm, "mgr")
    rt, mgr_id = runtime_of(crm), web_actor(crm, "mgr").id
    with rt.records.transaction() as conn:
        for i in range(5):
            notifications.send(rt, conn, [mgr_id], None, None, {"zh": f"消息 {i}", "en": f"Message {i}"})
    monkeypatch.setattr(automations_web, "PAGE", 3)
    page = mgr.get("/notifications").get_data(as_text=True)
    assert "Message 4" in page and "Message 2" in page and "Message 1" not in page
    older = re.search(r'href="(/notifications\?before=\d+)"', page).group(1)
    assert "Message 1" in mgr.get(older).get_data(as_text=True)
    [row] = [n for n in notifications.listing(rt, mgr_id)[0] if n["message"] == "消息 4"]
    assert post(mgr, f"/notifications/{row['id']}/read").status_code == 303
    assert notifications.get(rt, mgr_id, row["id"])["read_at"] is not None
    response = post(mgr, f"/notifications/{row['id']}/open")                  # no record: back to the list
    assert response.headers["Location"].endswith("/notifications")


def test_approval_notifications(crm):
    """The helpers the workflow engine can call: the approvers of a step, the submitter at the end."""
    rt = runtime_of(crm)
    rep, mgr = web_actor(crm, "rep1"), web_actor(crm, "mgr")
    customer = create(crm, "rep1", "customer", name="Approval Co")
    opp = rt.records.create("opportunity", {"name": "Big deal", "customer": customer["id"], "amount": 1000,
                                            "expected_close_date": today()}, rep)
    obj = rt.spec.objects["opportunity"]
    approval = {"id": 4242, "flow": "discount_approval", "submitter_id": rep.id}
    notifications.mark_read(rt, mgr.id)
    with rt.records.transaction() as conn:
        assert notifications.approval_requested(rt, conn, obj, opp, approval, [mgr.id]) == [mgr.id]
        notifications.approval_finished(rt, conn, obj, opp, approval, "rejected")
        assert notifications.approval_finished(rt, conn, obj, opp, approval, "recalled") == []
    [asked] = notifications.listing(rt, mgr.id, unread=True)[0]
    assert asked["texts"] == {"zh": "折扣审批等待您审批：商机 Big deal",
                              "en": "Discount approval waits for your approval: Opportunity Big deal"}
    [told] = notifications.listing(rt, rep.id)[0][:1]
    assert told["texts"]["en"] == "Discount approval of Opportunity Big deal: rejected"
    assert told["texts"]["zh"].startswith("商机 Big deal 的折扣审批：")
    response = post(signed_in(crm, "mgr"), f"/notifications/{asked['id']}/open")
    assert response.status_code == 303 and response.headers["Location"].endswith("/approvals/4242")
    page = signed_in(crm, "rep1").get("/notifications").get_data(as_text=True)
    assert "Opportunity · Big deal" in page


def test_scheduler_thread_in_the_web_process(crm_metadata, tmp_path):
    """The app factory starts a clock that runs what is due (a daily rule runs at the
    first beat of the day: the contact is there before the first beat)."""
    app = make_app(crm_metadata, tmp_path, LOOM_SCHEDULER="on", LOOM_SCHEDULER_INTERVAL=0.2,
                   LOOM_SCHEDULER_DELAY=6)
    scheduler = app.extensions["loom_scheduler"]
    try:
        rt = runtime_of(app)
        rep = web_actor(app, "rep1")
        customer = create(app, "rep1", "customer", name="Scheduled Co")
        rt.records.create("contact", {"name": "李四", "customer": customer["id"], "mobile": "13900139000",
                                      "next_contact_date": today() - dt.timedelta(days=1)}, rep)
        assert scheduler.ticks == 0, "the first beat came before the data; raise LOOM_SCHEDULER_DELAY"
        deadline = time.monotonic() + 30
        while (not notifications.listing(rt, rep.id)[0] or scheduler.ticks < 3) and time.monotonic() < deadline:
            time.sleep(0.1)
        [row] = notifications.listing(rt, rep.id)[0]                   # once, however many beats
        assert "李四" in row["message"]
    finally:
        scheduler.stop()
    assert "loom_scheduler" not in make_app(crm_metadata, tmp_path / "quiet").extensions   # tests: off by default


# ---- the command line --------------------------------------------------------------------------

def test_cli_run_once_and_list(fresh):
    a = fresh
    d = today()
    ticket(a, "CLI late", assignee=a.ids["help1"], due=d - dt.timedelta(days=1))
    runner = CliRunner()
    base = ["--metadata", str(a.root), "--database", a.url]
    when = at(d).isoformat()
    result = runner.invoke(cli, ["automations", "run", "--once", "--only", "overdue", "--at", when, *base])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("overdue: period ") and "1 matched, 1 acted on, 0 failed" in result.output
    result = runner.invoke(cli, ["automations", "run", "--once", "--only", "overdue", "--at", when, *base])
    assert result.exit_code == 0 and "already done" in result.output
    assert len(inbox(a, "help1")) == 1
    result = runner.invoke(cli, ["automations", "list", *base])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "schedule every 1d" in lines["overdue"] and "1 acted on" in lines["overdue"]
    assert "(inactive)" in lines["switched_off"] and "transition:start" in lines["started"]
    result = runner.invoke(cli, ["automations", "run", "--once", "--only", "overdu", *base])
    assert result.exit_code == 1 and "no automation 'overdu'" in result.output and "overdue" in result.output
    result = runner.invoke(cli, ["automations", "run", "--once", "--at", "yesterday", *base])
    assert result.exit_code == 2 and "expected a date and time" in result.output


# ---- the job interface ---------------------------------------------------------------------------

def _remember(box, value):
    box.append(value)


def test_jobs_in_a_thread_and_inline(monkeypatch):
    box: list = []
    monkeypatch.delenv("LOOM_QUEUE", raising=False)
    assert jobs.backend().name == "thread" and not jobs.queued()
    jobs.submit(_remember, box, 1).join(5)
    assert box == [1]
    assert jobs.backend("inline").submit(_remember, box, 2) is None and box == [1, 2]
    with pytest.raises(ValueError):
        jobs.backend("carrier-pigeon://")


def test_scheduler_keeps_ticking_after_a_failure():
    seen = []

    def tick():
        seen.append(1)
        if len(seen) == 1:
            raise RuntimeError("first tick fails")
    scheduler = jobs.Scheduler(tick, interval=0.01, delay=0).start()
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert len(seen) >= 3


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_rq_backend(tmp_path):
    rq = pytest.importorskip("rq")
    if not _redis_up():
        pytest.skip("no Redis at 127.0.0.1:6379")
    from redis import Redis
    url = "redis://127.0.0.1:6379/0"
    name = f"loom-test-{os.getpid()}-{time.monotonic_ns()}"
    backend = jobs.RQBackend(url, name)
    with pytest.raises(ValueError):
        backend.submit(lambda: None)                       # a worker could not import it
    target = tmp_path / "written.txt"
    job = backend.submit(Path.write_text, target, "from the queue")
    worker = rq.SimpleWorker([rq.Queue(name, connection=Redis.from_url(url))], connection=Redis.from_url(url))
    worker.work(burst=True)
    assert target.read_text() == "from the queue" and job.get_status(refresh=True) == "finished"


def test_scheduled_automations_on_the_rq_queue(fresh, tmp_path, monkeypatch):
    """With LOOM_QUEUE=redis://..., the web process's clock only enqueues; an RQ worker
    opens its own runtime from the environment and runs what is due."""
    rq = pytest.importorskip("rq")
    if not _redis_up():
        pytest.skip("no Redis at 127.0.0.1:6379")
    from redis import Redis
    from loom.automations import schedule
    from loom.automations import web as automations_web
    a = fresh
    ticket(a, "Queued late", assignee=a.ids["help1"], due=today() - dt.timedelta(days=2))
    url = "redis://127.0.0.1:6379/0"
    name = f"loom-test-{os.getpid()}-{time.monotonic_ns()}"
    for key, value in {"LOOM_QUEUE": url, "LOOM_QUEUE_NAME": name, "LOOM_METADATA": str(a.root),
                       "LOOM_DATABASE_URL": a.url, "LOOM_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(schedule, "_runtime", None)
    assert jobs.queued()
    automations_web.tick(lambda: pytest.fail("the web process runs nothing itself"))
    assert inbox(a, "help1") == []
    queue = rq.Queue(name, connection=Redis.from_url(url))
    assert queue.count == 1
    rq.SimpleWorker([queue], connection=Redis.from_url(url)).work(burst=True)
    assert [m.split("，")[0] for m in inbox(a, "help1")] == ["工单超期: Queued late"]
    schedule._runtime.close()
