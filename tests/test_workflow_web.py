"""Workflow pages through the test client, on the shipped CRM: transition buttons and
forms, refused transitions posted by hand, the inbox and its count, deciding and recalling,
who may see an approval, and the diagrams (pages, SVG endpoints, the CLI's file)."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

import pytest

from web_helpers import actor, create, make_app, post, runtime_of, signed_in
from workflow_helpers import set_manager

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def app(crm_metadata, tmp_path_factory):
    app = make_app(crm_metadata, tmp_path_factory.mktemp("wfweb"))
    set_manager(runtime_of(app), "sales", actor(app, "mgr").id)   # rep1's sales_east has none: sales' decides
    return app


@pytest.fixture(scope="module")
def customer(app):
    return create(app, "rep1", "customer", name="华信科技有限公司")


def contract(app, customer, user="rep1", amount=150000, **values):
    values = {"name": f"合同 {amount}", "customer": customer["id"], "amount": amount, **values}
    return create(app, user, "contract", **values)


def record(app, obj, id_):
    from loom.security.actor import Actor
    return runtime_of(app).records.get(obj, id_, Actor.system(), with_lines=False)


def buttons(html: str, obj: str, id_: int) -> list[str]:
    """The transitions offered on a detail page, in order."""
    return re.findall(rf'action="/o/{obj}/{id_}/transition/(\w+)"', html)


def submit(app, client, obj, id_, name, comment=None, version=None, headers=None, **values):
    version = version if version is not None else record(app, obj, id_)["version"]
    data = {"version": version, **values}
    if comment is not None:
        data["comment"] = comment
    return post(client, f"/o/{obj}/{id_}/transition/{name}", data, headers=headers or {})


def approval_of(app, obj, id_):
    return runtime_of(app).workflows.flows_of(obj, id_)[0]


def text(response) -> str:
    return response.get_data(as_text=True)


def svg_root(body: str):
    root = ET.fromstring(body)
    assert root.tag == f"{SVG}svg"
    return root


def current_states(root) -> list[str]:
    return [g.get("data-state") for g in root.iter(f"{SVG}g") if "current" in (g.get("class") or "").split()]


# ---- transition buttons and forms -----------------------------------------------------------

def test_buttons_show_only_the_transitions_allowed_now(app, customer):
    c = contract(app, customer)
    rep = signed_in(app, "rep1")
    html = text(rep.get(f"/o/contract/{c['id']}"))
    assert buttons(html, "contract", c["id"]) == ["submit"]
    assert "Submit for approval" in html and 'name="comment"' in html          # the comment popover
    assert f'name="version" value="{c["version"]}"' in html
    # opportunities: no discount, so no discount approval; lose needs a comment
    opp = create(app, "rep1", "opportunity", name="ERP 项目", customer=customer["id"], amount=50000,
                 expected_close_date="2030-01-01")
    html = text(rep.get(f"/o/opportunity/{opp['id']}"))
    assert buttons(html, "opportunity", opp["id"]) == ["win", "lose"]
    # customers: roles decide
    assert buttons(text(rep.get(f"/o/customer/{customer['id']}")), "customer", customer["id"]) == ["start_trading"]
    mgr = signed_in(app, "mgr")
    assert buttons(text(mgr.get(f"/o/customer/{customer['id']}")), "customer", customer["id"]) == \
        ["start_trading", "mark_lost"]
    # finance reads every contract but may take none of its transitions
    assert buttons(text(signed_in(app, "fin").get(f"/o/contract/{c['id']}")), "contract", c["id"]) == []


def test_a_transition_through_the_comment_form(app, customer):
    c = contract(app, customer)
    rep = signed_in(app, "rep1")
    page = rep.get(f"/o/contract/{c['id']}/transition/submit")             # the page without scripts
    assert page.status_code == 200 and 'name="comment"' in text(page)
    response = submit(app, rep, "contract", c["id"], "submit", "请审批：年度框架")
    assert response.status_code == 302 and response.headers["Location"] == f"/o/contract/{c['id']}"
    assert record(app, "contract", c["id"])["state"] == "approving"
    entry = runtime_of(app).records.history("contract", c["id"], actor(app, "rep1"))[0]
    assert (entry["action"], entry["comment"]) == ("transition", "请审批：年度框架")
    html = text(rep.get(f"/o/contract/{c['id']}"))
    assert buttons(html, "contract", c["id"]) == []                          # nothing to do while approving
    assert '<a class="button primary" href="/o/contract/' not in html        # locked: no edit button
    response = submit(app, rep, "contract", c["id"], "submit", headers={"HX-Request": "true"})
    assert response.status_code == 403
    # an htmx request gets its way back in a header
    c2 = contract(app, customer, amount=10)
    response = submit(app, rep, "contract", c2["id"], "submit", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Location"] == f"/o/contract/{c2['id']}"


def test_forbidden_and_impossible_transitions_posted_by_hand_change_nothing(app, customer):
    c = contract(app, customer)
    before = record(app, "contract", c["id"])
    rep, rep2 = signed_in(app, "rep1"), signed_in(app, "rep2")
    response = submit(app, rep, "customer", customer["id"], "mark_lost", "xx")     # a role it lacks
    assert response.status_code == 403 and "only Sales manager may take &#39;Mark lost&#39;" in text(response)
    assert record(app, "customer", customer["id"])["state"] == "potential"
    cases = [
        (rep, "terminate", "xx", 403, "&#39;Terminate&#39; is not possible while the record is Draft"),
        (rep, "sign", None, 403, "&#39;Mark signed&#39; is not possible while the record is Draft"),
        (rep, "fly", None, 404, None),                                             # no such transition
        (rep2, "submit", None, 404, None),                                         # a record it may not see
        (signed_in(app, "agent"), "submit", None, 404, None),                      # an object it may not see
    ]
    for client, name, comment, status, message in cases:
        response = submit(app, client, "contract", c["id"], name, comment)
        assert response.status_code == status, (name, text(response)[:300])
        if message:
            assert message in text(response)
    response = submit(app, rep, "contract", c["id"], "submit", version=before["version"] - 1)
    assert response.status_code == 409 and "reload" in text(response)
    assert record(app, "contract", c["id"]) == before
    # a comment the transition requires
    mgr = signed_in(app, "mgr")
    cust = create(app, "mgr", "customer", name="华北电力设备厂")
    response = submit(app, mgr, "customer", cust["id"], "mark_lost", "  ")
    assert response.status_code == 422 and "a comment is required to Mark lost" in text(response)
    assert record(app, "customer", cust["id"])["state"] == "potential"
    response = submit(app, mgr, "customer", cust["id"], "mark_lost", "客户已倒闭")
    assert response.status_code == 302
    assert record(app, "customer", cust["id"])["state"] == "lost"


def test_a_transition_asks_for_what_its_state_requires(app, customer):
    """Losing an opportunity needs a lost reason, a field shown only once it is lost: the edit
    form cannot offer it, so the transition does."""
    opp = create(app, "rep1", "opportunity", name="MES 项目", customer=customer["id"], amount=80000,
                 expected_close_date="2030-06-30")
    rep = signed_in(app, "rep1")
    html = text(rep.get(f"/o/opportunity/{opp['id']}"))
    popover = re.search(rf'<form[^>]*action="/o/opportunity/{opp["id"]}/transition/lose".*?</form>', html, re.S).group(0)
    assert '<select' in popover and 'name="lost_reason"' in popover and 'value="competitor"' in popover
    won = re.search(rf'<form[^>]*action="/o/opportunity/{opp["id"]}/transition/win".*?</form>', html, re.S).group(0)
    assert "lost_reason" not in won
    response = submit(app, rep, "opportunity", opp["id"], "lose", "客户选择了别家")
    body = text(response)
    assert response.status_code == 422 and "Lost reason is required" in body
    assert re.search(r'<select aria-invalid="true"[^>]*name="lost_reason"', body)            # the page to retry on
    assert "客户选择了别家" in body                                                          # the comment kept
    assert record(app, "opportunity", opp["id"])["state"] == "open"
    response = submit(app, rep, "opportunity", opp["id"], "lose", "客户选择了别家", lost_reason="competitor",
                      lost_to="kingdee", probability=99)                                 # only the asked field counts
    assert response.status_code == 302
    lost = record(app, "opportunity", opp["id"])
    assert (lost["state"], lost["lost_reason"], lost["lost_to"], lost["probability"]) == ("lost", "competitor", None, 0)
    assert rep.get(f"/o/opportunity/{opp['id']}/transition/lose").status_code == 200


def test_messages_in_chinese(app, customer):
    c = contract(app, customer)
    rep = signed_in(app, "rep1", "zh")
    response = submit(app, rep, "customer", customer["id"], "mark_lost", "x")
    assert response.status_code == 403 and "只有销售经理可以执行“标记流失”" in text(response)
    response = submit(app, rep, "contract", c["id"], "sign")
    assert response.status_code == 403 and "当前状态为草稿，不能确认签订" in text(response)
    assert "提交审批" in text(rep.get(f"/o/contract/{c['id']}"))


# ---- approvals ------------------------------------------------------------------------------

def inbox_badge(client) -> int:
    m = re.search(r'class="inbox"[^>]*>[^<]*(?:<span class="count-badge">(\d+)</span>)?', text(client.get("/")))
    assert m, "no approvals link in the top bar"
    return int(m.group(1) or 0)


def test_approve_then_reject_through_the_pages(app, customer):
    mgr, fin, rep = signed_in(app, "mgr"), signed_in(app, "fin"), signed_in(app, "rep1")
    waiting = {name: inbox_badge(c) for name, c in (("mgr", mgr), ("fin", fin))}
    c = contract(app, customer, amount=250000)
    submit(app, rep, "contract", c["id"], "submit", "季度合同")
    a = approval_of(app, "contract", c["id"])
    assert inbox_badge(mgr) == waiting["mgr"] + 1 and inbox_badge(fin) == waiting["fin"]
    inbox = text(mgr.get("/approvals"))
    assert f'href="/approvals/{a["id"]}"' in inbox and "Contract approval" in inbox and "Rep1" in inbox
    assert f'href="/approvals/{a["id"]}"' in text(rep.get("/approvals/mine"))
    page = text(mgr.get(f"/approvals/{a['id']}"))
    assert f'action="/approvals/{a["id"]}/approve"' in page and f'formaction="/approvals/{a["id"]}/reject"' in page
    assert "250,000" in page or "250000" in page                               # the record, read-only
    assert f'action="/approvals/{a["id"]}/approve"' not in text(fin.get(f"/approvals/{a['id']}"))  # not yet
    response = post(mgr, f"/approvals/{a['id']}/approve", {"comment": "同意", "next": f"/approvals/{a['id']}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/approvals/{a['id']}"
    assert inbox_badge(mgr) == waiting["mgr"] and inbox_badge(fin) == waiting["fin"] + 1
    response = post(mgr, f"/approvals/{a['id']}/approve", {"comment": "again"})     # a second click
    assert response.status_code == 409 and "already decided" in text(response)
    response = post(fin, f"/approvals/{a['id']}/reject", {"comment": "付款条件过长"})
    assert response.status_code == 302 and response.headers["Location"] == "/approvals"
    assert record(app, "contract", c["id"])["state"] == "draft"
    assert inbox_badge(fin) == waiting["fin"]
    panel = text(rep.get(f"/o/contract/{c['id']}/approvals"))
    assert "rejected" in panel and "付款条件过长" in panel and "同意" in panel
    response = post(fin, f"/approvals/{a['id']}/approve", {"comment": "late"})
    assert response.status_code == 409 and "this approval is already rejected" in text(response)
    assert buttons(text(rep.get(f"/o/contract/{c['id']}")), "contract", c["id"]) == ["submit"]


def test_recall_through_the_pages(app, customer):
    rep, mgr = signed_in(app, "rep1"), signed_in(app, "mgr")
    c = contract(app, customer)
    submit(app, rep, "contract", c["id"], "submit")
    a = approval_of(app, "contract", c["id"])
    panel = text(rep.get(f"/o/contract/{c['id']}/approvals"))
    assert f'action="/approvals/{a["id"]}/recall"' in panel
    assert f'action="/approvals/{a["id"]}/recall"' not in text(mgr.get(f"/o/contract/{c['id']}/approvals"))
    response = post(mgr, f"/approvals/{a['id']}/recall")
    assert response.status_code == 403 and "only the submitter may recall" in text(response)
    response = post(rep, f"/approvals/{a['id']}/recall", {"next": f"/o/contract/{c['id']}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/o/contract/{c['id']}"
    assert record(app, "contract", c["id"])["state"] == "draft"
    assert "recalled" in text(rep.get(f"/o/contract/{c['id']}/approvals"))
    response = post(rep, f"/approvals/{a['id']}/recall")
    assert response.status_code == 409
    # once the manager has decided, no recall is offered
    submit(app, rep, "contract", c["id"], "submit")
    b = approval_of(app, "contract", c["id"])
    post(mgr, f"/approvals/{b['id']}/approve")
    assert f'/approvals/{b["id"]}/recall' not in text(rep.get(f"/o/contract/{c['id']}/approvals"))
    assert post(rep, f"/approvals/{b['id']}/recall").status_code == 409
    response = post(rep, f"/approvals/{b['id']}/recall", {"next": "https://evil.example/"})
    assert response.status_code == 409


def test_times_are_shown_in_the_application_time_zone(app, customer):
    """Stored times are UTC; the approvals panel, the inbox and the history show them in
    Asia/Shanghai (app.yaml), eight hours on, as the record's own date-times are."""
    rep, mgr = signed_in(app, "rep1"), signed_in(app, "mgr")
    c = contract(app, customer, amount=8000)
    submit(app, rep, "contract", c["id"], "submit")
    submitted = approval_of(app, "contract", c["id"])["created_at"]
    local = submitted.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    utc = submitted.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    panel = text(rep.get(f"/o/contract/{c['id']}/approvals"))
    assert local in panel and utc not in panel
    assert local in text(mgr.get("/approvals")) and utc not in text(mgr.get("/approvals"))
    changed = runtime_of(app).records.history("contract", c["id"], actor(app, "rep1"))[0]["at"]
    history = text(rep.get(f"/o/contract/{c['id']}/history"))
    assert changed.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M") in history
    assert changed.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M") not in history


