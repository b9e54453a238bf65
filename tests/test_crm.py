"""The shipped CRM (metadata/): every object created by the role that works with it and
shown on its pages, lead conversion through the web page, quote versions, expense
approvals, the calendars, the lead pool, and the industry packs (manufacturing, retail)
layered on a copy of the metadata."""
from __future__ import annotations

import datetime as dt
import re
import shutil
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from loom.metadata import check_metadata
from loom.records import pool
from loom.records.conversions import available, convert
from loom.records.errors import DuplicateFound, Forbidden, RecordError, ValidationError
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user

from web_helpers import PASSWORD, actor, create, make_app, post, runtime_of, signed_in

SYSTEM = Actor.system()
EXTRA_USERS = {  # beside web_helpers.USERS: the service manager and marketing
    "svcmgr": (["service_manager"], "service"),
    "mkt": (["marketing"], "marketing"),
}
TODAY = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def at(offset: int, hour: int) -> str:
    return f"{day(offset)} {hour:02d}:00"


@pytest.fixture(scope="module")
def app(crm_metadata, tmp_path_factory):
    app = make_app(crm_metadata, tmp_path_factory.mktemp("crm"))
    runtime = runtime_of(app)
    for username, (roles, department) in EXTRA_USERS.items():
        create_user(runtime, username, name=username.capitalize(), password=PASSWORD, roles=roles,
                    department=department)
    return app


@pytest.fixture(scope="module")
def base(app):
    """Records the others refer to: products, a customer with a contact and a deal, a
    campaign and a competitor."""
    robot = create(app, "mgr", "product", code="EQ-2000", name="六轴工业机器人", category="hardware",
                   specification="R6-20 负载20kg", unit="set", price="268000", warranty_months=24)
    install = create(app, "mgr", "product", code="SV-INS", name="现场安装调试服务", category="service",
                     unit="hour", price="800", tax_rate=6, warranty_months=0)
    customer = create(app, "rep1", "customer", name="苏州明远精密机械有限公司", short_name="明远精密",
                      industry="manufacturing", region="320500", phone="0512-62881234", source="exhibition")
    contact = create(app, "rep1", "contact", customer=customer["id"], name="王建华", title="设备部经理",
                     contact_role="decision_maker", is_primary=True, mobile="13862001234")
    campaign = create(app, "mkt", "campaign", name="2025中国国际工业博览会（上海）", type="exhibition",
                      starts_on=day(-40), ends_on=day(-36), location="国家会展中心（上海）", budget="380000",
                      expected_leads=120)
    competitor = create(app, "mgr", "competitor", name="深圳东岳机器人科技有限公司", short_name="东岳机器人",
                        price_level="low", threat_level="high", strengths="报价低，华南客户关系深",
                        weaknesses="重负载机型稳定性不足")
    deal = create(app, "rep1", "opportunity", name="明远精密焊装线机器人项目", customer=customer["id"],
                  contact=contact["id"], amount="560000", expected_close_date=day(60), stage="proposal",
                  probability=60, main_competitor=competitor["id"], competitors=["other"],
                  items=[{"product": robot["id"], "quantity": 2, "unit_price": "268000"},
                         {"product": install["id"], "quantity": 24, "unit_price": "800"}])
    return dict(robot=robot, install=install, customer=customer, contact=contact, campaign=campaign,
                competitor=competitor, deal=deal)


