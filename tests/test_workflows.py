"""Lifecycles and approval flows through `runtime.workflows`, on SQLite and PostgreSQL.

Most tests share one database per backend (the application of workflow_helpers.py, built
once per module: a fresh PostgreSQL database costs seconds), each on records of its own.
Tests that need a database to themselves take `db_url`. Also here: the CRM's contract
(numbered on approval), the CLI (`loom record transition`, `loom migrate --plan` after a
state is removed, `loom workflow show --svg`), a stateful property test of random
transitions, decisions and recalls, and concurrent decisions.
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from loom.cli import main as cli
from loom.records.errors import Conflict, Forbidden, NotFound, RecordError, ValidationError

from conftest import CRM_METADATA, create_postgres_database
from records_helpers import TZ
from workflow_helpers import SYSTEM, open_workflow_app, reopen, set_manager

SVG = "{http://www.w3.org/2000/svg}"


def today() -> dt.date:
    return dt.datetime.now(TZ).date()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def wf(request, tmp_path_factory):
    """The workflow test application on a database of its own for this module, per backend."""
    tmp = tmp_path_factory.mktemp(f"wf_{request.param}")
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp / 'wf.db'}", (lambda: None)
    else:
        url, drop = create_postgres_database()
    app = open_workflow_app(tmp / "metadata", url)
    app.tmp = tmp
    try:
        yield app
    finally:
        app.rt.close()
        drop()


_titles = itertools.count(1)


def expense(wf, user="clerk1", **values):
    values.setdefault("title", f"Expense {next(_titles)}")
    return wf.svc.create("expense", values, wf.actor(user))


def get(wf, id_):
    return wf.svc.get("expense", id_, SYSTEM, with_lines=False)


def history(wf, id_):
    """History entries of a record, oldest first."""
    return list(reversed(wf.svc.history("expense", id_, SYSTEM)))


def flow(wf, id_):
    """The newest approval of a record, with its tasks."""
    flows = wf.wf.flows_of("expense", id_)
    return flows[0] if flows else None


def approvers_now(wf, approval) -> set:
    """Usernames asked to decide on the current step."""
    return {wf.name_of[t["user_id"]] for t in approval["tasks"]
            if t["step"] == approval["step"] and t["decision"] == "pending"}


def refused(kind, call, *args, **kwargs):
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    return info.value


def unchanged(wf, record):
    """The record is as it was (same version, state, history length)."""
    now = get(wf, record["id"])
    assert (now["version"], now["state"]) == (record["version"], record["state"])


def step_of(wf, id_, name, user, **kwargs):
    return wf.wf.transition("expense", id_, name, wf.actor(user), **kwargs)


# ---- lifecycles ----------------------------------------------------------------------------

def test_a_new_record_starts_in_the_initial_state(wf):
    e = expense(wf)
    assert e["state"] == "draft" and e["ref"] is None
    assert history(wf, e["id"])[0]["changes"]["state"] == [None, "draft"]


def test_transitions_from_one_state_and_from_several(wf):
    e = expense(wf)
    held = step_of(wf, e["id"], "hold", "clerk1", comment="waiting for the invoice")
    assert held["state"] == "on_hold" and held["version"] == e["version"] + 1
    back = step_of(wf, e["id"], "resume", "boss_east")          # from one state
    assert back["state"] == "draft"
    # hold has two sources: draft (above) and approved
    e2 = expense(wf, amount=100)
    step_of(wf, e2["id"], "submit", "clerk1")
    wf.wf.decide(flow(wf, e2["id"])["id"], wf.actor("boss_east"), "approve")
    assert get(wf, e2["id"])["state"] == "approved"
    assert step_of(wf, e2["id"], "hold", "clerk1", comment="budget freeze")["state"] == "on_hold"


def test_a_transition_from_another_state_is_refused_and_changes_nothing(wf):
    e = expense(wf, amount=10)
    error = refused(Forbidden, step_of, wf, e["id"], "resume", "boss_east")
    assert error.text("en") == "'Resume' is not possible while the record is Draft"
    assert error.text("zh") == "当前状态为草稿，不能恢复"
    unchanged(wf, e)
    assert len(history(wf, e["id"])) == 1
    refused(NotFound, step_of, wf, e["id"], "fly", "clerk1")


def test_roles_refuse_others_with_a_clear_message(wf):
    e = expense(wf)
    step_of(wf, e["id"], "hold", "clerk1", comment="later")
    held = get(wf, e["id"])
    error = refused(Forbidden, step_of, wf, e["id"], "resume", "clerk1")   # resume: managers only
    assert error.text("en") == "only Manager may take 'Resume'"
    assert error.text("zh") == "只有经理可以执行“恢复”"
    unchanged(wf, held)
    assert [t.name for t in wf.wf.available("expense", e["id"], wf.actor("clerk1"))] == ["self_check", "cancel"]
    assert "resume" in [t.name for t in wf.wf.available("expense", e["id"], wf.actor("boss_east"))]


def test_every_transition_needs_the_right_to_change_the_record(wf):
    e = expense(wf)
    error = refused(Forbidden, step_of, wf, e["id"], "hold", "auditor", comment="x")   # reads all, changes none
    assert error.text("en") == "you may not change this Expense"
    unchanged(wf, e)
    refused(NotFound, step_of, wf, e["id"], "hold", "clerk2", comment="x")              # may not even read it
    unchanged(wf, e)
    assert wf.wf.available("expense", e["id"], wf.actor("auditor")) == []
    # roles narrow, never widen: managers read every expense, but resume (managers only) moves
    # just those of their own department tree
    e2 = expense(wf, "clerk2")
    held = step_of(wf, e2["id"], "hold", "clerk2", comment="x")
    error = refused(Forbidden, step_of, wf, e2["id"], "resume", "boss_east")           # north is not east
    assert error.text("en") == "you may not change this Expense"
    unchanged(wf, held)
    assert wf.wf.available("expense", e2["id"], wf.actor("boss_east")) == []
    assert step_of(wf, e2["id"], "resume", "director")["state"] == "draft"           # hq's tree is all


def test_a_when_guard_refuses_while_false(wf):
    e = expense(wf, amount=0)
    approved = _approve_quickly(wf, e)
    error = refused(Forbidden, step_of, wf, e["id"], "pay", "fin1")
    assert error.text("en") == "the conditions for 'Pay' are not met"
    unchanged(wf, approved)
    assert [t.name for t in wf.wf.available("expense", e["id"], wf.actor("fin1"))] == ["hold"]   # no pay


def _approve_quickly(wf, e, reviewer="fin1"):
    """Move a draft to approved through the reviewer's approval (solo_approval)."""
    wf.svc.update("expense", e["id"], {"reviewer": wf.ids[reviewer]}, wf.actor("clerk1"),
                  version=get(wf, e["id"])["version"])
    step_of(wf, e["id"], "check", "clerk1")
    wf.wf.decide(flow(wf, e["id"])["id"], wf.actor(reviewer), "approve", "fine")
    record = get(wf, e["id"])
    assert record["state"] == "approved"
    return record


