"""The generated web application through Flask's test client: every page and fragment,
sign-in and sessions, CSRF, escaping, validation, conflicts, exports, schemes, bulk actions."""
from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import openpyxl
import pytest

from web_helpers import PASSWORD, actor, create, csrf, login, make_app, post, runtime_of, signed_in

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def app(crm_metadata, tmp_path_factory):
    return make_app(crm_metadata, tmp_path_factory.mktemp("web"))


@pytest.fixture
def rep(app):
    return signed_in(app, "rep1")


@pytest.fixture
def admin(app):
    return signed_in(app, "admin")


def customer(app, user="rep1", **values):
    values.setdefault("name", f"客户 {len(str(values))}-{id(values)}")
    return create(app, user, "customer", **values)


# ---- signing in ------------------------------------------------------------------------------

def test_every_page_requires_sign_in(app):
    client = app.test_client()
    for url in ("/", "/o/customer/", "/o/customer/new", "/o/customer/1", "/o/customer/count", "/password"):
        response = client.get(url)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), url
    response = client.get("/o/customer/", headers={"HX-Request": "true"})
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")


def test_sign_in_wrong_password_and_sign_out(app):
    client = app.test_client()
    token = csrf(client)
    response = client.post("/login", data={"username": "rep1", "password": "nope", "csrf_token": token},
                           headers={"Accept-Language": "en"})
    assert response.status_code == 401 and "Wrong username or password" in response.get_data(as_text=True)
    login(client, "rep1")
    assert client.get("/").status_code == 200
    token = csrf(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target, expected", [
    ("/o/customer/", "/o/customer/"), ("https://evil.example/", "/"), ("//evil.example/x", "/"),
    ("/\\evil.example", "/"), ("javascript:alert(1)", "/"),
])
def test_no_open_redirect_after_sign_in(app, target, expected):
    client = app.test_client()
    token = csrf(client)
    response = client.post("/login", query_string={"next": target},
                           data={"username": "rep1", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == expected


def test_state_changes_need_the_csrf_token(app, rep):
    record = customer(app, name="CSRF test")
    response = rep.post(f"/o/customer/{record['id']}/edit", data={"_version": "1", "name": "changed"})
    assert response.status_code == 400
    assert runtime_of(app).records.get("customer", record["id"], actor(app, "rep1"))["name"] == "CSRF test"
    response = rep.post("/logout")
    assert response.status_code == 400


def test_changing_the_password_ends_other_sessions(app):
    from loom.security.organization import create_user
    create_user(runtime_of(app), "pwuser", password=PASSWORD, roles=["sales_rep"], department="sales_east")
    first, second = signed_in(app, "pwuser"), signed_in(app, "pwuser")
    response = post(first, "/password", {"current": PASSWORD, "new": "short", "again": "short"})
    assert response.status_code == 422 and "at least 8" in response.get_data(as_text=True)
    response = post(first, "/password", {"current": PASSWORD, "new": "newpass123", "again": "newpass123"})
    assert response.status_code == 200
    assert first.get("/").status_code == 200      # this session stays signed in
    assert second.get("/").status_code == 302     # the other one is over


def test_a_disabled_user_is_signed_out(app):
    from loom.security.actor import Actor
    from loom.security.organization import create_user
    user = create_user(runtime_of(app), "leaver", password=PASSWORD, roles=["sales_rep"])
    client = signed_in(app, "leaver")
    runtime_of(app).records.update("user", user["id"], {"active": False}, Actor.system(), version=user["version"])
    assert client.get("/").status_code == 302


def test_session_cookie_is_http_only_and_same_site(app):
    client = app.test_client()
    token = csrf(client)
    response = client.post("/login", data={"username": "rep1", "password": PASSWORD, "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


# ---- the shell -------------------------------------------------------------------------------

def test_menu_lists_what_the_user_may_open_and_language_switches(app, rep):
    html = rep.get("/").get_data(as_text=True)
    assert "/o/customer/" in html and "/o/product/" in html
    assert ">Customers<" in rep.get("/o/customer/").get_data(as_text=True)
    response = post(rep, "/lang/zh", {"next": "https://evil.example"})
    assert response.headers["Location"] == "/"
    assert "客户" in rep.get("/o/customer/").get_data(as_text=True)


def test_static_files_are_served_without_a_cdn(app, rep):
    response = rep.get("/static/htmx.min.js")
    assert response.status_code == 200 and b'version:"2.0.11"' in response.data
    assert rep.get("/static/../pyproject.toml").status_code == 404
    page = rep.get("/").get_data(as_text=True)
    assert "http://" not in re.sub(r'href="http[^"]*"', "", page.split("<body")[0])


# ---- lists ------------------------------------------------------------------------------------

def test_list_filters_search_sort_and_fragment(app, rep):
    customer(app, name="华信科技有限公司", category="consumer", industry="manufacturing")
    record = customer(app, user="mgr", name="明远贸易", category="intermediary", tax_id="91310000MA1FL8XQ3X")
    from loom.security.sharing import assign
    assign(runtime_of(app), "customer", [record["id"]], actor(app, "rep1").id, actor(app, "mgr"))
    page = rep.get("/o/customer/").get_data(as_text=True)
    assert "华信科技有限公司" in page and 'id="records"' in page and "<html" in page
    fragment = rep.get("/o/customer/?q=华信", headers={"HX-Request": "true", "HX-Target": "records"})
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "华信科技有限公司" in body and "明远贸易" not in body
    assert fragment.headers.get("Vary") and "HX-Request" in fragment.headers["Vary"]
    body = rep.get("/o/customer/?q=hxkj").get_data(as_text=True)         # mnemonic
    assert "华信科技有限公司" in body
    body = rep.get("/o/customer/?f.category=intermediary").get_data(as_text=True)
    assert "明远贸易" in body and "华信科技有限公司" not in body
    body = rep.get("/o/customer/?s=name").get_data(as_text=True)
    assert body.index("华信") > body.index("明远") or body.index("华信") < body.index("明远")  # renders sorted
    assert 'class="sort asc"' in body


def test_count_is_capped_and_lazy(app, rep):
    text = rep.get("/o/customer/count").get_data(as_text=True)
    assert re.search(r"\d+", text)


def test_paging_by_cursor_visits_every_row_once(app):
    runtime = runtime_of(app)
    for i in range(7):
        customer(app, user="rep2", name=f"Paging {i:02d}")
    client = signed_in(app, "rep2")
    seen, url = [], "/o/customer/?q=Paging&s=name"
    obj = runtime.spec.objects["customer"]
    original = obj.list.page_size
    object.__setattr__(obj.list, "page_size", 3)
    try:
        while url:
            html = client.get(url).get_data(as_text=True)
            seen += re.findall(r"Paging \d\d", html)
            found = re.search(r'rel="next" href="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        prev = re.search(r'rel="prev" href="([^"]+)"', html)
        back = client.get(prev.group(1).replace("&amp;", "&")).get_data(as_text=True)
    finally:
        object.__setattr__(obj.list, "page_size", original)
    assert seen == [f"Paging {i:02d}" for i in range(7)]
    assert re.findall(r"Paging \d\d", back) == ["Paging 03", "Paging 04", "Paging 05"]


def test_bad_list_parameters_are_clear_errors(app, rep):
    assert rep.get("/o/customer/?after=not-a-cursor").status_code == 422
    assert rep.get("/o/customer/?s=nosuchfield").status_code == 422
    assert rep.get("/o/nosuchobject/").status_code == 404


def test_saved_personal_schemes(app, rep):
    response = post(rep, "/o/customer/schemes", {"name": "我的制造业", "query": "f.industry=manufacturing&after=x&evil=1"})
    assert response.status_code == 302 and "f.industry=manufacturing" in response.headers["Location"]
    assert "after" not in response.headers["Location"] and "evil" not in response.headers["Location"]
    html = rep.get("/o/customer/").get_data(as_text=True)
    scheme_id = re.search(r"/o/customer/schemes/(\d+)/delete", html).group(1)
    other = signed_in(app, "rep2")
    assert "我的制造业" not in other.get("/o/customer/").get_data(as_text=True)
    assert post(other, f"/o/customer/schemes/{scheme_id}/delete").status_code == 404
    assert post(rep, f"/o/customer/schemes/{scheme_id}/delete").status_code == 302
    assert "我的制造业" not in rep.get("/o/customer/").get_data(as_text=True)


# ---- detail, tabs, history --------------------------------------------------------------------

def test_detail_related_tab_and_history(app, rep):
    record = customer(app, name="Detail Co", industry="manufacturing")
    create(app, "rep1", "contact", customer=record["id"], name="王芳", mobile="13800138000")
    html = rep.get(f"/o/customer/{record['id']}").get_data(as_text=True)
    assert "Detail Co" in html and record["code"] in html and 'class="badge state' in html
    tab = rep.get(f"/o/customer/{record['id']}/related/0", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "王芳" in tab and "<html" not in tab
    runtime_of(app).records.update("customer", record["id"], {"phone": "010-12345678"}, actor(app, "rep1"), version=1)
    history = rep.get(f"/o/customer/{record['id']}/history").get_data(as_text=True)
    assert "010-12345678" in history and "Rep1" in history


def test_records_of_others_are_not_found(app):
    record = customer(app, user="rep2", name="Someone else's")
    client = signed_in(app, "rep1")
    for url in (f"/o/customer/{record['id']}", f"/o/customer/{record['id']}/edit",
                f"/o/customer/{record['id']}/history", f"/o/customer/{record['id']}/related/0"):
        assert client.get(url).status_code == 404, url
    assert "Someone else" not in client.get("/o/customer/?q=Someone").get_data(as_text=True)
    assert post(client, f"/o/customer/{record['id']}/delete").status_code == 404


# ---- forms ------------------------------------------------------------------------------------

def test_create_with_errors_then_fix(app, rep):
    response = post(rep, "/o/customer/new", {"name": "", "email": "not-an-email", "category": "consumer"},
                    headers={"HX-Request": "true"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'id="record-form"' in body and "<html" not in body
    assert "is required" in body or "不能为空" in body
    assert "not-an-email" in body          # input kept
    response = post(rep, "/o/customer/new", {"name": "Fixed Co", "email": "a@b.cn", "category": "consumer"},
                    headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Location"].startswith("/o/customer/")
    response = post(rep, "/o/customer/new", {"name": "Plain Co", "category": "consumer"})
    assert response.status_code == 302


def test_edit_and_stale_version_conflict(app, rep):
    record = customer(app, name="Versioned")
    runtime_of(app).records.update("customer", record["id"], {"phone": "021-1111111"}, actor(app, "rep1"), version=1)
    response = post(rep, f"/o/customer/{record['id']}/edit",
                    {"_version": "1", "name": "Versioned", "category": "consumer", "phone": "021-2222222"})
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "021-2222222" in body and ("Phone" in body or "电话" in body)
    current = runtime_of(app).records.get("customer", record["id"], actor(app, "rep1"))
    assert current["phone"] == "021-1111111"
    response = post(rep, f"/o/customer/{record['id']}/edit",
                    {"_version": str(current["version"]), "name": "Versioned", "category": "consumer", "phone": "021-2222222"})
    assert response.status_code == 302


def test_live_validation_endpoint(app, rep):
    response = post(rep, "/o/customer/validate", {"name": "", "email": "bad", "category": "consumer"})
    verdict = response.get_json()
    assert "name" in verdict["errors"] and "email" in verdict["errors"] and "name" in verdict["required"]


def _hidden(html, attribute):
    """Whether the form element carrying `attribute` (e.g. data-field="location") is hidden."""
    tag = re.search(r"<[^>]*" + re.escape(attribute) + r"[^>]*>", html).group(0)
    return re.search(r"\shidden[\s>]", tag) is not None


def test_show_if_holds_from_the_first_render(app, rep):
    visit = rep.get("/o/activity/new").get_data(as_text=True)              # type defaults to a visit
    assert not _hidden(visit, 'data-field="location"') and _hidden(visit, 'data-field="next_step"')
    call = rep.get("/o/activity/new?d.type=call").get_data(as_text=True)
    assert _hidden(call, 'data-field="location"')
    response = post(rep, "/o/activity/new", {"subject": "x", "type": "call", "next_follow_up": "2030-01-01"},
                    headers={"HX-Request": "true"})                        # refused: no customer
    assert response.status_code == 422
    again = response.get_data(as_text=True)
    assert _hidden(again, 'data-field="location"') and not _hidden(again, 'data-field="next_step"')
    complaint = signed_in(app, "agent").get("/o/complaint/new").get_data(as_text=True)
    sections = [s.label.text("en") for s in runtime_of(app).spec.objects["complaint"].form]
    resolution = sections.index("Resolution")
    assert _hidden(complaint, f'data-section="{resolution}"') and not _hidden(complaint, 'data-section="0"')
    verdict = post(rep, "/o/activity/validate", {"type": "call"}).get_json()
    assert "location" in verdict["hidden"] and verdict["hidden_sections"] == []


def test_lookup_type_ahead_offers_only_readable_records(app, rep):
    customer(app, name="Lookup Mine")
    customer(app, user="rep2", name="Lookup Theirs")
    html = rep.get("/o/customer/lookup?q=Lookup&for=contact.customer").get_data(as_text=True)
    assert "Lookup Mine" in html and "Lookup Theirs" not in html


def test_lines_are_edited_with_their_parent(app, rep):
    account = customer(app, name="Lines Co")
    product = create(app, "admin", "product", **_product_values(app))
    response = post(rep, "/o/opportunity/new", {
        "name": "Deal with lines", "customer": str(account["id"]), "stage": "initial", "amount": "5000",
        "expected_close_date": "2030-01-01",
        "items-0-id": "", "items-0-product": str(product["id"]), "items-0-quantity": "2", "items-0-unit_price": "100",
    })
    assert response.status_code in (302, 422), response.get_data(as_text=True)[:300]
    if response.status_code == 422:
        pytest.fail(re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", response.get_data(as_text=True)))[:800])
    record_id = int(response.headers["Location"].rsplit("/", 1)[1])
    record = runtime_of(app).records.get("opportunity", record_id, actor(app, "rep1"))
    assert len(record["items"]) == 1 and record["items"][0]["quantity"] == 2


def test_an_added_line_starts_with_the_line_defaults(app, rep):
    """The row the "add a row" button copies holds the line object's defaults (a quote line's
    quantity 1 and discount 0): a row posted with them blank would compute no amount."""
    html = rep.get("/o/quote/new").get_data(as_text=True)
    template = html[html.index("<template>"):html.index("</template>")]
    values = dict(re.findall(r'name="items-__i__-(\w+)" value="([^"]*)"', template))
    assert Decimal(values["quantity"]) == 1 and Decimal(values["discount"]) == 0
    assert values["product"] == "" and values["unit_price"] == ""


def _product_values(app):
    obj = runtime_of(app).spec.objects["product"]
    values = {"name": "Widget", "code": "W-1"} if "code" in obj.fields and not obj.fields["code"].computed else {"name": "Widget"}
    for f in obj.declared_fields:
        if f.required and f.name not in values and not f.computed:
            if f.type == "dictionary":
                values[f.name] = next(iter(runtime_of(app).spec.dictionaries[f.dictionary].items))
            elif f.value_type in ("money", "decimal", "integer", "percent"):
                values[f.name] = 10
            else:
                values[f.name] = "x"
    return values


# ---- delete, restore, bulk ------------------------------------------------------------------------

def test_delete_restore_and_recycle_bin(app):
    manager = signed_in(app, "mgr")
    record = customer(app, user="mgr", name="Bin Co")
    assert post(manager, f"/o/customer/{record['id']}/delete").status_code == 302
    assert "Bin Co" in manager.get("/o/customer/trash").get_data(as_text=True)
    assert manager.get(f"/o/customer/{record['id']}").status_code == 404
    assert manager.get(f"/o/customer/{record['id']}?deleted=1").status_code == 200
    assert post(manager, f"/o/customer/{record['id']}/restore").status_code == 302
    assert manager.get(f"/o/customer/{record['id']}").status_code == 200


def test_a_rep_may_not_delete_customers(app, rep):
    record = customer(app, name="Keep me")
    response = post(rep, f"/o/customer/{record['id']}/delete", headers={"HX-Request": "true"})
    assert response.status_code == 403 and response.headers["HX-Retarget"] == "#flash"
    assert "Traceback" not in response.get_data(as_text=True)


def test_bulk_delete_is_all_or_nothing(app):
    manager = signed_in(app, "mgr")
    a, b = customer(app, user="mgr", name="Bulk A"), customer(app, user="mgr", name="Bulk B")
    other = customer(app, user="rep2", name="Bulk not mine")   # outside the manager's delete scope
    response = post(manager, "/o/customer/bulk", {"action": "delete", "ids": [a["id"], other["id"]]})
    assert response.status_code in (403, 404)
    assert manager.get(f"/o/customer/{a['id']}").status_code == 200   # nothing deleted
    response = post(manager, "/o/customer/bulk", {"action": "delete", "ids": [a["id"], b["id"]]})
    assert response.status_code == 302
    assert manager.get(f"/o/customer/{a['id']}").status_code == 404


# ---- export, kanban -------------------------------------------------------------------------------

def test_export_csv_and_xlsx_follow_the_filter(app):
    manager = signed_in(app, "mgr")
    customer(app, user="mgr", name="=HYPERLINK(\"http://x\")", industry="retail")
    customer(app, user="mgr", name="Export Retail", industry="retail")
    customer(app, user="mgr", name="Export Other", industry="manufacturing")
    response = manager.get("/o/customer/export.csv?f.industry=retail")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    names = [r[1] for r in rows[1:]]
    assert "Export Retail" in names and "Export Other" not in names
    assert "'=HYPERLINK(\"http://x\")" in names           # no formula injection
    response = manager.get("/o/customer/export.xlsx?f.industry=retail")
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    values = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "Export Retail" in values and "Export Other" not in values
    rep = signed_in(app, "rep1")
    assert rep.get("/o/customer/export.csv").status_code == 403


def test_kanban_board_and_moving_a_card(app, rep):
    account = customer(app, name="Kanban Co")
    deal = create(app, "rep1", "opportunity", name="Kanban deal", customer=account["id"], stage="initial",
                  amount=1000, expected_close_date="2030-01-01")
    html = rep.get("/o/opportunity/kanban").get_data(as_text=True)
    assert "Kanban deal" in html and 'data-value="initial"' in html
    response = post(rep, f"/o/opportunity/{deal['id']}/move", {"value": "proposal", "version": "1"},
                    headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert runtime_of(app).records.get("opportunity", deal["id"], actor(app, "rep1"))["stage"] == "proposal"
    response = post(rep, f"/o/opportunity/{deal['id']}/move", {"value": "initial", "version": "1"},
                    headers={"HX-Request": "true"})
    assert response.status_code == 409


# ---- escaping ---------------------------------------------------------------------------------------

def test_stored_xss_is_escaped_everywhere(app):
    manager = signed_in(app, "mgr")
    record = customer(app, user="mgr", name=XSS, short_name=XSS[:50], address=XSS, description=XSS,
                      website="javascript:alert(1)" if False else "https://ok.example/" + "x", email="x@y.cn")
    create(app, "mgr", "contact", customer=record["id"], name=XSS[:50], title=XSS[:50], mobile="13800000000")
    pages = [f"/o/customer/{record['id']}", "/o/customer/", f"/o/customer/{record['id']}/related/0",
             f"/o/customer/{record['id']}/history", f"/o/customer/{record['id']}/edit", "/o/contact/",
             "/o/customer/lookup?q=script"]
    for url in pages:
        html = manager.get(url).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;" in html or "&lt;img" in html or url.endswith("q=script"), url
    csv_text = manager.get("/o/customer/export.csv").get_data(as_text=True)
    cells = [cell for row in csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))) for cell in row]
    assert XSS in cells  # exports carry the text itself, for spreadsheets


def test_unsafe_urls_are_not_links(app):
    from loom.web.formatting import formatter
    spec = runtime_of(app).spec
    fmt = formatter(spec, "customer", spec.objects["customer"].fields["website"], "en")
    assert "<a" not in str(fmt("javascript:alert(1)", {}))
    assert 'href="https://a.cn"' in str(fmt("https://a.cn", {}))


# ---- errors -------------------------------------------------------------------------------------------

def test_friendly_error_pages(app, rep):
    for url, status in (("/o/customer/999999", 404), ("/o/customer/new?x=1", 200), ("/nowhere", 404)):
        response = rep.get(url)
        assert response.status_code == status
        assert "Traceback" not in response.get_data(as_text=True)
    response = rep.get("/o/customer/999999", headers={"HX-Request": "true"})
    assert response.status_code == 404 and 'class="alert status-404"' in response.get_data(as_text=True)


def test_security_headers(app, rep):
    response = rep.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
