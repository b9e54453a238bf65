"""Conversions: a lead becomes customer + contact + opportunity; a quote makes a new version."""
from __future__ import annotations

import textwrap

import pytest

from loom.metadata import check_metadata
from loom.records.conversions import available, convert
from loom.records.errors import Forbidden, ValidationError
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user

FILES = {
    "app.yaml": "app: t\nlanguages: [zh, en]\nmenu: [{label: T, items: [lead, account, person, deal, quote]}]\n",
    "roles.yaml": "roles: [{name: admin, superuser: true}, {name: rep}, {name: viewer}]\n",
    "objects/lead.yaml": """
        object: lead
        fields:
          - {name: name, type: text, required: true}
          - {name: company, type: text}
          - {name: phone, type: phone}
          - {name: budget, type: money}
          - {name: converted_account, type: lookup, target: account, on_delete: set_null, readonly: true}
          - {name: converted_person, type: lookup, target: person, on_delete: set_null, readonly: true}
          - {name: converted_deal, type: lookup, target: deal, on_delete: set_null, readonly: true}
          - {name: converted_on, type: date, readonly: true}
        conversions:
          - name: convert
            label: {en: Convert, zh: 转换}
            roles: [rep]
            when: {field: converted_account, op: is_null}
            creates:
              - {as: account, object: account, link: converted_account,
                 values: {name: {field: company}, phone: {field: phone}}}
              - {as: person, object: person, link: converted_person,
                 values: {name: {field: name}, account: $account}}
              - {as: deal, object: deal, optional: true, link: converted_deal,
                 values: {name: {expr: "concat(company, ' - ', name)"}, account: $account, amount: {field: budget}}}
            set: {converted_on: $today}
            open: account
        permissions:
          rep: {create: true, read: own, update: own}
          viewer: {read: all}
        """,
    "objects/account.yaml": """
        object: account
        fields:
          - {name: name, type: text, required: true, unique: true}
          - {name: phone, type: phone}
        permissions: {rep: {create: true, read: own, update: own}}
        """,
    "objects/person.yaml": """
        object: person
        fields:
          - {name: name, type: text, required: true}
          - {name: account, type: lookup, target: account, required: true}
        permissions: {rep: {create: true, read: own, update: own}}
        """,
    "objects/deal.yaml": """
        object: deal
        fields:
          - {name: name, type: text, required: true}
          - {name: account, type: lookup, target: account}
          - {name: amount, type: money, min: 0}
        permissions: {rep: {create: true, read: own, update: own}}
        """,
    "objects/quote.yaml": """
        object: quote
        fields:
          - {name: number, type: autonumber, numbering: {pattern: "Q-{seq:3}"}}
          - {name: name, type: text, required: true}
          - {name: version_no, type: integer, default: 1}
          - {name: previous, type: lookup, target: quote, on_delete: set_null}
          - {name: superseded, type: boolean, default: false}
          - {name: account, type: lookup, target: account}
          - {name: account_phone, type: text, readonly: true}
          - {name: valid_until, type: datetime, default: $now+48h}
          - {name: items, type: lines, object: quote_item}
          - {name: total, type: rollup, from: items, agg: sum, field: amount}
        conversions:
          - name: new_version
            label: {en: New version, zh: 新版本}
            when: {field: superseded, op: eq, value: false}
            creates:
              - {as: next, object: quote, copy: true, copy_lines: [items],
                 values: {version_no: {expr: "version_no + 1"}, previous: {field: id},
                          account_phone: {field: account.phone}}}
            set: {superseded: true}
            open: next
        permissions: {rep: {create: true, read: own, update: own}}
        """,
    "objects/quote_item.yaml": """
        object: quote_item
        child_of: quote
        fields:
          - {name: product, type: text, required: true}
          - {name: quantity, type: integer, default: 1}
          - {name: price, type: money}
          - {name: amount, type: formula, expr: "quantity * price"}
        """,
}


@pytest.fixture
def runtime(tmp_path, db_url):
    root = tmp_path / "metadata"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    spec, problems = check_metadata(root)
    assert problems == []
    runtime = Runtime.open(root, db_url, cache=False)
    runtime.setup()
    yield runtime
    runtime.close()


def rep(runtime, name="rep1"):
    return actor_for(runtime, create_user(runtime, name, password="secret123", roles=["rep"]))


