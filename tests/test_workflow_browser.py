"""A contract's approval end to end in headless chromium, in Chinese: the rep submits it from
the detail page (the comment popover), the department manager approves it from the inbox,
finance rejects it with a comment, and the rep sees the outcome on the record and submits
again, then recalls. Every page is watched for console errors, CSP violations and server
errors (browser_helpers.py); screenshots go to tests/screenshots/workflow-*.png.
"""
from __future__ import annotations

import types

import pytest

from browser_helpers import CHROMIUM, REQUIRE_BROWSER, LiveServer, Session, browser_available, settle, shot
from web_helpers import actor, create, make_app, runtime_of
from workflow_helpers import set_manager

pytestmark = pytest.mark.browser

if not browser_available() and not REQUIRE_BROWSER:
    pytest.skip(f"no browser: {CHROMIUM} or Playwright for Python is missing", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def live(crm_metadata, tmp_path_factory, chromium):
    app = make_app(crm_metadata, tmp_path_factory.mktemp("wfbrowser"))
    set_manager(runtime_of(app), "sales", actor(app, "mgr").id)
    server = LiveServer(app)
    try:
        yield types.SimpleNamespace(app=app, server=server, browser=chromium)
    finally:
        server.stop()


def person(live, username):
    """A signed-in browser of its own, reading Chinese."""
    s = Session(live.browser, live.server, locale="zh-CN")
    s.sign_in(username)
    return s


def state_of(live, contract_id):
    from loom.security.actor import Actor
    return runtime_of(live.app).records.get("contract", contract_id, Actor.system(), with_lines=False)["state"]


def open_panel(page):
    """The detail page's approvals panel, once htmx has loaded it."""
    settle(page)
    panel = page.locator("#approvals")
    expect(panel.locator(".approval, p.muted").first).to_be_visible()
    return panel


def test_a_contract_is_submitted_approved_rejected_and_seen_by_the_rep(live):
    customer = create(live.app, "rep1", "customer", name="华信科技有限公司")
    contract = create(live.app, "rep1", "contract", name="2025 年度软件服务合同", customer=customer["id"],
                      amount=260000, payment_terms="net60", starts_on="2025-01-01", ends_on="2025-12-31",
                      description="含实施、培训及一年运维服务。")
    url = f"/o/contract/{contract['id']}"

    # the rep submits it from the detail page, with a comment in the popover
    with person(live, "rep1") as rep:
        page = rep.page
        page.goto(url)
        open_panel(page)
        expect(page.locator("h1 .badge")).to_have_text("草稿")
        shot(page, "workflow-1-draft.png")
        page.click("details.transition summary:text-is('提交审批')")
        popover = page.locator("details.transition[open] .popover-body")
        expect(popover).to_be_visible()
        popover.locator("textarea[name=comment]").fill("客户要求本月内签约，请尽快审批。")
        shot(page, "workflow-2-submit-popover.png", full_page=False)
        with page.expect_navigation():
            popover.locator("button[type=submit]").click()
        expect(page.locator("h1 .badge")).to_have_text("审批中")
        panel = open_panel(page)
        expect(panel.locator(".steps li.current")).to_contain_text("部门经理审批")
        expect(panel).to_contain_text("客户要求本月内签约")
        expect(page.locator("details.transition")).to_have_count(0)
        expect(page.locator("a.button:text-is('编辑')")).to_have_count(0)             # locked
        shot(page, "workflow-3-approving.png")
    assert state_of(live, contract["id"]) == "approving"

    # the manager sees it waiting, opens it from the inbox and approves
    with person(live, "mgr") as mgr:
        page = mgr.page
        page.goto("/")
        expect(page.locator("a.inbox .count-badge")).to_have_text("1")
        page.click("a.inbox")
        page.wait_for_url("**/approvals")
        row = page.locator("table.list tbody tr").filter(has_text="2025 年度软件服务合同")
        expect(row).to_contain_text("合同审批")
        shot(page, "workflow-4-inbox.png")
        row.locator("a").click()
        page.wait_for_url("**/approvals/*")
        expect(page.locator("[data-field=amount]")).to_contain_text("260,000")
        page.fill("form.decide input[name=comment]", "价格合理，同意。")
        shot(page, "workflow-5-approval-page.png")
        with page.expect_navigation():
            page.click("form.decide button:text-is('同意')")
        expect(page.locator(".steps li.current")).to_contain_text("财务审批")
        expect(page.locator(".task.approved")).to_contain_text("价格合理，同意。")
        expect(page.locator("a.inbox .count-badge")).to_have_count(0)
        shot(page, "workflow-6-approved-by-manager.png")

    # finance rejects with a comment
    with person(live, "fin") as fin:
        page = fin.page
        page.goto("/approvals")
        page.locator("table.list tbody tr").filter(has_text="2025 年度软件服务合同").locator("a").click()
        page.wait_for_url("**/approvals/*")
        page.fill("form.decide input[name=comment]", "付款期过长，请改为开票后30天。")
        with page.expect_navigation():
            page.click("form.decide button:text-is('驳回')")
        expect(page.locator(".approval").first.locator(".badge")).to_have_text("已驳回")
        expect(page.locator("h1 .badge")).to_have_text("草稿")
        shot(page, "workflow-7-rejected-by-finance.png")
        page.click("a.crumb")
        page.wait_for_url("**/approvals")
        expect(page.locator("table.list")).not_to_contain_text("2025 年度软件服务合同")
    assert state_of(live, contract["id"]) == "draft"

    # the rep sees the outcome on the record, submits again and recalls
    with person(live, "rep1") as rep:
        page = rep.page
        page.goto(url)
        expect(page.locator("h1 .badge")).to_have_text("草稿")
        panel = open_panel(page)
        latest = panel.locator(".approval").first
        expect(latest.locator(".badge")).to_have_text("已驳回")
        expect(latest).to_contain_text("付款期过长，请改为开票后30天。")
        expect(latest).to_contain_text("价格合理，同意。")
        expect(page.locator("details.transition summary")).to_have_text(["提交审批"])
        shot(page, "workflow-8-rejected-seen-by-rep.png")

        page.click("details.transition summary:text-is('提交审批')")
        page.fill("details.transition[open] textarea[name=comment]", "已按财务意见调整付款方式。")
        with page.expect_navigation():
            page.click("details.transition[open] button[type=submit]")
        panel = open_panel(page)
        page.once("dialog", lambda d: d.accept())
        with page.expect_navigation():
            panel.locator("button:text-is('撤回')").click()
        expect(page.locator("h1 .badge")).to_have_text("草稿")
        expect(open_panel(page).locator(".approval").first.locator(".badge")).to_have_text("已撤回")
        shot(page, "workflow-9-recalled.png")
    assert state_of(live, contract["id"]) == "draft"

    # the lifecycle picture on the record
    with person(live, "rep1") as rep:
        page = rep.page
        page.goto(url)
        page.click("details.diagram-card summary")
        expect(page.locator(".diagram svg g.state.current")).to_have_attribute("data-state", "draft")
        page.locator("details.diagram-card").scroll_into_view_if_needed()
        shot(page, "workflow-10-diagram.png", full_page=False)     # a full page would repeat the sticky bar


def test_losing_an_opportunity_asks_for_the_reason(live):
    customer = create(live.app, "rep1", "customer", name="长江精密制造有限公司")
    opp = create(live.app, "rep1", "opportunity", name="MES 二期", customer=customer["id"], amount=380000,
                 expected_close_date="2030-03-31")
    with person(live, "rep1") as rep:
        page = rep.page
        page.goto(f"/o/opportunity/{opp['id']}")
        settle(page)
        page.click("details.transition summary:text-is('输单')")
        popover = page.locator("details.transition[open] .popover-body")
        expect(popover.locator("select[name=lost_reason]")).to_be_visible()
        popover.locator("select[name=lost_reason]").select_option("competitor")
        popover.locator("textarea[name=comment]").fill("客户最终选择了竞争对手的方案。")
        shot(page, "workflow-11-lose-popover.png", full_page=False)
        with page.expect_navigation():
            popover.locator("button[type=submit]").click()
        expect(page.locator("h1 .badge")).to_have_text("输单")
        expect(page.locator("[data-field=lost_reason]")).to_have_text("竞争对手胜出")
        shot(page, "workflow-12-lost.png")