def test_an_approval_is_shown_to_those_involved_and_to_readers_of_the_record_only(app, customer):
    rep = signed_in(app, "rep1")
    c = contract(app, customer)
    submit(app, rep, "contract", c["id"], "submit", "机密条款")
    a = approval_of(app, "contract", c["id"])
    for user in ("rep1", "mgr", "admin"):
        assert signed_in(app, user).get(f"/approvals/{a['id']}").status_code == 200, user
    for user in ("rep2", "agent"):
        client = signed_in(app, user)
        assert client.get(f"/approvals/{a['id']}").status_code == 404, user
        assert post(client, f"/approvals/{a['id']}/approve").status_code == 404, user
        assert post(client, f"/approvals/{a['id']}/recall").status_code == 404, user
        assert client.get(f"/o/contract/{c['id']}/approvals").status_code == 404, user   # the panel fragment
    assert rep.get("/approvals/999999").status_code == 404
    assert record(app, "contract", c["id"])["state"] == "approving"


def test_an_approver_who_may_not_read_the_record_still_sees_the_request(app, customer):
    rt = runtime_of(app)
    set_manager(rt, "sales_north", actor(app, "agent").id)      # a service agent, who sees no contracts
    try:
        cust = create(app, "rep2", "customer", name="北方重工集团")
        c = contract(app, cust, user="rep2", amount=5000, description="条款摘要")
        submit(app, signed_in(app, "rep2"), "contract", c["id"], "submit")
        a = approval_of(app, "contract", c["id"])
        agent = signed_in(app, "agent")
        assert inbox_badge(agent) == 1
        assert agent.get(f"/o/contract/{c['id']}").status_code == 404
        page = agent.get(f"/approvals/{a['id']}")
        html = text(page)
        assert page.status_code == 200 and "条款摘要" in html and "5,000" in html
        assert f'href="/o/contract/{c["id"]}"' not in html and "/related/" not in html   # nothing it can't open
        response = post(agent, f"/approvals/{a['id']}/approve", {"comment": "ok", "next": f"/approvals/{a['id']}"})
        assert response.status_code == 302
        assert record(app, "contract", c["id"])["state"] == "approved"
        assert "approved" in text(agent.get(f"/approvals/{a['id']}"))
    finally:
        set_manager(rt, "sales_north", None)