def test_require_comment_refuses_without_and_keeps_the_comment_in_history(wf):
    e = expense(wf)
    for blank in (None, "", "   "):
        error = refused(ValidationError, step_of, wf, e["id"], "hold", "clerk1", comment=blank)
        assert {k: [m.text("en") for m in v] for k, v in error.fields.items()} == \
            {"comment": ["a comment is required to Hold"]}
    unchanged(wf, e)
    step_of(wf, e["id"], "hold", "clerk1", comment="  waiting for the customer  ")
    last = history(wf, e["id"])[-1]
    assert last["action"] == "transition" and last["comment"] == "waiting for the customer"
    assert last["changes"] == {"state": ["draft", "on_hold"]} and last["user_id"] == wf.ids["clerk1"]


def test_set_applies_literals_today_and_other_fields(wf):
    e = expense(wf, amount=300)
    _approve_quickly(wf, e, reviewer="auditor")
    paid = step_of(wf, e["id"], "pay", "fin1")
    assert paid["state"] == "paid"
    assert paid["paid_on"] == today() and paid["checked_by"] == wf.ids["auditor"] and paid["note"] == "paid"
    assert paid["checked_by_name"] == "auditor"   # a path through the lookup
    last = history(wf, e["id"])[-1]
    assert last["changes"]["state"] == ["approved", "paid"] and last["changes"]["paid_on"] == [None, today().isoformat()]
    assert wf.wf.available("expense", e["id"], wf.actor("fin1")) == []   # a final state


def test_a_locked_state_refuses_edits_but_not_transitions(wf):
    e = expense(wf, amount=500)
    submitted = step_of(wf, e["id"], "submit", "clerk1", comment="please")
    assert submitted["state"] == "review"
    for user in ("clerk1", "boss_east"):
        error = refused(Forbidden, wf.svc.update, "expense", e["id"], {"title": "changed"}, wf.actor(user),
                        version=submitted["version"])
        assert error.text("en") == "the record is locked while it is In review"
    unchanged(wf, submitted)
    cancelled = step_of(wf, e["id"], "cancel", "clerk1", comment="not needed after all")
    assert cancelled["state"] == "cancelled"
    approval = flow(wf, e["id"])
    assert approval["status"] == "cancelled" and {t["decision"] for t in approval["tasks"]} == {"cancelled"}
    assert all(a["record_id"] != e["id"] for a in wf.wf.inbox(wf.actor("boss_east")))


def test_a_stale_version_is_refused(wf):
    e = expense(wf)
    wf.svc.update("expense", e["id"], {"note": "edited"}, wf.actor("clerk1"), version=e["version"])
    error = refused(Conflict, step_of, wf, e["id"], "hold", "clerk1", comment="x", version=e["version"])
    assert "reload" in error.text("en")
    assert get(wf, e["id"])["state"] == "draft"


def test_history_of_a_flow(wf):
    e = expense(wf, amount=20000)
    step_of(wf, e["id"], "submit", "clerk1", comment="trip to Shanghai")
    a = flow(wf, e["id"])["id"]
    wf.wf.decide(a, wf.actor("boss_east"), "approve", "ok from me")
    wf.wf.decide(a, wf.actor("fin2"), "approve", "within budget")
    entries = [(h["action"], h["user_id"], h["comment"], (h["changes"] or {}).get("state")) for h in history(wf, e["id"])]
    assert entries == [
        ("create", wf.ids["clerk1"], None, [None, "draft"]),
        ("transition", wf.ids["clerk1"], "trip to Shanghai", ["draft", "review"]),
        ("approve", wf.ids["boss_east"], "ok from me", None),
        ("approve", wf.ids["fin2"], "within budget", ["review", "approved"]),
    ]


