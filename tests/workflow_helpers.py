"""A small application whose lifecycle and approval flows use every workflow construct.

    wf = open_workflow_app(tmp_path, url)     # metadata written, database migrated, users made
    wf.rt.workflows.transition("expense", id_, "submit", wf.actor("clerk1"))

The organisation (department managers are set after the users exist):
    hq (manager: director)
    ├── east (manager: boss_east)
    │   └── east_a (no manager)        clerk1
    ├── north (no manager)             clerk2
    └── south (manager: boss_south, who is inactive)   clerk3
Managers read every expense and update those of their department tree; fin1, fin2 (finance:
read and update all), auditor (reads everything, changes nothing) and admin sit in hq.

expense_lifecycle: draft (initial) -> review (locked) -> approved -> paid (final), with
on_hold and cancelled (final). Transitions:
  submit      draft -> review, roles clerk/manager, approval expense_approval
  escalate    draft -> review, approval board_approval (no roles: whoever may update)
  check       draft -> review, approval solo_approval (the reviewer, never the submitter)
  self_check  on_hold -> review, approval self_approval (the reviewer, the submitter too)
  hold        draft|approved -> on_hold, comment required
  resume      on_hold -> draft, roles manager
  pay         approved -> paid, roles finance, when amount > 0, set paid_on/checked_by/note
  cancel      draft|review|on_hold -> cancelled, roles clerk/manager, comment required
Flows:
  expense_approval  manager_of submitter (any) -> finance role (any, when amount > 10000);
                    approved: approved + {approved: true, approved_on: $today}; rejected: draft + {approved: false}
  board_approval    finance role (any) -> users director, boss_east (all) -> user_field reviewer
                    (when a reviewer is set); approved: approved; rejected: on_hold
  solo_approval     user_field reviewer; approved: approved; rejected: draft
  self_approval     user_field reviewer, allow_self_approval; approved: approved; rejected: on_hold
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from loom.metadata import load_spec
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user, find_user
from loom.storage.database import create_engine

SYSTEM = Actor.system()

FILES = {
    "app.yaml": """
        app: wftest
        label: {en: Workflow tests, zh: 流程测试}
        languages: [zh, en]
        default_language: zh
        timezone: Asia/Shanghai
        menu:
          - {name: main, label: {en: Main, zh: 主菜单}, items: [expense]}
    """,
    "roles.yaml": """
        roles:
          - {name: admin, label: {en: Administrator, zh: 管理员}, superuser: true}
          - {name: clerk, label: {en: Clerk, zh: 业务员}}
          - {name: manager, label: {en: Manager, zh: 经理}}
          - {name: finance, label: {en: Finance, zh: 财务}}
          - {name: director, label: {en: Director, zh: 总监}}
          - {name: auditor, label: {en: Auditor, zh: 审计}}
        departments:
          - {code: hq, name: 总部}
          - {code: east, name: 华东部, parent: hq}
          - {code: east_a, name: 华东一组, parent: east}
          - {code: north, name: 华北部, parent: hq}
          - {code: south, name: 华南部, parent: hq}
    """,
    "objects/expense.yaml": """
        object: expense
        label: {en: Expense, zh: 费用申请}
        title: title
        lifecycle: expense_lifecycle
        fields:
          - {name: ref, type: autonumber, assign_on: approved, label: {en: Approval no., zh: 批准编号},
             numbering: {pattern: "AP-{seq:4}"}}
          - {name: title, type: text, required: true, max_length: 100, label: {en: Title, zh: 标题}}
          - {name: amount, type: money, min: 0, default: 0, label: {en: Amount, zh: 金额}}
          - {name: reviewer, type: user, label: {en: Reviewer, zh: 复核人}}
          - {name: checked_by, type: user, readonly: true, label: {en: Checked by, zh: 核对人}}
          - {name: checked_by_name, type: text, readonly: true, label: {en: Checker's name, zh: 核对人姓名}}
          - {name: approved, type: boolean, default: false, readonly: true, label: {en: Approved, zh: 已批准}}
          - {name: approved_on, type: date, readonly: true, label: {en: Approved on, zh: 批准日期}}
          - {name: paid_on, type: date, readonly: true, label: {en: Paid on, zh: 付款日期}}
          - {name: note, type: text, max_length: 100, label: {en: Note, zh: 备注}}
        list:
          columns: [ref, title, amount, state, owner]
        permissions:
          clerk:   {create: true, read: own, update: own}
          manager: {create: true, read: all, update: department_tree}
          director: {read: all, update: all}
          finance: {read: all, update: all}
          auditor: {read: all}
    """,
    "workflows/expense_lifecycle.yaml": """
        workflow: expense_lifecycle
        kind: lifecycle
        object: expense
        label: {en: Expense lifecycle, zh: 费用状态}
        states:
          - {name: draft, label: {en: Draft, zh: 草稿}, initial: true, color: gray}
          - {name: review, label: {en: In review, zh: 审批中}, locked: true, color: orange}
          - {name: approved, label: {en: Approved, zh: 已批准}, color: blue}
          - {name: on_hold, label: {en: On hold, zh: 暂缓}, color: yellow}
          - {name: paid, label: {en: Paid, zh: 已付款}, final: true, color: green}
          - {name: cancelled, label: {en: Cancelled, zh: 已取消}, final: true, color: red}
        transitions:
          - {name: submit, label: {en: Submit, zh: 提交审批}, from: draft, to: review, roles: [clerk, manager],
             approval: expense_approval}
          - {name: escalate, label: {en: Escalate, zh: 提交董事会}, from: draft, to: review, approval: board_approval}
          - {name: check, label: {en: Ask the reviewer, zh: 请复核人审批}, from: draft, to: review,
             approval: solo_approval}
          - {name: self_check, label: {en: Review myself, zh: 自行复核}, from: on_hold, to: review,
             approval: self_approval}
          - {name: hold, label: {en: Hold, zh: 暂缓}, from: [draft, approved], to: on_hold, require_comment: true}
          - {name: resume, label: {en: Resume, zh: 恢复}, from: on_hold, to: draft, roles: [manager]}
          - name: pay
            label: {en: Pay, zh: 付款}
            from: approved
            to: paid
            roles: [finance]
            when: {field: amount, op: gt, value: 0}
            set: {paid_on: $today, checked_by: {field: reviewer}, checked_by_name: {field: reviewer.username},
                  note: paid}
          - {name: cancel, label: {en: Cancel, zh: 取消}, from: [draft, review, on_hold], to: cancelled,
             roles: [clerk, manager], require_comment: true}
    """,
    "workflows/expense_approval.yaml": """
        workflow: expense_approval
        kind: approval
        object: expense
        label: {en: Expense approval, zh: 费用审批}
        steps:
          - {name: manager, label: {en: Manager, zh: 部门经理}, approvers: {manager_of: submitter}, policy: any}
          - {name: finance, label: {en: Finance, zh: 财务}, approvers: {role: finance}, policy: any,
             when: {field: amount, op: gt, value: 10000}}
        on_approved: {to: approved, set: {approved: true, approved_on: $today}}
        on_rejected: {to: draft, set: {approved: false}}
        allow_self_approval: false
    """,
    "workflows/board_approval.yaml": """
        workflow: board_approval
        kind: approval
        object: expense
        label: {en: Board approval, zh: 董事会审批}
        steps:
          - {name: finance, label: {en: Finance, zh: 财务}, approvers: {role: finance}, policy: any}
          - {name: board, label: {en: Board, zh: 董事会}, approvers: {users: [director, boss_east]}, policy: all}
          - {name: reviewer, label: {en: Reviewer, zh: 复核人}, approvers: {user_field: reviewer},
             when: {field: reviewer, op: not_null}}
        on_approved: {to: approved}
        on_rejected: {to: on_hold}
    """,
    "workflows/solo_approval.yaml": """
        workflow: solo_approval
        kind: approval
        object: expense
        label: {en: Reviewer approval, zh: 复核审批}
        steps:
          - {name: reviewer, label: {en: Reviewer, zh: 复核人}, approvers: {user_field: reviewer}}
        on_approved: {to: approved}
        on_rejected: {to: draft}
        allow_self_approval: false
    """,
    "workflows/self_approval.yaml": """
        workflow: self_approval
        kind: approval
        object: expense
        label: {en: Self review, zh: 自行复核}
        steps:
          - {name: reviewer, label: {en: Reviewer, zh: 复核人}, approvers: {user_field: reviewer}}
        on_approved: {to: approved}
        on_rejected: {to: on_hold}
        allow_self_approval: true
    """,
}

USERS = {  # username: (roles, department)
    "admin": (["admin"], "hq"),
    "director": (["director", "manager"], "hq"),
    "boss_east": (["manager"], "east"),
    "boss_south": (["manager"], "south"),
    "clerk1": (["clerk"], "east_a"),
    "clerk2": (["clerk"], "north"),
    "clerk3": (["clerk"], "south"),
    "fin1": (["finance"], "hq"),
    "fin2": (["finance"], "hq"),
    "auditor": (["auditor"], "hq"),
}
MANAGERS = {"hq": "director", "east": "boss_east", "south": "boss_south"}


def write_root(root: Path, changes: dict | None = None) -> Path:
    """The application's files under root; `changes` maps a file to new text, or to a
    function of the old text."""
    for rel, text in FILES.items():
        change = (changes or {}).get(rel)
        text = textwrap.dedent(text).lstrip()
        text = change(text) if callable(change) else (textwrap.dedent(change).lstrip() if change else text)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def department_ids(runtime) -> dict:
    d = runtime.table("department")
    with runtime.engine.connect() as conn:
        return dict(conn.execute(sa.select(d.c.code, d.c.id)).all())


def set_manager(runtime, code: str, user_id: int | None):
    """Make a user the manager of a department (through the record service, as an admin would)."""
    d = runtime.table("department")
    with runtime.engine.connect() as conn:
        id_, version = conn.execute(sa.select(d.c.id, d.c.version).where(d.c.code == code)).one()
    runtime.records.update("department", id_, {"manager": user_id}, SYSTEM, version=version)


def deactivate(runtime, user_id: int):
    row = runtime.records.get("user", user_id, SYSTEM, with_lines=False)
    runtime.records.update("user", user_id, {"active": False}, SYSTEM, version=row["version"])


def open_workflow_app(root: Path, url: str, changes: dict | None = None) -> SimpleNamespace:
    runtime = Runtime(load_spec(write_root(root, changes)), create_engine(url))
    runtime.setup()
    ids = {}
    for username, (roles, department) in USERS.items():
        ids[username] = create_user(runtime, username, name=username.capitalize(), roles=roles,
                                    department=department)["id"]
    for code, username in MANAGERS.items():
        set_manager(runtime, code, ids[username])
    deactivate(runtime, ids["boss_south"])
    return app_namespace(runtime, url, root, ids)


def app_namespace(runtime, url, root, ids) -> SimpleNamespace:
    actors: dict = {}

    def actor(username):
        if username not in actors:
            actors[username] = actor_for(runtime, find_user(runtime, username))
        return actors[username]
    return SimpleNamespace(rt=runtime, wf=runtime.workflows, svc=runtime.records, url=url, root=root, ids=ids,
                           actor=actor, name_of={v: k for k, v in ids.items()})


def reopen(wf: SimpleNamespace, root: Path, changes: dict) -> SimpleNamespace:
    """Another runtime on the same database, from changed metadata (a YAML edit, a restart)."""
    runtime = Runtime(load_spec(write_root(root, changes)), create_engine(wf.url))
    return app_namespace(runtime, wf.url, root, wf.ids)
