"""A small application for record-service tests: every field type, rule and relation kind.

    runtime = open_runtime(tmp_path, db_url)      # metadata written, database migrated
    admin, clerk = users(runtime)                 # a superuser and a limited user

The objects:
- customer: every scalar field type with options (lengths, patterns, ranges, formats,
  $today bounds, defaults incl. $current_user / $current_department), dictionaries
  (an inactive code, a hierarchical one, a multiple one), lookup with a filter, user,
  department, autonumber per year, mnemonic, a formula that divides, rollups over orders
  (with `where`), file, required_if, show_if, unique, rules.
- order: lifecycle (draft -> confirmed, locked), numbering per month, an invoice number
  assigned on `confirmed`, lines of order_line with rollups over them, a rule through a
  lookup path, restrict on its customer.
- order_line: child of order; a formula amount.
- note: cascade-deleted with its customer.  contact: set to none when its customer goes.
- ticket: numbered per {dept} and {field:region}.
"""
from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
import textwrap
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from loom.metadata import load_spec
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.security.organization import actor_for, create_user, seed_departments
from loom.storage.database import create_engine

TZ = ZoneInfo("Asia/Shanghai")
POSTGRES_URL = os.environ.get("LOOM_TEST_POSTGRES_URL")

FILES = {
    "app.yaml": """
        app: rectest
        label: {en: Record tests, zh: 记录测试}
        languages: [zh, en]
        default_language: zh
        timezone: Asia/Shanghai
        menu:
          - {name: main, label: {en: Main, zh: 主菜单}, items: [customer, order, note, contact, ticket]}
    """,
    "roles.yaml": """
        roles:
          - {name: admin, label: {en: Administrator, zh: 管理员}, superuser: true}
          - {name: clerk, label: {en: Clerk, zh: 业务员}}
        departments:
          - {code: hq, name: 总部}
          - {code: east, name: 华东部, parent: hq}
          - {code: north, name: 华北部, parent: hq}
    """,
    "dictionaries/industry.yaml": """
        dictionary: industry
        label: {en: Industry, zh: 行业}
        items:
          - {code: manufacturing, label: {en: Manufacturing, zh: 制造业}}
          - {code: retail, label: {en: Retail, zh: 零售}}
          - {code: legacy, label: {en: Legacy, zh: 旧行业}, active: false}
    """,
    "dictionaries/region.yaml": """
        dictionary: region
        label: {en: Region, zh: 地区}
        hierarchical: true
        items:
          - code: "310000"
            label: {en: Shanghai, zh: 上海市}
            children:
              - {code: "310101", label: {en: Huangpu, zh: 黄浦区}}
          - code: "320000"
            label: {en: Jiangsu, zh: 江苏省}
            children:
              - {code: "320100", label: {en: Nanjing, zh: 南京市}}
              - {code: "320200", label: {en: Wuxi, zh: 无锡市}, active: false}
    """,
    "dictionaries/tag.yaml": """
        dictionary: tag
        label: {en: Tag, zh: 标签}
        items:
          - {code: vip, label: {en: VIP, zh: 重要}}
          - {code: new, label: {en: New, zh: 新客}}
          - {code: old, label: {en: Old, zh: 老标签}, active: false}
    """,
    "objects/customer.yaml": """
        object: customer
        label: {en: Customer, zh: 客户}
        title: name
        fields:
          - {name: code, type: autonumber, label: {en: Code, zh: 客户编号},
             numbering: {pattern: "C{yyyy}-{seq:4}", reset: yearly}}
          - {name: name, type: text, label: {en: Name, zh: 客户名称}, required: true, unique: true, max_length: 40}
          - {name: short_code, type: text, label: {en: Short code, zh: 简码}, pattern: "^[A-Z]{2,5}$", unique: true}
          - {name: mnemonic, type: mnemonic, source: name, label: {en: Initials, zh: 助记码}}
          - {name: email, type: email, label: {en: Email, zh: 邮箱}}
          - {name: phone, type: phone, label: {en: Phone, zh: 电话}}
          - {name: website, type: url, label: {en: Website, zh: 网址}}
          - {name: employees, type: integer, min: 0, max: 100000, label: {en: Employees, zh: 员工数}}
          - {name: revenue, type: money, min: 0, label: {en: Revenue, zh: 营业额}}
          - {name: discount, type: percent, min: 0, max: 100, default: 0, label: {en: Discount, zh: 折扣}}
          - {name: rating, type: decimal, scale: 1, min: 0, max: 5, label: {en: Rating, zh: 评分}}
          - {name: active, type: boolean, default: true, label: {en: Active, zh: 有效}}
          - {name: founded, type: date, max: $today, label: {en: Founded, zh: 成立日期}}
          - {name: follow_up, type: date, min: $today, label: {en: Follow up, zh: 回访日期}}
          - {name: since, type: date, default: $today, label: {en: Since, zh: 建档日期}}
          - {name: contacted_at, type: datetime, default: $now, label: {en: Contacted, zh: 联系时间}}
          - {name: industry, type: dictionary, dictionary: industry, label: {en: Industry, zh: 行业}}
          - {name: region, type: dictionary, dictionary: region, label: {en: Region, zh: 地区}}
          - {name: tags, type: dictionary, dictionary: tag, multiple: true, label: {en: Tags, zh: 标签}}
          - {name: parent, type: lookup, target: customer, on_delete: set_null,
             filter: {field: active, op: eq, value: true}, label: {en: Parent, zh: 上级单位}}
          - {name: manager, type: user, default: $current_user, label: {en: Manager, zh: 客户经理}}
          - {name: team, type: department, default: $current_department, label: {en: Team, zh: 服务部门}}
          - {name: vat_no, type: text, label: {en: VAT number, zh: 税号},
             required_if: {field: revenue, op: gt, value: 1000000}}
          - {name: closed_reason, type: text, label: {en: Closed reason, zh: 关闭原因},
             show_if: {field: active, op: eq, value: false}, required_if: {field: active, op: eq, value: false}}
          - {name: revenue_per_head, type: formula, expr: "revenue / employees", scale: 2,
             label: {en: Revenue per head, zh: 人均营业额}}
          - {name: order_total, type: rollup, from: {object: order, via: customer}, agg: sum, field: amount,
             where: {field: cancelled, op: eq, value: false}, label: {en: Orders total, zh: 订单金额}}
          - {name: order_count, type: rollup, from: {object: order, via: customer}, agg: count,
             label: {en: Orders, zh: 订单数}}
          - {name: logo, type: file, max_size: 1 MB, accept: [image/png], label: {en: Logo, zh: 标志}}
          - {name: notes, type: textarea, max_length: 200, label: {en: Notes, zh: 备注}}
        rules:
          - name: revenue_needs_industry
            assert: {any: [{field: revenue, op: is_null}, {field: industry, op: not_null}]}
            fields: [industry]
            message: {en: Set an industry when revenue is known, zh: 填写营业额时必须选择行业}
          - name: big_discount_needs_vip
            when: {field: discount, op: gt, value: 20}
            assert: {field: tags, op: eq, value: vip}
            message: {en: Only VIP customers get more than 20% discount, zh: 只有重要客户可享受超过20%的折扣}
        list:
          columns: [code, name, industry, region, employees, updated_at]
          sort: [-updated_at]
        search:
          quick: [name, code, mnemonic, phone]
        permissions:
          clerk: {create: true, read: own, update: own, delete: own}
    """,
    "objects/order.yaml": """
        object: order
        label: {en: Order, zh: 订单}
        title: number
        lifecycle: order_lifecycle
        fields:
          - {name: number, type: autonumber, label: {en: Number, zh: 订单号},
             numbering: {pattern: "SO{yy}{mm}-{seq:3}", reset: monthly}}
          - {name: invoice_no, type: autonumber, assign_on: confirmed, label: {en: Invoice, zh: 发票号},
             numbering: {pattern: "INV-{seq:3}"}}
          - {name: customer, type: lookup, target: customer, required: true,
             filter: {field: active, op: eq, value: true}, label: {en: Customer, zh: 客户}}
          - {name: amount, type: money, min: 0, default: 0, label: {en: Amount, zh: 金额}}
          - {name: discount, type: percent, min: 0, max: 100, default: 0, label: {en: Discount, zh: 折扣}}
          - {name: cancelled, type: boolean, default: false, label: {en: Cancelled, zh: 已取消}}
          - {name: items, type: lines, object: order_line, label: {en: Items, zh: 明细}}
          - {name: items_total, type: rollup, from: items, agg: sum, field: amount, label: {en: Items total, zh: 明细合计}}
          - {name: item_count, type: rollup, from: items, agg: count, label: {en: Item count, zh: 明细行数}}
          - {name: net, type: formula, expr: "items_total * (100 - discount) / 100", scale: 2,
             label: {en: Net, zh: 净额}}
        rules:
          - name: no_discount_for_retail
            when: {field: customer.industry, op: eq, value: retail}
            assert: {field: discount, op: eq, value: 0}
            fields: [discount]
            message: {en: Retail customers get no discount, zh: 零售客户不享受折扣}
        permissions:
          clerk: {create: true, read: all, update: own, delete: own}
    """,
    "objects/order_line.yaml": """
        object: order_line
        child_of: order
        label: {en: Order line, zh: 订单明细}
        title: product
        fields:
          - {name: product, type: text, required: true, max_length: 50, label: {en: Product, zh: 产品}}
          - {name: quantity, type: integer, min: 1, default: 1, label: {en: Quantity, zh: 数量}}
          - {name: price, type: money, min: 0, required: true, label: {en: Price, zh: 单价}}
          - {name: amount, type: formula, expr: "quantity * price", scale: 2, label: {en: Amount, zh: 金额}}
    """,
    "objects/note.yaml": """
        object: note
        label: {en: Note, zh: 纪要}
        title: subject
        fields:
          - {name: subject, type: text, required: true, label: {en: Subject, zh: 主题}}
          - {name: customer, type: lookup, target: customer, on_delete: cascade, label: {en: Customer, zh: 客户}}
    """,
    "objects/contact.yaml": """
        object: contact
        label: {en: Contact, zh: 联系人}
        title: name
        fields:
          - {name: name, type: text, required: true, label: {en: Name, zh: 姓名}}
          - {name: customer, type: lookup, target: customer, on_delete: set_null, label: {en: Customer, zh: 客户}}
        rules:
          - name: vip_needs_customer
            when: {field: name, op: starts_with, value: VIP}
            assert: {field: customer, op: not_null}
            fields: [customer]
            message: {en: A VIP contact needs a customer, zh: 重要联系人必须关联客户}
    """,
    "objects/ticket.yaml": """
        object: ticket
        label: {en: Ticket, zh: 工单}
        title: subject
        fields:
          - {name: code, type: autonumber, label: {en: Code, zh: 工单号},
             numbering: {pattern: "T-{dept}-{field:region}-{seq:2}"}}
          - {name: subject, type: text, required: true, label: {en: Subject, zh: 主题}}
          - {name: region, type: dictionary, dictionary: region, label: {en: Region, zh: 地区}}
        permissions:
          clerk: {create: true, read: own, update: own}
    """,
    "workflows/order_lifecycle.yaml": """
        workflow: order_lifecycle
        kind: lifecycle
        object: order
        states:
          - {name: draft, label: {en: Draft, zh: 草稿}, initial: true}
          - {name: confirmed, label: {en: Confirmed, zh: 已确认}, locked: true}
        transitions:
          - {name: confirm, from: draft, to: confirmed}
    """,
}