# ---- approval flows ------------------------------------------------------------------------

def test_steps_run_in_order_and_a_step_whose_when_is_false_is_skipped(wf):
    small = expense(wf, amount=5000)
    step_of(wf, small["id"], "submit", "clerk1")
    a = flow(wf, small["id"])
    assert a["status"] == "pending" and a["step"] == 0 and approvers_now(wf, a) == {"boss_east"}
    assert [x["id"] for x in wf.wf.inbox(wf.actor("boss_east"))].count(a["id"]) == 1
    assert all(x["id"] != a["id"] for x in wf.wf.inbox(wf.actor("fin1")))     # not yet
    refused(Forbidden, wf.wf.decide, a["id"], wf.actor("fin1"), "approve")      # a later step's approver
    wf.wf.decide(a["id"], wf.actor("boss_east"), "approve")
    a = flow(wf, small["id"])
    assert a["status"] == "approved"
    assert [(t["step"], t["decision"]) for t in a["tasks"]] == [(0, "approved"), (1, "skipped")]
    record = get(wf, small["id"])
    assert record["state"] == "approved" and record["approved"] is True and record["approved_on"] == today()

    big = expense(wf, amount=20000)
    step_of(wf, big["id"], "submit", "clerk1")
    a = flow(wf, big["id"])
    wf.wf.decide(a["id"], wf.actor("boss_east"), "approve")
    a = flow(wf, big["id"])
    assert a["status"] == "pending" and a["step"] == 1 and approvers_now(wf, a) == {"fin1", "fin2"}
    assert get(wf, big["id"])["state"] == "review"


def test_manager_of_the_submitter_walks_up_the_department_tree(wf):
    cases = {"clerk1": "boss_east",    # east_a has no manager: its parent's
             "clerk2": "director",     # north has none, nor any between it and hq
             "clerk3": "director",     # south's manager is inactive
             "boss_east": "director"}  # a manager's own manager is the one above
    for submitter, manager in cases.items():
        e = expense(wf, submitter, amount=10)
        step_of(wf, e["id"], "submit", submitter)
        assert approvers_now(wf, flow(wf, e["id"])) == {manager}, submitter


def test_a_step_without_approvers_refuses_the_submission_and_changes_nothing(wf):
    e = expense(wf, "director", amount=10)      # the director manages hq, the top: no one above
    error = refused(ValidationError, step_of, wf, e["id"], "submit", "director")
    assert error.text("en") == "no one can approve the step 'Manager'; ask an administrator"
    assert error.text("zh") == "没有人可以审批“部门经理”步骤，请联系管理员"
    unchanged(wf, e)
    assert flow(wf, e["id"]) is None and len(history(wf, e["id"])) == 1


def test_approvers_by_role_users_and_user_field_with_policies_any_and_all(wf):
    e = expense(wf, "clerk1", amount=10, reviewer=None)
    wf.svc.update("expense", e["id"], {"reviewer": wf.ids["auditor"]}, wf.actor("clerk1"), version=e["version"])
    step_of(wf, e["id"], "escalate", "clerk1")
    a = flow(wf, e["id"])
    assert approvers_now(wf, a) == {"fin1", "fin2"}                    # role, policy any
    wf.wf.decide(a["id"], wf.actor("fin2"), "approve", "numbers check out")
    a = flow(wf, e["id"])
    assert a["step"] == 1 and approvers_now(wf, a) == {"director", "boss_east"}   # named users, policy all
    assert {wf.name_of[t["user_id"]]: t["decision"] for t in a["tasks"] if t["step"] == 0} == \
        {"fin1": "cancelled", "fin2": "approved"}
    wf.wf.decide(a["id"], wf.actor("director"), "approve")
    a = flow(wf, e["id"])
    assert a["step"] == 1 and approvers_now(wf, a) == {"boss_east"}      # all: still waiting
    wf.wf.decide(a["id"], wf.actor("boss_east"), "approve", "agreed")
    a = flow(wf, e["id"])
    assert a["step"] == 2 and approvers_now(wf, a) == {"auditor"}         # the record's user field
    wf.wf.decide(a["id"], wf.actor("auditor"), "approve")
    assert flow(wf, e["id"])["status"] == "approved" and get(wf, e["id"])["state"] == "approved"
    # without a reviewer the last step's `when` is false: skipped
    e2 = expense(wf, "clerk1", amount=10)
    step_of(wf, e2["id"], "escalate", "clerk1")
    a = flow(wf, e2["id"])
    wf.wf.decide(a["id"], wf.actor("fin1"), "approve")
    wf.wf.decide(a["id"], wf.actor("director"), "approve")
    wf.wf.decide(a["id"], wf.actor("boss_east"), "approve")
    a = flow(wf, e2["id"])
    assert a["status"] == "approved" and [t["decision"] for t in a["tasks"] if t["step"] == 2] == ["skipped"]


