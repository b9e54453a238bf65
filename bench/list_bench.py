"""Benchmark: list pages of the shipped CRM at 1,000,000 customers, against a floor and peers.

    /work/venv/bin/python bench/list_bench.py [--rows 1000000] [--db sqlite|postgresql|both]
                                              [--regenerate] [--repeat 30] [--peers-venv /tmp/bench-venv]

Data: `--rows` customers for metadata/ (the shipped CRM), written with SQLAlchemy Core in
batches (the record service would take hours for a million) but with every column the
service fills: codes CUS-YYYYMM-NNNNN numbered per month, pinyin mnemonics, the quick-search
columns `search_text` / `search_tokens` (loom.records.computed over obj.search.quick), owners
and their departments, states, rollup defaults, versions, a few rows in the recycle bin.
Names are realistic Chinese company names: city + one of 2,000 two-character brands (a
Zipf-like mix, so 华信 has thousands of rows) + a trade (科技 is common) + a legal form.
The databases are cached (bench/data/list_<rows>.db; PostgreSQL database loom_bench for
1,000,000 rows, loom_bench_<rows> otherwise) and rebuilt only with --regenerate.

Measured in one process, after warm-up, server time of Flask's test client requests
(median and p95): Loom's list page (first page, a filter, 200 pages deep by cursor, quick
search of 3+ characters, of a phone fragment, of a two-character Chinese term, of
pinyin initials, the capped count); the floor (a bare Flask route: one raw SQL query for
the same 50 rows and columns, keyset for the deep page, the same index query for search,
a plain Jinja loop); Flask-Admin (a SQLAlchemy ModelView over the same table, run in the
peers' virtualenv); Datasette (SQLite only, over HTTP to a `datasette serve` process,
facets, suggestions and counts off). Quick search results are checked against a plain
LIKE baseline over search_text. Results go to bench/results/list_bench.json.

The peers live in their own virtualenv (they are not Loom dependencies):

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install datasette flask-admin flask-sqlalchemy sqlalchemy "psycopg[binary]" flask

(Flask-Admin 2.2's SQLAlchemy views import flask_sqlalchemy even when they are given a
plain session.) A peer that fails is reported and skipped; Loom's figures are kept.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from bisect import bisect_right
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path(os.environ.get("LOOM_BENCH_DATA") or HERE / "data")   # generated databases (gitignored)
RESULTS = HERE / "results"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GEN_VERSION = 2           # bump when the generated data changes: cached databases are rebuilt
SEED = 20261101
BATCH = 10_000            # rows per generated batch (fixed: each batch has its own seeded RNG)
PASSWORD = "bench-pass-123"
UTC = dt.timezone.utc
END = dt.datetime(2026, 11, 1, tzinfo=UTC)
START = END - dt.timedelta(days=3 * 365)

# ---- data ------------------------------------------------------------------------------------

CITIES = [  # (city, telephone area code)
    ("北京", "010"), ("上海", "021"), ("广州", "020"), ("深圳", "0755"), ("杭州", "0571"), ("南京", "025"),
    ("苏州", "0512"), ("成都", "028"), ("武汉", "027"), ("西安", "029"), ("天津", "022"), ("重庆", "023"),
    ("青岛", "0532"), ("宁波", "0574"), ("厦门", "0592"), ("无锡", "0510"), ("长沙", "0731"), ("郑州", "0371"),
    ("济南", "0531"), ("合肥", "0551"), ("福州", "0591"), ("大连", "0411"), ("沈阳", "024"), ("哈尔滨", "0451"),
    ("长春", "0431"), ("昆明", "0871"), ("南宁", "0771"), ("贵阳", "0851"), ("南昌", "0791"), ("石家庄", "0311"),
    ("太原", "0351"), ("呼和浩特", "0471"), ("兰州", "0931"), ("银川", "0951"), ("西宁", "0971"), ("海口", "0898"),
    ("珠海", "0756"), ("佛山", "0757"), ("东莞", "0769"), ("温州", "0577"), ("绍兴", "0575"), ("嘉兴", "0573"),
    ("台州", "0576"), ("金华", "0579"), ("常州", "0519"), ("南通", "0513"), ("扬州", "0514"), ("徐州", "0516"),
    ("烟台", "0535"), ("潍坊", "0536"), ("洛阳", "0379"), ("宜昌", "0717"), ("襄阳", "0710"), ("株洲", "0731"),
    ("泉州", "0595"), ("漳州", "0596"), ("惠州", "0752"), ("中山", "0760"), ("江门", "0750"), ("芜湖", "0553"),
]
TRADES = [  # (trade, industry code)
    ("科技", "it"), ("网络科技", "internet"), ("信息技术", "it"), ("电子科技", "manufacturing"),
    ("生物科技", "healthcare"), ("贸易", "retail"), ("商贸", "retail"), ("实业", "manufacturing"),
    ("医药", "healthcare"), ("建设工程", "real_estate"), ("房地产开发", "real_estate"), ("物流", "logistics"),
    ("供应链管理", "logistics"), ("能源", "energy"), ("新能源科技", "energy"), ("机械制造", "manufacturing"),
    ("食品", "retail"), ("文化传媒", "other"), ("教育咨询", "education"), ("投资管理", "finance"),
    ("环保科技", "energy"), ("汽车销售", "retail"), ("软件", "it"), ("智能科技", "it"),
]
FORMS = ["有限公司", "股份有限公司", "有限责任公司", "集团有限公司"]
BRANDS = ("华信 明远 东方 中科 恒信 鑫源 天成 金达 宏图 博远 新华 长城 永安 瑞丰 海通 国泰 盛世 卓越 汇通 创新 "
          "世纪 兴隆 昌盛 德馨 富康 宁和 美佳 嘉禾 祥瑞 福顺 利民 益友 诚信 晟达 杰科 凯旋 腾飞 龙腾 宇航 星辰 "
          "光明 正泰 元亨 合力 华美 信达 明德 远景 东升 中天").split()
BRAND_CHARS = "华信明远东方中科恒鑫源天成金达宏图博新长城永安瑞丰海通国泰盛世卓越汇创纪兴隆昌德富康宁和美佳嘉祥福顺利益诚晟杰凯腾飞龙宇星辰光正元合力"
TAX_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
STATES = (["potential"] * 40 + ["trading"] * 35 + ["dormant"] * 15 + ["lost"] * 10)
CATEGORIES = ["consumer"] * 70 + ["intermediary"] * 20 + ["public"] * 10
VALUE_CLASSES = ["A"] * 10 + ["B"] * 30 + ["C"] * 60
SALES_USERS = [  # username, department, roles
    ("east1", "sales_east", ["sales_rep"]), ("east2", "sales_east", ["sales_rep"]),
    ("north1", "sales_north", ["sales_rep"]), ("north2", "sales_north", ["sales_rep"]),
    ("south1", "sales_south", ["sales_rep"]), ("south2", "sales_south", ["sales_rep"]),
    ("manager", "sales", ["sales_manager"]), ("service", "service", ["service_agent"]),
]


def brands() -> list[str]:
    """2,000 two-character brand names: the common ones first (they get the most rows)."""
    out = list(dict.fromkeys(BRANDS))
    pairs = [a + b for a in BRAND_CHARS for b in BRAND_CHARS if a != b]
    random.Random(SEED).shuffle(pairs)
    seen = set(out)
    for p in pairs:
        if len(out) == 2000:
            break
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


COMBOS = len(CITIES) * len(TRADES) * len(FORMS)   # names per brand
STRIDE = 1_657                                      # coprime with COMBOS: a fixed shuffle of the combinations


def plan(rows: int, timezone: str):
    """What each row needs from the rows before it: its brand, how many rows had that
    brand before (so names are unique), and its number within its month."""
    from zoneinfo import ZoneInfo
    rng = random.Random(SEED)
    n_brands = 2000
    weights = [1 / (r + 50) for r in range(n_brands)]
    brand = array("H", rng.choices(range(n_brands), weights=weights, k=rows))
    seen = [0] * n_brands
    occurrence = array("I", bytes(4 * rows))
    for i, b in enumerate(brand):
        occurrence[i] = seen[b]
        seen[b] += 1
    tz = ZoneInfo(timezone)
    seq = array("I", bytes(4 * rows))
    month, n = None, 0
    for i in range(rows):
        m = created_at(i, rows).astimezone(tz).strftime("%Y%m")
        n = n + 1 if m == month else 1
        month = m
        seq[i] = n
    return brand, occurrence, seq


def created_at(i: int, rows: int) -> dt.datetime:
    return START + (END - START) * ((i + 0.5) / rows)


_CTX: dict = {}   # what every batch needs, set before the worker processes fork


def make_batch(job):
    """Rows [start, stop) as dicts of column values (run in a worker process)."""
    from loom.records import computed
    from loom.records.computed import mnemonic
    columns = getattr(computed, "search_columns", None) or (lambda v: (computed.search_text(v), computed.search_tokens(v)))
    start, stop, rows, brand, occurrence, seq = job
    ctx = _CTX
    obj = ctx["obj"]
    if getattr(obj, "duplicates", None):   # the normalized keys duplicate rules look up
        from loom.records.duplicates import keys as duplicate_keys
    else:
        duplicate_keys = None
    rng = random.Random(SEED * 1_000 + start // BATCH)
    names = ctx["brands"]
    out = []
    for j, i in enumerate(range(start, stop)):
        b, k = brand[j], occurrence[j]
        combo = (k * STRIDE + b * 7) % COMBOS
        city, area = CITIES[combo % len(CITIES)]
        trade, industry = TRADES[(combo // len(CITIES)) % len(TRADES)]
        form = FORMS[combo // (len(CITIES) * len(TRADES))]
        name = city + names[b] + trade + form
        if k >= COMBOS:  # only for far more rows than a million: a numbered branch
            name = f"{name}第{k // COMBOS}分公司"
        created = created_at(i, rows)
        local = created.astimezone(ctx["tz"])
        code = f"CUS-{local:%Y%m}-{seq[j]:05d}"
        updated = created if rng.random() < 0.2 else created + (END - created) * rng.random()
        version = 1 if updated == created else rng.randint(2, 6)
        category = rng.choice(CATEGORIES)
        value_class = rng.choice(VALUE_CLASSES)
        state = rng.choice(STATES)
        owner, department = rng.choice(ctx["owners"])
        short = names[b] + trade[:2] if rng.random() < 0.5 else None
        if rng.random() < 0.6:
            phone = f"{area}-{rng.randrange(10_000_000, 100_000_000)}"
        else:
            phone = f"1{rng.choice('3578')}{rng.randrange(0, 1_000_000_000):09d}"
        tax_id = None
        if category == "intermediary" or rng.random() < 0.5:
            n, tail = i, []
            for _ in range(10):
                n, r = divmod(n, len(TAX_ALPHABET))
                tail.append(TAX_ALPHABET[r])
            tax_id = f"91{rng.randrange(110000, 660000)}" + "".join(reversed(tail))
        mn = mnemonic(name)
        quick = {"name": name, "short_name": short, "code": code, "mnemonic": mn, "phone": phone, "tax_id": tax_id}
        text, tokens = columns([quick[f] for f in ctx["quick"]])
        revenue = rng.randrange(10, 5_000_000) * 1000 if rng.random() < 0.6 else None
        out.append({
            "code": code, "name": name, "short_name": short, "mnemonic": mn, "category": category,
            "industry": industry, "region": rng.choice(ctx["regions"]), "source": rng.choice(ctx["sources"]),
            "value_class": value_class,
            "credit_rating": rng.choice(ctx["ratings"]) if value_class == "A" or rng.random() < 0.5 else None,
            "satisfaction": rng.choice("54321") if rng.random() < 0.4 else None,
            "tax_id": tax_id, "phone": phone,
            "email": f"info{i}@example.cn" if rng.random() < 0.5 else None,
            "website": f"https://www.example{i}.cn" if rng.random() < 0.3 else None,
            "address": f"{city}市{rng.choice('东西南北中')}区{names[rng.randrange(2000)]}路{rng.randrange(1, 999)}号"
            if rng.random() < 0.7 else None,
            "postal_code": f"{rng.randrange(100000, 860000)}" if rng.random() < 0.5 else None,
            "annual_revenue": revenue, "employees": rng.randrange(1, 20000) if rng.random() < 0.6 else None,
            "founded_on": (created - dt.timedelta(days=rng.randrange(30, 30 * 365))).date()
            if rng.random() < 0.5 else None,
            "parent": None, "service_department": None,
            "lost_on": updated.astimezone(ctx["tz"]).date() if state == "lost" else None,
            "description": None,
            "owner": owner, "department": department, "state": state,
            "created_at": created, "created_by": owner, "updated_at": updated, "updated_by": owner,
            "version": version, "deleted_at": updated if rng.random() < 0.003 else None,
            "search_text": text, "search_tokens": tokens,
        })
        out[-1].update(ctx["rollups"])      # no opportunities, requests or contracts yet
        if duplicate_keys is not None:
            out[-1].update(duplicate_keys(obj, out[-1]))
        if "merged_into" in ctx["columns"]:
            out[-1]["merged_into"] = None
    return out


# ---- databases ------------------------------------------------------------------------------

def sqlite_url(rows: int) -> str:
    return f"sqlite:///{DATA / f'list_{rows}.db'}"


def pg_name(rows: int) -> str:
    return "loom_bench" if rows == 1_000_000 else f"loom_bench_{rows}"


def pg_url(rows: int) -> str:
    return PG_SERVER.rsplit("/", 1)[0] + "/" + pg_name(rows)


def url_for(kind: str, rows: int) -> str:
    return sqlite_url(rows) if kind == "sqlite" else pg_url(rows)


def marker(rows: int) -> str:
    return json.dumps({"rows": rows, "version": GEN_VERSION})


def cached(kind: str, rows: int) -> bool:
    import sqlalchemy as sa
    if kind == "sqlite":
        if not (DATA / f"list_{rows}.db").exists():
            return False
    else:
        engine = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": pg_name(rows)}).first()
        engine.dispose()
        if not found:
            return False
    engine = sa.create_engine(url_for(kind, rows))
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT value FROM loom_meta WHERE key = 'bench:list'").scalar() == marker(rows)
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def drop(kind: str, rows: int) -> None:
    import sqlalchemy as sa
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(DATA / f"list_{rows}.db") + suffix).unlink(missing_ok=True)
        return
    engine = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name(rows)}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{pg_name(rows)}"')
    engine.dispose()


def open_runtime(url: str):
    from loom.runtime import Runtime
    runtime = Runtime.open(str(ROOT / "metadata"), url)
    runtime.setup()
    return runtime


def generate(kind: str, rows: int) -> None:
    """A fresh database with `rows` customers (minutes for a million)."""
    import multiprocessing

    import sqlalchemy as sa
    from zoneinfo import ZoneInfo

    from loom.security.organization import create_user
    from loom.storage import search_index

    DATA.mkdir(parents=True, exist_ok=True)
    drop(kind, rows)
    t0 = time.perf_counter()
    runtime = open_runtime(url_for(kind, rows))
    spec, obj = runtime.spec, runtime.spec.objects["customer"]
    table = runtime.table("customer")
    create_user(runtime, "admin", name="管理员", password=PASSWORD, roles=["admin"])
    owners = []
    for username, department, roles in SALES_USERS:
        user = create_user(runtime, username, name=username.capitalize(), password=PASSWORD, roles=roles,
                           department=department)
        if "service_agent" not in roles:
            owners.append((user["id"], user["department"]))
    ctx = {"brands": brands(), "tz": ZoneInfo(spec.timezone), "owners": owners, "quick": list(obj.search.quick),
           "regions": list(spec.dictionaries["region"].items), "sources": list(spec.dictionaries["customer_source"].items),
           "ratings": list(spec.dictionaries["credit_rating"].items), "obj": obj, "columns": set(table.c.keys()),
           "rollups": {f.name: 0 if f.rollup.agg == "count" else None for f in obj.fields.values() if f.type == "rollup"}}
    _CTX.clear()
    _CTX.update(ctx)
    brand, occurrence, seq = plan(rows, spec.timezone)
    unknown = set(table.c.keys()) - {"id"} - set(make_batch((0, 1, rows, brand[:1], occurrence[:1], seq[:1]))[0])
    if unknown:   # a column the record service fills that this generator does not know: say so
        print(f"  [{kind}] warning: columns left empty: {', '.join(sorted(unknown))}", flush=True)
    print(f"  [{kind}] planned {rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)

    # secondary indexes and (SQLite) the FTS sync triggers go while the rows go in
    indexes = [ix for ix in table.indexes]
    with runtime.engine.begin() as conn:
        for ix in indexes:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {ix.name}")
        if kind == "sqlite":
            for fts in (search_index.trigram_table(table.name), search_index.token_table(table.name)):
                for suffix in ("_ai", "_ad", "_au"):
                    conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{fts}{suffix}"')
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{fts}"')
        else:
            for name in ("sx_customer_trgm", "sx_customer_tok"):
                conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')

    jobs = ((s, min(s + BATCH, rows), rows, brand[s:s + BATCH], occurrence[s:s + BATCH], seq[s:s + BATCH])
            for s in range(0, rows, BATCH))
    insert = table.insert()
    done = 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for batch in pool.imap(make_batch, jobs):
            with runtime.engine.begin() as conn:
                if kind == "sqlite":
                    conn.execute(insert, batch)
                else:   # COPY: Core's executemany managed ~1,400 rows/s here, COPY ~10,000
                    columns = list(batch[0])
                    with conn.connection.dbapi_connection.cursor() as cursor:
                        with cursor.copy(f"COPY customer ({', '.join(columns)}) FROM STDIN") as copy:
                            for row in batch:
                                copy.write_row([row[c] for c in columns])
            done += len(batch)
            if done % 100_000 == 0 or done == rows:
                print(f"  [{kind}] {done:,} rows, {time.perf_counter() - t0:.0f} s", flush=True)

    with runtime.engine.begin() as conn:   # numbering goes on after the generated codes
        counter = runtime.schema.system["counter"]
        months = {}
        for i in range(rows):
            months[created_at(i, rows).astimezone(ctx["tz"]).strftime("%Y%m")] = seq[i]
        conn.execute(counter.insert(), [{"key": f"customer.code|CUS-{m}-#|{m}", "value": v} for m, v in months.items()])
    with runtime.engine.begin() as conn:
        if kind == "postgresql":
            conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
        for ix in indexes:
            ix.create(conn)
        print(f"  [{kind}] b-tree indexes, {time.perf_counter() - t0:.0f} s", flush=True)
        search_index.ensure(conn, spec, runtime.schema)   # FTS tables + triggers, GIN indexes
        print(f"  [{kind}] search indexes, {time.perf_counter() - t0:.0f} s", flush=True)
        conn.execute(sa.text("INSERT INTO loom_meta (key, value) VALUES ('bench:list', :v)"), {"v": marker(rows)})
    runtime.close()
    if kind == "sqlite":
        import sqlite3
        db = sqlite3.connect(DATA / f"list_{rows}.db", isolation_level=None)
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    else:
        engine = sa.create_engine(url_for(kind, rows), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()
    print(f"  [{kind}] generated in {time.perf_counter() - t0:.0f} s", flush=True)


# ---- timing ---------------------------------------------------------------------------------

def timed(fn, repeat: int, budget: float = 20.0) -> dict:
    """Median and p95 (nearest rank) in ms of `repeat` calls after warm-up; slow calls get
    fewer samples (at least 3) so a 3-second peer does not take minutes. `cpu` is the
    median CPU time of this process (for SQLite that includes the queries): on a shared
    machine it moves less than the wall clock."""
    t = time.perf_counter()
    fn()
    if time.perf_counter() - t < 1.0:
        fn()
    samples, cpu, end = [], [], time.perf_counter() + budget
    while len(samples) < repeat and (len(samples) < 3 or time.perf_counter() < end):
        t, c = time.perf_counter(), time.process_time()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    ordered = sorted(samples)
    return {"median": statistics.median(samples), "p95": ordered[max(0, -(-95 * len(ordered) // 100) - 1)],
            "cpu": statistics.median(cpu), "n": len(samples)}


# ---- what is measured -------------------------------------------------------------------------

DEEP = 200    # pages followed by cursor for the deep page
CASES = [     # key, description, list arguments
    ("first", "first page", {}),
    ("filtered", "filter f.category=public", {"f.category": "public"}),
    ("deep", f"page {DEEP + 1} (keyset cursor)", {"deep": True}),
    ("q_long", "search 网络科技 (4 chars, common)", {"q": "网络科技"}),
    ("q_phone", "search 8888 (phone fragment, rare)", {"q": "8888"}),
    ("q_two", "search 华信 (2 Chinese chars)", {"q": "华信"}),
    ("q_one", "search 华 (1 char, very common)", {"q": "华"}),
    ("q_mnemonic", "search hxkj (pinyin initials)", {"q": "hxkj"}),
    ("q_none", "search 不存在的名字 (no match)", {"q": "不存在的名字"}),
]
COUNTS = [
    ("count", "count (capped at 1,000)", {}),
    ("count_filtered", "count f.category=public", {"f.category": "public"}),
    ("count_q_two", "count q=华信", {"q": "华信"}),
]
VERIFY_TERMS = ["华", "华信", "科技", "网络科技", "华信科技", "8888", "hxkj", "nova", "cus-2024", "不存在的名字"]


def ids_in(html: str, pattern: str) -> list[int]:
    import re
    return [int(x) for x in re.findall(pattern, html)]


# ---- Loom -------------------------------------------------------------------------------------------

def loom_client(url: str, username: str = "admin", app=None):
    """(app, a test client signed in as `username`, in Chinese); pass `app` to sign in
    another user to the same application."""
    import re

    from loom.web import create_app
    if app is None:
        app = create_app({"LOOM_METADATA": str(ROOT / "metadata"), "LOOM_DATABASE_URL": url,
                          "LOOM_INSTANCE": str(DATA / "instance"), "SECRET_KEY": "bench",
                          "LOOM_SCHEDULER": "off"})   # no scheduled automations running beside the timings
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302, r.status_code
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    client.post("/lang/zh", data={"csrf_token": token})
    return app, client


FRAGMENT = {"HX-Request": "true", "HX-Target": "records"}


def loom_get(client, path, fragment=False) -> str:
    r = client.get(path, headers=FRAGMENT if fragment else None)
    assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:300])
    return r.get_data(as_text=True)


def loom_deep_path(client, pages: int = DEEP) -> str:
    """Follow `Next` `pages` times, as a user paging would."""
    import html
    import re
    path = "/o/customer/"
    for _ in range(pages):
        page = loom_get(client, path, fragment=True)
        path = html.unescape(re.search(r'<a class="button" rel="next" href="([^"]+)"', page).group(1))
    return path


def loom_path(args: dict, deep_path: str | None) -> str:
    from urllib.parse import urlencode
    if args.get("deep"):
        return deep_path
    return "/o/customer/" + ("?" + urlencode(args) if args else "")


def bench_loom(url: str, repeat: int) -> dict:
    from urllib.parse import urlencode
    app, client = loom_client(url)
    deep = loom_deep_path(client)
    out = {"deep_path": deep}
    for key, _label, args in CASES:
        path = loom_path(args, deep)
        html = loom_get(client, path)
        out[key] = {"path": path, "ids": ids_in(html, r'name="ids" value="(\d+)"'),
                    "page": timed(lambda: loom_get(client, path), repeat),
                    "fragment": timed(lambda: loom_get(client, path, True), repeat)}
    for key, _label, args in COUNTS:
        path = "/o/customer/count" + ("?" + urlencode(args) if args else "")
        out[key] = {"path": path, "text": loom_get(client, path), "page": timed(lambda: loom_get(client, path), repeat)}
    app.extensions["loom"].runtime.close()
    return out


# ---- the floor: one raw query, a bare Jinja loop ---------------------------------------------

FLOOR_TEMPLATE = """<table>
{% for r in rows %}<tr><td><a href="/o/customer/{{ r.id }}">{{ r.code }}</a></td><td>{{ r.name }}</td>
<td>{{ labels.category[r.category] }}</td><td>{{ labels.industry[r.industry] }}</td><td>{{ labels.region[r.region] }}</td>
<td>{{ labels.value_class[r.value_class] }}</td><td>{{ labels.state[r.state] }}</td><td>{{ r.owner }}</td>
<td>{{ r.updated_at }}</td></tr>
{% endfor %}</table>
{% if more %}<a rel="next" href="?after={{ more }}">next</a>{% endif %}"""


def floor_app(url: str, spec, labels: dict):
    """A minimal Flask app: the same 50 rows and columns as Loom's list in one SQLAlchemy
    Core statement (owners joined in), keyset paging, and for a search the same WHERE
    clause Loom's search module builds (the same index queries), rendered by a bare Jinja
    loop. No sign-in, permissions, formatting or page shell."""
    import sqlalchemy as sa
    from flask import Flask, render_template_string, request

    from loom.compiler.tables import compile_schema
    from loom.records import search
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    engine = sa.create_engine(url, connect_args={"prepare_threshold": None} if kind == "postgresql" else {})
    schema = compile_schema(spec)
    obj, t, u = spec.objects["customer"], schema.tables["customer"], schema.tables["user"]
    columns = [t.c.id, t.c.code, t.c.name, t.c.category, t.c.industry, t.c.region, t.c.value_class, t.c.state,
               u.c.name.label("owner"), t.c.updated_at]
    ordered = getattr(search, "ordered_page", None)
    app = Flask("floor")

    @app.get("/floor/")
    def floor():
        q = sa.select(*columns).select_from(t.outerjoin(u, u.c.id == t.c.owner)).where(t.c.deleted_at.is_(None))
        if request.args.get("category"):
            q = q.where(t.c.category == request.args["category"])
        if request.args.get("after"):
            ts, id_ = request.args["after"].rsplit(",", 1)
            q = q.where(sa.tuple_(t.c.updated_at, t.c.id) < (dt.datetime.fromisoformat(ts), int(id_)))
        q = q.order_by(t.c.updated_at.desc(), t.c.id.desc()).limit(51)
        with engine.connect() as conn:
            if request.args.get("q"):
                with ordered() if ordered else contextlib.nullcontext():
                    q = q.where(search.search_clause(None, obj, t, request.args["q"], conn))
            rows = conn.execute(q).mappings().all()
        more = f"{rows[49]['updated_at']},{rows[49]['id']}" if len(rows) > 50 else None
        return render_template_string(FLOOR_TEMPLATE, rows=rows[:50], labels=labels, more=more)
    return app, engine, t


def labels_of(spec) -> dict:
    out = {name: {c: i.label.text("zh") for c, i in spec.dictionaries[d].items.items()}
           for name, d in (("category", "customer_category"), ("industry", "industry"), ("region", "region"),
                           ("value_class", "value_class"))}
    out["state"] = {s: st.label.text("zh") for s, st in spec.workflows["customer_lifecycle"].states.items()}
    return out


def deep_cursor(engine, t) -> str:
    """The (updated_at, id) of the last row of page DEEP, as the floor's `after`."""
    import sqlalchemy as sa
    with engine.connect() as conn:
        ts, id_ = conn.execute(sa.select(t.c.updated_at, t.c.id).where(t.c.deleted_at.is_(None))
                               .order_by(t.c.updated_at.desc(), t.c.id.desc()).offset(DEEP * 50 - 1).limit(1)).first()
    return f"{ts},{id_}"