def write_metadata(root: Path, extra: dict | None = None) -> Path:
    """The test application's files under root (extra files override or add)."""
    for rel, text in {**FILES, **(extra or {})}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


_SPECS: dict = {}


def spec(tmp_path: Path, extra: dict | None = None):
    """The test application's AppSpec, built once per set of files (validation is the slow part)."""
    key = tuple(sorted((extra or {}).items()))
    if key not in _SPECS:
        _SPECS[key] = load_spec(write_metadata(tmp_path / "metadata", extra))
    return _SPECS[key]


def open_runtime(tmp_path: Path, db_url: str, extra: dict | None = None) -> Runtime:
    """The test application on an empty database, migrated and seeded. The first call per
    backend and set of files migrates a template; later ones copy it (a file copy on
    SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL), which is much faster."""
    app_spec = spec(tmp_path, extra)
    url = make_url(db_url)
    template = _template(app_spec, url)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(template, url.database)
    else:
        with _admin(url).connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"')
    return Runtime(app_spec, create_engine(db_url))


_TEMPLATES: dict = {}
_MIGRATED: set = set()


def reused_runtime(tmp_path: Path, db_url: str, extra: dict | None = None) -> Runtime:
    """The test application on a PostgreSQL database kept for the whole session: migrated
    the first time, then emptied and seeded again (ids start at 1 again). About twenty
    times faster than a database per test: DELETE with foreign-key triggers off (the tests
    run as a superuser) and the id sequences reset, in one round trip."""
    app_spec = spec(tmp_path, extra)
    runtime = Runtime(app_spec, create_engine(db_url))
    if (db_url, id(app_spec)) not in _MIGRATED:
        runtime.setup()
        _MIGRATED.add((db_url, id(app_spec)))
        return runtime
    tables = runtime.schema.metadata.sorted_tables
    sql = ["SET LOCAL session_replication_role = replica"] + [f'DELETE FROM "{t.name}"' for t in tables]
    sql += [f"SELECT setval(pg_get_serial_sequence('\"{t.name}\"', 'id'), 1, false)" for t in tables
            if "id" in t.c and t.c.id.primary_key]
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("; ".join(sql))
    seed_departments(runtime)
    return runtime