def test_the_submitter_is_left_out_unless_self_approval_is_allowed(wf):
    e = expense(wf, "boss_east", amount=10)
    step_of(wf, e["id"], "escalate", "boss_east")
    a = flow(wf, e["id"])
    wf.wf.decide(a["id"], wf.actor("fin1"), "approve")
    assert approvers_now(wf, flow(wf, e["id"])) == {"director"}          # boss_east is not asked
    # the reviewer is the submitter: nobody is left
    e2 = expense(wf, "clerk1", reviewer=wf.ids["clerk1"])
    error = refused(ValidationError, step_of, wf, e2["id"], "check", "clerk1")
    assert error.text("en") == "no one can approve the step 'Reviewer'; ask an administrator"
    unchanged(wf, e2)
    assert flow(wf, e2["id"]) is None
    # no reviewer at all: nobody either
    e3 = expense(wf, "clerk1")
    refused(ValidationError, step_of, wf, e3["id"], "check", "clerk1")
    unchanged(wf, e3)
    # self_approval allows it
    step_of(wf, e2["id"], "hold", "clerk1", comment="check it myself")
    step_of(wf, e2["id"], "self_check", "clerk1")
    a = flow(wf, e2["id"])
    assert approvers_now(wf, a) == {"clerk1"}
    wf.wf.decide(a["id"], wf.actor("clerk1"), "approve", "checked")
    assert get(wf, e2["id"])["state"] == "approved"


def test_rejection_ends_the_flow_with_its_outcome(wf):
    e = expense(wf, amount=20000)
    step_of(wf, e["id"], "submit", "clerk1")
    a = flow(wf, e["id"])["id"]
    wf.wf.decide(a, wf.actor("boss_east"), "approve")
    wf.wf.decide(a, wf.actor("fin1"), "reject", "no receipts")
    record = get(wf, e["id"])
    assert record["state"] == "draft" and record["approved"] is False
    approval = flow(wf, e["id"])
    assert approval["status"] == "rejected" and approval["finished_at"] is not None
    assert sorted(t["decision"] for t in approval["tasks"] if t["step"] == 1) == ["cancelled", "rejected"]
    last = history(wf, e["id"])[-1]
    assert (last["action"], last["user_id"], last["comment"], last["changes"]["state"]) == \
        ("reject", wf.ids["fin1"], "no receipts", ["review", "draft"])
    # the board flow's rejection puts it on hold
    e2 = expense(wf)
    step_of(wf, e2["id"], "escalate", "clerk1")
    wf.wf.decide(flow(wf, e2["id"])["id"], wf.actor("fin2"), "reject", "too much")
    assert get(wf, e2["id"])["state"] == "on_hold"


def test_recall_by_the_submitter_only_while_no_one_has_decided(wf):
    e = expense(wf, amount=20000)
    step_of(wf, e["id"], "submit", "clerk1")
    a = flow(wf, e["id"])["id"]
    error = refused(Forbidden, wf.wf.recall, a, wf.actor("boss_east"))
    assert error.text("en") == "only the submitter may recall a request"
    recalled = wf.wf.recall(a, wf.actor("clerk1"))
    assert recalled["status"] == "recalled"
    record = get(wf, e["id"])
    assert record["state"] == "draft"
    assert history(wf, e["id"])[-1]["action"] == "recall"
    assert all(t["decision"] == "cancelled" for t in flow(wf, e["id"])["tasks"])
    error = refused(Conflict, wf.wf.recall, a, wf.actor("clerk1"))       # twice
    assert error.text("en") == "this approval is already recalled"
    refused(Conflict, wf.wf.decide, a, wf.actor("boss_east"), "approve")  # too late to decide
    unchanged(wf, record)
    # once someone has decided, it can no longer be recalled
    step_of(wf, e["id"], "submit", "clerk1")
    a2 = flow(wf, e["id"])["id"]
    wf.wf.decide(a2, wf.actor("boss_east"), "approve")
    error = refused(Conflict, wf.wf.recall, a2, wf.actor("clerk1"))
    assert error.text("en") == "someone has already decided; it can no longer be recalled"
    assert get(wf, e["id"])["state"] == "review"


def test_decisions_by_others_twice_or_too_late_are_refused_and_change_nothing(wf):
    e = expense(wf, amount=20000)
    step_of(wf, e["id"], "submit", "clerk1")
    a = flow(wf, e["id"])["id"]
    before = (get(wf, e["id"]), len(history(wf, e["id"])))
    for user in ("clerk1", "auditor", "director", "admin"):      # the submitter, bystanders, a superuser
        error = refused(Forbidden, wf.wf.decide, a, wf.actor(user), "approve")
        assert error.text("en") == "you are not an approver of the current step"
    refused(ValidationError, wf.wf.decide, a, wf.actor("boss_east"), "maybe")
    refused(NotFound, wf.wf.decide, 999999, wf.actor("boss_east"), "approve")
    unchanged(wf, before[0])
    assert len(history(wf, e["id"])) == before[1]
    wf.wf.decide(a, wf.actor("boss_east"), "approve")
    tasks = flow(wf, e["id"])["tasks"]
    error = refused(Conflict, wf.wf.decide, a, wf.actor("boss_east"), "approve")   # a double click
    assert error.text("en") == "you have already decided on this request"
    wf.wf.decide(a, wf.actor("fin1"), "approve")
    done = get(wf, e["id"])
    for user in ("fin1", "fin2"):
        error = refused(Conflict, wf.wf.decide, a, wf.actor(user), "reject")
        assert error.text("en") == "this approval is already approved"
        assert error.text("zh") == "该审批已结束（已批准）"
    unchanged(wf, done)
    assert len(flow(wf, e["id"])["tasks"]) == len(tasks)


