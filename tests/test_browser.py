"""Loom end to end in headless chromium: sign-in, forms with server-side validation, the list
(quick search, filters, sort, paging, browser history), detail pages with related tabs and
history, edit, delete and restore, the language switch, the kanban board and a phone-sized
screen. Every page is watched for console errors, uncaught exceptions, CSP violations and
server errors. Screenshots of each state go to tests/screenshots/.

Needs chromium on PATH (Debian's package) and Playwright for Python; without them the
module is skipped, unless LOOM_REQUIRE_BROWSER=1 (as in CI), where that is a failure.
"""
from __future__ import annotations

import re
import types

import pytest

from browser_helpers import (CHROMIUM, REQUIRE_BROWSER, LiveServer, Session, browser_available, settle,
                             shot)
from web_helpers import actor, create, make_app, runtime_of

pytestmark = pytest.mark.browser

if not browser_available() and not REQUIRE_BROWSER:
    pytest.skip(f"no browser: {CHROMIUM} or Playwright for Python is missing "
                "(apt-get install chromium; set LOOM_REQUIRE_BROWSER=1 to fail instead of skipping)",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

PAGING = 60          # more than a page of customers (page_size 50)
ROWS = "#records table.list tbody tr"


@pytest.fixture(scope="module")
def live(crm_metadata, tmp_path_factory, chromium):
    """The shipped CRM served over HTTP on a file SQLite database, and a headless chromium."""
    app = make_app(crm_metadata, tmp_path_factory.mktemp("browser"))
    seed(app)
    server = LiveServer(app)
    try:
        yield types.SimpleNamespace(app=app, server=server, browser=chromium, url=server.url)
    finally:
        server.stop()


def seed(app):
    categories = ["consumer", "consumer", "consumer", "public"]
    for i in range(1, PAGING + 1):
        create(app, "rep1", "customer", name=f"Paging Customer {i:03d}", category=categories[i % 4])
    create(app, "rep1", "customer", name="Quasar Optics", category="consumer", phone="021-5555-0101")
    create(app, "rep1", "customer", name="Aurora Labs", category="consumer")  # newest, yet first by name


@pytest.fixture
def session(live):
    """A fresh browser context (no cookies), checked for problems when the test ends."""
    with Session(live.browser, live.server) as s:
        yield s


def service(live):
    return runtime_of(live.app).records


def first_names(page):
    """The Name column of the list, top to bottom."""
    index = column_index(page, "Name")
    return [t.strip() for t in page.locator(f"{ROWS} td:nth-child({index + 1})").all_inner_texts()]


def open_row(page, text):
    page.locator(ROWS).filter(has_text=text).locator("a.row-link").click()


def column_index(page, label):
    headers = [h.strip() for h in page.locator("#records table.list thead th").all_inner_texts()]
    return headers.index(label)


# ---- signing in --------------------------------------------------------------------------------

def test_sign_in_wrong_password_then_right(session):
    page = session.page
    response = page.goto("/o/customer/")
    assert "/login?next=" in page.url
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    shot(page, "login.png")
    page.fill("input[name=username]", "rep1")
    page.fill("input[name=password]", "wrong password")
    with session.watch.allow(401):
        page.click("form.login button[type=submit]")
        expect(page.locator("form.login p.error")).to_have_text("Wrong username or password")
    expect(page.locator("input[name=username]")).to_have_value("rep1")
    shot(page, "login-error.png")
    page.fill("input[name=password]", "secret123")
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/o/customer/")
    expect(page.locator("h1")).to_have_text("Customers")
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Welcome, Rep1")
    shot(page, "home.png")


# ---- forms -------------------------------------------------------------------------------------

def test_create_customer_with_validation_errors_then_fix(live, session):
    page = session.page
    session.sign_in("rep1")
    page.goto("/o/customer/")
    page.click("a.button.primary:has-text('New')")
    page.wait_for_url("**/o/customer/new")
    page.evaluate("window.__loom_marker = 1")

    # inline validation on blur, judged by the server
    page.fill("#email", "not-an-email")
    page.press("#email", "Tab")
    expect(page.locator("#err-email")).not_to_be_empty()
    expect(page.locator("#ff-email")).to_have_class(re.compile(r"\bhas-error\b"))

    # submitting from the foot of the page: the form comes back (422) with every problem next
    # to its field, and the first one is brought into view
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    with session.watch.allow(422):
        page.click("#record-form button[type=submit]")
        expect(page.locator("#err-name")).to_contain_text("required")
    expect(page.locator("#name")).to_be_focused()
    assert page.evaluate("document.getElementById('name').getBoundingClientRect().top") >= 0
    expect(page.locator("#err-email")).not_to_be_empty()
    expect(page.locator("#record-form .alert.status-422")).to_be_visible()
    expect(page.locator("#name")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("window.__loom_marker") == 1, "the form was swapped in place, not reloaded"
    assert page.url.endswith("/o/customer/new")
    shot(page, "form-errors.png")

    page.fill("#name", "Orion Test Instruments")
    page.fill("#email", "sales@orion.example")
    page.select_option("#category", "consumer")
    page.click("#record-form button[type=submit]")
    page.wait_for_url(re.compile(r"/o/customer/\d+$"))
    expect(page.locator("h1")).to_contain_text("Orion Test Instruments")
    record_id = int(page.url.rsplit("/", 1)[1])
    record = service(live).get("customer", record_id, actor(live.app, "rep1"))
    assert record["email"] == "sales@orion.example" and record["owner"] == actor(live.app, "rep1").id
    settle(page)
    shot(page, "created-detail.png")


def test_new_form_starts_with_the_metadata_defaults(session):
    page = session.page
    session.sign_in("rep1")
    page.goto("/o/customer/new")
    expect(page.locator("#category")).to_have_value("consumer", timeout=500)
    expect(page.locator("#value_class")).to_have_value("C", timeout=500)


def test_show_if_fields_appear_and_go_as_values_change(session):
    page = session.page
    session.sign_in("rep1")
    page.goto("/o/activity/new")
    location, next_step = page.locator("[data-field=location]").first, page.locator("[data-field=next_step]").first
    expect(location).to_be_visible(timeout=500)         # a visit (the default) has a place...
    expect(next_step).to_be_hidden(timeout=500)         # ...and no next step until a follow-up date
    page.select_option("#type", "call")
    expect(location).to_be_hidden()
    page.fill("#next_follow_up", "2030-01-15")
    page.locator("#subject").click()
    expect(next_step).to_be_visible()
    shot(page, "show-if.png")


def test_intermediary_needs_a_tax_id(session):
    page = session.page
    session.sign_in("mgr")
    page.goto("/o/customer/new")
    page.fill("#name", "Relay Distribution Ltd")
    page.select_option("#category", "intermediary")
    with session.watch.allow(422):
        page.click("#record-form button[type=submit]")
        expect(page.locator("#err-tax_id")).to_contain_text("unified social credit code")
    page.fill("#tax_id", "91310000MA1FL8XQ3X")
    page.click("#record-form button[type=submit]")
    page.wait_for_url(re.compile(r"/o/customer/\d+$"))
    expect(page.locator("dd[data-field=category]")).to_have_text("Intermediary")


# ---- the list ----------------------------------------------------------------------------------

def test_list_quick_search_filter_and_sort(session):
    page = session.page
    session.sign_in("rep1")
    page.goto("/o/customer/")
    settle(page)
    expect(page.locator(ROWS)).to_have_count(50)
    expect(page.locator(".list-foot .count")).to_contain_text("records")
    shot(page, "list.png")
    page.evaluate("window.__loom_marker = 1")

    # quick search: the table is swapped in place and the URL follows
    page.fill("#q", "Quasar")
    page.wait_for_url(re.compile(r"[?&]q=Quasar"))
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS)).to_contain_text("Quasar Optics")
    settle(page)
    assert page.evaluate("window.__loom_marker") == 1, "quick search reloaded the page"
    shot(page, "list-search.png")

    page.fill("#q", "zzz-nothing-like-this")
    expect(page.locator(f"{ROWS} td.empty-list")).to_have_text("No records match.")
    assert page.locator(f"{ROWS} td.empty-list").evaluate("e => getComputedStyle(e).textAlign") == "center"
    page.fill("#q", "")
    expect(page.locator(ROWS)).to_have_count(50)

    # a filter select
    page.select_option("select[name='f.category']", "public")
    page.wait_for_url(re.compile(r"f\.category=public"))
    expect(page.locator(ROWS)).to_have_count(PAGING // 4)
    category = column_index(page, "Category")
    cells = page.locator(f"{ROWS} td:nth-child({category + 1})").all_inner_texts()
    assert cells and set(c.strip() for c in cells) == {"Public institution"}
    settle(page)
    shot(page, "list-filter.png")
    page.select_option("select[name='f.category']", "")
    expect(page.locator(ROWS)).to_have_count(50)

    # sorting by a column header: first click descending, second ascending
    before = first_names(page)
    assert before != sorted(before, reverse=True)      # newest first is not the order by name
    page.click("#records th a.sort:text-is('Name')")
    page.wait_for_url(re.compile(r"[?&]s=-name"))
    expect(page.locator("#records th a.sort.desc")).to_have_text("Name")
    descending = first_names(page)
    assert descending != before
    assert descending == sorted(descending, reverse=True)
    page.click("#records th a.sort:text-is('Name')")
    page.wait_for_url(re.compile(r"[?&]s=name"))
    expect(page.locator("#records th a.sort.asc")).to_have_text("Name")
    ascending = first_names(page)
    assert ascending == sorted(ascending) and ascending != descending
    settle(page)
    shot(page, "list-sorted.png")
    assert page.evaluate("window.__loom_marker") == 1, "sorting reloaded the page"


def test_sort_is_kept_when_searching_or_filtering(session):
    page = session.page
    session.sign_in("rep1")
    page.goto("/o/customer/")
    page.click("#records th a.sort:text-is('Name')")
    page.wait_for_url(re.compile(r"[?&]s=-name"))
    page.select_option("select[name='f.category']", "public")
    page.wait_for_url(re.compile(r"f\.category=public"))
    assert re.search(r"[?&]s=-name", page.url), page.url
    names = first_names(page)
    assert names == sorted(names, reverse=True)
    page.fill("#q", "Paging")
    page.wait_for_url(re.compile(r"[?&]q=Paging"))
    assert re.search(r"[?&]s=-name", page.url), page.url
    settle(page)


def test_list_paging_and_browser_history(session):
    page = session.page
    session.sign_in("rep1")
    page.goto("/o/customer/?s=name")
    settle(page)
    expect(page.locator(ROWS)).to_have_count(50)
    expect(page.locator("a[rel=prev]")).to_have_count(0)
    first_page = first_names(page)
    assert first_page == sorted(first_page)

    page.click("a[rel=next]")
    page.wait_for_url(re.compile(r"after="))
    expect(page.locator("a[rel=prev]")).to_be_visible()
    expect(page.locator(ROWS).first).not_to_contain_text(first_page[0])
    second_page = first_names(page)
    assert second_page and not set(second_page) & set(first_page)
    assert second_page == sorted(second_page) and second_page[0] > first_page[-1]
    settle(page)
    shot(page, "list-page2.png")

    # back and forward in the browser's history show the same views
    page.go_back()
    page.wait_for_url(re.compile(r"/o/customer/\?s=name$"))
    expect(page.locator(ROWS).first).to_contain_text(first_page[0])
    assert first_names(page) == first_page
    page.go_forward()
    page.wait_for_url(re.compile(r"after="))
    expect(page.locator(ROWS).first).to_contain_text(second_page[0])
    assert first_names(page) == second_page

    # and the pager's own previous link
    page.click("a[rel=prev]")
    page.wait_for_url(re.compile(r"before="))
    expect(page.locator(ROWS).first).to_contain_text(first_page[0])
    assert first_names(page) == first_page

    # a reload of a pushed URL renders the whole page (never a bare fragment)
    page.reload()
    expect(page.locator("#filters #q")).to_be_visible()
    assert first_names(page) == first_page
    settle(page)


# ---- detail, related tabs, history, edit -------------------------------------------------------

def test_detail_related_tab_history_and_edit(live, session):
    page = session.page
    customer = create(live.app, "rep1", "customer", name="Zenith Holdings", category="consumer")
    for name, mobile in (("Alice Zhang", "13800000001"), ("Bob Li", "13800000002")):
        create(live.app, "rep1", "contact", customer=customer["id"], name=name, mobile=mobile)
    create(live.app, "rep1", "opportunity", name="Zenith rollout", customer=customer["id"], amount=250000,
           expected_close_date="2030-03-31")
    session.sign_in("rep1")
    page.goto("/o/customer/")
    page.fill("#q", "Zenith")
    page.wait_for_url(re.compile(r"q=Zenith"))
    open_row(page, "Zenith Holdings")
    page.wait_for_url(f"**/o/customer/{customer['id']}")
    expect(page.locator("h1")).to_contain_text("Zenith Holdings")
    expect(page.locator("dd[data-field=category]")).to_have_text("Consumer")

    # the first related tab (contacts) loads by itself
    expect(page.locator("#tab-body table.list")).to_contain_text("Alice Zhang")
    expect(page.locator("#tab-body table.list tbody tr")).to_have_count(2)
    expect(page.locator(".tab-bar button[data-tab].active")).to_have_text("Contacts")
    settle(page)
    shot(page, "detail.png")
    page.click(".tab-bar button[data-tab]:text-is('Opportunities')")
    expect(page.locator("#tab-body table.list tbody tr")).to_have_count(1)
    expect(page.locator("#tab-body table.list")).to_contain_text("Zenith rollout")
    expect(page.locator("#tab-body table.list")).to_contain_text("¥250,000.00")
    expect(page.locator(".tab-bar button[data-tab].active")).to_have_text("Opportunities")
    settle(page)
    shot(page, "related-tab.png")
    page.click(".tab-bar button[data-tab]:text-is('Service requests')")
    expect(page.locator("#tab-body .empty-list")).to_have_text("None yet.")
    page.click(".tab-bar button[data-tab]:text-is('Contacts')")
    expect(page.locator("#tab-body")).to_contain_text("Bob Li")

    # edit
    page.click("a.button:text-is('Edit')")
    page.wait_for_url(f"**/o/customer/{customer['id']}/edit")
    expect(page.locator("#name")).to_have_value("Zenith Holdings")
    page.fill("#name", "Zenith Holdings Group")
    page.select_option("#category", "public")
    shot(page, "edit.png")
    page.click("#record-form button[type=submit]")
    page.wait_for_url(f"**/o/customer/{customer['id']}")
    expect(page.locator("h1")).to_contain_text("Zenith Holdings Group")
    expect(page.locator("dd[data-field=category]")).to_have_text("Public institution")
    record = service(live).get("customer", customer["id"], actor(live.app, "rep1"))
    assert record["name"] == "Zenith Holdings Group" and record["version"] == 2

    # the history tab shows the edit
    page.click(".tab-bar button[data-tab]:text-is('History')")
    expect(page.locator("#tab-body ol.history > li")).to_have_count(2)
    expect(page.locator("#tab-body ol.history")).to_contain_text("Zenith Holdings Group")
    expect(page.locator(".tab-bar button[data-tab].active")).to_have_text("History")
    settle(page)
    shot(page, "history.png")

    # the related tab's "new" button pre-fills the parent
    page.click(".tab-bar button[data-tab]:text-is('Contacts')")
    page.click("#tab-body a.button:has-text('New')")
    page.wait_for_url(re.compile(r"/o/contact/new\?d\.customer="))
    expect(page.locator("input[type=hidden][name=customer]")).to_have_value(str(customer["id"]))
    expect(page.locator(".lookup-text[data-title-for=customer]")).to_have_value("Zenith Holdings Group")


def test_history_shows_labels_not_codes(live, session):
    page = session.page
    record = create(live.app, "rep1", "customer", name="Labelled Changes Co", category="consumer")
    service(live).update("customer", record["id"], {"category": "public"}, actor(live.app, "rep1"), version=1)
    session.sign_in("rep1")
    page.goto(f"/o/customer/{record['id']}")
    page.click(".tab-bar button[data-tab]:text-is('History')")
    history = page.locator("#tab-body ol.history")
    expect(history).to_contain_text("Public institution", timeout=1000)
    expect(history).not_to_contain_text("potential", timeout=500)


# ---- delete and restore ------------------------------------------------------------------------

def test_delete_and_restore_from_the_recycle_bin(live, session):
    page = session.page
    record = create(live.app, "mgr", "customer", name="Doomed Trading Co", category="consumer")
    mgr = actor(live.app, "mgr")
    session.sign_in("mgr")
    page.goto(f"/o/customer/{record['id']}")
    delete = page.locator("button.danger:text-is('Delete')")

    # dismissing the confirmation keeps the record
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
    delete.click()
    page.wait_for_timeout(300)
    assert messages == ["Move this record to the recycle bin?"]
    assert page.url.endswith(f"/o/customer/{record['id']}")
    assert service(live).get("customer", record["id"], mgr)["name"] == "Doomed Trading Co"

    page.once("dialog", lambda d: d.accept())
    delete.click()
    page.wait_for_url("**/o/customer/")
    assert service(live).get("customer", record["id"], mgr, deleted=True)["deleted_at"] is not None

    page.click("a.button:text-is('Recycle bin')")
    page.wait_for_url("**/o/customer/trash")
    expect(page.locator("h1")).to_contain_text("Recycle bin")
    settle(page)
    shot(page, "trash.png")
    open_row(page, "Doomed Trading Co")
    page.wait_for_url(f"**/o/customer/{record['id']}?deleted=1")
    expect(page.locator("h1 .badge.red")).to_have_text("In the recycle bin")
    settle(page)
    shot(page, "deleted-detail.png")
    page.click("button.primary:text-is('Restore')")
    page.wait_for_url(f"**/o/customer/{record['id']}")
    expect(page.locator("h1 .badge.red")).to_have_count(0)
    assert service(live).get("customer", record["id"], mgr)["deleted_at"] is None
    expect(page.locator("#tab-body")).not_to_be_empty()
    page.click(".tab-bar button[data-tab]:text-is('History')")
    expect(page.locator("#tab-body ol.history")).to_contain_text("restore")
    settle(page)


def test_sales_reps_may_not_delete(live, session):
    page = session.page
    record = create(live.app, "rep1", "customer", name="Keeper Logistics", category="consumer")
    session.sign_in("rep1")
    page.goto(f"/o/customer/{record['id']}")
    expect(page.locator("h1")).to_contain_text("Keeper Logistics")
    expect(page.locator("button:text-is('Delete')")).to_have_count(0)
    page.goto("/o/customer/")
    expect(page.locator("a.button:text-is('Recycle bin')")).to_have_count(0)
    expect(page.locator("#records input[name=ids]")).to_have_count(0)
    settle(page)


# ---- languages ---------------------------------------------------------------------------------

ASCII_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def untranslated(page, allowed=()):
    """English-looking words in the visible text of a Chinese page (data excepted)."""
    text = page.locator("body").inner_text()
    ok = {"CSV", "Excel", "CNY", "English", "CUS-", "Admin", "Rep", "Mgr", "Agent", "Fin", *allowed}  # data
    return sorted({w for w in ASCII_WORD.findall(text) if w not in ok})


def test_switch_language(live, session):
    page = session.page
    customer = create(live.app, "rep1", "customer", name="华信科技有限公司", category="consumer")
    session.sign_in("rep1")
    page.goto("/o/customer/?q=华信")
    expect(page.locator("h1")).to_have_text("Customers")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.click("button.lang")
    page.wait_for_url("**/o/customer/?q=*")
    expect(page.locator("h1")).to_have_text("客户")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("button.lang")).to_have_text("English")
    expect(page.locator("#records th a.sort:text-is('客户名称')")).to_be_visible()
    page.hover(".nav-group:has(a:text-is('联系人')) .nav-label")   # menu groups open on hover
    expect(page.locator(".nav a:text-is('联系人')")).to_be_visible()
    settle(page)
    shot(page, "list-zh.png")
    assert untranslated(page) == []

    page.goto(f"/o/customer/{customer['id']}")
    expect(page.locator("#tab-body .empty-list")).to_have_text("暂无数据")
    settle(page)
    shot(page, "detail-zh.png")
    assert untranslated(page, allowed={"hxkjyxgs"}) == []  # the initials (助记码) are data
    page.click(".tab-bar button[data-tab]:text-is('历史记录')")
    expect(page.locator("#tab-body ol.history .what")).to_have_text("新建")
    settle(page)
    shot(page, "history-zh.png")

    page.goto("/o/customer/new")
    expect(page.locator("h1")).to_have_text("新建客户")
    with session.watch.allow(422):
        page.click("#record-form button[type=submit]")
        expect(page.locator("#err-name")).not_to_be_empty()
    shot(page, "form-errors-zh.png")
    assert untranslated(page) == []

    page.goto("/o/customer/")
    page.click("button.lang")
    page.wait_for_url("**/o/customer/")
    expect(page.locator("h1")).to_have_text("Customers")
    expect(page.locator("button.lang")).to_have_text("中文")
    expect(page.locator("#records th a.sort:text-is('Name')")).to_be_visible()
    settle(page)
    shot(page, "list-en.png")