def samples(app, base) -> dict:
    """object: (the user who creates it, realistic values)."""
    c, ct, d = base["customer"]["id"], base["contact"]["id"], base["deal"]["id"]
    request = create(app, "svcmgr", "service_request", subject="焊装线机器人伺服报警无法复位", customer=c, contact=ct,
                     service_type="REP", problem_type="power", product=base["robot"]["id"],
                     serial_number="SN2024RB004512", severity="major", priority="high",
                     description="二号车间焊装线机器人报警代码 E-203，重启后仍无法复位。")
    return {
        "customer": ("rep1", dict(name="无锡恒通汽车零部件有限公司", short_name="恒通汽配", industry="manufacturing",
                                  region="320200", category="consumer", source="referral", phone="0510-85201234")),
        "contact": ("rep1", dict(customer=c, name="李娜", title="采购经理", contact_role="purchaser",
                                 mobile="13915005678", email="lina@mingyuan.com.cn")),
        "product": ("mgr", dict(code="EQ-3200", name="激光打标机", category="hardware", specification="LM-30 光纤",
                                unit="set", price="38000")),
        "opportunity": ("rep1", dict(name="明远精密激光打标机采购", customer=c, contact=ct, amount="76000",
                                     expected_close_date=day(30), source="campaign",
                                     campaign=base["campaign"]["id"], main_competitor=base["competitor"]["id"])),
        "service_request": ("svcmgr", dict(subject="激光打标机年度保养", customer=c, service_type="MNT",
                                           product=base["robot"]["id"], serial_number="SN2023LM000871",
                                           due_date=day(14), description="按维保合同执行年度预防性保养。")),
        "contract": ("rep1", dict(name="明远精密焊装线机器人采购合同", customer=c, opportunity=d, amount="560000",
                                  payment_terms="milestones")),
        "lead": ("mkt", dict(name="陈志强", company="杭州鑫源智能科技有限公司", title="IT经理", mobile="13605710001",
                             source="campaign", campaign=base["campaign"]["id"], industry="it", region="330100",
                             rating="hot", requirement="MES系统选型", budget="360000")),
        "activity": ("rep1", dict(subject="拜访明远精密：方案沟通", type="visit", customer=c, contact=ct,
                                  opportunity=d, starts_at=at(2, 10), ends_at=at(2, 12), location="客户会议室",
                                  content="介绍焊装线机器人方案")),
        "task": ("rep1", dict(subject="发送正式报价单", assignee=actor(app, "rep2").id, due_date=day(3),
                              priority="high", customer=c, opportunity=d)),
        "quote": ("rep1", dict(name="明远精密焊装线机器人报价", customer=c, contact=ct, opportunity=d,
                               items=[{"product": base["robot"]["id"], "quantity": 2, "unit_price": "268000",
                                       "discount": 5}])),
        "complaint": ("svcmgr", dict(subject="报修后48小时无人上门", customer=c, contact=ct, service_request=request["id"],
                                     category="response", severity="major", due_date=day(2), channel="phone",
                                     description="客户反映报修两天仍无工程师上门，影响生产。",
                                     handler=actor(app, "agent").id)),
        "competitor": ("mgr", dict(name="武汉德锐激光技术有限公司", short_name="德锐激光", price_level="mid",
                                   threat_level="medium", website="www.derui-laser.com",
                                   strengths="激光器自产，成本优势明显", weaknesses="自动化上下料方案不成熟")),
        "campaign": ("mkt", dict(name="华南智能制造技术研讨会", type="seminar", starts_on=day(20), ends_on=day(20),
                                 location="深圳会展中心", budget="60000", expected_leads=40)),
        "expense": ("rep1", dict(title="宴请明远精密项目组", category="entertainment", amount="1860",
                                 expense_date=day(-2), customer=c, opportunity=d, invoice_count=2)),
    }


def test_every_object_is_created_by_its_role_and_shown_on_its_pages(app, base):
    runtime = runtime_of(app)
    spec = runtime.spec
    made = samples(app, base)
    pages = {o.name for o in spec.objects.values() if not o.system and not o.child_of}
    assert set(made) == pages          # a new object needs a sample here
    clients = {}
    for name, (username, values) in made.items():
        record = create(app, username, name, **values)
        title = str(record[spec.objects[name].title])
        client = clients.setdefault(username, signed_in(app, username))
        listing = client.get(f"/o/{name}/")
        assert listing.status_code == 200, name
        assert title in listing.get_data(as_text=True), name
        detail = client.get(f"/o/{name}/{record['id']}")
        assert detail.status_code == 200 and title in detail.get_data(as_text=True), name
        assert client.get(f"/o/{name}/new").status_code == 200, name


def test_computed_values(app, base):
    rep = actor(app, "rep1")
    runtime = runtime_of(app)
    quote = create(app, "rep1", "quote", name="明远精密安装服务报价", customer=base["customer"]["id"],
                   discount_amount="1000",
                   items=[{"product": base["robot"]["id"], "quantity": 1, "unit_price": "268000", "discount": 10},
                          {"product": base["install"]["id"], "quantity": 16, "unit_price": "800"}])
    assert str(quote["subtotal"]) == "254000.00"            # 241200 + 12800
    assert str(quote["net_amount"]) == "253000.00" and str(quote["tax_amount"]) == "32890.00"
    assert str(quote["grand_total"]) == "285890.00"
    assert quote["code"].startswith("BJ") and quote["version_no"] == 1 and quote["state"] == "draft"
    assert quote["valid_until"] == TODAY + dt.timedelta(days=30)
    competitor = runtime.records.get("competitor", base["competitor"]["id"], rep)
    assert competitor["open_opportunity_count"] >= 1 and competitor["win_rate"] is None   # nothing decided yet


def test_roles_that_may_not_create(app):
    with pytest.raises(Forbidden):
        create(app, "rep1", "campaign", name="自办活动", type="seminar", starts_on=day(3))
    with pytest.raises(Forbidden):
        create(app, "fin", "lead", name="张三", company="某某公司", mobile="13800000000")
    with pytest.raises(Forbidden):
        create(app, "agent", "quote", name="x", customer=1)