def test_a_second_approver_of_an_any_step_is_told_someone_else_decided(wf):
    e = expense(wf)
    step_of(wf, e["id"], "escalate", "clerk1")
    a = flow(wf, e["id"])["id"]
    wf.wf.decide(a, wf.actor("fin1"), "approve")
    error = refused(Conflict, wf.wf.decide, a, wf.actor("fin2"), "approve")
    assert error.text("en") == "another approver has already decided this step"
    assert flow(wf, e["id"])["step"] == 1


def test_leaving_the_state_mid_approval_ends_the_flow(wf):
    e = expense(wf)
    step_of(wf, e["id"], "submit", "clerk1")
    refused(Forbidden, step_of, wf, e["id"], "submit", "clerk1")      # already in review
    step_of(wf, e["id"], "cancel", "boss_east", comment="duplicate")
    a = flow(wf, e["id"])
    assert a["status"] == "cancelled"
    assert all(x["id"] != a["id"] for x in wf.wf.inbox(wf.actor("boss_east")))
    assert wf.wf.inbox_count(wf.actor("boss_east")) == len(wf.wf.inbox(wf.actor("boss_east")))


def test_inbox_and_submitted_by(wf):
    e = expense(wf, "clerk2", amount=10)
    step_of(wf, e["id"], "submit", "clerk2")
    a = flow(wf, e["id"])
    director = wf.actor("director")
    assert a["id"] in [x["id"] for x in wf.wf.inbox(director)]
    assert wf.wf.inbox_count(director) == len(wf.wf.inbox(director))
    assert a["id"] in [x["id"] for x in wf.wf.submitted_by(wf.actor("clerk2"))]
    approval = wf.wf.approval(a["id"])
    assert wf.wf.involved(approval, wf.actor("clerk2")) and wf.wf.involved(approval, director)
    assert wf.wf.waiting_for(approval, director) and not wf.wf.waiting_for(approval, wf.actor("clerk2"))
    assert not wf.wf.involved(approval, wf.actor("fin1"))


def test_autonumber_assigned_on_the_approved_state(wf):
    e = expense(wf, amount=10)
    step_of(wf, e["id"], "submit", "clerk1")
    assert get(wf, e["id"])["ref"] is None
    wf.wf.decide(flow(wf, e["id"])["id"], wf.actor("boss_east"), "approve")
    ref = get(wf, e["id"])["ref"]
    assert ref and ref.startswith("AP-")
    step_of(wf, e["id"], "hold", "clerk1", comment="again")
    step_of(wf, e["id"], "resume", "boss_east")
    step_of(wf, e["id"], "submit", "clerk1")
    wf.wf.decide(flow(wf, e["id"])["id"], wf.actor("boss_east"), "approve")
    assert get(wf, e["id"])["ref"] == ref                       # kept, not numbered twice


def test_a_flow_keeps_the_steps_it_started_with(wf, tmp_path):
    old = expense(wf, amount=20000)
    step_of(wf, old["id"], "submit", "clerk1")
    a = flow(wf, old["id"])["id"]
    # the YAML changes: the finance step goes, a legal step (the auditor) comes
    edited = reopen(wf, tmp_path / "edited", {"workflows/expense_approval.yaml": """
        workflow: expense_approval
        kind: approval
        object: expense
        label: {en: Expense approval, zh: 费用审批}
        steps:
          - {name: manager, label: {en: Manager, zh: 部门经理}, approvers: {manager_of: submitter}}
          - {name: legal, label: {en: Legal, zh: 法务}, approvers: {users: [auditor]}}
        on_approved: {to: approved}
        on_rejected: {to: draft}
    """})
    try:
        edited.wf.decide(a, edited.actor("boss_east"), "approve")
        approval = flow(edited, old["id"])
        assert approval["step"] == 1 and approvers_now(edited, approval) == {"fin1", "fin2"}   # its snapshot
        refused(Forbidden, edited.wf.decide, a, edited.actor("auditor"), "approve")
        edited.wf.decide(a, edited.actor("fin1"), "approve")
        record = get(edited, old["id"])
        assert record["state"] == "approved" and record["approved"] is True     # the old outcome's `set`
        # a flow started now follows the new steps
        new = expense(edited, amount=20000)
        step_of(edited, new["id"], "submit", "clerk1")
        b = flow(edited, new["id"])["id"]
        edited.wf.decide(b, edited.actor("boss_east"), "approve")
        assert approvers_now(edited, flow(edited, new["id"])) == {"auditor"}
        edited.wf.decide(b, edited.actor("auditor"), "approve")
        assert get(edited, new["id"])["approved"] is False
    finally:
        edited.rt.close()


# ---- concurrent decisions --------------------------------------------------------------------