# ---- calendar ----------------------------------------------------------------------------------

def test_calendar_month_with_events_over_several_days(live, session):
    page = session.page
    customer = create(live.app, "rep1", "customer", name="Calendar Works", category="consumer")
    create(live.app, "rep1", "activity", subject="On-site commissioning", type="visit", customer=customer["id"],
           starts_at="2031-03-04T09:30", ends_at="2031-03-06T17:00")
    session.sign_in("rep1")
    page.goto("/o/activity/")
    page.click("a.button:text-is('Calendar')")
    page.wait_for_url("**/o/activity/calendar")
    page.goto("/o/activity/calendar?month=2031-03")
    events = page.locator(".calendar a.event", has_text="On-site commissioning")
    expect(events).to_have_count(3)
    expect(events.first).to_contain_text("09:30")
    expect(page.locator(".calendar a.event.continued", has_text="On-site commissioning")).to_have_count(2)
    page.click("a[rel=next]")
    page.wait_for_url("**/calendar?month=2031-04")
    expect(page.locator(".calendar a.event", has_text="On-site commissioning")).to_have_count(0)
    page.click("a[rel=prev]")
    events.first.click()
    page.wait_for_url(re.compile(r"/o/activity/\d+$"))
    expect(page.locator("h1")).to_contain_text("On-site commissioning")
    page.goto("/o/activity/calendar?month=2031-03")
    settle(page)
    shot(page, "calendar.png")