def test_related_tabs_of_a_customer_show_its_activities_tasks_quotes_and_complaints(app, base):
    runtime = runtime_of(app)
    c = base["customer"]["id"]
    call = create(app, "rep1", "activity", subject="电话沟通：交期确认", type="call", customer=c,
                  starts_at=at(-1, 15), done=True, result="客户确认下月初到货即可。")
    last = runtime.records.get("customer", c, actor(app, "rep1"))["last_contact_at"]
    assert last == call["starts_at"] and isinstance(last, dt.datetime)   # a max of date-times stays one
    create(app, "rep1", "task", subject="确认交货计划", customer=c, due_date=day(5))
    create(app, "rep1", "quote", name="明远精密备件报价", customer=c,
           items=[{"product": base["install"]["id"], "quantity": 8, "unit_price": "800"}])
    create(app, "svcmgr", "complaint", subject="发票抬头开错", customer=c, category="billing", severity="minor",
           description="客户财务要求本月内更正发票。")
    client = signed_in(app, "rep1")
    related = runtime.spec.objects["customer"].related
    expected = {"activity": "电话沟通：交期确认", "task": "确认交货计划", "quote": "明远精密备件报价",
                "complaint": "发票抬头开错"}
    for obj_name, text in expected.items():
        index = next(i for i, r in enumerate(related) if r.object == obj_name)
        response = client.get(f"/o/customer/{c}/related/{index}")
        assert response.status_code == 200 and text in response.get_data(as_text=True), obj_name
    for obj_name in ("activity", "task", "quote"):
        assert any(r.object == obj_name for r in runtime.spec.objects["opportunity"].related)
    assert {"activity", "task"} <= {r.object for r in runtime.spec.objects["contact"].related}


# ---- leads --------------------------------------------------------------------------------------

def test_lead_conversion_through_the_page(app, base):
    runtime = runtime_of(app)
    rep = actor(app, "rep1")
    lead = create(app, "rep1", "lead", name="周凯", company="宁波北辰模具股份有限公司", title="厂长",
                  mobile="13705740088", phone="0574-86801234", email="zhoukai@beichen-mould.com",
                  source="campaign", campaign=base["campaign"]["id"], industry="manufacturing", region="330200",
                  rating="hot", requirement="激光切割产线", budget="456000", expected_purchase_date=day(75),
                  address="宁波市北仑区新碶街道明州路88号", description="展会现场交流，明年扩产。")
    assert lead["state"] == "new" and lead["code"].startswith("XS")
    lead = runtime.workflows.transition("lead", lead["id"], "qualify", rep)
    assert [c.name for c in available(runtime, runtime.spec.objects["lead"], lead, rep)] == ["convert"]
    client = signed_in(app, "rep1")
    page = client.get(f"/o/lead/{lead['id']}").get_data(as_text=True)
    assert f"/o/lead/{lead['id']}/convert/convert" in page
    response = post(client, f"/o/lead/{lead['id']}/convert/convert", {"create": "opportunity"})
    assert response.status_code in (302, 303)
    after = runtime.records.get("lead", lead["id"], rep)
    assert after["state"] == "converted" and after["converted_on"] == TODAY
    assert response.headers["Location"].endswith(f"/o/customer/{after['converted_customer']}")
    customer = runtime.records.get("customer", after["converted_customer"], rep)
    assert (customer["name"], customer["phone"], customer["industry"], customer["region"], customer["source"]) == (
        "宁波北辰模具股份有限公司", "0574-86801234", "manufacturing", "330200", "campaign")
    assert customer["owner"] == rep.id and customer["state"] == "potential"
    contact = runtime.records.get("contact", after["converted_contact"], rep)
    assert (contact["customer"], contact["name"], contact["title"], contact["mobile"], contact["email"]) == (
        customer["id"], "周凯", "厂长", "13705740088", "zhoukai@beichen-mould.com")
    deal = runtime.records.get("opportunity", after["converted_opportunity"], rep)
    assert deal["name"] == "宁波北辰模具股份有限公司 激光切割产线" and deal["customer"] == customer["id"]
    assert deal["contact"] == contact["id"] and str(deal["amount"]) == "456000.00"
    assert deal["expected_close_date"] == TODAY + dt.timedelta(days=75)
    assert deal["campaign"] == base["campaign"]["id"] and deal["source"] == "campaign"
    campaign = runtime.records.get("campaign", base["campaign"]["id"], actor(app, "mkt"))
    assert campaign["lead_count"] >= 1 and campaign["converted_lead_count"] >= 1
    # the lead is done: read-only, no second conversion, the transition is not offered on its own
    assert available(runtime, runtime.spec.objects["lead"], after, rep) == []
    with pytest.raises(RecordError):
        runtime.records.update("lead", lead["id"], {"rating": "cold"}, rep, version=after["version"])
    # the customer page lists the converted contact and deal
    html = client.get(f"/o/customer/{customer['id']}").get_data(as_text=True)
    assert "宁波北辰模具股份有限公司" in html


