"""The record service: validation, defaults, numbering, computed fields, rollups, lines,
history, optimistic locking, the recycle bin, on_delete, queries and the CLI.

Each test runs on SQLite and PostgreSQL (the `app` fixture: a fresh SQLite file copied from
a migrated template, or one PostgreSQL database per session emptied before each test)
against the small application in records_helpers.py.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from loom.records.errors import Conflict, Forbidden, NotFound, Restricted, ValidationError
from loom.security.actor import Actor

from records_helpers import (TZ, drop_templates, open_runtime, reused_runtime, texts, today,  # noqa: F401
                             users, write_metadata)

D = decimal.Decimal
SYSTEM = Actor.system()


@pytest.fixture(scope="session")
def postgres_session_url():
    from conftest import create_postgres_database
    url, drop = create_postgres_database()
    yield url
    drop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app(request, tmp_path):
    """The test application with an admin and a clerk: on a fresh SQLite file, or on one
    PostgreSQL database for the session, emptied before each test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        runtime = open_runtime(tmp_path, url)
    else:
        url = request.getfixturevalue("postgres_session_url")
        runtime = reused_runtime(tmp_path, url)
    admin, clerk = users(runtime)
    yield SimpleNamespace(rt=runtime, svc=runtime.records, admin=admin, clerk=clerk, url=url, tmp=tmp_path)
    runtime.close()


def rows(app, obj, **kw):
    return app.svc.query(obj, SYSTEM, limit=1000, **kw).rows


def history_of(app, obj, id_):
    """History entries, oldest first."""
    return list(reversed(app.svc.history(obj, id_, SYSTEM)))


def counters(app) -> dict:
    table = app.rt.schema.system["counter"]
    with app.rt.engine.connect() as conn:
        return dict(conn.execute(sa.select(table.c.key, table.c.value)).all())


