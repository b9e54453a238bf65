"""The pool and merging in headless chromium: a rep claims a customer from the pool (公海)
and returns another with a reason; a manager sees a duplicate warning, saves anyway, finds
the pair in the duplicate report and merges them. Screenshots: tests/screenshots/dup-*.png.
"""
from __future__ import annotations

import re
import types

import pytest

from browser_helpers import CHROMIUM, REQUIRE_BROWSER, LiveServer, Session, browser_available, settle, shot
from web_helpers import actor, create, make_app, runtime_of

pytestmark = pytest.mark.browser

if not browser_available() and not REQUIRE_BROWSER:
    pytest.skip(f"no browser: {CHROMIUM} or Playwright for Python is missing", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def live(crm_metadata, tmp_path_factory, chromium):
    app = make_app(crm_metadata, tmp_path_factory.mktemp("dupbrowser"))
    server = LiveServer(app)
    try:
        yield types.SimpleNamespace(app=app, server=server, browser=chromium)
    finally:
        server.stop()


def owner_of(live, record_id):
    from loom.security.actor import Actor
    return runtime_of(live.app).records.get("customer", record_id, Actor.system(), with_lines=False)["owner"]


def test_claim_from_the_pool_and_return_with_a_reason(live):
    from loom.records import pool
    runtime = runtime_of(live.app)
    free = create(live.app, "rep2", "customer", name="公海里的客户")
    pool.release(runtime, "customer", free["id"], actor(live.app, "rep2"), "no_demand")
    mine = create(live.app, "rep1", "customer", name="要退回的客户")
    with Session(live.browser, live.server, locale="zh-CN") as s:
        page = s.sign_in("rep1")
        page.goto("/o/customer/")
        page.click("a[href='/o/customer/pool']")
        settle(page)
        expect(page.locator("table.list")).to_contain_text("公海里的客户")
        shot(page, "dup-pool.png")
        with page.expect_navigation():
            page.locator("tr", has_text="公海里的客户").locator("button.primary").click()
        assert owner_of(live, free["id"]) == actor(live.app, "rep1").id
        expect(page.locator("table.list")).not_to_contain_text("公海里的客户")
        page.goto(f"/o/customer/{mine['id']}")
        page.click("summary:has-text('退回公海')")
        page.select_option("select[name=reason]", "too_many")
        shot(page, "dup-return.png", full_page=False)
        with page.expect_navigation():
            page.click("form[action$='/release'] button.primary")
        assert owner_of(live, mine["id"]) is None
        expect(page.locator("table.list")).to_contain_text("要退回的客户")


def test_a_duplicate_warning_then_a_merge(live):
    existing = create(live.app, "mgr", "customer", name="北京华信科技有限公司", phone="010-66668888")
    create(live.app, "mgr", "contact", customer=existing["id"], name="赵敏", mobile="13900001111")
    with Session(live.browser, live.server, locale="zh-CN") as s:
        page = s.sign_in("mgr")
        page.goto("/o/customer/new")
        page.fill("#name", "华信科技")
        page.fill("#phone", "13800008888")
        with s.watch.allow(409):
            page.click("#record-form button[type=submit]")
            expect(page.locator(".alert.status-409")).to_contain_text("北京华信科技有限公司")
        shot(page, "dup-warning.png")
        page.check("input[name=_allow_duplicates]")
        page.click("#record-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/o/customer/\d+$"))
        second = int(page.url.rsplit("/", 1)[1])
        page.goto("/o/customer/duplicates")
        group = page.locator(".dup-group", has_text="华信科技")
        expect(group).to_contain_text("北京华信科技有限公司")
        shot(page, "dup-report.png")
        group.locator("a.button").click()
        page.wait_for_url("**/merge?ids=*")
        page.check(f"input[name=survivor][value='{existing['id']}']")
        page.check(f"input[name='keep.phone'][value='{second}']")
        shot(page, "dup-merge.png")
        page.on("dialog", lambda d: d.accept())
        page.click("form.card button.primary")
        expect(page).to_have_url(re.compile(rf".*/o/customer/{existing['id']}$"))
        shot(page, "dup-merged.png")
    from loom.security.actor import Actor
    runtime = runtime_of(live.app)
    gone = runtime.records.get("customer", second, Actor.system(), deleted=True)
    assert gone["merged_into"] == existing["id"]
    assert runtime.records.get("customer", existing["id"], Actor.system())["phone"] == "13800008888"