def test_lead_conversion_without_an_opportunity(app):
    runtime = runtime_of(app)
    rep = actor(app, "rep2")
    lead = create(app, "rep2", "lead", name="赵敏", company="天津北辰物流有限公司", mobile="13820226677",
                  source="website", industry="logistics", region="120116")
    client = signed_in(app, "rep2")
    response = post(client, f"/o/lead/{lead['id']}/convert/convert")     # the opportunity left unchecked
    assert response.status_code in (302, 303)
    after = runtime.records.get("lead", lead["id"], rep)
    assert after["converted_customer"] and after["converted_contact"] and after["converted_opportunity"] is None
    assert after["state"] == "converted"


def test_the_convert_transition_alone_is_never_offered(app):
    runtime = runtime_of(app)
    rep = actor(app, "rep1")
    lead = create(app, "rep1", "lead", name="孙丽", company="青岛海川电气设备有限公司", mobile="13953201234",
                  source="referral")
    offered = [t.name for t in runtime.workflows.available("lead", lead["id"], rep)]
    assert "convert" not in offered and {"contact", "qualify", "disqualify"} <= set(offered)
    with pytest.raises(Forbidden):
        runtime.workflows.transition("lead", lead["id"], "convert", rep)


def test_lead_rules_duplicates_and_disqualification(app):
    runtime = runtime_of(app)
    rep = actor(app, "rep1")
    with pytest.raises(ValidationError) as error:
        create(app, "rep1", "lead", name="无联系方式", company="某某机械有限公司", source="website")
    assert "mobile" in error.value.fields
    with pytest.raises(ValidationError) as error:
        create(app, "rep1", "lead", name="钱慧", company="合肥某机械公司", mobile="13855110000", source="campaign")
    assert "campaign" in error.value.fields
    first = create(app, "rep1", "lead", name="黄丽", company="东莞永泰五金制品有限公司", mobile="13600001111",
                   source="cold_call")
    with pytest.raises(DuplicateFound):         # the same mobile and company, written another way
        runtime.records.create("lead", dict(name="黄丽", company="东莞市永泰五金制品有限公司", mobile="136 0000 1111",
                                            source="exhibition"), actor(app, "mkt"))
    with pytest.raises(ValidationError):        # a reason and a comment are needed
        runtime.workflows.transition("lead", first["id"], "disqualify", rep, comment="客户暂无需求")
    done = runtime.workflows.transition("lead", first["id"], "disqualify", rep, comment="客户暂无需求",
                                        values={"disqualify_reason": "no_need"})
    assert done["state"] == "disqualified"
    back = runtime.workflows.transition("lead", first["id"], "reopen", rep, comment="客户重新询价")
    assert back["state"] == "contacted" and back["disqualify_reason"] is None


def test_the_lead_pool(app):
    runtime = runtime_of(app)
    mkt, rep = actor(app, "mkt"), actor(app, "rep2")
    lead = create(app, "mkt", "lead", name="梁晓东", company="佛山宏图机械有限公司", mobile="13702881234",
                  source="website")
    pool.release(runtime, "lead", lead["id"], mkt, "too_many")
    client = signed_in(app, "rep2")
    assert "佛山宏图机械有限公司" in client.get("/o/lead/pool").get_data(as_text=True)
    claimed = pool.claim(runtime, "lead", lead["id"], rep)
    assert claimed["owner"] == rep.id
    assert runtime.records.get("lead", lead["id"], rep)["name"] == "梁晓东"


# ---- quotes -------------------------------------------------------------------------------------