def _admin(url):
    return sa.create_engine(url.set(drivername="postgresql+psycopg", database="postgres"),
                            isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _template(app_spec, url) -> str:
    """A migrated, seeded database of this spec: a file path, or a PostgreSQL database name."""
    key = (url.get_backend_name(), id(app_spec))
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    if url.get_backend_name() == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="loom-template-"))
        atexit.register(shutil.rmtree, folder, True)
        template = str(folder / "template.db")
        template_url = f"sqlite:///{template}"
    else:
        template = f"loom_template_{uuid.uuid4().hex[:12]}"
        with _admin(url).connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{template}"')
        atexit.register(_drop_template, url, template)
        template_url = url.set(drivername="postgresql+psycopg", database=template).render_as_string(False)
    runtime = Runtime(app_spec, create_engine(template_url))
    runtime.setup()
    runtime.close()   # no connection may stay open on a template
    _TEMPLATES[key] = template
    return template


def _drop_template(url, name):
    with _admin(url).connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", autouse=True)
def drop_templates():
    """Drop the template databases when the session ends (import this fixture into a test
    module; atexit alone does not run in pytest-xdist workers)."""
    yield
    for (backend, _spec), template in list(_TEMPLATES.items()):
        if backend == "sqlite":
            shutil.rmtree(Path(template).parent, ignore_errors=True)
        elif POSTGRES_URL:
            _drop_template(make_url(POSTGRES_URL), template)
        del _TEMPLATES[(backend, _spec)]


def users(runtime) -> tuple[Actor, Actor]:
    """(admin, clerk): a superuser in hq and a limited user in east."""
    admin = create_user(runtime, "admin", name="管理员", roles=["admin"], department="hq")
    clerk = create_user(runtime, "clerk", name="张三", roles=["clerk"], department="east")
    return actor_for(runtime, admin), actor_for(runtime, clerk)


def today() -> dt.date:
    """Today where the application is (Asia/Shanghai), as `$today` means."""
    return dt.datetime.now(TZ).date()


def texts(error, lang: str = "en") -> dict:
    """A ValidationError's field messages as {field: [text, ...]} in one language."""
    return {k: [m.text(lang) for m in v] for k, v in error.fields.items()}
