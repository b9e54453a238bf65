"""Benchmark: list pages and quick search under permission scopes at 1,000,000 customers.

    /work/venv/bin/python bench/scope_bench.py [--rows 1000000] [--db sqlite|postgresql|both]
                                               [--repeat 30] [--rebuild]

Data: a copy of bench/list_bench.py's cached database (made by that script when missing),
so the list benchmark's own data stays as it generated it: bench/data/scope_<rows>.db on
SQLite, the PostgreSQL database `<list database>_scope` (CREATE DATABASE ... TEMPLATE).
On the copy, made once and marked in loom_meta (`bench:scope`; --rebuild makes it again):

- a five-level sales organisation under the CRM's seeded `sales` department:
  sales > 3 regions > 3 provinces each > 3 cities each > 2 teams each (54 teams);
- two sales reps (role sales_rep, read scope `own`) per team, 108 in all;
- managers (role sales_manager, read scope `department_tree`) at the top (`sales`, whose
  subtree holds every owned customer), at a province (1/9 of them) and at a city (1/27);
- every customer reassigned: 1 in 100 to the pool (公海: no owner, which reps and
  managers read too), the others spread evenly over the 108 reps, each customer's
  department being its owner's team.

Measured in one process, after warm-up, server time (median, p95, this process's CPU
median) of Flask test-client requests for the full list page of customers, signed in as
the superuser (admin), the top manager, the province manager, the city manager and a
rep: first page, a filter, a page 20 deep by cursor, quick search of 4 characters, of 2
Chinese characters, of pinyin initials, of a phone fragment, and the capped count. The
users are measured one after the other for each request, so load drift hits all alike.
Every page's rows are checked against what the user's scope allows. Results go to
bench/results/scope_bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "platform"))

import list_bench as lb  # noqa: E402  (the cached databases, users, runtime opener, timing)

SCOPE_VERSION = 1
POOL_EVERY = 100        # customer ids with id % 100 == POOL_SLOT go to the pool
POOL_SLOT = 37
SPREAD = 7919           # owner = reps[(id * SPREAD) % len(reps)]: coprime with 108
DEEP = 20
REGIONS = [("east", "华东大区"), ("north", "华北大区"), ("south", "华南大区")]
USERS = [   # (key, username, what they are)
    ("admin", "admin", "superuser"),
    ("top", "mgr_top", "sales_manager at 销售部 (level 1: every owned customer)"),
    ("province", "mgr_province", "sales_manager at a province (level 3: 1/9)"),
    ("city", "mgr_city", "sales_manager at a city (level 4: 1/27)"),
    ("rep", "rep_1_1_1_1_1", "sales_rep (own: 1/108, and the pool)"),
]
CASES = [
    ("first", "first page", {}),
    ("filtered", "filter f.category=public", {"f.category": "public"}),
    ("deep", f"page {DEEP + 1} (keyset cursor)", {"deep": True}),
    ("q_long", "search 网络科技 (4 chars)", {"q": "网络科技"}),
    ("q_two", "search 华信 (2 Chinese chars)", {"q": "华信"}),
    ("q_mnemonic", "search hxkj (pinyin initials)", {"q": "hxkj"}),
    ("q_phone", "search 8888 (phone fragment)", {"q": "8888"}),
    ("count", "count (capped at 1,000)", {"count": True}),
]


# ---- the copy and its organisation ------------------------------------------------------------

def scope_db(kind: str, rows: int) -> str:
    return str(lb.DATA / f"scope_{rows}.db") if kind == "sqlite" else lb.pg_name(rows) + "_scope"


def scope_url(kind: str, rows: int) -> str:
    return f"sqlite:///{scope_db(kind, rows)}" if kind == "sqlite" else \
        lb.PG_SERVER.rsplit("/", 1)[0] + "/" + scope_db(kind, rows)


def scope_marker(rows: int) -> str:
    return json.dumps({"rows": rows, "list": lb.GEN_VERSION, "scope": SCOPE_VERSION})


def ready(kind: str, rows: int) -> bool:
    import sqlalchemy as sa
    if kind == "sqlite" and not Path(scope_db(kind, rows)).exists():
        return False
    engine = sa.create_engine(scope_url(kind, rows))
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT value FROM loom_meta WHERE key = 'bench:scope'").scalar() \
                == scope_marker(rows)
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def copy_database(kind: str, rows: int) -> None:
    import sqlalchemy as sa
    if kind == "sqlite":
        import sqlite3
        target = Path(scope_db(kind, rows))
        for suffix in ("", "-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        src = sqlite3.connect(lb.DATA / f"list_{rows}.db")
        dst = sqlite3.connect(target)
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
        dst.close()
        src.close()
        return
    engine = sa.create_engine(lb.PG_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scope_db(kind, rows)}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{scope_db(kind, rows)}" TEMPLATE "{lb.pg_name(rows)}"')
    engine.dispose()


def organisation(runtime) -> dict:
    """The five-level tree, its reps and managers (created when missing: idempotent)."""
    import sqlalchemy as sa

    from loom.security.actor import Actor
    from loom.security.organization import create_user, find_user
    svc = runtime.records
    table = runtime.table("department")
    with runtime.engine.connect() as conn:
        existing = dict(conn.execute(sa.select(table.c.code, table.c.id)).all())

    def department(code, name, parent):
        if code not in existing:
            existing[code] = svc.create("department", {"code": code, "name": name, "parent": existing[parent]},
                                        Actor.system(), system=True)["id"]
        return code

    def user(username, name, role, dept, password=False):
        found = find_user(runtime, username)
        if found is None:
            found = create_user(runtime, username, name=name, roles=[role], department=dept,
                                password=lb.PASSWORD if password else None)
        return found["id"]

    teams, reps, managers = [], [], {}
    for r, (rcode, rname) in enumerate(REGIONS, 1):
        region = department(f"s_{rcode}", rname, "sales")
        for p in range(1, 4):
            province = department(f"{region}_{p}", f"{rname}{p}省区", region)
            for c in range(1, 4):
                city = department(f"{province}_{c}", f"{rname}{p}省区{c}市", province)
                for t in range(1, 3):
                    teams.append(department(f"{city}_{t}", f"{rname}{p}-{c}市{t}组", city))
    for team in teams:
        for k in range(1, 3):
            username = "rep_" + "_".join(team.split("_")[1:]).replace("east", "1").replace("north", "2") \
                .replace("south", "3") + f"_{k}"
            reps.append((user(username, username, "sales_rep", team, password=username == USERS[-1][1]),
                         existing[team]))
    managers["top"] = user("mgr_top", "销售总监", "sales_manager", "sales", password=True)
    managers["province"] = user("mgr_province", "华东1省区经理", "sales_manager", "s_east_1", password=True)
    managers["city"] = user("mgr_city", "华东1省区1市经理", "sales_manager", "s_east_1_1", password=True)
    return {"teams": [existing[t] for t in teams], "reps": reps, "managers": managers, "departments": existing}


def build(kind: str, rows: int) -> None:
    """Copy the list benchmark's database, add the organisation, reassign the customers."""
    import sqlalchemy as sa

    from loom.storage import search_index
    t0 = time.perf_counter()
    copy_database(kind, rows)
    print(f"  [{kind}] copied in {time.perf_counter() - t0:.0f} s", flush=True)
    url = scope_url(kind, rows)
    runtime = lb.open_runtime(url)
    org = organisation(runtime)
    reps = org["reps"]
    print(f"  [{kind}] {len(org['teams'])} teams, {len(reps)} reps, {time.perf_counter() - t0:.0f} s", flush=True)
    with runtime.engine.begin() as conn:
        if kind == "postgresql":   # the trigram/token GIN indexes would be updated row by row: rebuild them after
            for name in ("sx_customer_trgm", "sx_customer_tok"):
                conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')
        conn.exec_driver_sql("CREATE TEMP TABLE scope_map (k INTEGER PRIMARY KEY, owner INTEGER, department INTEGER)")
        conn.execute(sa.text("INSERT INTO scope_map VALUES (:k, :o, :d)"),
                     [{"k": k, "o": o, "d": d} for k, (o, d) in enumerate(reps)])
        n = len(reps)
        if kind == "sqlite":   # FTS triggers fire only on the search columns: these updates leave them alone
            conn.exec_driver_sql(
                f"UPDATE customer SET "
                f"owner = CASE WHEN id % {POOL_EVERY} = {POOL_SLOT} THEN NULL ELSE "
                f"(SELECT owner FROM scope_map WHERE k = (customer.id * {SPREAD}) % {n}) END, "
                f"department = CASE WHEN id % {POOL_EVERY} = {POOL_SLOT} THEN NULL ELSE "
                f"(SELECT department FROM scope_map WHERE k = (customer.id * {SPREAD}) % {n}) END")
        else:
            conn.exec_driver_sql(
                f"UPDATE customer SET "
                f"owner = CASE WHEN mod(customer.id, {POOL_EVERY}) = {POOL_SLOT} THEN NULL ELSE m.owner END, "
                f"department = CASE WHEN mod(customer.id, {POOL_EVERY}) = {POOL_SLOT} THEN NULL ELSE m.department END "
                f"FROM scope_map m WHERE m.k = mod(customer.id::bigint * {SPREAD}, {n})")
        print(f"  [{kind}] customers reassigned, {time.perf_counter() - t0:.0f} s", flush=True)
    runtime.close()
    if kind == "postgresql":
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
            conn.exec_driver_sql("VACUUM FULL customer")   # the update left a dead copy of every row
        engine.dispose()
    runtime = lb.open_runtime(url)
    with runtime.engine.begin() as conn:
        if kind == "postgresql":
            conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
        search_index.ensure(conn, runtime.spec, runtime.schema)
        conn.exec_driver_sql("DELETE FROM loom_meta WHERE key = 'bench:scope'")
        conn.execute(sa.text("INSERT INTO loom_meta (key, value) VALUES ('bench:scope', :v)"), {"v": scope_marker(rows)})
    runtime.close()
    if kind == "sqlite":
        import sqlite3
        db = sqlite3.connect(scope_db(kind, rows), isolation_level=None)
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    else:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()
    print(f"  [{kind}] scope database ready in {time.perf_counter() - t0:.0f} s", flush=True)