def test_a_new_quote_version_copies_the_lines(app, base):
    runtime = runtime_of(app)
    rep = actor(app, "rep1")
    quote = create(app, "rep1", "quote", name="明远精密二期报价", customer=base["customer"]["id"],
                   opportunity=base["deal"]["id"], payment_terms="milestones", delivery_terms="客户工厂交货，含安装调试",
                   items=[{"product": base["robot"]["id"], "quantity": 3, "unit_price": "268000", "discount": 5,
                           "delivery_days": 45},
                          {"product": base["install"]["id"], "quantity": 40, "unit_price": "800"}])
    with pytest.raises(Forbidden):                 # a draft is edited, not versioned
        convert(runtime, "quote", quote["id"], "new_version", rep)
    sent = runtime.workflows.transition("quote", quote["id"], "send", rep)
    assert sent["state"] == "sent" and sent["sent_on"] == TODAY
    with pytest.raises(Forbidden):                 # a sent quote is locked
        runtime.records.update("quote", quote["id"], {"name": "改"}, rep, version=sent["version"])
    client = signed_in(app, "rep1")
    response = post(client, f"/o/quote/{quote['id']}/convert/new_version")
    assert response.status_code in (302, 303)
    new_id = int(re.search(r"/o/quote/(\d+)$", response.headers["Location"]).group(1))
    new = runtime.records.get("quote", new_id, rep)
    old = runtime.records.get("quote", quote["id"], rep)
    assert new["version_no"] == 2 and new["previous"] == old["id"] and new["code"] != old["code"]
    assert new["state"] == "draft" and new["superseded"] is False and new["opportunity"] == base["deal"]["id"]
    assert new["payment_terms"] == "milestones" and new["delivery_terms"] == "客户工厂交货，含安装调试"
    assert [(i["product"], str(i["quantity"]), str(i["unit_price"]), str(i["discount"]), i["delivery_days"])
            for i in new["items"]] == [(i["product"], str(i["quantity"]), str(i["unit_price"]), str(i["discount"]),
                                        i["delivery_days"]) for i in old["items"]]
    assert {i["id"] for i in new["items"]}.isdisjoint({i["id"] for i in old["items"]})
    assert new["grand_total"] == old["grand_total"]
    assert old["superseded"] is True and old["state"] == "superseded" and len(old["items"]) == 2
    # the new version is edited and sent; the customer accepts it
    new = runtime.records.update("quote", new_id, {"discount_amount": "5000"}, rep, version=new["version"])
    assert new["grand_total"] < old["grand_total"]
    runtime.workflows.transition("quote", new_id, "send", rep)
    accepted = runtime.workflows.transition("quote", new_id, "accept", rep)
    assert accepted["state"] == "accepted" and accepted["decided_on"] == TODAY
    versions = client.get(f"/o/quote/{quote['id']}/related/0").get_data(as_text=True)
    assert new["code"] in versions


def test_a_quote_without_products_cannot_be_sent(app, base):
    runtime = runtime_of(app)
    quote = create(app, "rep1", "quote", name="空报价", customer=base["customer"]["id"])
    with pytest.raises(Forbidden):
        runtime.workflows.transition("quote", quote["id"], "send", actor(app, "rep1"))


# ---- expenses -----------------------------------------------------------------------------------

def _manage(runtime, code, username):
    """Make `username` the manager of department `code` (approvals go to managers)."""
    depts, users = runtime.table("department"), runtime.table("user")
    with runtime.engine.connect() as conn:
        dept = dict(conn.execute(sa.select(depts).where(depts.c.code == code)).mappings().one())
        user_id = conn.execute(sa.select(users.c.id).where(users.c.username == username)).scalar_one()
    runtime.records.update("department", dept["id"], {"manager": user_id}, SYSTEM, version=dept["version"])


def _decide(runtime, who, decision, comment=None):
    [item] = runtime.workflows.inbox(who)
    runtime.workflows.decide(item["id"], who, decision, comment)


def test_expense_approval_by_the_manager_then_finance(app, base):
    runtime = runtime_of(app)
    _manage(runtime, "sales", "mgr")            # rep1's department (sales_east) has none: up the tree
    rep, mgr, fin = actor(app, "rep1"), actor(app, "mgr"), actor(app, "fin")
    big = create(app, "rep1", "expense", title="上海工博会展位搭建", category="conference", amount="8800",
                 expense_date=day(-5), campaign=base["campaign"]["id"], invoice_count=3)
    assert big["state"] == "draft" and big["code"].startswith("BX")
    big = runtime.workflows.transition("expense", big["id"], "submit", rep)
    assert big["state"] == "approving" and big["submitted_on"] == TODAY
    assert runtime.workflows.inbox(fin) == []
    _decide(runtime, mgr, "approve", "同意")
    assert runtime.records.get("expense", big["id"], rep)["state"] == "approving"   # over 5000: finance too
    _decide(runtime, fin, "approve")
    assert runtime.records.get("expense", big["id"], rep)["state"] == "approved"
    paid = runtime.workflows.transition("expense", big["id"], "pay", fin)
    assert paid["state"] == "paid" and paid["paid_on"] == TODAY
    campaign = runtime.records.get("campaign", base["campaign"]["id"], actor(app, "mkt"))
    assert campaign["actual_cost"] >= 8800 and campaign["budget_used"] is not None and campaign["roi"] is not None
    # a small claim needs the manager only; a rejected one goes back to draft
    small = create(app, "rep1", "expense", title="拜访客户打车费", category="transport", amount="126",
                   expense_date=day(-1))
    runtime.workflows.transition("expense", small["id"], "submit", rep)
    _decide(runtime, mgr, "approve")
    assert runtime.records.get("expense", small["id"], rep)["state"] == "approved"
    lunch = create(app, "rep1", "expense", title="商务午餐", category="entertainment", amount="2600",
                   expense_date=day(-1), customer=base["customer"]["id"])
    runtime.workflows.transition("expense", lunch["id"], "submit", rep)
    _decide(runtime, mgr, "reject", "请补充参加人员名单")
    assert runtime.records.get("expense", lunch["id"], rep)["state"] == "draft"
    with pytest.raises(Forbidden):             # only finance pays
        runtime.workflows.transition("expense", small["id"], "pay", rep)


