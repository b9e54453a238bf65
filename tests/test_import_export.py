"""Imports, exports, dumps: files in, files out, whole databases across backends.

The record-service test application (records_helpers) is the object model: customers
with every field type, orders with lines, a clerk with limited rights. Tests taking
`db_url` run on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import re
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from conftest import create_postgres_database
from records_helpers import open_runtime, spec, today, users, write_metadata
from loom.records.errors import Forbidden
from loom.runtime import Runtime
from loom.security.organization import actor_for, create_user
from loom.storage.database import create_engine
from loom.transfer import dump as dumping
from loom.transfer import jobs
from loom.transfer.exports import export
from loom.transfer.imports import BadFile, import_file

# An object with field security and an export right that is not everyone's.
EXTRA = {
    "roles.yaml": """
        roles:
          - {name: admin, label: {en: Administrator, zh: 管理员}, superuser: true}
          - {name: clerk, label: {en: Clerk, zh: 业务员}}
          - {name: auditor, label: {en: Auditor, zh: 审计}}
        departments:
          - {code: hq, name: 总部}
          - {code: east, name: 华东部, parent: hq}
          - {code: north, name: 华北部, parent: hq}
    """,
    "objects/account.yaml": """
        object: account
        label: {en: Account, zh: 账户}
        title: name
        fields:
          - {name: number, type: autonumber, label: {en: Number, zh: 账号}, numbering: {pattern: "A-{seq:3}"}}
          - {name: name, type: text, required: true, unique: true, label: {en: Name, zh: 名称}}
          - {name: balance, type: money, label: {en: Balance, zh: 余额}}
          - {name: secret, type: text, label: {en: Secret, zh: 机密}}
          - {name: tags, type: dictionary, dictionary: tag, multiple: true, label: {en: Tags, zh: 标签}}
          - {name: opened, type: date, label: {en: Opened, zh: 开户日期}}
        permissions:
          clerk: {create: true, read: all, update: all, export: false}
          auditor: {create: true, read: all, export: true}
        field_permissions:
          secret: {read: [clerk], update: [clerk]}
          balance: {update: [auditor]}
        duplicates:
          - {name: same_company, fields: [name], normalize: company, action: warn}
    """,
}


@pytest.fixture()
def app_runtime(tmp_path, db_url):
    runtime = open_runtime(tmp_path, db_url, EXTRA)
    yield runtime
    runtime.close()


@pytest.fixture()
def sqlite_runtime(tmp_path):
    runtime = open_runtime(tmp_path, f"sqlite:///{tmp_path / 'one.db'}", EXTRA)
    yield runtime
    runtime.close()


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def xlsx(path, rows):
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def customers(runtime, actor=None):
    from loom.security.actor import Actor
    return runtime.records.query("customer", actor or Actor.system(), sort=["id"], limit=1000).rows


def count(runtime, table) -> int:
    with runtime.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(runtime.schema.metadata.tables[table])).scalar()


def problems(report, lang="en"):
    return [(p.row, p.column_text(lang), p.text(lang)) for p in report.problems]


GOOD_CSV = """客户名称,Industry,地区,Tags,员工数,Revenue,Founded,有效,Parent
华信科技有限公司,制造业,上海市,"重要，New",1200,"123,456.50",2010/5/1,是,
Beta Retail,Retail,320100,vip;new,30,,2015-01-02,yes,华信科技有限公司
Gamma Works,manufacturing,黄浦区,,,,,1,C{year}-0001
"""


# ---- good files -----------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,bom,expected", [("utf-8", False, "UTF-8"), ("utf-8", True, "UTF-8 (BOM)"),
                                                   ("gbk", False, "GB18030")])
def test_csv_in_each_encoding_with_chinese_and_english_headers(app_runtime, tmp_path, encoding, bom, expected):
    admin, _clerk = users(app_runtime)
    text = GOOD_CSV.replace("{year}", str(today().year))
    path = tmp_path / "good.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    report = import_file(app_runtime, admin, "customer", path)
    assert problems(report) == []
    assert (report.format, report.encoding, report.rows, report.created) == ("csv", expected, 3, 3)
    assert [h for h, _f in report.columns][:3] == ["客户名称", "Industry", "地区"]
    rows = customers(app_runtime)
    first, second, third = rows
    assert first["name"] == "华信科技有限公司" and first["industry"] == "manufacturing"     # by zh label
    assert first["region"] == "310000" and first["tags"] == ["new", "vip"]                  # ， separates
    assert first["employees"] == 1200 and first["revenue"] == decimal.Decimal("123456.50")
    assert first["founded"] == dt.date(2010, 5, 1) and first["active"] is True
    assert first["mnemonic"] == "hxkjyxgs" and first["code"] == f"C{today().year}-0001"   # numbering, mnemonic
    assert second["industry"] == "retail" and second["region"] == "320100" and second["tags"] == ["new", "vip"]
    assert second["parent"] == first["id"]                                                # lookup by title
    assert third["region"] == "310101" and third["parent"] == first["id"]                 # lookup by code
    assert third["active"] is True and third["discount"] == decimal.Decimal("0.00")       # defaults apply
    history = app_runtime.records.history("customer", first["id"], admin)
    assert [e["action"] for e in history] == ["create"]


def test_xlsx_with_typed_cells(app_runtime, tmp_path):
    admin, _clerk = users(app_runtime)
    path = xlsx(tmp_path / "good.xlsx", [
        ["Name", "industry", "员工数", "营业额", "成立日期", "Active", "标签", "Notes"],
        ["Delta Corp", "Retail", 12.0, 1234.5, dt.datetime(2020, 1, 2), True, "VIP, 新客", "'=1+1"],
        [None, None, None, None, None, None, None, None],
        ["Epsilon", "零售", "3", "2,000", "2021/03/04", "否", None, None],
    ])
    report = import_file(app_runtime, admin, "customer", path)
    assert (report.format, report.rows, report.created) == ("xlsx", 2, 1)
    # the blank row is skipped, the numbering shows the sheet's row; closed_reason is required when inactive
    assert problems(report) == [(4, "Closed reason", "Closed reason is required")]
    (delta,) = customers(app_runtime)
    assert delta["employees"] == 12 and delta["revenue"] == decimal.Decimal("1234.50")
    assert delta["founded"] == dt.date(2020, 1, 2) and delta["tags"] == ["new", "vip"]
    assert delta["notes"] == "=1+1"                                # an export's formula guard is removed


def test_lookups_by_id_and_code_ambiguous_titles_and_users(sqlite_runtime, tmp_path):
    runtime = sqlite_runtime
    admin, clerk = users(runtime)
    create_user(runtime, "zhang2", name="张三", roles=["clerk"], department="north")   # a second 张三
    acme = runtime.records.create("customer", {"name": "Acme"}, admin)
    path = write(tmp_path / "refs.csv", "name,parent,manager\n"
                 f"One,#{acme['id']},admin\n"          # by #id; a user by username
                 f"Two,{acme['code']},管理员\n"         # by code; a user by name
                 "Three,Acme,张三\n"                    # 张三 is two users
                 "Four,#99999,\n")
    report = import_file(runtime, admin, "customer", path)
    assert report.created == 2
    assert problems(report) == [
        (4, "manager", "'张三' matches 2 User records; give the code or #id"),
        (5, "parent", "Customer #99999 does not exist, is deleted, or may not be chosen here")]
    one, two = [c for c in customers(runtime) if c["name"] in ("One", "Two")]
    assert one["parent"] == two["parent"] == acme["id"]
    assert one["manager"] == two["manager"] == admin.id


def test_a_row_may_refer_to_a_row_above_in_the_same_batch(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    path = write(tmp_path / "tree.csv", "name,parent\nGroup,\nSub A,Group\nSub B,Sub A\nSub C,Group\n")
    dry = import_file(sqlite_runtime, admin, "customer", path, dry_run=True)
    assert (dry.created, problems(dry)) == (4, [])
    report = import_file(sqlite_runtime, admin, "customer", path, batch_size=100)
    assert (report.created, problems(report)) == (4, [])
    ids = {c["name"]: c for c in customers(sqlite_runtime)}
    assert ids["Sub B"]["parent"] == ids["Sub A"]["id"] and ids["Sub C"]["parent"] == ids["Group"]["id"]


def test_mapping_overrides_headers(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    path = write(tmp_path / "m.csv", "公司,Remark,Industry\nAcme,hello,retail\n")
    report = import_file(sqlite_runtime, admin, "customer", path, mapping={"公司": "name", "remark": "notes",
                                                                           "Industry": ""})
    assert report.created == 1 and report.unknown == []
    (acme,) = customers(sqlite_runtime)
    assert (acme["name"], acme["notes"], acme["industry"]) == ("Acme", "hello", None)
    with pytest.raises(BadFile, match="which Customer does not have"):
        import_file(sqlite_runtime, admin, "customer", path, mapping={"公司": "nmae"})
    with pytest.raises(BadFile, match="which the file does not have"):
        import_file(sqlite_runtime, admin, "customer", path, mapping={"Company": "name"})


# ---- bad rows --------------------------------------------------------------------------------

BAD_CSV = """Name,Industry,Employees,Email,Founded,Tags,Parent,Code,Color
Good One,retail,10,a@example.com,2001-01-01,vip,,,red
,retail,abc,not-an-email,2001-13-01,,,,
Good Two,制造业,20,,,new,,,
Bad Revenue,,-5,,2999-01-01,gold,Nobody,,
Good One,retail,1,,,,,,
Good Three,零售,30,,,,Good One,,
"""


def test_dry_run_reports_every_bad_row_and_cell_and_writes_nothing(app_runtime, tmp_path):
    admin, _clerk = users(app_runtime)
    path = write(tmp_path / "bad.csv", BAD_CSV)
    before = {t: count(app_runtime, t) for t in ("customer", "loom_history", "loom_counter", "customer__tags")}
    report = import_file(app_runtime, admin, "customer", path, dry_run=True, batch_size=2)
    found = problems(report)
    assert (3, "Name", "Name is required") in found
    assert (3, "Employees", "'abc' is not a whole number") in found
    assert (3, "Email", "'not-an-email' is not an e-mail address") in found
    assert (3, "Founded", "'2001-13-01' is not a date (expected YYYY-MM-DD)") in found
    assert (5, "Parent", "no Customer 'Nobody' (give its title, code or #id)") in found
    assert (5, "Employees", "must be at least 0") in found
    assert (5, "Tags", "'gold' is not an item of Tag") in found
    assert any(r == 5 and c == "Founded" and m.startswith("must be at most") for r, c, m in found)
    assert (6, "Name", "'Good One' appears more than once in the file (first in row 2)") in found
    assert {r for r, _c, _m in found} == {3, 5, 6}
    assert (report.rows, report.created, report.error_rows) == (6, 3, 3)
    assert report.unknown == ["Color"] and [h for h, _m in report.ignored] == ["Code"]
    assert before == {t: count(app_runtime, t) for t in before}        # nothing written, not even a number
    # the real import: the good rows, the same problems, nothing of the bad rows
    real = import_file(app_runtime, admin, "customer", path, batch_size=2)
    assert (real.created, real.error_rows) == (3, 3)
    assert {r for r, _c, _m in problems(real)} == {3, 5, 6}
    assert len(real.problems) == len(report.problems)
    rows = customers(app_runtime)
    assert [c["name"] for c in rows] == ["Good One", "Good Two", "Good Three"]
    assert rows[2]["parent"] == rows[0]["id"]
    assert count(app_runtime, "loom_history") == before["loom_history"] + 3       # no partial data
    assert count(app_runtime, "customer__tags") == 2
    numbers = [c["code"] for c in rows]
    assert numbers == [f"C{today().year}-{n:04d}" for n in (1, 2, 3)]             # no gaps from bad rows


def test_rows_are_reported_in_the_file_language(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    path = write(tmp_path / "zh.csv", "客户名称,员工数\n,5\n")
    report = import_file(sqlite_runtime, admin, "customer", path, dry_run=True)
    assert problems(report, "zh") == [(2, "客户名称", "客户名称不能为空")]


# ---- files that cannot be imported ------------------------------------------------------------

def test_empty_file_header_only_no_header_and_limits(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    cases = [
        (write(tmp_path / "empty.csv", ""), "the file is empty"),
        (write(tmp_path / "blank.csv", "\n\n  \n"), "the file is empty"),
        (write(tmp_path / "header.csv", "name,industry\n"), "there are no rows below the header"),
        (write(tmp_path / "noheader.csv", "Acme,retail\nBeta,retail\n"), "the first row should name the columns"),
        (write(tmp_path / "norequired.csv", "industry\nretail\n"), "no column for Name, which is required"),
        (write(tmp_path / "twice.csv", "name,客户名称\na,b\n"), "columns 'name' and '客户名称' both give Name"),
        (tmp_path / "old.xls", "old Excel files (.xls) cannot be read"),
    ]
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    for path, message in cases:
        with pytest.raises(BadFile) as caught:
            import_file(sqlite_runtime, admin, "customer", path)
        assert message in caught.value.text("en"), (path.name, caught.value.text("en"))
    big = write(tmp_path / "big.csv", "name\n" + "x\n" * 2000)
    with pytest.raises(BadFile, match=r"larger than 1 KB \(it has 3 KB\)"):
        import_file(sqlite_runtime, admin, "customer", big, max_bytes=1024)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BadFile, match="not a readable Excel workbook"):
        import_file(sqlite_runtime, admin, "customer", broken)
    bad_bytes = tmp_path / "binary.csv"
    bad_bytes.write_bytes(b"name\n\xff\xfe\xfd\x80\x80\n")
    with pytest.raises(BadFile, match="neither UTF-8 nor GB18030"):
        import_file(sqlite_runtime, admin, "customer", bad_bytes)
    assert customers(sqlite_runtime) == []


def test_huge_cell_and_unknown_column(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    huge = "长" * 300_000           # beyond csv's default field limit, and the field's max_length
    path = write(tmp_path / "huge.csv", f"name,notes,Favourite colour\nAcme,{huge},blue\nBeta,short,\n")
    report = import_file(sqlite_runtime, admin, "customer", path)
    assert report.unknown == ["Favourite colour"]
    assert problems(report) == [(2, "notes", "at most 200 characters (got 300000)")]
    assert [c["name"] for c in customers(sqlite_runtime)] == ["Beta"]
    assert report.problems[0].value.endswith("…") and len(report.problems[0].value) == 60


def test_permissions_apply_to_imports(sqlite_runtime, tmp_path):
    runtime = sqlite_runtime
    admin, clerk = users(runtime)
    auditor = actor_for(runtime, create_user(runtime, "aud", roles=["auditor"], department="hq"))
    path = write(tmp_path / "acc.csv", "name,secret,balance\nA1,s3cret,10\n")
    nobody = actor_for(runtime, create_user(runtime, "nobody", roles=[]))
    with pytest.raises(Forbidden):
        import_file(runtime, nobody, "account", path)
    report = import_file(runtime, clerk, "account", path)
    assert report.created == 1
    path = write(tmp_path / "cust.csv", "name\nMine\n")
    import_file(runtime, clerk, "customer", path)
    (mine,) = customers(runtime)
    assert mine["owner"] == clerk.id and mine["created_by"] == clerk.id
    # a column of a field the importer may not set is ignored, and said so
    path = write(tmp_path / "acc2.csv", "name,balance\nA2,99\n")
    report = import_file(runtime, clerk, "account", path)
    assert report.created == 1 and [(h, m.text("en")) for h, m in report.ignored] == [
        ("balance", "you may not set Balance")]
    report = import_file(runtime, auditor, "account", write(tmp_path / "acc3.csv", "name,balance,secret\nA3,5,x\n"))
    assert report.created == 1 and report.unknown == ["secret"]      # a field one may not read does not exist


# ---- upsert -------------------------------------------------------------------------------------

def test_upsert_by_unique_field_and_by_code(app_runtime, tmp_path):
    admin, _clerk = users(app_runtime)
    a = app_runtime.records.create("customer", {"name": "Acme", "employees": 5, "industry": "retail"}, admin)
    b = app_runtime.records.create("customer", {"name": "Beta", "employees": 7}, admin)
    path = write(tmp_path / "up.csv", "name,employees,industry\nAcme,50,retail\nBeta,7,\nGamma,1,retail\n")
    dry = import_file(app_runtime, admin, "customer", path, upsert="name", dry_run=True)
    assert (dry.created, dry.updated, dry.skipped, dry.problems) == (1, 1, 1, [])
    assert len(customers(app_runtime)) == 2
    report = import_file(app_runtime, admin, "customer", path, upsert="name")
    assert (report.created, report.updated, report.skipped, report.problems) == (1, 1, 1, [])
    rows = {c["name"]: c for c in customers(app_runtime)}
    assert rows["Acme"]["employees"] == 50 and rows["Acme"]["version"] == 2
    assert rows["Beta"]["version"] == 1                                      # unchanged: not touched
    assert app_runtime.records.history("customer", a["id"], admin)[0]["changes"] == {"employees": [5, 50]}
    path = write(tmp_path / "code.csv", f"Code,Employees\n{b['code']},8\nC1999-0001,3\n,4\n")
    report = import_file(app_runtime, admin, "customer", path, upsert="code")
    assert report.updated == 1 and report.created == 0
    assert problems(report) == [(3, "Code", "no Customer has Code 'C1999-0001'"),
                                (4, "Name", "Name is required")]
    assert {c["name"]: c for c in customers(app_runtime)}["Beta"]["employees"] == 8
    with pytest.raises(BadFile, match="cannot be used to match records"):
        import_file(app_runtime, admin, "customer", path, upsert="employees")
    with pytest.raises(BadFile, match="no column for Name, which matches"):
        import_file(app_runtime, admin, "customer", path, upsert="name")


def test_upsert_reports_stale_and_forbidden_updates(sqlite_runtime, tmp_path):
    runtime = sqlite_runtime
    admin, clerk = users(runtime)
    runtime.records.create("customer", {"name": "Theirs"}, admin)        # the clerk may not see it
    path = write(tmp_path / "up.csv", "name,employees\nTheirs,3\n")
    report = import_file(runtime, clerk, "customer", path, upsert="name")
    assert problems(report) == [(2, "", "you may not change the Customer with Name 'Theirs'")]


def test_progress_is_reported(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    path = write(tmp_path / "many.csv", "name\n" + "".join(f"Company {i}\n" for i in range(25)))
    seen = []
    report = import_file(sqlite_runtime, admin, "customer", path, batch_size=10,
                         progress=lambda done, total: seen.append((done, total)))
    assert report.created == 25
    assert seen == [(10, 25), (20, 25), (25, 25)]


# ---- exports -----------------------------------------------------------------------------------

def _export(runtime, actor, obj, fmt, **options) -> bytes:
    return b"".join(export(runtime, actor, obj, fmt, **options))


def test_exports_in_three_formats_respect_field_security(app_runtime, tmp_path):
    runtime = app_runtime
    admin, clerk = users(runtime)
    auditor = actor_for(runtime, create_user(runtime, "aud", roles=["auditor"], department="hq"))
    runtime.records.create("account", {"name": "=cmd|' /C calc'!A0", "balance": "1234.5", "secret": "pin 1234",
                                       "tags": ["vip", "new"], "opened": "2024-02-29"}, admin)
    runtime.records.create("account", {"name": "华信", "balance": "0.10"}, admin)
    with pytest.raises(Forbidden):
        _export(runtime, clerk, "account", "csv")           # may read, may not export
    text = _export(runtime, auditor, "account", "csv", lang="zh").decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert "机密" not in rows[0] and "余额" in rows[0]      # field security: no secret column
    assert "pin 1234" not in text
    assert "'=cmd|' /C calc'!A0" in text                   # the formula guard
    assert len(rows) == 3
    data = json.loads(_export(runtime, auditor, "account", "json"))
    assert [r["name"] for r in data] == ["=cmd|' /C calc'!A0", "华信"]
    first = data[0]
    assert "secret" not in first and first["balance"] == "1234.50" and first["tags"] == ["new", "vip"]
    assert first["opened"] == "2024-02-29" and first["number"] == "A-001"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$", first["created_at"])
    with_secret = json.loads(_export(runtime, admin, "account", "json"))
    assert with_secret[0]["secret"] == "pin 1234"
    book = load_workbook(io.BytesIO(_export(runtime, auditor, "account", "xlsx", lang="en")), read_only=True)
    sheet_rows = list(book.active.iter_rows(values_only=True))
    assert "Secret" not in sheet_rows[0] and sheet_rows[0][:2] == ("Number", "Name")
    assert len(sheet_rows) == 3
    assert {r[1] for r in sheet_rows[1:]} == {"'=cmd|' /C calc'!A0", "华信"}


def test_json_export_nests_lines_and_filters_rows(sqlite_runtime):
    runtime = sqlite_runtime
    admin, clerk = users(runtime)
    acme = runtime.records.create("customer", {"name": "Acme"}, admin)
    runtime.records.create("order", {"customer": acme["id"], "items": [
        {"product": "Bolt", "quantity": 2, "price": "1.50"}, {"product": "Nut", "price": "0.20"}]}, admin)
    runtime.records.create("order", {"customer": acme["id"], "amount": "9"}, admin)
    data = json.loads(_export(runtime, admin, "order", "json"))
    assert [len(o["items"]) for o in data] == [2, 0]
    assert [(i["line_no"], i["product"], i["amount"]) for i in data[0]["items"]] == [(1, "Bolt", "3.00"),
                                                                                     (2, "Nut", "0.20")]
    assert data[0]["customer"] == acme["id"] and data[0]["items_total"] == "3.20"
    only = json.loads(_export(runtime, admin, "order", "json", where={"field": "amount", "op": "gt", "value": 5}))
    assert len(only) == 1 and only[0]["items"] == []


def test_export_then_import_round_trip(sqlite_runtime, tmp_path):
    runtime = sqlite_runtime
    admin, _clerk = users(runtime)
    parent = runtime.records.create("customer", {"name": "Parent Co"}, admin)
    runtime.records.create("customer", {"name": "Child Co", "industry": "retail", "tags": ["vip", "new"],
                                        "employees": 1200, "revenue": "-0", "parent": parent["id"],
                                        "region": "310101"}, admin)
    for fmt, name in (("csv", "out.csv"), ("xlsx", "out.xlsx")):
        data = _export(runtime, admin, "customer", fmt, lang="zh")
        (tmp_path / name).write_bytes(data)
    other = open_runtime(tmp_path / "second", f"sqlite:///{tmp_path / 'second.db'}", EXTRA)
    try:
        admin2, _ = users(other)
        other.records.create("customer", {"name": "Parent Co"}, admin2)
        report = import_file(other, admin2, "customer", tmp_path / "out.csv", upsert="name")
        # Parent Co is matched by name (its contact time, exported to the minute, is updated)
        assert problems(report) == [] and (report.created, report.created + report.updated + report.skipped) == (1, 2)
        assert "客户编号" in [h for h, _m in report.ignored]            # computed columns are ignored
        child = {c["name"]: c for c in customers(other)}["Child Co"]
        assert (child["industry"], child["tags"], child["employees"], child["region"]) == \
            ("retail", ["new", "vip"], 1200, "310101")
        report = import_file(other, admin2, "customer", tmp_path / "out.xlsx", upsert="name")
        assert problems(report) == [] and report.skipped == 2
    finally:
        other.close()


# ---- dump and load ---------------------------------------------------------------------------------

def _fill(runtime):
    """Rows in every kind of table: objects, side tables, and the engine's own."""
    admin, clerk = users(runtime)
    create_user(runtime, "pw", name="With password", password="secret123", roles=["clerk"], department="east")
    acme = runtime.records.create("customer", {"name": "华信", "tags": ["vip"], "revenue": "123456.89",
                                               "founded": "2001-02-03", "industry": "retail"}, admin)
    runtime.records.create("customer", {"name": "Sub", "parent": acme["id"], "owner": clerk.id}, admin)
    runtime.records.create("order", {"customer": acme["id"], "items": [{"product": "Bolt", "price": "2.5"}]}, admin)
    runtime.records.create("account", {"name": "Acct", "tags": ["new"], "opened": "2024-01-01"}, admin)
    now = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
    s = runtime.schema.system
    with runtime.records.transaction() as conn:
        conn.execute(s["share"].insert().values(object="customer", record_id=acme["id"], user_id=clerk.id,
                                                access="read", created_at=now))
        conn.execute(s["saved_search"].insert().values(user_id=clerk.id, object="customer", name="Mine",
                                                       query="q=华"))
        conn.execute(s["login"].insert().values(at=now, username="clerk", user_id=clerk.id, success=True))
        approval = conn.execute(s["approval"].insert().returning(s["approval"].c.id).values(
            object="order", record_id=1, flow="f", transition="confirm", status="pending", step=0,
            definition={"steps": [{"name": "one", "users": [1, 2]}], "note": "数值 1.50"}, created_at=now,
            version=1)).scalar_one()
        conn.execute(s["approval_task"].insert().values(approval_id=approval, step=0, user_id=admin.id,
                                                        decision="pending"))
        conn.execute(s["job"].insert().values(user_id=admin.id, kind="import", status="done", done=1, total=1,
                                              result={"report": {"created": 1}}, created_at=now, finished_at=now))
    runtime.records.update("customer", acme["id"], {"employees": 9}, admin, version=1)
    return admin