# ---- what each user may see ------------------------------------------------------------------

def visibility(url: str) -> dict:
    """Per user: how many customers their scope lets them read, and a check function's
    inputs (owner / department set) for verifying pages."""
    import sqlalchemy as sa

    from loom.security.organization import actor_for, find_user
    runtime = lb.open_runtime(url)
    t = runtime.table("customer")
    out = {}
    with runtime.engine.connect() as conn:
        for key, username, _what in USERS:
            actor = actor_for(runtime, find_user(runtime, username, conn))
            where = runtime.records.policy.filter(conn, actor, runtime.spec.objects["customer"], t)
            n = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.deleted_at.is_(None), where)).scalar()
            out[key] = {"id": actor.id, "department": actor.department_id, "visible": n,
                        "subtree": runtime.records.policy.subtree(conn, actor.department_id)}
    runtime.close()
    return out


def allowed_ids(url: str, key: str, vis: dict, ids: list) -> bool:
    """Whether every listed customer is one the user's scope allows (own / subtree / pool)."""
    import sqlalchemy as sa
    if key == "admin" or not ids:
        return True
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, owner, department FROM customer WHERE id IN (%s)"
                                    % ",".join(str(int(i)) for i in ids))).all()
    engine.dispose()
    v = vis[key]
    for _id, owner, department in rows:
        if owner is None:
            continue   # the pool
        if key == "rep" and owner != v["id"]:
            return False
        if key != "rep" and department not in v["subtree"]:
            return False
    return len(rows) == len(ids)