# ---- diagrams -------------------------------------------------------------------------------

def test_workflow_diagrams_for_administrators(app):
    admin = signed_in(app, "admin")
    page = admin.get("/admin/workflows")
    assert page.status_code == 200
    names = re.findall(r'src="/admin/workflows/(\w+)\.svg"', text(page))
    assert set(names) == set(runtime_of(app).spec.workflows)
    for name in names:
        response = admin.get(f"/admin/workflows/{name}.svg")
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        root = svg_root(text(response))
        assert current_states(root) == []
    lifecycle = svg_root(text(admin.get("/admin/workflows/contract_lifecycle.svg")))
    assert {g.get("data-state") for g in lifecycle.iter(f"{SVG}g") if g.get("data-state")} == \
        {"draft", "approving", "approved", "active", "closed", "terminated"}
    arrows = {t.text for t in lifecycle.iter(f"{SVG}title")}          # transitions and approval outcomes
    assert {"submit", "sign", "revise", "close", "terminate", "contract_approval: approved",
            "contract_approval: rejected"} == arrows
    flow = " ".join(svg_root(text(admin.get("/admin/workflows/contract_approval.svg"))).itertext())
    assert "Department manager" in flow and "Finance review" in flow and "when Amount > 100000" in flow
    assert "Approved" in flow and "Draft" in flow                            # outcomes by their labels
    rep = signed_in(app, "rep1")
    assert rep.get("/admin/workflows").status_code == 403
    assert rep.get("/admin/workflows/contract_lifecycle.svg").status_code == 404
    assert admin.get("/admin/workflows/nothing.svg").status_code == 404


def test_a_record_diagram_highlights_its_state(app, customer):
    rep = signed_in(app, "rep1")
    c = contract(app, customer, amount=10)
    response = rep.get(f"/o/contract/{c['id']}/diagram.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert current_states(svg_root(text(response))) == ["draft"]
    submit(app, rep, "contract", c["id"], "submit")
    assert current_states(svg_root(text(rep.get(f"/o/contract/{c['id']}/diagram.svg")))) == ["approving"]
    html = text(rep.get(f"/o/contract/{c['id']}"))
    inline = re.search(r'<div class="diagram">(<svg.*?</svg>)</div>', html, re.S).group(1)
    assert current_states(svg_root(inline)) == ["approving"]
    assert signed_in(app, "rep2").get(f"/o/contract/{c['id']}/diagram.svg").status_code == 404
    assert rep.get(f"/o/contact/1/diagram.svg").status_code == 404           # no lifecycle (or no record)
    zh = text(signed_in(app, "rep1", "zh").get(f"/o/contract/{c['id']}/diagram.svg"))
    assert "审批中" in zh and "部门经理审批" in zh