def _everything(runtime) -> dict:
    out = {}
    with runtime.engine.connect() as conn:
        for table in runtime.schema.metadata.sorted_tables:
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
    return out


@pytest.mark.postgres
def test_dump_and_load_round_trip_sqlite_postgres_sqlite(tmp_path):
    source = open_runtime(tmp_path, f"sqlite:///{tmp_path / 'source.db'}", EXTRA)
    admin = _fill(source)
    dumped = dumping.dump(source, tmp_path / "dump.jsonl.gz")
    assert dumped["customer"] == 2 and dumped["loom_history"] > 0 and dumped["customer__tags"] == 1
    assert all(not name.endswith(("__fts_tri", "__fts_tok")) for name in dumped) and "loom_meta" not in dumped
    url, drop = create_postgres_database()
    target = Runtime(spec(tmp_path, EXTRA), create_engine(url))
    try:
        target.migrate()
        loaded = dumping.load(target, tmp_path / "dump.jsonl.gz")
        assert loaded == dumped
        original = _everything(source)
        assert _everything(target) == original
        assert all(original[name] for name in ("loom_credential", "loom_share", "loom_saved_search", "loom_login",
                                               "loom_approval", "loom_approval_task", "loom_job", "loom_counter"))
        # ids continue after the loaded ones; numbering continues; quick search finds loaded rows
        created = target.records.create("customer", {"name": "After"}, admin)
        assert created["id"] == 3 and created["code"].endswith("-0003")
        assert [r["name"] for r in target.records.query("customer", admin, search="华").rows] == ["华信"]
        with pytest.raises(dumping.DumpError, match="not empty"):
            dumping.load(target, tmp_path / "dump.jsonl.gz")
        # and back: PostgreSQL -> SQLite, identical again
        dumping.dump(target, tmp_path / "back.jsonl")
        back = Runtime(spec(tmp_path, EXTRA), create_engine(f"sqlite:///{tmp_path / 'back.db'}"))
        back.migrate()
        dumping.load(back, tmp_path / "back.jsonl")
        assert _everything(back) == _everything(target)
        assert [r["name"] for r in back.records.query("customer", admin, search="After").rows] == ["After"]
        back.close()
    finally:
        target.close()
        drop()
        source.close()