def bench_floor(url: str, spec, repeat: int) -> dict:
    from urllib.parse import urlencode
    app, engine, table = floor_app(url, spec, labels_of(spec))
    client = app.test_client()
    after = deep_cursor(engine, table)
    out = {}
    for key, _label, args in CASES:
        query = {"category": args["f.category"]} if "f.category" in args else dict(args)
        if query.pop("deep", None):
            query["after"] = after
        path = "/floor/?" + urlencode(query)

        def get():
            r = client.get(path)
            assert r.status_code == 200, r.get_data(as_text=True)[:300]
            return r.get_data(as_text=True)
        out[key] = {"path": path, "ids": ids_in(get(), r'href="/o/customer/(\d+)"'), "page": timed(get, repeat)}
    engine.dispose()
    return out


# ---- quick search against a plain LIKE baseline -----------------------------------------------------

def verify_search(url: str, repeat: int) -> dict:
    """For each term: Loom's first page of ids (through the record service, sorted by the
    default sort) and its capped count against a LIKE/instr scan of search_text; the whole
    id set as well where the term has at most 5,000 rows."""
    import sqlalchemy as sa

    from loom.records.search import ordered_page, terms
    from loom.security.actor import Actor
    runtime = open_runtime(url)
    svc, obj = runtime.records, runtime.spec.objects["customer"]
    actor = Actor.system()
    contains = "instr(search_text, :t) > 0" if runtime.dialect == "sqlite" else "strpos(search_text, :t) > 0"
    out = {}

    def page_query(term):
        """The list's first page of 50 through the record service (as listing.fetch asks
        for it), without the page around it: what the search itself costs."""
        def run():
            with ordered_page():
                svc.query(obj, actor, search=term, limit=50)
        return timed(run, repeat)
    out[""] = {"query": page_query("")}   # no search: the same page unfiltered
    with runtime.engine.connect() as conn:
        for term in VERIFY_TERMS:
            t = terms(term)[0]
            t0 = time.perf_counter()
            baseline = [r[0] for r in conn.execute(sa.text(
                f"SELECT id FROM customer WHERE deleted_at IS NULL AND {contains} "
                "ORDER BY updated_at DESC, id DESC LIMIT 50"), {"t": t})]
            like_ms = (time.perf_counter() - t0) * 1000
            total = conn.execute(sa.text(f"SELECT count(*) FROM customer WHERE deleted_at IS NULL AND {contains}"),
                                 {"t": t}).scalar()
            loom = [r["id"] for r in svc.query(obj, actor, search=term, limit=50).rows]
            count = svc.count(obj, actor, search=term, cap=1000)
            entry = {"matches": total, "first_page_equal": loom == baseline, "like_ms": like_ms,
                     "count_equal": count == min(total, 1001), "query": page_query(term)}
            if total <= 5000:
                every = set()
                after = None
                while True:
                    page = svc.query(obj, actor, search=term, limit=1000, after=after)
                    every.update(r["id"] for r in page.rows)
                    if not page.has_more:
                        break
                    after = page.next_cursor
                truth = {r[0] for r in conn.execute(sa.text(
                    f"SELECT id FROM customer WHERE deleted_at IS NULL AND {contains}"), {"t": t})}
                entry["all_equal"] = every == truth
            out[term] = entry
    runtime.close()
    return out