# ---- the run -----------------------------------------------------------------------------------

def bench(url: str, repeat: int, vis: dict) -> dict:
    from urllib.parse import urlencode
    app, admin = lb.loom_client(url)
    clients = {"admin": admin}
    for key, username, _what in USERS[1:]:
        clients[key] = lb.loom_client(url, username, app=app)[1]
    deep = {key: lb.loom_deep_path(c, DEEP) for key, c in clients.items()}
    out = {key: {} for key in clients}
    for case, _label, args in CASES:
        for key, client in clients.items():
            if args.get("count"):
                path = "/o/customer/count"
            elif args.get("deep"):
                path = deep[key]
            else:
                path = "/o/customer/?" + urlencode(args)
            body = lb.loom_get(client, path)
            entry = {"path": path, "page": lb.timed(lambda: lb.loom_get(client, path), repeat)}
            if args.get("count"):
                entry["text"] = body.split(">")[1].split("<")[0]
            else:
                entry["ids"] = lb.ids_in(body, r'class="row-link" href="/o/customer/(\d+)"')   # reps have no checkboxes
                entry["allowed"] = allowed_ids(url, key, vis, entry["ids"])
            out[key][case] = entry
            print(f"    {case:11s} {key:9s} {lb.fmt(entry['page'])} ms (cpu {entry['page']['cpu']:.1f}) "
                  f"{len(entry.get('ids', []))} rows {entry.get('text', '')}", flush=True)
    app.extensions["loom"].runtime.close()
    return out