def test_load_refuses_what_it_cannot_load_and_changes_nothing(tmp_path):
    source = open_runtime(tmp_path, f"sqlite:///{tmp_path / 'source.db'}", EXTRA)
    _fill(source)
    dumping.dump(source, tmp_path / "dump.jsonl")
    target = Runtime(spec(tmp_path, EXTRA), create_engine(f"sqlite:///{tmp_path / 'target.db'}"))
    target.migrate()
    lines = (tmp_path / "dump.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(dumping.DumpError, match="incomplete"):
        dumping.load(target, tmp_path / "cut.jsonl")
    broken = [line.replace('"name",', '"nmae",') if line.startswith('{"table": "customer"') else line for line in lines]
    (tmp_path / "renamed.jsonl").write_text("\n".join(broken) + "\n", encoding="utf-8")
    with pytest.raises(dumping.DumpError, match="column.s. nmae in customer"):
        dumping.load(target, tmp_path / "renamed.jsonl")
    (tmp_path / "notadump.jsonl").write_text("hello\n", encoding="utf-8")
    with pytest.raises(dumping.DumpError, match="not JSON"):
        dumping.load(target, tmp_path / "notadump.jsonl")
    dangling = [line for line in lines]
    at = next(i for i, line in enumerate(dangling) if line.startswith('{"table": "customer__tags"'))
    dangling.insert(at + 1, '[999, "vip"]')           # a tag of a customer that does not exist
    (tmp_path / "dangling.jsonl").write_text("\n".join(dangling) + "\n", encoding="utf-8")
    with pytest.raises(dumping.DumpError, match="refused the data"):
        dumping.load(target, tmp_path / "dangling.jsonl")
    assert all(not rows for rows in _everything(target).values())     # all or nothing
    dumping.load(target, tmp_path / "dump.jsonl")
    assert _everything(target) == _everything(source)
    target.close()
    source.close()


# ---- the command line -----------------------------------------------------------------------------

def test_cli_import_export_dump_load(tmp_path):
    from loom.cli import main
    metadata = write_metadata(tmp_path / "metadata", {k: v for k, v in EXTRA.items()})
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    base = ["--metadata", str(metadata), "--database", db]
    path = write(tmp_path / "bad.csv", BAD_CSV)
    result = runner.invoke(main, ["import", "customer", str(path), "--dry-run", *base])
    assert result.exit_code == 1, result.output
    assert "would be created: 3" in result.stdout
    assert "row 3, Name: Name is required" in result.stderr
    assert "row 5, Parent: no Customer 'Nobody'" in result.stderr
    assert "columns ignored (no such field): Color" in result.stdout
    result = runner.invoke(main, ["import", "customer", str(path), *base, "--batch-size", "2", "--lang", "zh"])
    assert result.exit_code == 1 and "created: 3" in result.stdout
    assert "row 3, Name: 客户名称不能为空" in result.stderr
    good = write(tmp_path / "good.csv", "公司,员工数\nDelta,5\n")
    result = runner.invoke(main, ["import", "customer", str(good), "--mapping", "公司=name", *base])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["import", "customer", str(good), "--mapping", "公司", *base])
    assert result.exit_code == 1 and "COLUMN=FIELD" in result.stderr
    result = runner.invoke(main, ["import", "customer", str(good), "--as", "nobody", *base])
    assert result.exit_code == 1 and "no user 'nobody'" in result.stderr
    result = runner.invoke(main, ["import", "customer", str(write(tmp_path / "e.csv", "")), *base])
    assert result.exit_code == 1 and "the file is empty" in result.stderr
    # export
    result = runner.invoke(main, ["export", "customer", "--format", "json", *base,
                                  "--where", '{"field": "employees", "op": "gte", "value": 10}'])
    assert result.exit_code == 0, result.output
    assert sorted(r["name"] for r in json.loads(result.stdout)) == ["Good One", "Good Three", "Good Two"]
    out = tmp_path / "c.xlsx"
    result = runner.invoke(main, ["export", "customer", "--format", "xlsx", "--output", str(out), *base])
    assert result.exit_code == 0 and len(list(load_workbook(out).active.iter_rows())) == 5
    result = runner.invoke(main, ["export", "customer", *base, "--lang", "zh"])
    assert result.exit_code == 0 and result.stdout.startswith("\ufeff客户编号,客户名称")
    runner.invoke(main, ["user", "create", "clerk", "--password", "secret123", "--role", "clerk", *base])
    result = runner.invoke(main, ["export", "account", "--as", "clerk", *base])
    assert result.exit_code == 1 and "Forbidden" in result.stderr
    # dump and load
    result = runner.invoke(main, ["dump", str(tmp_path / "d.jsonl.gz"), *base])
    assert result.exit_code == 0, result.output
    other = ["--metadata", str(metadata), "--database", f"sqlite:///{tmp_path / 'copy.db'}"]
    result = runner.invoke(main, ["load", str(tmp_path / "d.jsonl.gz"), *other])
    assert result.exit_code == 0, result.output
    assert "loaded" in result.stdout
    result = runner.invoke(main, ["load", str(tmp_path / "d.jsonl.gz"), *other])
    assert result.exit_code == 1 and "not empty" in result.stderr
    result = runner.invoke(main, ["export", "customer", "--format", "json", *other])
    assert len(json.loads(result.stdout)) == 4