def test_expense_rules(app):
    with pytest.raises(ValidationError) as error:
        create(app, "rep1", "expense", title="客户礼品", category="gifts", amount="600", expense_date=day(-1))
    assert "customer" in error.value.fields
    with pytest.raises(ValidationError) as error:
        create(app, "rep1", "expense", title="未来费用", category="meals", amount="60", expense_date=day(3))
    assert "expense_date" in error.value.fields


# ---- complaints and tasks -----------------------------------------------------------------------

def test_complaint_handling(app, base):
    runtime = runtime_of(app)
    svc, agent = actor(app, "svcmgr"), actor(app, "agent")
    complaint = create(app, "svcmgr", "complaint", subject="切割精度达不到合同要求", customer=base["customer"]["id"],
                       category="quality", severity="critical", due_date=day(1), product=base["robot"]["id"],
                       description="客户反映试切样件尺寸偏差超过0.1mm。", demand="要求书面整改方案")
    assert complaint["state"] == "received" and complaint["code"].startswith("TS")
    with pytest.raises(Forbidden):            # nobody handles it yet
        runtime.workflows.transition("complaint", complaint["id"], "investigate", svc)
    complaint = runtime.records.update("complaint", complaint["id"], {"handler": agent.id}, svc,
                                       version=complaint["version"])
    runtime.workflows.transition("complaint", complaint["id"], "investigate", agent)
    with pytest.raises(ValidationError):      # a resolution first
        runtime.workflows.transition("complaint", complaint["id"], "resolve", agent)
    resolved = runtime.workflows.transition("complaint", complaint["id"], "resolve", agent,
                                            values={"resolution": "已重新校准激光头并现场复测合格。"})
    assert resolved["state"] == "resolved" and resolved["resolved_at"] is not None
    closed = runtime.workflows.transition("complaint", complaint["id"], "close", agent, values={"satisfaction": "4"})
    assert closed["state"] == "closed" and closed["closed_at"] is not None
    reopened = runtime.workflows.transition("complaint", complaint["id"], "reopen", agent, comment="问题复现")
    assert reopened["state"] == "investigating" and reopened["closed_at"] is None


def test_a_task_given_to_someone_else(app, base):
    runtime = runtime_of(app)
    rep1, rep2 = actor(app, "rep1"), actor(app, "rep2")
    task = create(app, "rep1", "task", subject="准备投标文件", assignee=rep2.id, due_date=day(7), priority="urgent")
    assert runtime.records.get("task", task["id"], rep2)["subject"] == "准备投标文件"   # the assignee sees it
    done = runtime.workflows.transition("task", task["id"], "complete", rep2)
    assert done["state"] == "done" and done["completed_on"] == TODAY
    again = runtime.workflows.transition("task", task["id"], "reopen", rep1)
    assert again["state"] == "open" and again["completed_on"] is None


# ---- calendars ----------------------------------------------------------------------------------

def test_the_calendars_render(app, base):
    runtime = runtime_of(app)
    create(app, "rep1", "activity", subject="明远精密技术交流会", type="meeting", customer=base["customer"]["id"],
           starts_at=at(0, 14), ends_at=at(0, 16))
    create(app, "rep1", "task", subject="更新商机预计成交日期", due_date=day(0))
    client = signed_in(app, "rep1")
    month = TODAY.strftime("%Y-%m")
    for name, text in (("activity", "明远精密技术交流会"), ("task", "更新商机预计成交日期")):
        response = client.get(f"/o/{name}/calendar?month={month}")
        assert response.status_code == 200 and text in response.get_data(as_text=True), name
    for name in ("lead", "campaign", "complaint", "contact", "opportunity", "service_request"):
        assert runtime.spec.objects[name].list.calendar is not None
        assert signed_in(app, "admin").get(f"/o/{name}/calendar?month={month}").status_code == 200, name