def race(*calls):
    """Run the calls at the same moment, each on its own thread (and connection):
    [(result or None, error or None)]."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            out[i] = (call(), None)
        except RecordError as e:
            out[i] = (None, e)
        except Exception as e:  # noqa: BLE001 - anything else is a failure the assert shows
            out[i] = (None, e)
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def one_outcome_one_conflict(results):
    ok = [r for r, e in results if e is None]
    errors = [e for r, e in results if e is not None]
    assert len(ok) == 1 and len(errors) == 1 and isinstance(errors[0], Conflict), results


@pytest.mark.parametrize("rounds", [3])
def test_two_approvers_of_an_any_step_at_the_same_moment(wf, rounds):
    for _ in range(rounds):
        # a step followed by another: the loser is told another approver decided
        e = expense(wf)
        step_of(wf, e["id"], "escalate", "clerk1")
        a = flow(wf, e["id"])["id"]
        fin1, fin2 = wf.actor("fin1"), wf.actor("fin2")
        one_outcome_one_conflict(race(lambda: wf.wf.decide(a, fin1, "approve", "one"),
                                      lambda: wf.wf.decide(a, fin2, "approve", "two")))
        approval = flow(wf, e["id"])
        assert approval["step"] == 1 and sorted(t["decision"] for t in approval["tasks"] if t["step"] == 0) == \
            ["approved", "cancelled"]
        assert len([t for t in approval["tasks"] if t["step"] == 1]) == 2       # the next step began once
        # the last step: one outcome for the record
        e = expense(wf, amount=20000)
        step_of(wf, e["id"], "submit", "clerk1")
        a = flow(wf, e["id"])["id"]
        wf.wf.decide(a, wf.actor("boss_east"), "approve")
        one_outcome_one_conflict(race(lambda: wf.wf.decide(a, fin1, "approve", "one"),
                                      lambda: wf.wf.decide(a, fin2, "reject", "two")))
        approval = flow(wf, e["id"])
        assert approval["status"] in ("approved", "rejected")
        outcomes = [h for h in history(wf, e["id"]) if h["action"] in ("approve", "reject") and h["changes"]
                    and "state" in h["changes"]]
        assert len(outcomes) == 1
        assert get(wf, e["id"])["state"] == {"approved": "approved", "rejected": "draft"}[approval["status"]]


def test_a_double_click_gives_one_decision(wf):
    for _ in range(3):
        e = expense(wf, amount=10)
        step_of(wf, e["id"], "submit", "clerk1")
        a = flow(wf, e["id"])["id"]
        boss = wf.actor("boss_east")
        one_outcome_one_conflict(race(lambda: wf.wf.decide(a, boss, "approve", "click"),
                                      lambda: wf.wf.decide(a, boss, "approve", "click")))
        assert [t["decision"] for t in flow(wf, e["id"])["tasks"]] == ["approved", "skipped"]
        assert len([h for h in history(wf, e["id"]) if h["action"] == "approve"]) == 1


def test_a_decision_racing_a_recall(wf):
    for _ in range(3):
        e = expense(wf, amount=10)
        step_of(wf, e["id"], "submit", "clerk1")
        a = flow(wf, e["id"])["id"]
        results = race(lambda: wf.wf.decide(a, wf.actor("boss_east"), "approve"),
                       lambda: wf.wf.recall(a, wf.actor("clerk1")))
        one_outcome_one_conflict(results)
        status = flow(wf, e["id"])["status"]
        assert get(wf, e["id"])["state"] == {"approved": "approved", "recalled": "draft"}[status]


# ---- a property: random walks stay on the lifecycle's paths and lose no decision ------------

USERS = ["clerk1", "boss_east", "director", "fin1", "fin2", "auditor", "admin"]
TRANSITIONS = ["submit", "escalate", "check", "self_check", "hold", "resume", "pay", "cancel"]
MOSTLY = st.sampled_from([True, True, True, False])


def allowed_moves(spec) -> set:
    """(from, to) pairs the metadata allows: transitions, approval outcomes and recalls."""
    lifecycle = spec.workflows["expense_lifecycle"]
    moves = set()
    for t in lifecycle.transitions.values():
        moves |= {(s, t.to) for s in t.sources}
        if t.approval:
            flow = spec.workflows[t.approval]
            for outcome in (flow.on_approved, flow.on_rejected):
                moves.add((t.to, outcome.to or t.to))
            moves |= {(t.to, s) for s in t.sources}        # a recall returns where it came from
    return moves


def test_random_walks_stay_on_the_lifecycle_and_lose_no_decision(wf):
    moves = allowed_moves(wf.rt.spec)
    states = set(wf.rt.spec.workflows["expense_lifecycle"].states)
    comments = itertools.count(1)
    reviewers = [None, "fin1", "clerk1", "auditor"]

    class Walk(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.record = None
            self.decisions = []          # (approval id, user id, decision, comment) the API accepted

        @initialize(amount=st.sampled_from([0, 500, 20000]), reviewer=st.sampled_from(reviewers))
        def create(self, amount, reviewer):
            self.new_record(amount, reviewer)

        def new_record(self, amount, reviewer):
            self.record = expense(wf, amount=amount, reviewer=wf.ids[reviewer] if reviewer else None)

        @precondition(lambda self: get(wf, self.record["id"])["state"] in ("paid", "cancelled"))
        @rule(amount=st.sampled_from([0, 500, 20000]), reviewer=st.sampled_from(reviewers))
        def another(self, amount, reviewer):
            """A final state ends a record's walk: go on with a new one."""
            self.check_record()
            self.decisions = []
            self.new_record(amount, reviewer)

        @rule(name=st.sampled_from(TRANSITIONS), user=st.sampled_from(USERS), pick=st.integers(0, 20),
              offered=MOSTLY, with_comment=MOSTLY)
        def transition(self, name, user, pick, offered, with_comment):
            """A transition offered to the user (as a page shows), or any one (as a hand-made request)."""
            before = get(wf, self.record["id"])["state"]
            if offered:
                names = [t.name for t in wf.wf.available("expense", self.record["id"], wf.actor(user))]
                if pick < 16:   # a cancel ends the walk: take it less often than the rest
                    names = [n for n in names if n != "cancel"] or names
                name = names[pick % len(names)] if names else name
            try:
                after = step_of(wf, self.record["id"], name, user,
                                comment=f"c{next(comments)}" if with_comment else None)
            except RecordError:
                assert get(wf, self.record["id"])["state"] == before
                return
            t = wf.rt.spec.workflows["expense_lifecycle"].transitions[name]
            assert before in t.sources and after["state"] in (t.to, "approved")   # approved: every step skipped

        @rule(user=st.sampled_from(USERS), pick=st.integers(0, 20), asked=MOSTLY,
              decision=st.sampled_from(["approve", "approve", "reject"]))
        def decide(self, user, pick, asked, decision):
            """A decision by someone the step asks (from their inbox), or by anyone."""
            a = flow(wf, self.record["id"])
            if a is None:
                return
            if asked and approvers_now(wf, a):
                user = sorted(approvers_now(wf, a))[pick % len(approvers_now(wf, a))]
            comment = f"d{next(comments)}"
            try:
                wf.wf.decide(a["id"], wf.actor(user), decision, comment)
            except RecordError:
                return
            self.decisions.append((a["id"], wf.ids[user], decision, comment))

        @rule(user=st.sampled_from(USERS), by_submitter=st.booleans())
        def recall(self, user, by_submitter):
            a = flow(wf, self.record["id"])
            if a is None:
                return
            if by_submitter:
                user = wf.name_of[a["submitter_id"]]
            try:
                wf.wf.recall(a["id"], wf.actor(user))
            except RecordError:
                pass

        @invariant()
        def check_record(self):
            """The states held follow the metadata's moves; every accepted decision is on record."""
            record = get(wf, self.record["id"])
            entries = history(wf, self.record["id"])
            flows = wf.wf.flows_of("expense", self.record["id"])
            held = [h["changes"]["state"] for h in entries if h["changes"] and "state" in h["changes"]]
            assert held[0] == [None, "draft"]
            for old, new in held[1:]:
                assert new in states and (old, new) in moves, (old, new)
            assert record["state"] == held[-1][1]
            pending = [f for f in flows if f["status"] == "pending"]
            assert len(pending) <= 1 and (not pending or record["state"] == "review")
            tasks = {(t["approval_id"], t["user_id"], t["decision"], t["comment"]) for f in flows for t in f["tasks"]}
            said = {(h["user_id"], h["action"], h["comment"]) for h in entries}
            for approval_id, user_id, decision, comment in self.decisions:
                assert (approval_id, user_id, {"approve": "approved", "reject": "rejected"}[decision], comment) in tasks
                assert (user_id, decision, comment) in said

    # each step writes and reads a database: fewer walks on PostgreSQL, where a commit costs more;
    # LOOM_FUZZ_EXAMPLES=500 for a longer hunt
    examples = int(os.environ.get("LOOM_FUZZ_EXAMPLES", 30 if wf.rt.dialect == "sqlite" else 15))
    run_state_machine_as_test(Walk, settings=settings(max_examples=examples, stateful_step_count=25, deadline=None,
                                                      suppress_health_check=list(HealthCheck)))