def history_count(app) -> int:
    table = app.rt.schema.system["history"]
    with app.rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def refuse(call, *args, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call(*args, **kwargs)
    return info.value


# ---- every field type: good values -------------------------------------------------------

def test_good_values_of_every_type_are_stored_typed(app):
    c = app.svc.create("customer", {
        "name": "  华信科技  ", "short_code": "HX", "email": "info@huaxin.cn", "phone": "+86 21 5555-8888",
        "website": "huaxin.cn", "employees": "1,200", "revenue": "1200000.5", "discount": "12.5%",
        "rating": 4.5, "active": "是", "founded": "2001/05/06", "follow_up": today().isoformat(),
        "contacted_at": "2024-03-01 09:30", "industry": "manufacturing", "region": "310101",
        "tags": "vip，new", "manager": app.clerk.id, "team": app.clerk.department_id, "vat_no": "VAT1",
        "logo": {"name": "logo.png", "size": 2048, "type": "image/png", "key": "abc"}, "notes": "line\n",
    }, app.admin)
    assert c["name"] == "华信科技"                      # trimmed
    assert c["website"] == "https://huaxin.cn"          # a scheme is added
    assert c["employees"] == 1200
    assert c["revenue"] == D("1200000.50") and c["discount"] == D("12.50") and c["rating"] == D("4.5")
    assert c["active"] is True
    assert c["founded"] == dt.date(2001, 5, 6)
    assert c["contacted_at"] == dt.datetime(2024, 3, 1, 1, 30, tzinfo=dt.timezone.utc)  # local time, stored UTC
    assert c["region"] == "310101" and c["tags"] == ["new", "vip"]
    assert c["logo"] == {"name": "logo.png", "size": 2048, "type": "image/png", "key": "abc"}
    assert c["notes"] == "line"
    assert c["mnemonic"] == "hxkj"
    assert c["code"] == f"C{today().year}-0001"
    assert c["revenue_per_head"] == D("1000.00")
    assert c["order_total"] is None and c["order_count"] == 0
    assert c["owner"] == app.admin.id and c["department"] == app.admin.department_id
    assert c["version"] == 1 and c["created_by"] == app.admin.id
    # read back from the database: the same values
    again = app.svc.get("customer", c["id"], app.admin)
    assert {k: again[k] for k in c} == c


def test_defaults(app):
    before = dt.datetime.now(dt.timezone.utc)
    c = app.svc.create("customer", {"name": "Acme"}, app.clerk)
    after = dt.datetime.now(dt.timezone.utc)
    assert c["discount"] == D("0.00") and c["active"] is True
    assert c["since"] == today()
    assert before - dt.timedelta(seconds=1) <= c["contacted_at"] <= after + dt.timedelta(seconds=1)
    assert c["manager"] == app.clerk.id                  # $current_user
    assert c["team"] == app.clerk.department_id          # $current_department
    assert c["owner"] == app.clerk.id and c["department"] == app.clerk.department_id
    assert c["tags"] == [] and c["order_count"] == 0
    # a given value wins over the default, also an explicit empty one
    c2 = app.svc.create("customer", {"name": "Beta", "active": False, "closed_reason": "gone", "since": None,
                                     "manager": None}, app.clerk)
    assert c2["active"] is False and c2["since"] is None and c2["manager"] is None


# ---- every field type: bad values, all at once, nothing written --------------------------

BAD = {
    "name": "x" * 41,
    "short_code": "ab1",
    "email": "not-an-email",
    "phone": "call me",
    "website": "ht tp://bad",
    "employees": "1.5",
    "revenue": "-1",
    "discount": "150",
    "rating": "4.55",
    "active": "maybe",
    "founded": "2999-01-01",
    "follow_up": "2000-01-01",
    "contacted_at": "yesterday",
    "industry": "nope",
    "region": "999999",
    "tags": ["vip", "bogus"],
    "parent": 999999,
    "manager": 999999,
    "team": 999999,
    "logo": {"name": "a.gif", "size": 10, "type": "image/gif"},
    "colour": "red",
    "code": "C-1",
    "mnemonic": "x",
    "notes": "x" * 201,
}

EXPECTED = {
    "name": "at most 40 characters (got 41)",
    "short_code": "'ab1' does not have the expected format",
    "email": "'not-an-email' is not an e-mail address",
    "phone": "'call me' is not a phone number",
    "website": "is not a web address",
    "employees": "'1.5' is not a whole number",
    "revenue": "must be at least 0",
    "discount": "must be at most 100",
    "rating": "at most 1 decimal places",
    "active": "expected yes or no",
    "founded": "must be at most " + "",
    "follow_up": "must be at least " + "",
    "contacted_at": "'yesterday' is not a date and time",
    "industry": "'nope' is not an item of Industry",
    "region": "'999999' is not an item of Region",
    "tags": "'bogus' is not an item of Tag",
    "parent": "Customer #999999 does not exist",
    "manager": "User #999999 does not exist",
    "team": "Department #999999 does not exist",
    "logo": "files of type image/gif are not accepted",
    "colour": "there is no field 'colour'",
    "code": "'code' is computed and cannot be set",
    "mnemonic": "'mnemonic' is computed and cannot be set",
    "notes": "at most 200 characters (got 201)",
}


def test_bad_values_are_all_reported_and_nothing_is_written(app):
    error = refuse(app.svc.create, "customer", BAD, app.admin)
    found = texts(error)
    assert set(found) == set(EXPECTED), set(found) ^ set(EXPECTED)
    for name, expected in EXPECTED.items():
        assert any(expected in t for t in found[name]), (name, found[name])
    assert rows(app, "customer") == []
    assert all(not k.startswith("customer.") for k in counters(app))   # no number taken
    # only the two users and the seeded departments have history
    assert history_count(app) == 2 + 3


@pytest.mark.parametrize("field, value, message", [
    ("employees", 100001, "must be at most 100000"),
    ("employees", "abc", "'abc' is not a whole number"),
    ("employees", True, "expected a whole number"),
    ("employees", 2 ** 40, "the number is too large"),
    ("revenue", "1e400", "the number is too large"),
    ("revenue", "NaN", "is not a number"),
    ("revenue", "12.345", "at most 2 decimal places"),
    ("revenue", "1" * 20, "the number is too large"),
    ("rating", "-0.1", "must be at least 0"),
    ("founded", "2020-13-01", "is not a date"),
    ("email", "a@b", "is not an e-mail address"),
    ("name", {"x": 1}, "expected a text"),
    ("name", "bad\x00text", "NUL character"),
    ("tags", 5, "expected a list of codes"),
    ("logo", {"name": "big.png", "size": 2 * 1024 * 1024, "type": "image/png"}, "larger than 1048576 bytes"),
    ("logo", "logo.png", "expected an uploaded file"),
    ("parent", "first", "expected a record id"),
    ("owner", "x", "expected a record id"),
    ("created_at", "2020-01-01", "is kept by the engine"),
    ("version", 5, "is kept by the engine"),
])
def test_one_bad_value(app, field, value, message):
    values = {"name": "Valid"}
    values[field] = value
    error = refuse(app.svc.create, "customer", values, app.admin)
    assert any(message in t for t in texts(error)[field]), texts(error)


def test_date_bounds_follow_today(app):
    tomorrow = today() + dt.timedelta(days=1)
    error = refuse(app.svc.create, "customer", {"name": "A", "founded": tomorrow, "follow_up": today() - dt.timedelta(days=1)},
                   app.admin)
    assert texts(error) == {"founded": [f"must be at most {today()}"],
                            "follow_up": [f"must be at least {today()}"]}
    ok = app.svc.create("customer", {"name": "A", "founded": today(), "follow_up": today()}, app.admin)
    assert ok["founded"] == today()


def test_required_and_required_if_and_show_if(app):
    error = refuse(app.svc.create, "customer", {"name": "  ", "revenue": 2_000_000, "industry": "retail"}, app.admin)
    assert texts(error) == {"name": ["Name is required"], "vat_no": ["VAT number is required"]}
    # in the reader's language, with the field's label in it
    assert texts(error, "zh") == {"name": ["客户名称不能为空"], "vat_no": ["税号不能为空"]}
    # closed_reason shows (and is required) only when the customer is inactive
    app.svc.create("customer", {"name": "Active one"}, app.admin)
    error = refuse(app.svc.create, "customer", {"name": "Closed one", "active": False}, app.admin)
    assert texts(error) == {"closed_reason": ["Closed reason is required"]}
    c = app.svc.create("customer", {"name": "Closed one", "active": False, "closed_reason": "moved"}, app.admin)
    assert c["closed_reason"] == "moved"


def test_rules_with_messages_in_both_languages(app):
    error = refuse(app.svc.create, "customer", {"name": "A", "revenue": 10}, app.admin)
    assert texts(error) == {"industry": ["Set an industry when revenue is known"]}
    assert texts(error, "zh") == {"industry": ["填写营业额时必须选择行业"]}
    # a rule without fields is about the whole record
    error = refuse(app.svc.create, "customer", {"name": "A", "discount": 30}, app.admin)
    assert error.fields == {}
    assert [m.text("en") for m in error.errors] == ["Only VIP customers get more than 20% discount"]
    assert [m.text("zh") for m in error.errors] == ["只有重要客户可享受超过20%的折扣"]
    assert error.as_dict("zh")["errors"] == ["只有重要客户可享受超过20%的折扣"]
    app.svc.create("customer", {"name": "A", "discount": 30, "tags": ["vip"]}, app.admin)


def test_rule_through_a_lookup_path(app):
    retail = app.svc.create("customer", {"name": "Shop", "industry": "retail"}, app.admin)
    maker = app.svc.create("customer", {"name": "Maker", "industry": "manufacturing"}, app.admin)
    error = refuse(app.svc.create, "order", {"customer": retail["id"], "discount": 5}, app.admin)
    assert texts(error) == {"discount": ["Retail customers get no discount"]}
    assert texts(error, "zh") == {"discount": ["零售客户不享受折扣"]}
    o = app.svc.create("order", {"customer": maker["id"], "discount": 5}, app.admin)
    # the rule follows the lookup when the order moves
    error = refuse(app.svc.update, "order", o["id"], {"customer": retail["id"]}, app.admin, version=o["version"])
    assert "discount" in error.fields


def test_formula_division_by_zero_is_empty(app):
    c = app.svc.create("customer", {"name": "A", "revenue": 1000, "industry": "retail", "employees": 0}, app.admin)
    assert c["revenue_per_head"] is None
    c = app.svc.update("customer", c["id"], {"employees": 3}, app.admin, version=c["version"])
    assert c["revenue_per_head"] == D("333.33")
    c = app.svc.update("customer", c["id"], {"revenue": None}, app.admin, version=c["version"])
    assert c["revenue_per_head"] is None


def test_mnemonic_follows_its_source(app):
    c = app.svc.create("customer", {"name": "华信科技 IBM 2号"}, app.admin)
    assert c["mnemonic"] == "hxkjibm2h"
    c = app.svc.update("customer", c["id"], {"name": "重庆银行"}, app.admin, version=c["version"])
    assert c["mnemonic"] == "cqyh"


# ---- dictionaries ------------------------------------------------------------------------

def _force(app, obj, id_, **values):
    """Write values behind the service's back (a code deactivated after it was used)."""
    table = app.rt.table(obj)
    with app.rt.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == id_).values(**values))


