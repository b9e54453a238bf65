"""The CRM's main sales path end to end in headless chromium, clicked as a sales team would:
a rep (reading Chinese) enters a lead from the menu, converts it into a customer, its
contact and an opportunity in one step, opens the opportunity, quotes two products on the
quote form's inline lines (the totals are worked out by the server), drafts the contract
from the opportunity and submits it for approval; the sales manager approves it from the
approval inbox (待我审批), finance too since it is over 100,000 (reading English), and the
rep finds it approved and numbered. The database is checked through the record service at
the end. Every page is watched for console errors, CSP violations and server errors
(browser_helpers.py); screenshots go to tests/screenshots/sales-path-*.png.
"""
from __future__ import annotations

import datetime as dt
import re
import types
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from browser_helpers import CHROMIUM, REQUIRE_BROWSER, LiveServer, Session, browser_available, settle, shot
from web_helpers import actor, create, make_app, runtime_of
from workflow_helpers import set_manager

pytestmark = pytest.mark.browser

if not browser_available() and not REQUIRE_BROWSER:
    pytest.skip(f"no browser: {CHROMIUM} or Playwright for Python is missing", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

COMPANY = "苏州恒通精密机械有限公司"
OPPORTUNITY = f"{COMPANY} 新工厂设备联网"     # the conversion names it "<company> <need>"
QUOTE = "恒通新工厂设备联网报价"
CONTRACT = "恒通新工厂设备联网项目合同"
SHANGHAI = ZoneInfo("Asia/Shanghai")                   # app.yaml's time zone: pages show times in it
# the quote: 2 gateways at 68,000 and 80 hours of on-site service at 600 less 10%, plus 13% VAT
SUBTOTAL, TAX, TOTAL = Decimal("179200.00"), Decimal("23296.00"), Decimal("202496.00")


@pytest.fixture(scope="module")
def live(crm_metadata, tmp_path_factory, chromium):
    app = make_app(crm_metadata, tmp_path_factory.mktemp("salespath"))
    set_manager(runtime_of(app), "sales", actor(app, "mgr").id)     # rep1 is in 华东销售部, under 销售部
    create(app, "mgr", "product", code="GW-200", name="工业物联网网关", category="hardware", unit="set",
           price=68000)
    create(app, "mgr", "product", code="SV-ONSITE", name="现场实施服务", category="service", unit="hour",
           price=600)
    server = LiveServer(app)
    try:
        yield types.SimpleNamespace(app=app, server=server, browser=chromium)
    finally:
        server.stop()


def person(live, username, locale="zh-CN"):
    s = Session(live.browser, live.server, locale=locale)
    s.sign_in(username)
    return s


def system_get(live, obj, record_id, with_lines=False):
    from loom.security.actor import Actor
    return runtime_of(live.app).records.get(obj, record_id, Actor.system(), with_lines=with_lines)


def record_id_of(page):
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def choose(page, box, term, title):
    """Pick a record in a lookup box by typing part of its name, as a user would."""
    box.locator(".lookup-text").fill(term)
    option = box.locator(".lookup-options li[data-id]").filter(has_text=title)
    expect(option).to_have_count(1)
    option.click()
    expect(box.locator(".lookup-text")).to_have_value(title)
    expect(box.locator("input[type=hidden]")).not_to_have_value("")


def open_tab(page, label):
    page.click(f".tab-bar button[data-tab]:text-is('{label}')")
    expect(page.locator(".tab-bar button[data-tab].active")).to_have_text(label)
    settle(page)
    return page.locator("#tab-body")


def test_lead_to_approved_contract(live):
    rep_actor = actor(live.app, "rep1")

    # ---- the rep enters a lead from the menu ----------------------------------------------------
    with person(live, "rep1") as rep:
        page = rep.page
        page.goto("/")
        page.click(".nav-label:text-is('销售')")
        page.click(".nav-items a:text-is('线索')")
        page.wait_for_url("**/o/lead/")
        settle(page)
        page.click("a.button.primary:text-is('新建')")
        page.wait_for_url("**/o/lead/new")
        page.fill("#name", "王建国")
        page.fill("#company", COMPANY)
        page.fill("#title", "设备部经理")
        page.fill("#mobile", "13912345678")
        page.select_option("#rating", "hot")
        page.fill("#requirement", "新工厂设备联网")
        page.fill("#budget", "300000")
        page.fill("#expected_purchase_date", "2030-06-30")
        shot(page, "sales-path-1-lead-form.png")
        page.click("#record-form button[type=submit]")
        page.wait_for_url(re.compile(r"/o/lead/\d+$"))
        lead_id = record_id_of(page)
        expect(page.locator("h1")).to_contain_text("王建国")
        expect(page.locator("h1 .badge")).to_have_text("新线索")
        expect(page.locator("dd[data-field=company]")).to_have_text(COMPANY)
        expect(page.locator("dd[data-field=code]")).to_have_text(re.compile(r"^XS\d{4}-0001$"))
        settle(page)
        shot(page, "sales-path-2-lead.png")

        # ---- conversion: customer, contact and opportunity in one step -----------------------------
        page.click("details.conversion summary:text-is('线索转换')")
        popover = page.locator("details.conversion[open] .popover-body")
        expect(popover).to_contain_text("客户（公司）")
        expect(popover).to_contain_text("联系人（本人）")
        optional = popover.locator("input[name=create][value=opportunity]")
        expect(optional).to_be_checked()
        label = popover.locator("label").filter(has=page.locator("input[name=create][value=opportunity]"))
        expect(label).to_have_text("商机")
        box, line = optional.bounding_box(), label.bounding_box()
        assert box["width"] < 30 and line["height"] < 32, "the checkbox is not beside its label"     # one line
        shot(page, "sales-path-3-convert-popover.png", full_page=False)
        with page.expect_navigation():
            popover.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"/o/customer/\d+$"))
        customer_id = record_id_of(page)
        expect(page.locator("h1")).to_contain_text(COMPANY)
        contacts = page.locator("#tab-body table.list")
        expect(contacts).to_contain_text("王建国")
        expect(contacts).to_contain_text("设备部经理")
        settle(page)
        shot(page, "sales-path-4-customer.png")

        # the lead, now converted, points at what it became
        page.goto(f"/o/lead/{lead_id}")
        expect(page.locator("h1 .badge")).to_have_text("已转换")
        expect(page.locator("dd[data-field=converted_customer]")).to_have_text(COMPANY)
        expect(page.locator("dd[data-field=converted_opportunity]")).to_have_text(OPPORTUNITY)
        expect(page.locator("details.conversion")).to_have_count(0)
        expect(page.locator("a.button:text-is('编辑')")).to_have_count(0)          # converted leads are locked
        settle(page)

        # ---- the opportunity, opened from the customer ----------------------------------------------
        page.goto(f"/o/customer/{customer_id}")
        opportunities = open_tab(page, "商机")
        expect(opportunities.locator("tbody tr")).to_have_count(1)
        opportunities.locator("tbody tr").filter(has_text=OPPORTUNITY).locator("a").first.click()   # its code
        page.wait_for_url(re.compile(r"/o/opportunity/\d+$"))
        opportunity_id = record_id_of(page)
        expect(page.locator("h1")).to_contain_text(OPPORTUNITY)
        expect(page.locator("dd[data-field=amount]")).to_have_text("¥300,000.00")
        expect(page.locator("dd[data-field=customer]")).to_have_text(COMPANY)
        expect(page.locator("dd[data-field=contact]")).to_have_text("王建国")
        expect(page.locator("dd[data-field=expected_close_date]")).to_have_text("2030-06-30")
        settle(page)
        shot(page, "sales-path-5-opportunity.png")

        # ---- a quote with two product lines, from the opportunity's quotes tab ---------------------
        quotes = open_tab(page, "报价单")
        expect(quotes.locator(".empty-list")).to_be_visible()
        quotes.locator("a.button:text-is('新建报价单')").click()
        page.wait_for_url(re.compile(r"/o/quote/new\?d\.opportunity="))
        expect(page.locator(".lookup-text[data-title-for=opportunity]")).to_have_value(OPPORTUNITY)
        page.fill("#name", QUOTE)
        choose(page, page.locator("#ff-customer .lookup"), "恒通", COMPANY)
        choose(page, page.locator("#ff-contact .lookup"), "王", "王建国")
        editor = page.locator("[data-lines=items]")
        rows = editor.locator("tbody tr[data-row]")
        expect(rows).to_have_count(0)
        editor.locator("button[data-add-line]").click()
        editor.locator("button[data-add-line]").click()
        expect(rows).to_have_count(2)
        first, second = rows.nth(0), rows.nth(1)
        choose(page, first.locator(".lookup"), "网关", "工业物联网网关")
        first.locator("input[name$='-quantity']").fill("2")
        first.locator("select[name$='-unit']").select_option(label="套")
        first.locator("input[name$='-unit_price']").fill("68000")
        first.locator("input[name$='-delivery_days']").fill("30")
        choose(page, second.locator(".lookup"), "实施", "现场实施服务")
        second.locator("input[name$='-description']").fill("安装调试及操作培训")
        second.locator("input[name$='-quantity']").fill("80")
        second.locator("select[name$='-unit']").select_option(label="小时")
        second.locator("input[name$='-unit_price']").fill("600")
        second.locator("input[name$='-discount']").fill("10")
        shot(page, "sales-path-6-quote-form.png")
        page.click("#record-form button[type=submit]")
        page.wait_for_url(re.compile(r"/o/quote/\d+$"))
        quote_id = record_id_of(page)
        expect(page.locator("h1")).to_contain_text(QUOTE)
        expect(page.locator("h1 .badge")).to_have_text("草稿")
        expect(page.locator("dd[data-field=code]")).to_have_text(re.compile(r"^BJ\d{6}-0001$"))
        expect(page.locator("dd[data-field=opportunity]")).to_have_text(OPPORTUNITY)
        products = page.locator("section.card").filter(has=page.locator("h2", has_text="报价明细"))
        expect(products).to_have_count(1)                        # the table sits in its own section
        lines = products.locator("table.list.lines tbody tr")
        expect(lines).to_have_count(2)
        expect(lines.nth(0)).to_contain_text("工业物联网网关")
        expect(lines.nth(0)).to_contain_text("136,000.00")
        expect(lines.nth(1)).to_contain_text("现场实施服务")
        expect(lines.nth(1)).to_contain_text("43,200.00")
        expect(page.locator("dd[data-field=subtotal]")).to_have_text("179,200.00")        # rollup of the lines
        expect(page.locator("dd[data-field=tax_amount]")).to_have_text("23,296.00")
        expect(page.locator("dd[data-field=grand_total]")).to_have_text("202,496.00")
        settle(page)
        shot(page, "sales-path-7-quote.png")

        # back on the opportunity, the quote is listed with its total
        page.locator("dd[data-field=opportunity] a").click()
        page.wait_for_url(f"**/o/opportunity/{opportunity_id}")
        quotes = open_tab(page, "报价单")
        expect(quotes.locator("tbody tr")).to_have_count(1)
        expect(quotes.locator("tbody tr")).to_contain_text("202,496.00")

        # ---- the contract, from the opportunity's contracts tab ------------------------------------
        contracts = open_tab(page, "合同")
        contracts.locator("a.button:text-is('新建合同')").click()
        page.wait_for_url(re.compile(r"/o/contract/new\?d\.opportunity="))
        expect(page.locator(".lookup-text[data-title-for=opportunity]")).to_have_value(OPPORTUNITY)
        page.fill("#name", CONTRACT)
        choose(page, page.locator("#ff-customer .lookup"), "恒通", COMPANY)
        page.fill("#amount", "202496")
        page.select_option("#payment_terms", "net60")
        page.fill("#starts_on", "2030-07-01")
        page.fill("#ends_on", "2031-06-30")
        page.fill("#description", "按报价单交付网关2套及现场实施服务80小时。")
        shot(page, "sales-path-8-contract-form.png")
        page.click("#record-form button[type=submit]")
        page.wait_for_url(re.compile(r"/o/contract/\d+$"))
        contract_id = record_id_of(page)
        expect(page.locator("h1 .badge")).to_have_text("草稿")
        expect(page.locator("dd[data-field=code]")).to_have_text("—")              # numbered on approval
        expect(page.locator("dd[data-field=amount]")).to_have_text("¥202,496.00")
        expect(page.locator("dd[data-field=opportunity]")).to_have_text(OPPORTUNITY)

        # ---- submitted for approval ---------------------------------------------------------------
        page.click("details.transition summary:text-is('提交审批')")
        popover = page.locator("details.transition[open] .popover-body")
        popover.locator("textarea[name=comment]").fill("价格按报价单执行，请审批。")
        with page.expect_navigation():
            popover.locator("button[type=submit]").click()
        expect(page.locator("h1 .badge")).to_have_text("审批中")
        settle(page)
        panel = page.locator("#approvals")
        expect(panel.locator(".steps li.current")).to_contain_text("部门经理审批")
        expect(panel.locator(".steps li").nth(1)).to_contain_text("财务审批")       # over 100,000
        expect(panel).to_contain_text("价格按报价单执行，请审批。")
        shown = panel.locator(".approval-head .muted").inner_text()             # "Rep1 提交 · 2030-01-01 09:00"
        when = dt.datetime.strptime(re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", shown).group(), "%Y-%m-%d %H:%M")
        assert abs(when - dt.datetime.now(SHANGHAI).replace(tzinfo=None)) < dt.timedelta(minutes=10), shown
        expect(page.locator("a.button:text-is('编辑')")).to_have_count(0)
        shot(page, "sales-path-9-contract-submitted.png")
    assert system_get(live, "contract", contract_id)["state"] == "approving"

    # ---- the sales manager approves from the inbox ---------------------------------------------------
    with person(live, "mgr") as mgr:
        page = mgr.page
        page.goto("/")
        expect(page.locator("a.inbox .count-badge")).to_have_text("1")
        page.click("a.inbox")
        page.wait_for_url("**/approvals")
        row = page.locator("table.list tbody tr").filter(has_text=CONTRACT)
        expect(row).to_contain_text("合同审批")
        shot(page, "sales-path-10-inbox.png")
        row.locator("a").click()
        page.wait_for_url("**/approvals/*")
        expect(page.locator("[data-field=amount]")).to_contain_text("202,496")
        page.fill("form.decide input[name=comment]", "同意，请财务复核。")
        with page.expect_navigation():
            page.click("form.decide button:text-is('同意')")
        expect(page.locator(".steps li.current")).to_contain_text("财务审批")
        expect(page.locator("a.inbox .count-badge")).to_have_count(0)
        shot(page, "sales-path-11-manager-approved.png")

    # ---- finance approves (reading English) ---------------------------------------------------------
    with person(live, "fin", locale="en-US") as fin:
        page = fin.page
        page.goto("/")
        expect(page.locator("a.inbox .count-badge")).to_have_text("1")
        page.click("a.inbox")
        page.wait_for_url("**/approvals")
        page.locator("table.list tbody tr").filter(has_text=CONTRACT).locator("a").click()
        page.wait_for_url("**/approvals/*")
        expect(page.locator(".task.approved")).to_contain_text("同意，请财务复核。")
        page.fill("form.decide input[name=comment]", "Payment terms checked.")
        with page.expect_navigation():
            page.click("form.decide button:text-is('Approve')")
        expect(page.locator("h1 .badge")).to_have_text("Approved")
        expect(page.locator(".approval").first.locator(".badge")).to_have_text("approved")
        shot(page, "sales-path-12-finance-approved.png")
    assert system_get(live, "contract", contract_id)["state"] == "approved"

    # ---- the rep sees it approved and numbered ------------------------------------------------------
    with person(live, "rep1") as rep:
        page = rep.page
        page.goto(f"/o/contract/{contract_id}")
        expect(page.locator("h1 .badge")).to_have_text("已批准")
        code = page.locator("dd[data-field=code]")
        expect(code).to_have_text(re.compile(r"^HT\d{6}-0001$"))
        shown_code = code.inner_text()
        settle(page)
        panel = page.locator("#approvals")
        expect(panel.locator(".approval").first.locator(".badge")).to_have_text("已批准")
        expect(panel).to_contain_text("Payment terms checked.")
        expect(page.locator("details.transition summary")).to_contain_text(["确认签订"])
        shot(page, "sales-path-13-contract-approved.png")

        # and on the opportunity's contracts tab
        page.goto(f"/o/opportunity/{opportunity_id}")
        contracts = open_tab(page, "合同")
        expect(contracts.locator("tbody tr")).to_have_count(1)
        expect(contracts.locator("tbody tr")).to_contain_text(shown_code)
        expect(contracts.locator("tbody tr")).to_contain_text("已批准")

    # ---- what the database holds ----------------------------------------------------------------
    lead = system_get(live, "lead", lead_id)
    assert lead["state"] == "converted" and lead["converted_on"] is not None
    assert lead["converted_customer"] == customer_id and lead["converted_opportunity"] == opportunity_id
    customer = system_get(live, "customer", customer_id)
    contact = system_get(live, "contact", lead["converted_contact"])
    opportunity = system_get(live, "opportunity", opportunity_id)
    assert customer["name"] == COMPANY and customer["owner"] == rep_actor.id
    assert contact["customer"] == customer_id and contact["name"] == "王建国" and contact["mobile"] == "13912345678"
    assert opportunity["customer"] == customer_id and opportunity["contact"] == contact["id"]
    assert opportunity["amount"] == Decimal("300000") and opportunity["owner"] == rep_actor.id

    quote = system_get(live, "quote", quote_id, with_lines=True)
    assert (quote["customer"], quote["contact"], quote["opportunity"]) == (customer_id, contact["id"], opportunity_id)
    items = sorted(quote["items"], key=lambda line: line["line_no"])
    assert [(i["quantity"], i["unit"], i["unit_price"], i["discount"], i["amount"]) for i in items] == [
        (Decimal("2"), "set", Decimal("68000"), Decimal("0"), Decimal("136000")),
        (Decimal("80"), "hour", Decimal("600"), Decimal("10"), Decimal("43200")),
    ]
    assert items[1]["description"] == "安装调试及操作培训" and items[0]["delivery_days"] == 30
    assert (quote["subtotal"], quote["tax_amount"], quote["grand_total"]) == (SUBTOTAL, TAX, TOTAL)

    contract = system_get(live, "contract", contract_id)
    assert contract["state"] == "approved" and contract["code"] == shown_code
    assert (contract["customer"], contract["opportunity"], contract["amount"]) == (customer_id, opportunity_id, TOTAL)
    assert contract["owner"] == rep_actor.id