# ---- the CLI ----------------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_record_transition(wf):
    e = expense(wf)
    base = ["--metadata", wf.root, "--database", wf.url]
    result = invoke("record", "transition", *base, "--as", "clerk1", "expense", e["id"], "hold")
    assert result.exit_code == 1 and "a comment is required to Hold" in result.output
    result = invoke("record", "transition", *base, "--as", "clerk1", "expense", e["id"], "hold",
                    "--comment", "from the command line")
    assert result.exit_code == 0, result.output
    assert get(wf, e["id"])["state"] == "on_hold"
    assert history(wf, e["id"])[-1]["comment"] == "from the command line"
    result = invoke("record", "transition", *base, "--as", "clerk1", "expense", e["id"], "resume")
    assert result.exit_code == 1 and "only Manager may take 'Resume'" in result.output


def test_migrate_plan_reports_records_in_a_removed_state(wf, tmp_path):
    e = expense(wf)
    step_of(wf, e["id"], "hold", "clerk1", comment="park it")
    rename = {rel: (lambda text: text.replace("on_hold", "paused"))
              for rel in ("workflows/expense_lifecycle.yaml", "workflows/board_approval.yaml",
                          "workflows/self_approval.yaml")}
    edited = reopen(wf, tmp_path / "edited", rename)
    edited.rt.close()
    result = invoke("migrate", "--plan", "--metadata", tmp_path / "edited", "--database", wf.url)
    assert result.exit_code == 0, result.output
    assert "hold state of expense 'on_hold', which the metadata no longer defines" in result.output
    assert "record(s)" in result.output
    result = invoke("migrate", "--plan", "--metadata", wf.root, "--database", wf.url)
    assert "on_hold" not in result.output