def _force_multi(app, obj, field, id_, codes):
    side = app.rt.schema.multi[(obj, field)]
    with app.rt.engine.begin() as conn:
        conn.execute(side.insert(), [{"record_id": id_, "code": c} for c in codes])


def test_inactive_codes_are_refused_on_new_values_and_kept_on_old_ones(app):
    error = refuse(app.svc.create, "customer", {"name": "A", "industry": "legacy", "region": "320200",
                                                "tags": ["old"]}, app.admin)
    assert texts(error) == {"industry": ["'legacy' is no longer in use"], "region": ["'320200' is no longer in use"],
                            "tags": ["'old' is no longer in use"]}
    # a child item of a hierarchical dictionary is a valid code
    c = app.svc.create("customer", {"name": "A", "region": "310101"}, app.admin)
    _force(app, "customer", c["id"], industry="legacy", region="320200")
    _force_multi(app, "customer", "tags", c["id"], ["old"])
    c = app.svc.get("customer", c["id"], app.admin)
    assert c["industry"] == "legacy" and c["tags"] == ["old"]
    # other changes keep the old codes
    c = app.svc.update("customer", c["id"], {"employees": 5, "tags": ["old", "vip"]}, app.admin, version=c["version"])
    assert (c["industry"], c["region"], c["tags"]) == ("legacy", "320200", ["old", "vip"])
    # another record may not take them
    other = app.svc.create("customer", {"name": "B"}, app.admin)
    error = refuse(app.svc.update, "customer", other["id"], {"industry": "legacy"}, app.admin, version=1)
    assert texts(error) == {"industry": ["'legacy' is no longer in use"]}
    # and once left, an old code cannot come back
    c = app.svc.update("customer", c["id"], {"industry": "retail"}, app.admin, version=c["version"])
    error = refuse(app.svc.update, "customer", c["id"], {"industry": "legacy"}, app.admin, version=c["version"])
    assert "industry" in error.fields


# ---- lookups -----------------------------------------------------------------------------

def test_lookups_must_exist_be_live_and_pass_their_filter(app):
    live = app.svc.create("customer", {"name": "Live"}, app.admin)
    inactive = app.svc.create("customer", {"name": "Dormant", "active": False, "closed_reason": "x"}, app.admin)
    gone = app.svc.create("customer", {"name": "Gone"}, app.admin)
    app.svc.delete("customer", gone["id"], app.admin)
    for target in (inactive["id"], gone["id"], 424242):
        error = refuse(app.svc.create, "customer", {"name": f"Child {target}", "parent": target}, app.admin)
        assert texts(error) == {"parent": [f"Customer #{target} does not exist, is deleted, or may not be chosen here"]}
    child = app.svc.create("customer", {"name": "Child", "parent": live["id"]}, app.admin)
    assert child["parent"] == live["id"]
    # accepted as {"id": ...} too (what a form or the API may send)
    assert app.svc.create("order", {"customer": {"id": live["id"]}}, app.admin)["customer"] == live["id"]
    # a lookup that no longer passes its filter stays while it is not changed
    app.svc.update("customer", live["id"], {"active": False, "closed_reason": "x"}, app.admin, version=1)
    child = app.svc.update("customer", child["id"], {"employees": 3}, app.admin, version=child["version"])
    assert child["parent"] == live["id"]


def test_a_lookup_must_be_readable_by_the_actor(app):
    theirs = app.svc.create("customer", {"name": "Admin's"}, app.admin)
    mine = app.svc.create("customer", {"name": "Clerk's"}, app.clerk)
    error = refuse(app.svc.create, "customer", {"name": "X", "parent": theirs["id"]}, app.clerk)
    assert "parent" in error.fields
    assert app.svc.create("customer", {"name": "Y", "parent": mine["id"]}, app.clerk)["parent"] == mine["id"]


def test_limited_role_sees_and_changes_only_its_own(app):
    theirs = app.svc.create("customer", {"name": "Admin's"}, app.admin)
    mine = app.svc.create("customer", {"name": "Clerk's"}, app.clerk)
    assert [r["name"] for r in app.svc.query("customer", app.clerk).rows] == ["Clerk's"]
    assert app.svc.count("customer", app.clerk) == 1
    with pytest.raises(NotFound):
        app.svc.get("customer", theirs["id"], app.clerk)
    with pytest.raises(NotFound):
        app.svc.update("customer", theirs["id"], {"employees": 1}, app.clerk, version=1)
    with pytest.raises(NotFound):
        app.svc.delete("customer", theirs["id"], app.clerk)
    assert app.svc.update("customer", mine["id"], {"employees": 1}, app.clerk, version=1)["employees"] == 1
    # a role with no create right on an object
    with pytest.raises(Forbidden):
        app.svc.create("note", {"subject": "x"}, app.clerk)
    # engine fields cannot be set by hand, the owner can
    other = app.svc.create("customer", {"name": "Given", "owner": app.clerk.id}, app.admin)
    assert other["owner"] == app.clerk.id and other["department"] == app.clerk.department_id


# ---- unique --------------------------------------------------------------------------------

def test_unique_among_live_records(app):
    a = app.svc.create("customer", {"name": "Acme", "short_code": "AC"}, app.admin)
    error = refuse(app.svc.create, "customer", {"name": "Acme", "short_code": "AC"}, app.admin)
    assert texts(error) == {"name": ["'Acme' is already used by another record"],
                            "short_code": ["'AC' is already used by another record"]}
    # an update to its own value is fine; to another's is not
    b = app.svc.create("customer", {"name": "Beta"}, app.admin)
    app.svc.update("customer", a["id"], {"name": "Acme", "employees": 2}, app.admin, version=1)
    error = refuse(app.svc.update, "customer", b["id"], {"name": "Acme"}, app.admin, version=1)
    assert texts(error) == {"name": ["'Acme' is already used by another record"]}
    # a deleted record's value may be reused...
    app.svc.delete("customer", a["id"], app.admin)
    again = app.svc.create("customer", {"name": "Acme", "short_code": "AC"}, app.admin)
    # ...and the deleted one cannot come back while it is taken
    error = refuse(app.svc.restore, "customer", a["id"], app.admin)
    assert texts(error) == {"name": ["'Acme' is already used by another record"],
                            "short_code": ["'AC' is already used by another record"]}
    assert app.svc.get("customer", a["id"], app.admin, deleted=True)["deleted_at"] is not None
    app.svc.update("customer", again["id"], {"name": "Acme 2", "short_code": None}, app.admin, version=1)
    assert app.svc.restore("customer", a["id"], app.admin)["deleted_at"] is None