# ---- the web import page ---------------------------------------------------------------------------

@pytest.fixture()
def web(tmp_path, crm_metadata):
    from web_helpers import make_app
    jobs_runner = jobs.RUNNER
    app = make_app(crm_metadata, tmp_path)
    yield app
    jobs.RUNNER = jobs_runner
    app.extensions["loom"].runtime.close()


def _poll(client, url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        html = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
        if 'data-status="done"' in html or 'data-status="failed"' in html or time.monotonic() > deadline:
            return html
        assert 'hx-trigger="every 1s"' in html
        time.sleep(0.1)


def test_web_import_page_check_then_import(web):
    from web_helpers import actor, csrf, post, runtime_of, signed_in
    rep = signed_in(web, "rep1")
    listing = rep.get("/o/customer/").get_data(as_text=True)
    assert 'href="/o/customer/import"' in listing
    page = rep.get("/o/customer/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.get_data(as_text=True)
    template = rep.get("/o/customer/import/template.csv").get_data(as_text=True)
    assert template.startswith("\ufeffName,") and "Annual revenue" not in template   # field security
    body = ("客户名称,行业,客户类别,Rubbish\n华信科技,制造业,消费客户,x\n,制造业,,\n远大集团,Nope,,\n").encode("gbk")
    # the form needs its CSRF token
    assert rep.post("/o/customer/import", data={"file": (io.BytesIO(body), "c.csv")},
                    content_type="multipart/form-data").status_code == 400
    response = post(rep, "/o/customer/import", {"file": (io.BytesIO(body), "customers.csv")},
                    content_type="multipart/form-data")
    assert response.status_code == 302
    url = response.headers["Location"]
    html = _poll(rep, url)
    assert 'id="problems"' in html
    assert "GB18030" in html and "Rubbish" in html
    assert re.search(r"<td class=\"num\">3</td><td>客户名称</td><td></td><td class=\"error\">Name is required", html)
    assert "&#39;Nope&#39; is not an item of Industry" in html
    assert "1 new" in html and "2 with problems" in html
    full = rep.get(url).get_data(as_text=True)
    assert "Check of customers.csv" in full
    runtime = runtime_of(web)
    assert customers(runtime) == []                                           # a check writes nothing
    # another user cannot see the job, nor run it
    other = signed_in(web, "rep2")
    job_id = int(url.rsplit("/", 1)[1])
    assert other.get(url).status_code == 404
    assert post(other, f"/jobs/{job_id}/import").status_code == 404
    response = post(rep, f"/jobs/{job_id}/import")
    assert response.status_code == 302
    done = _poll(rep, response.headers["Location"])
    assert "Done: 1 created" in done and "2 rows not imported" in done
    (created,) = customers(runtime)
    assert created["name"] == "华信科技" and created["owner"] == actor(web, "rep1").id
    assert created["category"] == "consumer" and created["industry"] == "manufacturing"
    assert created["code"].startswith("CUS-")
    # the file is gone once imported: the check cannot be imported twice
    assert post(rep, f"/jobs/{job_id}/import").status_code == 409
    assert csrf(rep, "/o/customer/import")


def test_web_import_needs_create_permission_and_a_good_file(web):
    from web_helpers import post, signed_in
    agent = signed_in(web, "agent")                 # may read customers, not create them
    assert 'href="/o/customer/import"' not in agent.get("/o/customer/").get_data(as_text=True)
    assert agent.get("/o/customer/import").status_code == 403
    rep = signed_in(web, "rep1")
    response = post(rep, "/o/customer/import", {"file": (io.BytesIO(b"x"), "c.pdf")},
                    content_type="multipart/form-data")
    assert response.status_code == 422 and "Import a CSV or Excel" in response.get_data(as_text=True)
    response = post(rep, "/o/customer/import", {"file": (io.BytesIO(b""), "empty.csv")},
                    content_type="multipart/form-data")
    html = _poll(rep, response.headers["Location"])
    assert 'data-status="failed"' in html and "the file is empty" in html


def test_web_import_job_shows_progress_while_running(web):
    from web_helpers import post, signed_in
    started = []
    jobs.RUNNER = started.append                    # hold the job back: it stays queued
    rep = signed_in(web, "rep1")
    body = "Name\n" + "".join(f"Company {i}\n" for i in range(30))
    response = post(rep, "/o/customer/import", {"file": (io.BytesIO(body.encode()), "c.csv")},
                    content_type="multipart/form-data")
    url = response.headers["Location"]
    html = rep.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f'hx-get="{url}"' in html and 'hx-trigger="every 1s"' in html and "<progress" in html
    started[0]()                                    # run it now
    html = rep.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in html and "30 new" in html


def test_spreadsheet_date_times_are_local_time(sqlite_runtime, tmp_path):
    admin, _clerk = users(sqlite_runtime)
    path = write(tmp_path / "dt.csv", "name,Contacted,Founded\nAcme,2024/1/2 9:05,2001年2月3日\n")
    report = import_file(sqlite_runtime, admin, "customer", path)
    assert report.problems == []
    (acme,) = customers(sqlite_runtime)
    assert acme["contacted_at"] == dt.datetime(2024, 1, 2, 1, 5, tzinfo=dt.timezone.utc)    # Asia/Shanghai
    assert acme["founded"] == dt.date(2001, 2, 3)


def test_possible_duplicates_are_reported_and_imported_when_allowed(sqlite_runtime, tmp_path):
    runtime = sqlite_runtime
    admin, _clerk = users(runtime)
    first = runtime.records.create("account", {"name": "华信科技有限公司"}, admin)
    path = write(tmp_path / "dup.csv", "name\n华信科技\nOther Co\n")
    report = import_file(runtime, admin, "account", path, dry_run=True)
    assert (report.created, report.error_rows, report.duplicates) == (1, 1, 1)
    assert problems(report) == [(2, "name", f"looks like 华信科技有限公司 (#{first['id']}), which already exists")]
    report = import_file(runtime, admin, "account", path, allow_duplicates=True)
    assert (report.created, report.problems) == (2, [])


def test_web_check_again_with_chosen_columns(web):
    from web_helpers import post, runtime_of, signed_in
    rep = signed_in(web, "rep1")
    body = "公司全称,行业,Code\n远大重工,制造业,\n".encode("utf-8")
    response = post(rep, "/o/customer/import", {"file": (io.BytesIO(body), "c.csv"), "upsert": "code"},
                    content_type="multipart/form-data")
    url = response.headers["Location"]
    html = _poll(rep, url)
    assert "公司全称" in html and 'id="columns"' in html and "Name is required" in html
    assert 'name="column-1"' in html and '<option value="industry" selected>' in html
    assert '<option value="code" selected>' in html                     # the column records are matched by
    job_id = int(url.rsplit("/", 1)[1])
    assert post(rep, f"/jobs/{job_id}/check", {"column-0": "annual_revenue"}).status_code == 400   # not settable
    response = post(rep, f"/jobs/{job_id}/check", {"column-0": "name", "column-1": "industry", "column-2": "code"})
    html = _poll(rep, response.headers["Location"])
    assert "1 rows checked: 1 new" in html and 'id="problems"' not in html
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    done = _poll(rep, post(rep, f"/jobs/{new_id}/import").headers["Location"])
    assert "Done: 1 created" in done
    assert [c["name"] for c in customers(runtime_of(web))] == ["远大重工"]