def report(results: dict) -> str:
    lines = []
    keys = [k for k, _u, _w in USERS]
    for kind, r in results["databases"].items():
        vis, m = r["visibility"], r["measured"]
        lines += [f"### {kind} ({results['rows']:,} customers)", "",
                  "Readable customers: " + ", ".join(f"{k} {vis[k]['visible']:,}" for k in keys) + ".", "",
                  "| request | " + " | ".join(keys) + " | worst / admin |",
                  "|---|" + "---|" * (len(keys) + 1)]
        for case, label, _args in CASES:
            base = m["admin"][case]["page"]["median"]
            cells = []
            for k in keys:
                e = m[k][case]
                cell = lb.fmt(e["page"])
                if k != "admin":
                    cell += f" ({e['page']['median'] / base:.2f}×)"
                if "ids" in e:
                    cell += f" [{len(e['ids'])}{'' if e['allowed'] else ' NOT ALLOWED'}]"
                else:
                    cell += f" [{e['text']}]"
                cells.append(cell)
            worst = max(m[k][case]["page"]["median"] for k in keys[1:]) / base
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {worst:.2f}× |")
        lines += ["", "CPU medians (ms): " + "; ".join(
            f"{case} " + " / ".join(f"{m[k][case]['page']['cpu']:.1f}" for k in keys) for case, _l, _a in CASES), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true", help="copy the list database and build the organisation again")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("LOOM_CACHE_DIR", str(lb.DATA / "cache"))
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = {"rows": args.rows, "repeat": args.repeat, "environment": lb.environment(), "databases": {}}
    for kind in kinds:
        if not lb.cached(kind, args.rows):
            print(f"generating {args.rows:,} customers in {kind} (bench/list_bench.py) ...", flush=True)
            lb.generate(kind, args.rows)
        if args.rebuild or not ready(kind, args.rows):
            print(f"building the organisation on a copy ({kind}) ...", flush=True)
            build(kind, args.rows)
        if args.build_only:
            continue
        url = scope_url(kind, args.rows)
        vis = visibility(url)
        print(f"[{kind}] load {os.getloadavg()[0]:.1f}; readable: "
              + ", ".join(f"{k} {v['visible']:,}" for k, v in vis.items()), flush=True)
        load0 = os.getloadavg()
        measured = bench(url, args.repeat, vis)
        results["databases"][kind] = {"visibility": {k: {kk: vv for kk, vv in v.items() if kk != "subtree"}
                                                     for k, v in vis.items()},
                                      "measured": measured, "load": [load0, os.getloadavg()]}
    if args.build_only:
        return
    results["environment"]["load_average_after"] = os.getloadavg()
    lb.RESULTS.mkdir(parents=True, exist_ok=True)
    (lb.RESULTS / "scope_bench.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(report(results))


if __name__ == "__main__":
    main()