def test_unique_within_one_bulk_batch(app):
    result = app.svc.bulk_create("customer", [{"name": "Same"}, {"name": "Same"}, {"name": "Other"}], app.admin)
    assert len(result.created) == 2
    assert [(i, texts(e)) for i, e in result.errors] == [(1, {"name": ["'Same' is already used by another record"]})]


# ---- optimistic locking --------------------------------------------------------------------

def test_a_stale_update_is_refused_naming_what_changed(app):
    c = app.svc.create("customer", {"name": "Acme", "employees": 5}, app.admin)
    first = app.svc.update("customer", c["id"], {"employees": 6, "phone": "123456"}, app.admin, version=1)
    assert first["version"] == 2
    with pytest.raises(Conflict) as info:
        app.svc.update("customer", c["id"], {"employees": 7, "name": "Mine"}, app.admin, version=1)
    assert set(info.value.fields) == {"employees", "phone"}
    assert "employees" in info.value.text("en") and info.value.current["version"] == 2
    now = app.svc.get("customer", c["id"], app.admin)
    assert (now["name"], now["employees"], now["version"]) == ("Acme", 6, 2)
    # an update without the version read is refused
    error = refuse(app.svc.update, "customer", c["id"], {"employees": 8}, app.admin, version=None)
    assert error.errors
    assert app.svc.update("customer", c["id"], {"employees": 8}, app.admin, version=2)["version"] == 3


# ---- history -------------------------------------------------------------------------------