def test_calendar_events_span_their_days(app, base):
    create(app, "admin", "campaign", name="华东区巡展", type="roadshow", starts_on="2031-02-27", ends_on="2031-03-02")
    create(app, "rep1", "activity", subject="明远精密驻场调试", type="visit", customer=base["customer"]["id"],
           starts_at="2031-03-30T10:00", ends_at="2031-04-01T12:00")
    client = signed_in(app, "admin")

    def days_showing(name, month, text):
        html = client.get(f"/o/{name}/calendar?month={month}").get_data(as_text=True)
        cells = re.findall(r'<div class="day">(\d+)</div>(.*?)</td>', html, re.S)
        return [(int(number), 'continued' in cell) for number, cell in cells if text in cell]

    # the March grid runs from Monday 24 February to Sunday 6 April
    assert days_showing("campaign", "2031-03", "华东区巡展") == [(27, False), (28, True), (1, True), (2, True)]
    assert days_showing("activity", "2031-03", "驻场调试") == [(30, False), (31, True), (1, True)]
    assert days_showing("activity", "2031-04", "驻场调试") == [(31, True), (1, True)]   # April's grid starts on 31 March
    assert days_showing("activity", "2031-05", "驻场调试") == []


# ---- industry packs -----------------------------------------------------------------------------

def with_packs(crm_metadata, tmp_path, packs):
    """A copy of the shipped metadata with `packs` enabled in app.yaml."""
    root = tmp_path / "metadata"
    shutil.copytree(crm_metadata, root)
    app_yaml = root / "app.yaml"
    text = app_yaml.read_text(encoding="utf-8")
    assert "\npacks: []\n" in text
    app_yaml.write_text(text.replace("\npacks: []\n", f"\npacks: [{', '.join(packs)}]\n"), encoding="utf-8")
    return root


def open_runtime(root, tmp_path):
    spec, problems = check_metadata(root)
    assert problems == [], [str(p) for p in problems]
    runtime = Runtime.open(root, f"sqlite:///{tmp_path / 'packs.db'}", cache=False)
    runtime.setup()
    return runtime


def users(runtime, **people):
    return {name: actor_for(runtime, create_user(runtime, name, password=PASSWORD, roles=roles, department=dept))
            for name, (roles, dept) in people.items()}


def test_the_shipped_app_enables_no_pack(crm_metadata):
    spec, problems = check_metadata(crm_metadata)
    assert problems == [] and spec.packs == ()
    assert "equipment" not in spec.objects and "points" not in spec.objects["customer"].fields


@pytest.mark.parametrize("packs", [["manufacturing"], ["retail"], ["manufacturing", "retail"]])
def test_packs_check(crm_metadata, tmp_path, packs):
    spec, problems = check_metadata(with_packs(crm_metadata, tmp_path, packs))
    assert problems == [], [str(p) for p in problems]
    assert spec.packs == tuple(packs)


def test_manufacturing_equipment_and_its_service_requests(crm_metadata, tmp_path):
    runtime = open_runtime(with_packs(crm_metadata, tmp_path, ["manufacturing"]), tmp_path)
    try:
        spec = runtime.spec
        assert "equipment" in next(g for g in spec.menu if g.name == "service").items
        assert spec.objects["service_request"].fields["equipment"].target == "equipment"
        assert spec.objects["equipment"].list.calendar.start == "next_maintenance"
        p = users(runtime, rep=(["sales_rep"], "sales_east"), mgr=(["sales_manager"], "sales"),
                  svc=(["service_manager"], "service"), agent=(["service_agent"], "service"))
        customer = runtime.records.create("customer", {"name": "无锡恒通汽车零部件有限公司"}, p["rep"])
        customer = runtime.workflows.transition("customer", customer["id"], "start_trading", p["rep"])  # agents see it
        robot = runtime.records.create("product", {"code": "EQ-2000", "name": "六轴工业机器人", "category": "hardware",
                                                   "price": "268000"}, p["mgr"])
        machine = runtime.records.create("equipment", {
            "name": "焊装线机器人#3", "customer": customer["id"], "product": robot["id"],
            "serial_number": "SN2023RB004512", "install_date": "2023-05-10", "warranty_end": "2025-05-09",
            "next_maintenance": day(7), "location": "二号车间焊装线"}, p["svc"])
        assert machine["status"] == "running" and machine["code"].startswith("SB")
        with pytest.raises(ValidationError):          # serial numbers are unique
            runtime.records.create("equipment", {"name": "另一台", "customer": customer["id"],
                                                 "serial_number": "SN2023RB004512"}, p["svc"])
        repair = convert(runtime, "equipment", machine["id"], "report_fault", p["agent"])["request"]
        assert (repair["equipment"], repair["customer"], repair["product"], repair["serial_number"]) == (
            machine["id"], customer["id"], robot["id"], "SN2023RB004512")
        assert repair["service_type"] == "REP" and repair["subject"] == "焊装线机器人#3 故障报修"
        assert repair["code"].startswith("SR") and "-REP-" in repair["code"]
        upkeep = convert(runtime, "equipment", machine["id"], "schedule_maintenance", p["svc"])["request"]
        assert upkeep["service_type"] == "MNT" and str(upkeep["due_date"]) == day(7)
        assert runtime.records.get("equipment", machine["id"], p["svc"])["open_request_count"] == 2
        other = runtime.records.create("customer", {"name": "青岛海纳空压设备有限公司"}, p["rep"])
        with pytest.raises(ValidationError) as error:  # the machine must be the customer's
            runtime.records.create("service_request", {"subject": "x", "customer": other["id"], "service_type": "CON",
                                                       "description": "x", "equipment": machine["id"]}, p["svc"])
        assert "equipment" in error.value.fields
    finally:
        runtime.close()


