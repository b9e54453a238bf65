"""Duplicates (查重/撞单), merging (客户合并) and the pool (公海) on the shipped CRM."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from loom.records import duplicates, merge, pool
from loom.records.errors import Conflict, DuplicateFound, Forbidden, ValidationError
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user, find_user
from web_helpers import USERS, PASSWORD


@pytest.mark.parametrize("kind, a, b", [
    ("company", "北京华信科技有限公司", "华信科技"),
    ("company", "华信科技(上海)有限公司", "华信科技股份有限公司"),
    ("company", "ＡＣＭＥ Co., Ltd.", "Acme Inc"),
    ("company", "Acme Company Limited", "ACME"),
    ("company", "华 信 科 技", "华信科技集团"),
    ("phone", "+86 138-0013-8000", "13800138000"),
    ("phone", "(021) 8888 6666", "021-88886666"),
    ("email", " Zhang.Wei@Example.COM ", "zhang.wei@example.com"),
    ("text", "Hello,  World!", "helloworld"),
])
def test_normalization_makes_the_same_thing_equal(kind, a, b):
    assert duplicates.normalize(kind, a) == duplicates.normalize(kind, b)


@pytest.mark.parametrize("kind, a, b", [
    ("company", "华信科技", "华为技术"), ("phone", "13800138000", "13800138001"), ("company", "北京", "上海"),
])
def test_normalization_keeps_different_things_apart(kind, a, b):
    assert duplicates.normalize(kind, a) != duplicates.normalize(kind, b)


def test_similarity():
    assert duplicates.similarity("华信科技发展", "华信科技") > 0.7
    assert duplicates.similarity("华信科技", "明远贸易") == 0


@pytest.fixture
def runtime(crm_metadata, db_url):
    runtime = Runtime.open(crm_metadata, db_url, cache=False)
    runtime.setup()
    for username, (roles, department) in USERS.items():
        create_user(runtime, username, name=username.capitalize(), password=PASSWORD, roles=roles,
                    department=department)
    yield runtime
    runtime.close()


def who(runtime, username):
    return actor_for(runtime, find_user(runtime, username))


def test_a_warning_rule_asks_for_confirmation(runtime):
    rep = who(runtime, "rep1")
    first = runtime.records.create("customer", {"name": "北京华信科技有限公司"}, rep)
    with pytest.raises(DuplicateFound) as found:
        runtime.records.create("customer", {"name": "华信科技"}, rep)
    assert [m.id for m in found.value.matches] == [first["id"]]
    assert "北京华信科技有限公司" in found.value.fields["name"][0].text("en")
    second = runtime.records.create("customer", {"name": "华信科技"}, rep, allow_duplicates=True)
    assert "dup_same_company" not in second   # the key is the engine's, not the record's
    keys = runtime.table("customer").c.dup_same_company
    with runtime.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(runtime.table("customer").c.id, keys)).all())
    assert stored[second["id"]] == stored[first["id"]]


def test_similar_names_warn_too(runtime):
    rep = who(runtime, "rep1")
    runtime.records.create("customer", {"name": "明远国际贸易有限公司"}, rep)
    with pytest.raises(DuplicateFound):
        runtime.records.create("customer", {"name": "明远国际贸易公司"}, rep)
    runtime.records.create("customer", {"name": "明远物流有限公司"}, rep)   # not similar enough


def test_a_crowded_block_still_finds_the_same_and_the_nearest_names(runtime, monkeypatch):
    """Thousands of customers can share a name's first two characters (华信...): the look-up
    reads only part of that block, and must not miss the name itself or its near neighbours."""
    monkeypatch.setattr(duplicates, "BLOCK_LIMIT", 4)
    mgr = who(runtime, "mgr")
    for trade in ("供应链", "信息", "医药", "商贸", "实业", "建设"):   # keys that sort before 华信软件
        runtime.records.create("customer", {"name": f"华信{trade}有限公司"}, mgr)
    same = runtime.records.create("customer", {"name": "北京华信软件有限公司"}, mgr)
    near = runtime.records.create("customer", {"name": "华信软件技术服务中心"}, mgr, allow_duplicates=True)
    with pytest.raises(DuplicateFound) as found:
        runtime.records.create("customer", {"name": "乌鲁木齐华信软件有限公司"}, mgr)
    assert [m.id for m in found.value.matches] == [same["id"]]
    with pytest.raises(DuplicateFound) as found:
        runtime.records.create("customer", {"name": "华信软件技术服务中心站"}, mgr)
    assert near["id"] in [m.id for m in found.value.matches]


def test_a_blocking_rule_refuses(runtime):
    mgr = who(runtime, "mgr")
    runtime.records.create("customer", {"name": "甲公司", "tax_id": "91310000MA1FL8XQ3X"}, mgr)
    with pytest.raises(ValidationError) as refused:
        runtime.records.create("customer", {"name": "乙公司", "tax_id": "91310000MA1FL8XQ3X"}, mgr,
                               allow_duplicates=True)
    assert not isinstance(refused.value, DuplicateFound) and "tax_id" in refused.value.fields


def test_edits_are_checked_only_when_identifying_fields_change(runtime):
    rep = who(runtime, "rep1")
    runtime.records.create("customer", {"name": "东方电子有限公司"}, rep)
    other = runtime.records.create("customer", {"name": "西方电子"}, rep)
    other = runtime.records.update("customer", other["id"], {"phone": "021-1234567"}, rep, version=other["version"])
    with pytest.raises(DuplicateFound):
        runtime.records.update("customer", other["id"], {"name": "东方电子"}, rep, version=other["version"])


def test_matches_one_may_not_read_do_not_leak(runtime):
    rep1, rep2 = who(runtime, "rep1"), who(runtime, "rep2")
    runtime.records.create("customer", {"name": "保密客户有限公司", "phone": "010-66668888"}, rep2)
    with pytest.raises(DuplicateFound) as found:
        runtime.records.create("customer", {"name": "保密客户", "phone": "010-66668888"}, rep1)
    texts = [m.text("en") for msgs in found.value.fields.values() for m in msgs]
    assert all("保密客户有限公司" not in t for t in texts)               # no title
    assert any("owned by Rep2" in t for t in texts)                       # same_company reveals the owner
    assert any("you may not see" in t for t in texts)                     # same_phone reveals nothing
    assert all(not m.readable and m.title is None for m in found.value.matches)


def test_bulk_import_reports_duplicates_inside_the_batch_and_against_the_database(runtime):
    rep = who(runtime, "rep1")
    runtime.records.create("customer", {"name": "已有公司"}, rep)
    result = runtime.records.bulk_create("customer", [{"name": "新公司甲"}, {"name": "新公司甲有限公司"},
                                                      {"name": "已有公司"}], rep)
    assert len(result.created) == 1
    assert sorted(i for i, _e in result.errors) == [1, 2]


def test_duplicate_report_groups_only_readable_records(runtime):
    rep1, rep2, mgr = who(runtime, "rep1"), who(runtime, "rep2"), who(runtime, "mgr")
    a = runtime.records.create("customer", {"name": "重复甲有限公司"}, rep1)
    b = runtime.records.create("customer", {"name": "重复甲"}, rep2, allow_duplicates=True)
    rule = runtime.spec.objects["customer"].duplicates[0]
    with runtime.engine.connect() as conn:
        as_manager = duplicates.groups(conn, runtime, runtime.spec.objects["customer"], mgr, rule)
        as_rep = duplicates.groups(conn, runtime, runtime.spec.objects["customer"], rep1, rule)
    assert [{m["id"] for m in g} for g in as_manager] == [{a["id"], b["id"]}]
    assert as_rep == []   # rep1 cannot read rep2's record: no group to show


def test_merge_moves_every_reference(runtime):
    admin, mgr = Actor.system(), who(runtime, "mgr")
    survivor = runtime.records.create("customer", {"name": "合并留下"}, mgr)
    merged = runtime.records.create("customer", {"name": "合并并入", "phone": "021-55550000"}, mgr,
                                    allow_duplicates=True)
    contact = runtime.records.create("contact", {"customer": merged["id"], "name": "联系人", "mobile": "13900000001"}, mgr)
    deal = runtime.records.create("opportunity", {"customer": merged["id"], "name": "商机", "stage": "initial",
                                                  "amount": 100, "expected_close_date": "2030-01-01"}, mgr)
    child = runtime.records.create("customer", {"name": "子公司", "parent": merged["id"]}, mgr)
    from loom.security.sharing import share
    share(runtime, "customer", merged["id"], mgr, user_id=who(runtime, "rep1").id)
    result = merge.merge(runtime, "customer", survivor["id"], merged["id"], mgr, {"phone": "merged"})
    assert result["phone"] == "021-55550000" and result["opportunity_count"] == 1
    assert runtime.records.get("contact", contact["id"], admin)["customer"] == survivor["id"]
    assert runtime.records.get("opportunity", deal["id"], admin)["customer"] == survivor["id"]
    assert runtime.records.get("customer", child["id"], admin)["parent"] == survivor["id"]
    gone = runtime.records.get("customer", merged["id"], admin, deleted=True)
    assert gone["merged_into"] == survivor["id"]
    shares = runtime.schema.system["share"]
    with runtime.engine.connect() as conn:
        assert conn.execute(sa.select(shares.c.record_id)).scalars().all() == [survivor["id"]]
    actions = [h["action"] for h in runtime.records.history("customer", survivor["id"], admin)]
    assert actions.count("merge") == 2 and "create" in actions            # both histories, moved
    assert [h["action"] for h in runtime.records.history("customer", merged["id"], admin)] == ["merge"]


def test_merge_is_refused_without_rights_or_when_locked_and_changes_nothing(runtime):
    rep1, mgr = who(runtime, "rep1"), who(runtime, "mgr")
    mine = runtime.records.create("customer", {"name": "我的客户"}, rep1)
    other = runtime.records.create("customer", {"name": "我的客户公司"}, mgr, allow_duplicates=True)
    with pytest.raises((Forbidden, Exception)):
        merge.merge(runtime, "customer", mine["id"], other["id"], rep1)
    assert runtime.records.get("customer", other["id"], mgr)["deleted_at"] is None


def test_merge_failure_rolls_everything_back(runtime):
    mgr = who(runtime, "mgr")
    survivor = runtime.records.create("customer", {"name": "留下"}, mgr)
    merged = runtime.records.create("customer", {"name": "并入", "email": "x@y.cn"}, mgr)
    contact = runtime.records.create("contact", {"customer": merged["id"], "name": "人", "mobile": "13900000002"}, mgr)
    # choosing an invalid value combination: the survivor's category with the merged one's... force a failure
    # by picking a value that breaks a rule: intermediary customers need a tax id
    runtime.records.update("customer", merged["id"], {"category": "intermediary", "tax_id": "91310000MA1FL8XQ3Y"},
                           mgr, version=merged["version"])
    with pytest.raises(ValidationError):
        merge.merge(runtime, "customer", survivor["id"], merged["id"], mgr, {"category": "merged"})
    assert runtime.records.get("contact", contact["id"], mgr)["customer"] == merged["id"]
    assert runtime.records.get("customer", merged["id"], mgr)["deleted_at"] is None


def test_the_pool(runtime):
    rep1, rep2, mgr, fin = who(runtime, "rep1"), who(runtime, "rep2"), who(runtime, "mgr"), who(runtime, "fin")
    record = runtime.records.create("customer", {"name": "公海客户"}, rep1)
    released = pool.release(runtime, "customer", record["id"], rep1, "no_demand")
    assert released["owner"] is None and released["department"] is None
    assert runtime.records.history("customer", record["id"], mgr)[0]["comment"] == "暂无需求"
    assert runtime.records.get("customer", record["id"], rep2)["name"] == "公海客户"   # pool roles read it
    with pytest.raises(Exception):
        runtime.records.get("customer", record["id"], who(runtime, "agent"))           # others do not
    claimed = pool.claim(runtime, "customer", record["id"], rep2)
    assert claimed["owner"] == rep2.id
    with pytest.raises(Conflict):
        pool.claim(runtime, "customer", record["id"], rep1)
    with pytest.raises(ValidationError):
        pool.release(runtime, "customer", record["id"], rep2, "not-a-reason")
    pool.release(runtime, "customer", record["id"], rep2, "other")
    pool.claim(runtime, "customer", record["id"], mgr, owner=rep1.id)                   # a manager assigns
    assert runtime.records.get("customer", record["id"], rep1)["owner"] == rep1.id
    with pytest.raises(Forbidden):
        pool.claim(runtime, "customer", record["id"], rep2, owner=rep1.id)


def test_claim_limit(runtime, monkeypatch):
    from dataclasses import replace
    rep = who(runtime, "rep1")
    obj = runtime.spec.objects["customer"]
    object.__setattr__(obj, "pool", replace(obj.pool, claim_limit=1))
    runtime.records.create("customer", {"name": "已有一个"}, rep)
    spare = runtime.records.create("customer", {"name": "空闲"}, who(runtime, "rep2"))
    pool.release(runtime, "customer", spare["id"], who(runtime, "rep2"), "other")
    with pytest.raises(ValidationError):
        pool.claim(runtime, "customer", spare["id"], rep)


@pytest.mark.postgres
def test_two_reps_claiming_at_once_one_wins(crm_metadata):
    from conftest import create_postgres_database
    url, drop = create_postgres_database()
    try:
        runtime = Runtime.open(crm_metadata, url, cache=False)
        runtime.setup()
        for username, (roles, department) in USERS.items():
            create_user(runtime, username, password=PASSWORD, roles=roles, department=department)
        rep1, rep2 = who(runtime, "rep1"), who(runtime, "rep2")
        outcomes = []
        for round_ in range(5):
            record = runtime.records.create("customer", {"name": f"争抢 {round_}"}, rep1)
            pool.release(runtime, "customer", record["id"], rep1, "other")
            barrier = threading.Barrier(2)
            results = []

            def grab(actor):
                barrier.wait()
                try:
                    pool.claim(runtime, "customer", record["id"], actor)
                    results.append(("won", actor.id))
                except Conflict:
                    results.append(("lost", actor.id))
            threads = [threading.Thread(target=grab, args=(a,)) for a in (rep1, rep2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [who_ for outcome, who_ in results if outcome == "won"]
            assert sorted(o for o, _ in results) == ["lost", "won"], results
            assert runtime.records.get("customer", record["id"], Actor.system())["owner"] == winners[0]
            outcomes.append(winners[0])
        runtime.close()
    finally:
        drop()