# ---- peers: Datasette (over HTTP) and Flask-Admin (in its own virtualenv) ----------------------

def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DATASETTE_COLUMNS = ["code", "name", "category", "industry", "region", "value_class", "state", "owner", "updated_at"]


def bench_datasette(venv: Path, db_path: Path, repeat: int) -> dict:
    """`datasette serve` on the same SQLite file: the table page sorted like Loom's list,
    50 rows, the same columns, facets, facet suggestions and the count off."""
    import http.client
    from urllib.parse import quote, urlencode
    db = db_path.stem
    meta = Path(tempfile.mkdtemp(prefix="loom-bench-")) / "metadata.json"
    meta.write_text(json.dumps({"databases": {db: {"tables": {"customer": {
        "fts_table": "customer__fts_tri", "fts_pk": "id"}}}}}))
    port = free_port()
    proc = subprocess.Popen([str(venv / "bin" / "datasette"), "serve", str(db_path), "--port", str(port),
                             "--metadata", str(meta), "--setting", "suggest_facets", "off",
                             "--setting", "sql_time_limit_ms", "60000", "--setting", "default_page_size", "50"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = None
    try:
        for _ in range(200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/-/versions.json")
                conn.getresponse().read()
                break
            except OSError:
                conn = None
                time.sleep(0.1)
        assert conn is not None, "datasette did not start"

        def get(path):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode()
            assert r.status == 200, (path, r.status, body[:300])
            return body
        base = [("_sort_desc", "updated_at"), ("_size", "50"), ("_nocount", "1"), ("_nofacet", "1")] + \
               [("_col", c) for c in DATASETTE_COLUMNS]

        def path(extra=(), fmt=""):
            return f"/{quote(db)}/customer{fmt}?" + urlencode(base + list(extra))
        nxt = None
        for _ in range(DEEP):   # follow the `_next` keyset tokens, as its Next link does
            nxt = json.loads(get(path([("_next", nxt)] if nxt else [], ".json")))["next"]
        cases = {
            "first": [], "filtered": [("category", "public")], "deep": [("_next", nxt)],
            "q_long": [("_search", "网络科技")], "q_phone": [("_search", "8888")],
            "q_two": [("_search", "华信")], "q_one": [("_search", "华")],
            "q_mnemonic": [("_search", "hxkj")], "q_none": [("_search", "不存在的名字")],
            "contains_long": [("name__contains", "网络科技")], "contains_two": [("name__contains", "华信")],
            "contains_phone": [("phone__contains", "8888")],
        }
        out = {"http_overhead": timed(lambda: get("/-/versions.json"), repeat)}
        for key, extra in cases.items():
            p = path(extra)
            rows = json.loads(get(path(extra + [("_shape", "objects")], ".json")))["rows"]
            out[key] = {"path": p, "ids": [r["id"] for r in rows], "page": timed(lambda: get(p), repeat)}
        return out
    finally:
        if conn is not None:
            conn.close()
        proc.terminate()
        proc.wait(timeout=10)


def flask_admin_worker(url: str, repeat: int, deep: int) -> None:
    """Run in the peers' virtualenv (no Loom there): a Flask-Admin ModelView over the
    customer table, timed through Flask's test client like Loom; prints JSON."""
    import re

    import sqlalchemy as sa
    from flask import Flask
    from flask_admin import Admin
    from flask_admin.contrib.sqla import ModelView
    from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker

    engine = sa.create_engine(url, connect_args={"prepare_threshold": None} if url.startswith("postgresql") else {})

    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __table__ = sa.Table("customer", Base.metadata, autoload_with=engine)

    session = scoped_session(sessionmaker(bind=engine))
    columns = ["code", "name", "category", "industry", "region", "value_class", "state", "owner", "updated_at"]

    def view(simple: bool, endpoint: str):
        class CustomerView(ModelView):
            column_list = columns
            column_filters = ["category"]
            column_searchable_list = ["name", "code", "mnemonic", "phone"]
            column_default_sort = [("updated_at", True), ("id", True)]
            page_size = 50
            can_set_page_size = False
            simple_list_pager = simple
        return CustomerView(Customer, session, name=endpoint, endpoint=endpoint)

    app = Flask("peer")
    app.config["SECRET_KEY"] = "bench"
    admin = Admin(app)
    admin.add_view(view(True, "simple"))     # no count: like Loom, which counts in its own request
    admin.add_view(view(False, "counted"))   # Flask-Admin's default pager counts every page
    client = app.test_client()

    @app.teardown_appcontext
    def _remove(_exc=None):
        session.remove()

    def get(path):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:500])
        return r.get_data(as_text=True)
    # filters are flt<position>_<operation>; on a text column the operations are contains,
    # not contains, equals, ...: "equals" is 2 (the page lists them in #filter-groups-data)
    groups = re.search(r'filter-groups-data" class="d-none">(.*?)</div>', get("/admin/simple/")).group(1)
    equals = next(op["arg"] for op in json.loads(groups)["Category"] if op["operation"] == "equals")
    filter_arg = f"flt0_{equals}"
    out = {}
    for prefix in ("simple", "counted"):
        cases = {"first": f"/admin/{prefix}/", "filtered": f"/admin/{prefix}/?{filter_arg}=public",
                 "deep": f"/admin/{prefix}/?page={deep}",
                 "q_long": f"/admin/{prefix}/?search=网络科技", "q_phone": f"/admin/{prefix}/?search=8888",
                 "q_two": f"/admin/{prefix}/?search=华信", "q_one": f"/admin/{prefix}/?search=华",
                 "q_mnemonic": f"/admin/{prefix}/?search=hxkj", "q_none": f"/admin/{prefix}/?search=不存在的名字"}
        for key, p in cases.items():
            body = get(p)
            ids = [int(x) for x in re.findall(r'name="rowid"[^>]*value="(\d+)"', body)]
            out[f"{prefix}:{key}"] = {"path": p, "ids": ids, "page": timed(lambda: get(p), repeat)}
    print(json.dumps(out))


def bench_flask_admin(venv: Path, url: str, repeat: int) -> dict:
    script = Path(__file__).resolve()
    done = subprocess.run([str(venv / "bin" / "python"), str(script), "--flask-admin-worker", url,
                           "--repeat", str(repeat)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the run ------------------------------------------------------------------------------------

def fmt(m: dict | None) -> str:
    if not m:
        return "—"
    return f"{m['median']:.1f} / {m['p95']:.1f}" if m["median"] < 100 else f"{m['median']:.0f} / {m['p95']:.0f}"


def same(a: list, b: list) -> str:
    return "=" if a == b else f"≠ ({len(a)} rows)"


def report(results: dict) -> str:
    lines = []
    for kind, r in results["databases"].items():
        loom, floor = r["loom"], r["floor"]
        fa, ds = r.get("flask_admin") or {}, r.get("datasette") or {}
        lines += [f"### {kind} ({results['rows']:,} customers)", "",
                  "| request | Loom page | Loom fragment | floor | fragment / floor | page / floor | rows as floor "
                  "| Flask-Admin | Flask-Admin + count |" + (" Datasette |" if ds else ""),
                  "|---|---|---|---|---|---|---|---|---|" + ("---|" if ds else "")]
        for key, label, _args in CASES:
            lm, fl = loom[key], floor[key]
            ratio_f = lm["fragment"]["median"] / fl["page"]["median"]
            ratio_p = lm["page"]["median"] / fl["page"]["median"]
            fa_s, fa_c = fa.get(f"simple:{key}"), fa.get(f"counted:{key}")
            row = (f"| {label} | {fmt(lm['page'])} | {fmt(lm['fragment'])} | {fmt(fl['page'])} | {ratio_f:.1f}× "
                   f"| {ratio_p:.1f}× | {same(lm['ids'], fl['ids'])} | {fmt(fa_s and fa_s['page'])} "
                   f"| {fmt(fa_c and fa_c['page'])} |")
            if ds:
                d = ds.get(key)
                row += f" {fmt(d and d['page'])}{' (' + str(len(d['ids'])) + ' rows)' if d else ''} |"
            lines.append(row)
        for key, label, _args in COUNTS:
            lines.append(f"| {label}: {loom[key]['text'].split('>')[1].split('<')[0]} | {fmt(loom[key]['page'])} "
                         "| | | | | | | |" + (" |" if ds else ""))
        if ds:
            lines += ["", "Datasette, other requests: " + "; ".join(
                f"{k} {fmt(ds[k]['page'])} ({len(ds[k]['ids'])} rows)"
                for k in ("contains_long", "contains_two", "contains_phone")) +
                f"; HTTP round trip alone (/-/versions.json) {fmt(ds['http_overhead'])}."]
        v = r["verify"]
        lines += ["", "Quick search against a LIKE scan of search_text (first page of 50 by the default sort, "
                  "count capped at 1,000, every id when ≤ 5,000 rows):", "",
                  "| term | matching rows | first page equal | count equal | all ids equal | LIKE scan ms "
                  "| service query ms (median / p95, CPU) |",
                  "|---|---|---|---|---|---|---|"]
        for term, e in v.items():
            q = e.get("query")
            timing = f"{fmt(q)}, {q['cpu']:.1f}" if q else "—"
            if not term:
                lines.append(f"| (none: the first page) | | | | | | {timing} |")
                continue
            lines.append(f"| {term} | {e['matches']:,} | {e['first_page_equal']} | {e['count_equal']} "
                         f"| {e.get('all_equal', '—')} | {e['like_ms']:.0f} | {timing} |")
        lines.append("")
    return "\n".join(lines)


def environment() -> dict:
    import platform
    import sqlite3
    return {"cores": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "load_average": os.getloadavg()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--peers-venv", default="/tmp/bench-venv",
                        help="a virtualenv with datasette and flask-admin (skipped when missing)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--generate-only", action="store_true", help="make (or keep) the databases, measure nothing")
    parser.add_argument("--flask-admin-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flask_admin_worker:
        import warnings
        warnings.simplefilter("ignore")
        flask_admin_worker(args.flask_admin_worker, args.repeat, DEEP + 1)
        return
    sys.path.insert(0, str(ROOT / "platform"))
    os.environ.setdefault("LOOM_CACHE_DIR", str(DATA / "cache"))
    venv = Path(args.peers_venv)
    peers = not args.no_peers and (venv / "bin" / "datasette").exists()
    if not peers and not args.no_peers:
        print(f"no peers' virtualenv at {venv}: Datasette and Flask-Admin are skipped (see the docstring)")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = {"rows": args.rows, "repeat": args.repeat, "environment": environment(), "databases": {}}
    for kind in kinds:
        if args.regenerate or not cached(kind, args.rows):
            print(f"generating {args.rows:,} customers in {kind} ...", flush=True)
            generate(kind, args.rows)
        if args.generate_only:
            continue
        url = url_for(kind, args.rows)
        runtime = open_runtime(url)
        spec = runtime.spec
        runtime.close()
        r = results["databases"][kind] = {}
        print(f"[{kind}] Loom ...", flush=True)
        r["loom"] = bench_loom(url, args.repeat)
        print(f"[{kind}] floor ...", flush=True)
        r["floor"] = bench_floor(url, spec, args.repeat)
        print(f"[{kind}] quick search against LIKE ...", flush=True)
        r["verify"] = verify_search(url, args.repeat)
        if peers:
            print(f"[{kind}] Flask-Admin ...", flush=True)
            try:
                r["flask_admin"] = bench_flask_admin(venv, url, args.repeat)
            except Exception as e:   # a broken peer install must not lose Loom's figures
                print(f"[{kind}] Flask-Admin failed: {e}", flush=True)
            if kind == "sqlite":
                print(f"[{kind}] Datasette ...", flush=True)
                try:
                    r["datasette"] = bench_datasette(venv, DATA / f"list_{args.rows}.db", args.repeat)
                except Exception as e:
                    print(f"[{kind}] Datasette failed: {e}", flush=True)
    if args.generate_only:
        return
    results["environment"]["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "list_bench.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(report(results))


if __name__ == "__main__":
    main()