# ---- kanban ------------------------------------------------------------------------------------

DRAG_BY_EVENTS = """([card, lane]) => {
  const data = new DataTransfer();
  card.dispatchEvent(new DragEvent("dragstart", {bubbles: true, cancelable: true, dataTransfer: data}));
  lane.dispatchEvent(new DragEvent("dragenter", {bubbles: true, cancelable: true, dataTransfer: data}));
  lane.dispatchEvent(new DragEvent("dragover", {bubbles: true, cancelable: true, dataTransfer: data}));
  lane.dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: data}));
  card.dispatchEvent(new DragEvent("dragend", {bubbles: true, cancelable: true, dataTransfer: data}));
}"""


def test_kanban_board_and_moving_cards(live, session):
    page = session.page
    customer = create(live.app, "rep1", "customer", name="Kanban Works", category="consumer")
    deals = [create(live.app, "rep1", "opportunity", name=f"Board deal {n}", customer=customer["id"],
                    amount=10000 * n, expected_close_date="2030-06-30") for n in (1, 2)]
    rep = actor(live.app, "rep1")
    session.sign_in("rep1")
    page.goto("/o/opportunity/")
    page.click("a.button:text-is('Board')")
    page.wait_for_url("**/o/opportunity/kanban")
    expect(page.locator(".board .lane")).to_have_count(5)
    page.fill("form.filters input[name=q]", "Board deal")      # only this test's cards
    page.press("form.filters input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"/kanban\?q=Board"))
    initial = page.locator(".lane[data-value=initial]")
    needs = page.locator(".lane[data-value=needs]")
    expect(initial.locator(".kcard")).to_have_count(2)
    expect(initial.locator("h2")).to_contain_text("Initial contact")
    expect(initial.locator(".kcard").first).to_contain_text("Kanban Works")
    shot(page, "kanban.png")

    # a real drag and drop with the mouse
    card = page.locator(f".kcard[data-id='{deals[0]['id']}']")
    with page.expect_response(lambda r: r.url.endswith(f"/{deals[0]['id']}/move")) as moved:
        card.drag_to(needs.locator(".cards"))
    assert moved.value.status == 204
    expect(needs.locator(f".kcard[data-id='{deals[0]['id']}']")).to_be_visible()
    expect(needs.locator("h2 .muted")).to_have_text("1")          # the board is redrawn with new counts
    expect(initial.locator("h2 .muted")).to_have_text("1")
    expect(initial.locator(".lane-total")).to_have_text("¥20,000.00")
    expect(needs.locator(".lane-total")).to_have_text("¥10,000.00")
    assert service(live).get("opportunity", deals[0]["id"], rep)["stage"] == "needs"

    # the same through the drag events themselves (what the board's script listens to)
    card = page.locator(f".kcard[data-id='{deals[1]['id']}']").element_handle()
    lane = page.locator(".lane[data-value=proposal] .cards").element_handle()
    with page.expect_response(lambda r: r.url.endswith(f"/{deals[1]['id']}/move")) as moved:
        page.evaluate(DRAG_BY_EVENTS, [card, lane])
    assert moved.value.status == 204
    expect(page.locator(".lane[data-value=proposal] h2 .muted")).to_have_text("1")
    expect(initial.locator(".kcard")).to_have_count(0)
    assert service(live).get("opportunity", deals[1]["id"], rep)["stage"] == "proposal"
    settle(page)
    shot(page, "kanban-moved.png")

    page.reload()
    expect(page.locator(f".lane[data-value=needs] .kcard[data-id='{deals[0]['id']}']")).to_be_visible()
    expect(page.locator(f".lane[data-value=proposal] .kcard[data-id='{deals[1]['id']}']")).to_be_visible()
    expect(page.locator(".lane[data-value=initial] .kcard")).to_have_count(0)


# ---- a phone-sized screen ----------------------------------------------------------------------

def test_mobile_list_and_menu(live):
    with Session(live.browser, live.server, width=390, height=844) as s:
        page = s.sign_in("rep1")
        page.goto("/o/customer/")
        settle(page)
        expect(page.locator(".nav")).to_be_hidden()
        shot(page, "mobile-list.png", full_page=False)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390px"
        page.click("button.menu-toggle")
        expect(page.locator(".nav")).to_be_visible()
        shot(page, "mobile-nav.png", full_page=False)
        page.click(".nav a:text-is('Contacts')")
        page.wait_for_url("**/o/contact/")
        page.goto("/o/customer/new")
        shot(page, "mobile-form.png", full_page=False)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the form scrolls sideways by {overflow}px at 390px"