def test_cli_workflow_list_and_show_svg(tmp_path):
    result = invoke("workflow", "list", "--metadata", CRM_METADATA)
    assert result.exit_code == 0 and "contract_approval" in result.output and "contract_lifecycle" in result.output
    result = invoke("workflow", "show", "contract_approval", "--metadata", CRM_METADATA)
    assert "manager_of submitter" in result.output and "approved -> approved; rejected -> draft" in result.output
    for name in ("contract_lifecycle", "contract_approval", "opportunity_lifecycle"):
        out = tmp_path / f"{name}.svg"
        result = invoke("workflow", "show", name, "--metadata", CRM_METADATA, "--svg", out)
        assert result.exit_code == 0 and out.exists()
        root = ET.parse(out).getroot()
        assert root.tag == f"{SVG}svg"
    states = {g.get("data-state") for g in ET.parse(tmp_path / "contract_lifecycle.svg").getroot().iter(f"{SVG}g")}
    assert {"draft", "approving", "approved", "active", "closed", "terminated"} <= states
    result = invoke("workflow", "show", "contract_aproval", "--metadata", CRM_METADATA)
    assert result.exit_code == 1 and "did you mean 'contract_approval'" in result.output


# ---- the shipped CRM: contracts --------------------------------------------------------------

def test_crm_contract_is_numbered_when_approved(db_url, tmp_path):
    from loom.metadata import load_spec
    from loom.runtime import Runtime
    from loom.security.organization import actor_for, create_user, find_user
    from loom.storage.database import create_engine
    rt = Runtime(load_spec(CRM_METADATA), create_engine(db_url))
    rt.setup()
    try:
        users = {}
        for username, roles, dept in [("rep", ["sales_rep"], "sales_east"), ("mgr", ["sales_manager"], "sales"),
                                      ("fin", ["finance"], "finance")]:
            create_user(rt, username, roles=roles, department=dept)
            users[username] = actor_for(rt, find_user(rt, username))
        set_manager(rt, "sales", users["mgr"].id)        # sales_east has none: the rep's manager is sales'
        customer = rt.records.create("customer", {"name": "华信科技有限公司"}, users["rep"])
        bad = refused(ValidationError, rt.records.create, "contract", {
            "name": "框架合同", "customer": customer["id"], "amount": 1000,
            "starts_on": "2025-03-01", "ends_on": "2025-02-01"}, users["rep"])
        assert [m.text("zh") for m in bad.fields["ends_on"]] == ["到期日期必须晚于生效日期"]
        wf = rt.workflows

        def contract(amount):
            return rt.records.create("contract", {"name": f"合同 {amount}", "customer": customer["id"], "amount": amount,
                                                  "starts_on": "2025-01-01", "ends_on": "2025-12-31"}, users["rep"])
        small = contract(80000)
        assert small["state"] == "draft" and small["code"] is None
        submitted = wf.transition("contract", small["id"], "submit", users["rep"], comment="请审批")
        assert submitted["state"] == "approving" and submitted["code"] is None
        refused(Forbidden, rt.records.update, "contract", small["id"], {"amount": 1}, users["rep"],
                version=submitted["version"])
        approval = wf.flows_of("contract", small["id"])[0]
        assert [t["user_id"] for t in approval["tasks"]] == [users["mgr"].id]
        wf.decide(approval["id"], users["mgr"], "approve", "同意")
        done = rt.records.get("contract", small["id"], users["rep"])
        month = dt.datetime.now(TZ).strftime("%Y%m")
        assert done["state"] == "approved" and done["code"] == f"HT{month}-0001"
        assert [t["decision"] for t in wf.flows_of("contract", small["id"])[0]["tasks"]] == ["approved", "skipped"]
        signed = wf.transition("contract", small["id"], "sign", users["rep"])
        assert signed["state"] == "active" and signed["signed_on"] == today()
        assert rt.records.get("customer", customer["id"], SYSTEM)["active_contract_value"] == 80000

        big = contract(150000)                            # above 100,000: finance too
        wf.transition("contract", big["id"], "submit", users["rep"])
        a = wf.flows_of("contract", big["id"])[0]["id"]
        wf.decide(a, users["mgr"], "approve")
        assert rt.records.get("contract", big["id"], SYSTEM)["code"] is None
        wf.decide(a, users["fin"], "reject", "付款条件需调整")
        rejected = rt.records.get("contract", big["id"], SYSTEM)
        assert rejected["state"] == "draft" and rejected["code"] is None
        rt.records.update("contract", big["id"], {"payment_terms": "prepaid"}, users["rep"], version=rejected["version"])
        wf.transition("contract", big["id"], "submit", users["rep"], comment="已改为预付")
        a = wf.flows_of("contract", big["id"])[0]["id"]
        wf.decide(a, users["mgr"], "approve")
        wf.decide(a, users["fin"], "approve")
        assert rt.records.get("contract", big["id"], SYSTEM)["code"] == f"HT{month}-0002"
        terminated = wf.transition("contract", big["id"], "terminate", users["mgr"], comment="客户破产")
        assert terminated["state"] == "terminated" and terminated["terminated_on"] == today()
        error = refused(Forbidden, wf.transition, "contract", small["id"], "terminate", users["rep"], comment="x")
        assert error.text("zh") == "只有销售经理可以执行“终止合同”"
    finally:
        rt.close()