def test_manufacturing_pages(crm_metadata, tmp_path):
    root = with_packs(crm_metadata, tmp_path, ["manufacturing"])
    app = make_app(root, tmp_path)
    machine = create(app, "admin", "equipment", name="光纤激光切割机", customer=create(
        app, "rep1", "customer", name="常州精工钣金有限公司")["id"], serial_number="SN2024LC003015",
        next_maintenance=day(3))
    client = signed_in(app, "admin")
    assert "光纤激光切割机" in client.get(f"/o/equipment/calendar?month={TODAY.strftime('%Y-%m')}").get_data(as_text=True)
    page = client.get(f"/o/equipment/{machine['id']}").get_data(as_text=True)
    assert f"/o/equipment/{machine['id']}/convert/report_fault" in page
    response = post(client, f"/o/equipment/{machine['id']}/convert/report_fault")
    assert response.status_code in (302, 303) and "/o/service_request/" in response.headers["Location"]
    tab = client.get(f"/o/equipment/{machine['id']}/related/0").get_data(as_text=True)
    assert "光纤激光切割机 故障报修" in tab


def test_retail_members_on_customers(crm_metadata, tmp_path):
    runtime = open_runtime(with_packs(crm_metadata, tmp_path, ["retail"]), tmp_path)
    try:
        customer = runtime.spec.objects["customer"]
        assert customer.fields["points"].type == "integer" and customer.fields["member_level"].dictionary == "member_level"
        assert customer.list.columns[:5] == ("code", "name", "member_no", "member_level", "points")
        assert "store" in runtime.spec.dictionaries["customer_source"].items
        assert "contract" in {r.object for r in customer.related}          # the base's tabs stay
        p = users(runtime, rep=(["sales_rep"], "sales_east"))
        member = runtime.records.create("customer", {"name": "李静", "member_no": "M00012345", "mobile": "13900001111",
                                                     "birthday": "1990-05-01", "source": "store"}, p["rep"])
        assert (member["points"], member["member_level"], member["joined_on"]) == (0, "regular", TODAY)
        member = runtime.records.update("customer", member["id"], {"points": 12600, "member_level": "gold"}, p["rep"],
                                        version=member["version"])
        assert (member["points"], member["member_level"]) == (12600, "gold")
        with pytest.raises(ValidationError) as error:
            runtime.records.update("customer", member["id"], {"points": 3000}, p["rep"], version=member["version"])
        assert "member_level" in error.value.fields                     # gold needs 10000 points
        with pytest.raises(ValidationError):
            runtime.records.update("customer", member["id"], {"points": -1}, p["rep"], version=member["version"])
        with pytest.raises(DuplicateFound):
            runtime.records.create("customer", {"name": "王芳", "mobile": "139 0000 1111"}, p["rep"])
    finally:
        runtime.close()


def test_a_site_overlay_on_top_of_a_pack(crm_metadata, tmp_path):
    """LOOM_OVERLAY: a site's own folder layered after the packs may extend what they add."""
    root = with_packs(crm_metadata, tmp_path, ["manufacturing"])
    overlay = tmp_path / "site"
    (overlay / "objects").mkdir(parents=True)
    (overlay / "objects" / "equipment.yaml").write_text(
        "extends: equipment\nfields:\n"
        "  - {name: asset_tag, type: text, max_length: 30, label: {en: Asset tag, zh: 资产标签}}\n"
        "  - {name: maintenance_interval, default: 90}\n", encoding="utf-8")
    spec, problems = check_metadata(root, overlay)
    assert problems == [], [str(p) for p in problems]
    assert spec.objects["equipment"].fields["asset_tag"].type == "text"
    assert spec.objects["equipment"].fields["maintenance_interval"].default == 90