def test_a_lead_becomes_account_person_and_deal(runtime):
    me = rep(runtime)
    lead = runtime.records.create("lead", {"name": "张伟", "company": "华信科技", "phone": "021-88886666",
                                           "budget": "50000"}, me)
    assert [c.name for c in available(runtime, runtime.spec.objects["lead"], lead, me)] == ["convert"]
    created = convert(runtime, "lead", lead["id"], "convert", me)
    assert created["account"]["name"] == "华信科技" and created["account"]["owner"] == me.id
    assert created["person"]["account"] == created["account"]["id"]
    assert created["deal"]["name"] == "华信科技 - 张伟" and str(created["deal"]["amount"]) == "50000.00"
    after = runtime.records.get("lead", lead["id"], me)
    assert (after["converted_account"], after["converted_person"], after["converted_deal"]) == (
        created["account"]["id"], created["person"]["id"], created["deal"]["id"])
    assert after["converted_on"] is not None
    assert runtime.records.history("lead", lead["id"], me)[0]["action"] == "convert"
    assert available(runtime, runtime.spec.objects["lead"], after, me) == []   # `when` no longer holds
    with pytest.raises(Forbidden):
        convert(runtime, "lead", lead["id"], "convert", me)


def test_optional_records_can_be_skipped(runtime):
    me = rep(runtime)
    lead = runtime.records.create("lead", {"name": "李雷", "company": "明远贸易"}, me)
    created = convert(runtime, "lead", lead["id"], "convert", me, skip={"deal"})
    assert set(created) == {"account", "person"}
    assert runtime.records.get("lead", lead["id"], me)["converted_deal"] is None


def test_a_refused_record_creates_nothing(runtime):
    me = rep(runtime)
    runtime.records.create("account", {"name": "已存在"}, me)
    lead = runtime.records.create("lead", {"name": "王芳", "company": "已存在"}, me)
    with pytest.raises(ValidationError) as error:
        convert(runtime, "lead", lead["id"], "convert", me)
    assert "account.name" in error.value.fields
    assert runtime.records.count("person", Actor.system()) == 0
    assert runtime.records.get("lead", lead["id"], me)["converted_account"] is None


def test_only_the_roles_named_may_convert(runtime):
    me = rep(runtime)
    viewer = actor_for(runtime, create_user(runtime, "viewer1", password="secret123", roles=["viewer"]))
    lead = runtime.records.create("lead", {"name": "x", "company": "y"}, me)
    assert available(runtime, runtime.spec.objects["lead"], runtime.records.get("lead", lead["id"], viewer), viewer) == []
    with pytest.raises(Forbidden):
        convert(runtime, "lead", lead["id"], "convert", viewer)


def test_a_new_quote_version_copies_the_lines_and_keeps_the_old_one(runtime):
    me = rep(runtime)
    quote = runtime.records.create("quote", {"name": "方案", "items": [
        {"product": "A", "quantity": 2, "price": "10"}, {"product": "B", "quantity": 1, "price": "5"}]}, me)
    assert str(quote["total"]) == "25.00"
    created = convert(runtime, "quote", quote["id"], "new_version", me)
    new = runtime.records.get("quote", created["next"]["id"], me)
    assert new["version_no"] == 2 and new["previous"] == quote["id"] and new["number"] != quote["number"]
    assert [(i["product"], i["quantity"]) for i in new["items"]] == [("A", 2), ("B", 1)]
    assert str(new["total"]) == "25.00" and new["superseded"] is False
    old = runtime.records.get("quote", quote["id"], me)
    assert old["superseded"] is True and len(old["items"]) == 2
    assert {i["id"] for i in old["items"]}.isdisjoint({i["id"] for i in new["items"]})


def test_values_follow_lookups_and_may_fill_read_only_fields(runtime):
    me = rep(runtime)
    account = runtime.records.create("account", {"name": "华信", "phone": "021-88886666"}, me)
    quote = runtime.records.create("quote", {"name": "方案", "account": account["id"]}, me)
    hours = (quote["valid_until"] - quote["created_at"]).total_seconds() / 3600
    assert 47.9 < hours < 48.1   # $now+48h
    created = convert(runtime, "quote", quote["id"], "new_version", me)
    assert created["next"]["account_phone"] == "021-88886666"
    with pytest.raises(ValidationError):   # read-only for people, settable by the conversion
        runtime.records.update("quote", created["next"]["id"], {"account_phone": "x"}, me,
                               version=created["next"]["version"])


def test_broken_conversions_are_reported_at_the_right_place(tmp_path):
    files = dict(FILES)
    files["objects/lead.yaml"] = files["objects/lead.yaml"].replace(
        "account: $account}", "account: $acount}").replace("link: converted_person", "link: converted_persn")
    root = tmp_path / "metadata"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    _spec, problems = check_metadata(root)
    messages = [p.message for p in problems]
    assert any("converted_persn" in m and "did you mean 'converted_person'" in m for m in messages), messages
    assert any("$acount" in m or "'$acount'" in m for m in messages), messages