def test_history_of_create_update_delete_restore(app):
    c = app.svc.create("customer", {"name": "Acme", "employees": 5, "tags": ["vip"]}, app.clerk)
    c = app.svc.update("customer", c["id"], {"employees": 6, "tags": ["new"]}, app.admin, version=1)
    app.svc.update("customer", c["id"], {}, app.admin, version=2)            # nothing changed
    app.svc.delete("customer", c["id"], app.admin)
    app.svc.restore("customer", c["id"], app.admin)
    entries = history_of(app, "customer", c["id"])
    assert [(e["action"], e["user_id"], e["version"]) for e in entries] == [
        ("create", app.clerk.id, 1), ("update", app.admin.id, 2), ("update", app.admin.id, 3),
        ("delete", app.admin.id, 4), ("restore", app.admin.id, 5)]
    created = entries[0]["changes"]
    assert created["name"] == [None, "Acme"] and created["employees"] == [None, 5]
    assert created["tags"] == [None, ["vip"]] and created["mnemonic"] == [None, "acme"]
    assert created["code"][1].startswith("C")
    assert "search_text" not in created and "updated_at" not in created
    assert entries[1]["changes"] == {"employees": [5, 6], "tags": [["vip"], ["new"]]}
    assert entries[2]["changes"] == {}
    for e in entries:
        assert abs(e["at"] - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert app.svc.get("customer", c["id"], app.admin)["version"] == 5


def test_history_keeps_decimals_and_dates_as_text(app):
    c = app.svc.create("customer", {"name": "A", "revenue": "10.5", "industry": "retail", "founded": "2020-01-02"},
                       app.admin)
    app.svc.update("customer", c["id"], {"revenue": "11"}, app.admin, version=1)
    entries = history_of(app, "customer", c["id"])
    assert entries[0]["changes"]["founded"] == [None, "2020-01-02"]
    assert entries[1]["changes"]["revenue"] == ["10.50", "11.00"]


# ---- recycle bin ---------------------------------------------------------------------------

def test_delete_restore_purge(app):
    c = app.svc.create("customer", {"name": "Acme"}, app.admin)
    with pytest.raises(NotFound):                     # purge only from the bin
        app.svc.purge("customer", c["id"], app.admin)
    with pytest.raises(NotFound):                     # restore only from the bin
        app.svc.restore("customer", c["id"], app.admin)
    app.svc.delete("customer", c["id"], app.admin)
    with pytest.raises(NotFound):
        app.svc.get("customer", c["id"], app.admin)
    with pytest.raises(NotFound):
        app.svc.delete("customer", c["id"], app.admin)
    with pytest.raises(NotFound):
        app.svc.update("customer", c["id"], {"employees": 1}, app.admin, version=2)
    assert rows(app, "customer") == []
    assert [r["id"] for r in rows(app, "customer", deleted=True)] == [c["id"]]
    assert app.svc.count("customer", SYSTEM, deleted=True) == 1
    binned = app.svc.get("customer", c["id"], app.admin, deleted=True)
    assert binned["deleted_at"] is not None and binned["version"] == 2
    restored = app.svc.restore("customer", c["id"], app.admin)
    assert restored["deleted_at"] is None and restored["version"] == 3
    assert [r["id"] for r in rows(app, "customer")] == [c["id"]]
    app.svc.delete("customer", c["id"], app.admin)
    app.svc.purge("customer", c["id"], app.admin)
    assert rows(app, "customer", deleted=True) == []
    with pytest.raises(NotFound):
        app.svc.get("customer", c["id"], app.admin, deleted=True)
    # the trail survives the purge
    table = app.rt.schema.system["history"]
    with app.rt.engine.connect() as conn:
        actions = [a for (a,) in conn.execute(sa.select(table.c.action).where(
            table.c.object == "customer", table.c.record_id == c["id"]).order_by(table.c.id))]
    assert actions == ["create", "delete", "restore", "delete", "purge"]


def test_delete_needs_the_delete_right(app):
    o = app.svc.create("order", {"customer": app.svc.create("customer", {"name": "A"}, app.admin)["id"]}, app.admin)
    with pytest.raises(Forbidden):                    # clerks read every order, delete their own
        app.svc.delete("order", o["id"], app.clerk)
    app.svc.delete("order", o["id"], app.admin)
    with pytest.raises(Forbidden):
        app.svc.restore("order", o["id"], app.clerk)
    with pytest.raises(Forbidden):
        app.svc.purge("order", o["id"], app.clerk)


# ---- on_delete -----------------------------------------------------------------------------

def test_on_delete_restrict_names_the_referring_records(app):
    c = app.svc.create("customer", {"name": "Acme"}, app.admin)
    orders = [app.svc.create("order", {"customer": c["id"]}, app.admin) for _ in range(2)]
    with pytest.raises(Restricted) as info:
        app.svc.delete("customer", c["id"], app.admin)
    message = info.value.text("en")
    assert "cannot delete" in message and "Order" in message
    assert all(o["number"] in message for o in orders)
    assert {(o, i) for o, i, _t in info.value.references} == {("order", o["id"]) for o in orders}
    assert app.svc.get("customer", c["id"], app.admin)["deleted_at"] is None
    # a deleted order still blocks a purge, not a delete
    for o in orders:
        app.svc.delete("order", o["id"], app.admin)
    app.svc.delete("customer", c["id"], app.admin)
    with pytest.raises(Restricted) as info:
        app.svc.purge("customer", c["id"], app.admin)
    assert "recycle bin" in info.value.text("en")
    for o in orders:
        app.svc.purge("order", o["id"], app.admin)
    app.svc.purge("customer", c["id"], app.admin)


def test_on_delete_set_null_and_cascade(app):
    c = app.svc.create("customer", {"name": "Acme"}, app.admin)
    child = app.svc.create("customer", {"name": "Acme Sub", "parent": c["id"]}, app.admin)
    contact = app.svc.create("contact", {"name": "Li", "customer": c["id"]}, app.admin)
    notes = [app.svc.create("note", {"subject": f"n{i}", "customer": c["id"]}, app.admin) for i in range(2)]
    other_note = app.svc.create("note", {"subject": "other"}, app.admin)
    app.svc.delete("customer", c["id"], app.admin)
    child = app.svc.get("customer", child["id"], app.admin)
    assert child["parent"] is None and child["version"] == 2
    assert history_of(app, "customer", child["id"])[-1]["changes"] == {"parent": [c["id"], None]}
    assert app.svc.get("contact", contact["id"], app.admin)["customer"] is None
    for n in notes:
        assert app.svc.get("note", n["id"], app.admin, deleted=True)["deleted_at"] is not None
        assert history_of(app, "note", n["id"])[-1]["action"] == "delete"
    assert app.svc.get("note", other_note["id"], app.admin)["deleted_at"] is None


def test_set_null_that_would_break_a_rule_refuses_the_delete(app):
    c = app.svc.create("customer", {"name": "Acme"}, app.admin)
    vip = app.svc.create("contact", {"name": "VIP Li", "customer": c["id"]}, app.admin)
    with pytest.raises(Restricted) as info:
        app.svc.delete("customer", c["id"], app.admin)
    assert "Contact VIP Li: A VIP contact needs a customer" in info.value.text("en")
    assert info.value.references == (("contact", vip["id"], "VIP Li"),)
    assert app.svc.get("customer", c["id"], app.admin)["deleted_at"] is None
    assert app.svc.get("contact", vip["id"], app.admin)["customer"] == c["id"]


# ---- rollups -------------------------------------------------------------------------------

def _totals(app, cid):
    c = app.svc.get("customer", cid, app.admin)
    return c["order_total"], c["order_count"]


def test_rollups_follow_children(app):
    a = app.svc.create("customer", {"name": "A"}, app.admin)["id"]
    b = app.svc.create("customer", {"name": "B"}, app.admin)["id"]
    o1 = app.svc.create("order", {"customer": a, "amount": 100}, app.admin)
    assert _totals(app, a) == (D("100.00"), 1)
    o2 = app.svc.create("order", {"customer": a, "amount": "50.5"}, app.admin)
    assert _totals(app, a) == (D("150.50"), 2)
    o1 = app.svc.update("order", o1["id"], {"amount": 10}, app.admin, version=o1["version"])       # changed
    assert _totals(app, a) == (D("60.50"), 2)
    o2 = app.svc.update("order", o2["id"], {"cancelled": True}, app.admin, version=o2["version"])  # `where`
    assert _totals(app, a) == (D("10.00"), 2)
    o1 = app.svc.update("order", o1["id"], {"customer": b}, app.admin, version=o1["version"])      # moved
    assert _totals(app, a) == (None, 1) and _totals(app, b) == (D("10.00"), 1)
    app.svc.delete("order", o1["id"], app.admin)                                                   # deleted
    assert _totals(app, b) == (None, 0)
    app.svc.restore("order", o1["id"], app.admin)                                                  # restored
    assert _totals(app, b) == (D("10.00"), 1)


def test_lines_are_saved_with_their_parent_and_rolled_up(app):
    cid = app.svc.create("customer", {"name": "A", "industry": "manufacturing"}, app.admin)["id"]
    o = app.svc.create("order", {"customer": cid, "discount": 10, "items": [
        {"product": "Bolt", "quantity": 3, "price": "2.50"},
        {"product": "Nut", "price": 1},
    ]}, app.admin)
    assert [(l["product"], l["quantity"], l["amount"], l["line_no"]) for l in o["items"]] == [
        ("Bolt", 3, D("7.50"), 1), ("Nut", 1, D("1.00"), 2)]
    assert (o["items_total"], o["item_count"], o["net"]) == (D("8.50"), 2, D("7.65"))
    # change one line, drop another, add a third: rows are matched by id
    bolt, nut = o["items"]
    o = app.svc.update("order", o["id"], {"items": [
        {"id": bolt["id"], "product": "Bolt", "quantity": 4, "price": "2.50"},
        {"product": "Washer", "quantity": 10, "price": "0.10"},
    ]}, app.admin, version=o["version"])
    assert [(l["product"], l["amount"]) for l in o["items"]] == [("Bolt", D("10.00")), ("Washer", D("1.00"))]
    assert o["items"][0]["id"] == bolt["id"]
    assert (o["items_total"], o["item_count"], o["net"]) == (D("11.00"), 2, D("9.90"))
    assert history_of(app, "order", o["id"])[-1]["changes"]["items"] == [2, 2]
    # an update that leaves the lines out keeps them
    o = app.svc.update("order", o["id"], {"amount": 5}, app.admin, version=o["version"])
    assert o["item_count"] == 2
    # lines are only reachable through the parent: a deleted parent hides them from the rollup owner
    o = app.svc.update("order", o["id"], {"items": []}, app.admin, version=o["version"])
    assert (o["items"], o["items_total"], o["item_count"], o["net"]) == ([], None, 0, None)


def test_a_line_deleted_on_its_own_leaves_the_parent(app):
    cid = app.svc.create("customer", {"name": "A"}, app.admin)["id"]
    o = app.svc.create("order", {"customer": cid, "items": [{"product": "Bolt", "price": 2},
                                                            {"product": "Nut", "price": 1}]}, app.admin)
    app.svc.delete("order_line", o["items"][0]["id"], app.admin)
    o = app.svc.get("order", o["id"], app.admin)
    assert [l["product"] for l in o["items"]] == ["Nut"] and (o["items_total"], o["item_count"]) == (D("1.00"), 1)
    assert "search_text" not in o["items"][0]
    kept = [{"id": l["id"]} for l in o["items"]]
    o = app.svc.update("order", o["id"], {"items": kept + [{"product": "Pin", "price": 3}]}, app.admin,
                       version=o["version"])
    assert [l["product"] for l in o["items"]] == ["Nut", "Pin"] and o["items_total"] == D("4.00")


def test_a_bad_line_saves_nothing(app):
    cid = app.svc.create("customer", {"name": "A"}, app.admin)["id"]
    before = counters(app)
    error = refuse(app.svc.create, "order", {"customer": cid, "items": [
        {"product": "Bolt", "price": 1},
        {"product": "", "quantity": 0, "price": "x"},
        "not a row",
    ]}, app.admin)
    assert texts(error) == {"items[1].product": ["Product is required"],
                            "items[1].quantity": ["must be at least 1"],
                            "items[1].price": ["'x' is not a number"],
                            "items[2]": ["expected a row"]}
    assert rows(app, "order") == [] and rows(app, "order_line") == []
    assert counters(app) == before
    assert _totals(app, cid) == (None, 0)
    # the same on update: the order keeps its lines
    o = app.svc.create("order", {"customer": cid, "items": [{"product": "Bolt", "price": 1}]}, app.admin)
    refuse(app.svc.update, "order", o["id"], {"amount": 3, "items": [{"product": "Nut", "price": -1}]},
           app.admin, version=o["version"])
    again = app.svc.get("order", o["id"], app.admin)
    assert [l["product"] for l in again["items"]] == ["Bolt"] and again["amount"] == D("0.00")
    assert again["version"] == o["version"]


def test_a_line_given_by_id_keeps_what_it_leaves_out(app):
    cid = app.svc.create("customer", {"name": "A"}, app.admin)["id"]
    o = app.svc.create("order", {"customer": cid, "items": [{"product": "Bolt", "quantity": 2, "price": 3}]},
                       app.admin)
    other = app.svc.create("order", {"customer": cid, "items": [{"product": "Nut", "price": 1}]}, app.admin)
    line = o["items"][0]
    o = app.svc.update("order", o["id"], {"items": [{"id": line["id"], "quantity": 5}]}, app.admin,
                       version=o["version"])
    assert [(l["id"], l["product"], l["quantity"], l["amount"]) for l in o["items"]] == [
        (line["id"], "Bolt", 5, D("15.00"))]
    assert o["items_total"] == D("15.00")
    # another order's line id is not a way into that order: it is a new line here
    foreign = other["items"][0]
    error = refuse(app.svc.update, "order", o["id"], {"items": [{"id": foreign["id"], "quantity": 5}]}, app.admin,
                   version=o["version"])
    assert set(texts(error)) == {"items[0].product", "items[0].price"}
    o = app.svc.update("order", o["id"], {"items": [{"id": foreign["id"], "product": "Nut", "price": 2}]},
                       app.admin, version=o["version"])
    assert o["items"][0]["id"] != foreign["id"]
    assert app.svc.get("order", other["id"], app.admin)["items"] == other["items"]


def test_a_unique_value_taken_meanwhile_is_a_validation_error(app):
    """The check runs before the insert; a writer that commits the same value in between
    is caught by the unique index, and the caller still gets a ValidationError."""
    import threading
    outcome = {}

    def racer():
        try:
            app.svc.create("customer", {"name": "Race"}, app.admin)
            outcome["result"] = "created"
        except Exception as e:  # noqa: BLE001 - the test looks at what it is
            outcome["result"] = e
    with app.svc.transaction() as conn:
        app.svc.create("customer", {"name": "Race"}, app.admin, conn=conn)
        thread = threading.Thread(target=racer)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()      # waiting for us: the write lock (SQLite) or the unique index (PostgreSQL)
    thread.join(30)
    error = outcome["result"]
    assert isinstance(error, ValidationError), error
    assert texts(error) == {"name": ["'Race' is already used by another record"]}
    assert len(rows(app, "customer")) == 1


def test_restore_refuses_references_into_the_bin(app):
    c = app.svc.create("customer", {"name": "Acme"}, app.admin)
    note = app.svc.create("note", {"subject": "n", "customer": c["id"]}, app.admin)
    app.svc.delete("customer", c["id"], app.admin)                 # the note goes too (cascade)
    error = refuse(app.svc.restore, "note", note["id"], app.admin)
    assert texts(error) == {"customer": [f"Customer #{c['id']} is in the recycle bin; restore it first"]}
    app.svc.restore("customer", c["id"], app.admin)
    assert app.svc.restore("note", note["id"], app.admin)["customer"] == c["id"]


def test_bulk_create_reports_bad_rows_and_keeps_good_ones(app):
    seen = []
    rows_in = [{"name": f"N{i}", "employees": i} for i in range(7)]
    rows_in[2]["employees"] = -1
    rows_in[5] = "not a mapping"
    result = app.svc.bulk_create("customer", rows_in, app.admin, batch_size=3, progress=seen.append)
    assert seen == [3, 6, 7]
    assert [i for i, _e in result.errors] == [2, 5]
    assert texts(result.errors[0][1]) == {"employees": ["must be at least 0"]}
    assert [e.row for _i, e in result.errors] == [2, 5]
    made = app.svc.query("customer", app.admin, sort=["code"], limit=100).rows
    assert [r["name"] for r in made] == ["N0", "N1", "N3", "N4", "N6"]
    assert [r["code"][-4:] for r in made] == ["0001", "0002", "0003", "0004", "0005"]   # no gaps
    assert [r["id"] for r in made] == result.created
    assert [e["action"] for e in history_of(app, "customer", made[0]["id"])] == ["create"]
    assert [r["name"] for r in app.svc.query("customer", app.admin, search="n6").rows] == ["N6"]


# ---- numbering -----------------------------------------------------------------------------

def test_numbers_per_period_department_and_field(app):
    orders = [app.svc.create("order", {"customer": app.svc.create("customer", {"name": f"C{i}"}, app.admin)["id"]},
                             app.admin) for i in range(2)]
    stamp = dt.datetime.now(TZ).strftime("%y%m")
    assert [o["number"] for o in orders] == [f"SO{stamp}-001", f"SO{stamp}-002"]
    east = app.svc.create("ticket", {"subject": "a", "region": "310000"}, app.clerk)
    east2 = app.svc.create("ticket", {"subject": "b", "region": "310000"}, app.clerk)
    east_js = app.svc.create("ticket", {"subject": "c", "region": "320000"}, app.clerk)
    hq = app.svc.create("ticket", {"subject": "d", "region": "310000"}, app.admin)
    none = app.svc.create("ticket", {"subject": "e"}, app.admin)
    assert [t["code"] for t in (east, east2, east_js, hq, none)] == [
        "T-east-310000-01", "T-east-310000-02", "T-east-320000-01", "T-hq-310000-01", "T-hq--01"]


def test_counters_restart_with_their_period(app, monkeypatch):
    this_year = app.svc.create("customer", {"name": "A"}, app.admin)["code"]
    assert this_year == f"C{today().year}-0001"
    next_year = dt.datetime(today().year + 1, 1, 1, 8, tzinfo=TZ)
    monkeypatch.setattr(app.svc, "now", lambda: next_year.astimezone(dt.timezone.utc))
    assert app.svc.create("customer", {"name": "B"}, app.admin)["code"] == f"C{today().year + 1}-0001"
    assert app.svc.create("customer", {"name": "C"}, app.admin)["code"] == f"C{today().year + 1}-0002"
    monkeypatch.undo()
    assert app.svc.create("customer", {"name": "D"}, app.admin)["code"] == f"C{today().year}-0002"


def test_a_rolled_back_write_leaves_no_trace(app):
    cid = app.svc.create("customer", {"name": "A"}, app.admin)["id"]
    first = app.svc.create("order", {"customer": cid, "amount": 5}, app.admin)
    before = (counters(app), history_count(app), _totals(app, cid))
    with pytest.raises(RuntimeError):
        with app.svc.transaction() as conn:
            o = app.svc.create("order", {"customer": cid, "amount": 7, "items": [{"product": "X", "price": 1}]},
                               app.admin, conn=conn)
            assert o["number"].endswith("-002")
            app.svc.update("customer", cid, {"employees": 9}, app.admin, version=1, conn=conn)
            raise RuntimeError("boom")
    assert (counters(app), history_count(app), _totals(app, cid)) == before
    assert [r["id"] for r in rows(app, "order")] == [first["id"]] and rows(app, "order_line") == []
    assert app.svc.get("customer", cid, app.admin)["employees"] is None
    nxt = app.svc.create("order", {"customer": cid}, app.admin)
    assert nxt["number"].endswith("-002")


def test_locked_state_and_number_assigned_on_a_state(app):
    cid = app.svc.create("customer", {"name": "A"}, app.admin)["id"]
    o = app.svc.create("order", {"customer": cid, "amount": 1}, app.admin)
    assert o["state"] == "draft" and o["invoice_no"] is None
    svc = app.svc
    o = app.rt.workflows.transition("order", o["id"], "confirm", app.admin, version=o["version"])
    assert o["state"] == "confirmed" and o["invoice_no"] == "INV-001"
    assert history_of(app, "order", o["id"])[-1]["changes"]["invoice_no"] == [None, "INV-001"]
    assert [r["id"] for r in svc.query("order", app.admin, search="inv-001").rows] == [o["id"]]
    with pytest.raises(Forbidden) as info:
        svc.update("order", o["id"], {"amount": 2}, app.admin, version=o["version"])
    assert "locked" in info.value.text("en") and "已确认" in info.value.text("zh")
    with pytest.raises(Forbidden):
        svc.delete("order", o["id"], app.admin)
    # state is not a field anyone sets by hand
    error = refuse(svc.create, "order", {"customer": cid, "state": "confirmed"}, app.admin)
    assert texts(error) == {"state": ["the state changes only through transitions"]}


# ---- queries -------------------------------------------------------------------------------

NAMES = ["华信科技", "华为技术", "信达证券", "北京华信网络", "Acme Corp", "Nova Systems", "novartis", "重庆银行",
         "上海浦东发展银行", "Zeta 8888"]


@pytest.fixture
def many(app):
    """Ten customers with employees (some empty) and phones."""
    made = []
    for i, name in enumerate(NAMES):
        made.append(app.svc.create("customer", {
            "name": name, "employees": None if i % 3 == 0 else (i * 7) % 5,
            "phone": f"021-{5550000 + i * 1111}", "industry": "retail" if i % 2 else "manufacturing",
        }, app.admin))
    return made


def test_query_conditions_and_sort(app, many):
    svc = app.svc
    names = lambda page: [r["name"] for r in page.rows]
    page = svc.query("customer", app.admin, where={"field": "industry", "op": "eq", "value": "retail"},
                     sort=["name"])
    assert names(page) == sorted(n for i, n in enumerate(NAMES) if i % 2)
    from loom.records.conditions_input import parse_condition
    cond = parse_condition(app.rt.spec, "customer", {"all": [{"field": "employees", "op": "gte", "value": 2},
                                                             {"field": "name", "op": "contains", "value": "华"}]})
    assert sorted(names(svc.query("customer", app.admin, where=cond))) == sorted(
        n for i, n in enumerate(NAMES) if "华" in n and i % 3 and (i * 7) % 5 >= 2)
    desc = svc.query("customer", app.admin, sort=["-employees", "name"], limit=100).rows
    values = [r["employees"] for r in desc]
    assert values == sorted([v for v in values if v is not None], reverse=True) + [None] * values.count(None)
    with pytest.raises(ValidationError):
        svc.query("customer", app.admin, sort=["notes"])
    with pytest.raises(ValidationError):
        svc.query("customer", app.admin, sort=["nope"])


@pytest.mark.parametrize("sort", [["employees"], ["-employees"], ["-employees", "name"], ["name"],
                                  ["-updated_at"], ["industry", "-employees"], ["founded"]])
def test_keyset_paging_gives_every_row_once(app, many, sort):
    seen, after = [], None
    for _ in range(20):
        page = app.svc.query("customer", app.admin, sort=sort, limit=3, after=after)
        seen += [r["id"] for r in page.rows]
        if not page.has_more:
            break
        after = page.next_cursor
    assert sorted(seen) == sorted(c["id"] for c in many) and len(seen) == len(set(seen))
    whole = [r["id"] for r in app.svc.query("customer", app.admin, sort=sort, limit=100).rows]
    assert seen == whole
    offset = [r["id"] for r in app.svc.query("customer", app.admin, sort=sort, limit=4, offset=4).rows]
    assert offset == whole[4:8]


@pytest.mark.parametrize("term", ["华", "银行", "nova", "021"])
def test_keyset_paging_through_search_results(app, many, term):
    expected = {r["id"] for r in app.svc.query("customer", app.admin, search=term, limit=100).rows}
    seen, after = [], None
    for _ in range(20):
        page = app.svc.query("customer", app.admin, search=term, sort=["-employees", "name"], limit=2, after=after)
        seen += [r["id"] for r in page.rows]
        if not page.has_more:
            break
        after = page.next_cursor
    assert len(seen) == len(set(seen)) and set(seen) == expected and expected


def test_not_null_sort_keys_have_no_nulls_last(app, many):
    """NULLS LAST on updated_at or id (never NULL) keeps PostgreSQL from walking the
    (updated_at, id) index: every default list page would sort the whole table."""
    statements = []
    listen = lambda conn, cursor, statement, *rest: statements.append(statement)
    sa.event.listen(app.rt.engine, "before_cursor_execute", listen)
    try:
        app.svc.query("customer", app.admin, limit=3)
        app.svc.query("customer", app.admin, sort=["-employees"], limit=3)
    finally:
        sa.event.remove(app.rt.engine, "before_cursor_execute", listen)
    default, by_employees = [s.split("ORDER BY")[1] for s in statements if "ORDER BY" in s and "customer.name" in s]
    assert "NULLS LAST" not in default and "updated_at DESC" in default
    assert "employees DESC NULLS LAST" in by_employees and "id DESC NULLS" not in by_employees


def test_bad_cursor_is_a_validation_error(app, many):
    for cursor in ("%%%", "bm90IGpzb24", "WzFd"):
        with pytest.raises(ValidationError):
            app.svc.query("customer", app.admin, after=cursor)


@pytest.mark.parametrize("term, expected", [
    ("华", {"华信科技", "华为技术", "北京华信网络"}),
    ("华信", {"华信科技", "北京华信网络"}),
    ("银行", {"重庆银行", "上海浦东发展银行"}),
    ("华信科技", {"华信科技"}),
    ("hxkj", {"华信科技"}),
    ("cqyh", {"重庆银行"}),
    ("NOVA", {"Nova Systems", "novartis"}),
    ("8888", {"Zeta 8888", "上海浦东发展银行"}),      # a name, and a phone fragment
    ("5551", {"华为技术"}),
    ("100%", set()),
    ("x_y", set()),
    ("不存在", set()),
])
def test_quick_search(app, many, term, expected):
    found = {r["name"] for r in app.svc.query("customer", app.admin, search=term, limit=100).rows}
    assert found == expected
    assert app.svc.count("customer", app.admin, search=term) == len(expected)


def test_search_finds_the_number_and_follows_updates(app, many):
    code = many[0]["code"]
    assert [r["name"] for r in app.svc.query("customer", app.admin, search=code.lower()).rows] == ["华信科技"]
    c = app.svc.update("customer", many[0]["id"], {"name": "长城汽车"}, app.admin, version=1)
    assert [r["id"] for r in app.svc.query("customer", app.admin, search="长城").rows] == [c["id"]]
    assert [r["id"] for r in app.svc.query("customer", app.admin, search="cc").rows] == [c["id"]]
    assert app.svc.query("customer", app.admin, search="hxkj").rows == []


def test_count_is_capped(app, many):
    assert app.svc.count("customer", app.admin) == 10
    assert app.svc.count("customer", app.admin, cap=4) == 5       # "4+"
    assert app.svc.count("customer", app.admin, cap=None) == 10
    assert app.svc.count("customer", app.admin, where={"field": "industry", "op": "eq", "value": "retail"}) == 5


def test_titles(app, many):
    ids = [c["id"] for c in many[:3]]
    assert app.svc.titles("customer", ids + [None]) == {c["id"]: c["name"] for c in many[:3]}
    assert app.svc.titles("customer", ids, app.clerk) == {}


# ---- the command line ----------------------------------------------------------------------

def test_cli_round_trip_and_errors(app, monkeypatch):
    from loom.cli import main
    monkeypatch.chdir(app.tmp)
    monkeypatch.setenv("LOOM_CACHE_DIR", str(app.tmp / "cache"))   # validate the metadata once, not per command
    root = write_metadata(app.tmp / "cli-metadata")
    base = ["--metadata", str(root), "--database", app.url]
    runner = CliRunner()

    def run(*args, input=None):
        result = runner.invoke(main, ["record", args[0], *base, *args[1:]], input=input)
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("create", "customer", "--data", json.dumps({"name": "华信科技", "employees": 5}))
    assert code == 0, err
    created = json.loads(out)
    assert created["mnemonic"] == "hxkj" and created["employees"] == 5
    cid = created["id"]
    code, out, _ = run("get", "customer", str(cid))
    assert json.loads(out)["name"] == "华信科技"
    code, out, err = run("update", "customer", str(cid), "--data", '{"employees": 6}', "--version", "1")
    assert code == 0, err
    assert json.loads(out)["version"] == 2
    code, out, err = run("update", "customer", str(cid), "--data", '{"employees": 7}', "--version", "1")
    assert code == 1 and json.loads(err)["error"] == "Conflict"
    code, out, err = run("create", "customer", "--data", '{"name": "", "email": "x"}')
    body = json.loads(err)
    assert code == 1 and body["error"] == "ValidationError"
    assert body["fields"] == {"name": ["Name is required"], "email": ["'x' is not an e-mail address"]}
    code, out, err = run("create", "customer", "--data", "{not json")
    assert code == 1 and json.loads(err)["error"] == "BadRequest"
    code, out, err = run("create", "customer", "--data", "-", input='{"name": "Acme"}')
    assert code == 0, err
    code, out, _ = run("list", "customer", "--search", "hx")
    assert [r["name"] for r in json.loads(out)["rows"]] == ["华信科技"]
    code, out, _ = run("list", "customer", "--where", '{"field": "employees", "op": "eq", "value": 6}')
    assert [r["id"] for r in json.loads(out)["rows"]] == [cid]
    code, out, err = run("list", "customer", "--where", '{"field": "employes", "op": "eq", "value": 6}')
    assert code == 1 and "employees" in json.loads(err)["message"]
    code, out, _ = run("delete", "customer", str(cid))
    assert code == 0 and json.loads(out) == {"ok": True, "delete": cid}
    code, out, _ = run("list", "customer", "--deleted")
    assert [r["id"] for r in json.loads(out)["rows"]] == [cid]
    code, out, err = run("get", "customer", str(cid))
    assert code == 1 and json.loads(err)["error"] == "NotFound"
    code, out, _ = run("restore", "customer", str(cid))
    assert code == 0
    code, out, _ = run("history", "customer", str(cid))
    assert [e["action"] for e in json.loads(out)] == ["restore", "delete", "update", "create"]
    code, out, err = run("purge", "customer", str(cid))
    assert code == 1 and json.loads(err)["error"] == "NotFound"
    code, out, err = run("get", "nothing", "1")
    assert code == 1 and json.loads(err)["error"] == "NotFound"
    code, out, err = run("get", "customer", str(cid), "--as", "clerk")
    assert code == 1 and json.loads(err)["error"] == "NotFound"
