"""Benchmark: what the customer's duplicate rules (查重) add to a create at 1,000,000 customers.

    /work/venv/bin/python bench/duplicates_bench.py [--rows 1000000] [--db sqlite|postgresql|both]
                                                    [--creates 300] [--warmup 30]

Data: bench/list_bench.py's cached database (made by that script when missing; every row
has its duplicate keys, as the record service stores them). It stays at `--rows`
customers: every create runs in its own write transaction (BEGIN IMMEDIATE on SQLite),
which is rolled back.

Two runtimes over the same database, in one process: the shipped metadata (rules on:
similar company names, same credit code, same phone) and a copy of it without the
customer's `duplicates:` section (rules off; opened without a schema sync, so the
database keeps its duplicate-key columns and indexes). The same creates go through
`RecordService.create` in both, alternating which goes first, as the generated sales
manager (a match's readability is checked with the manager's scope, department_tree),
with allow_duplicates=True (the confirmed second attempt: the check runs in full, the
write goes ahead).

Three kinds of new customer, in turn:
- `fresh`: a brand no customer has (the name's similarity block is nearly empty);
- `common`: the most common brand (华信: thousands of customers share the block's first two
  characters) with a new trade, so the block is full but no name is close enough;
- `duplicate`: a company that exists, written with a city the table does not use
  (乌鲁木齐华信科技有限公司 ~ 北京华信科技有限公司): the rule matches and warns.
Each create has a new phone and, one in two, a new credit code. Reported: the median and
p95 of each arm (wall and this process's CPU), and the added time per create (median of
the paired differences, and the difference of the medians). Results go to
bench/results/duplicates_bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "platform"))

import list_bench as lb  # noqa: E402  (the cached databases, the runtime opener)
from import_bench import without_duplicate_rules  # noqa: E402

KINDS = ["fresh", "common", "duplicate"]
CITIES_UNUSED = ["乌鲁木齐", "香港", "台湾"]   # in the company normalizer's places, not in the generated names
NEW_TRADES = ["云计算", "数据服务", "智能装备", "精密仪器", "检测技术", "节能服务", "咨询服务", "工程设计"]


class Rollback(Exception):
    pass


def manager_actor(runtime):
    """The generated sales manager (销售部, scope department_tree): a rep may not set the
    credit code (field permissions), a manager may."""
    from loom.security.organization import actor_for, find_user
    return actor_for(runtime, find_user(runtime, "manager"))


def values(i: int, kind: str, rng: random.Random, brands: list[str]) -> dict:
    if kind == "fresh":      # two random characters: a block of a few names at most
        name = f"{chr(0x4E00 + rng.randrange(0x5000))}{chr(0x4E00 + rng.randrange(0x5000))}" \
               f"{rng.choice(NEW_TRADES)}{i}号有限公司"
    elif kind == "common":   # 北京 is one of the places the normalizer drops: the block is 华信's
        name = f"北京华信{rng.choice(NEW_TRADES)}{i}号有限公司"
    else:                    # an existing company's key: 乌鲁木齐华信科技有限公司 -> 华信科技
        name = f"{CITIES_UNUSED[i % len(CITIES_UNUSED)]}{brands[rng.randrange(50)]}{rng.choice(lb.TRADES)[0]}有限公司"
    out = {"name": name, "category": rng.choice(["consumer", "public"]), "industry": "it", "region": "310000",
           "phone": f"199{rng.randrange(10**7, 10**8)}"}
    if i % 2:
        out["tax_id"] = f"91990000ABCD{i:06d}"
    return out


def check_values(spec) -> None:
    """The dictionary codes used above exist (the benchmark would measure errors otherwise)."""
    assert "it" in spec.dictionaries["industry"].items
    assert "310000" in spec.dictionaries["region"].items, list(spec.dictionaries["region"].items)[:5]


def create_once(runtime, actor, vals) -> tuple[float, float, dict]:
    t, c = time.perf_counter(), time.process_time()
    created = None
    try:
        with runtime.records.transaction() as conn:
            created = runtime.records.create("customer", dict(vals), actor, conn=conn, allow_duplicates=True)
            raise Rollback
    except Rollback:
        pass
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000, created


def plans(runtime, kind: str) -> dict:
    """The database's plans for what duplicates.find runs: for the similar-name rule one
    statement (the same key, the block's nearest keys above and below it), for an exact
    rule an equality look-up."""
    import sqlalchemy as sa
    table = runtime.table("customer")
    col, value = table.c.dup_same_company, "华信科技"
    q = sa.select(table.c.id, table.c.owner, col).where(table.c.deleted_at.is_(None))
    parts = (q.where(col == value).limit(20),
             q.where(col > value, col < "华信\uffff").order_by(col, table.c.id).limit(150),
             q.where(col < value, col >= "华信").order_by(col.desc(), table.c.id.desc()).limit(150))
    statements = {"similar name": sa.union_all(*[part.subquery().select() for part in parts]),
                  "same phone": q.where(table.c.dup_same_phone == "19912345678").limit(20)}
    out = {}
    with runtime.engine.connect() as conn:
        for name, statement in statements.items():
            compiled = str(statement.compile(runtime.engine, compile_kwargs={"literal_binds": True}))
            if kind == "sqlite":
                out[name] = "; ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled))
            else:
                out[name] = " / ".join(r[0].strip() for r in conn.exec_driver_sql(
                    "EXPLAIN " + compiled.replace("%", "%%")))
    return out


def stats(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median": statistics.median(samples), "p95": ordered[max(0, -(-95 * len(ordered) // 100) - 1)],
            "n": len(samples)}


def bench(kind: str, rows: int, creates: int, warmup: int) -> dict:
    from loom.runtime import Runtime
    url = lb.url_for(kind, rows)
    on = lb.open_runtime(url)
    spec_dir = Path(tempfile.mkdtemp(prefix="loom-dup-bench-")) / "metadata"
    shutil.copytree(lb.ROOT / "metadata", spec_dir)
    without_duplicate_rules(spec_dir / "objects" / "customer.yaml")
    off = Runtime.open(str(spec_dir), url)       # no sync: the database keeps its columns and indexes
    assert on.spec.objects["customer"].duplicates and not off.spec.objects["customer"].duplicates
    check_values(on.spec)
    actors = {"on": manager_actor(on), "off": manager_actor(off)}
    runtimes = {"on": on, "off": off}
    with on.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT count(*) FROM customer").scalar()
    plan = plans(on, kind)
    print(f"  [{kind}] block look-up plan: {plan}", flush=True)
    rng = random.Random(7)
    brands = lb.brands()
    samples = {k: {"on": [], "off": [], "on_cpu": [], "off_cpu": [], "diff": [], "warned": 0} for k in KINDS}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    for i in range(warmup + creates):
        k = KINDS[i % len(KINDS)]
        vals = values(i, k, rng, brands)
        order = ["on", "off"] if i % 2 else ["off", "on"]
        got = {}
        for arm in order:
            got[arm] = create_once(runtimes[arm], actors[arm], vals)
        if i < warmup:
            continue
        s = samples[k]
        for arm in ("on", "off"):
            s[arm].append(got[arm][0])
            s[arm + "_cpu"].append(got[arm][1])
        s["diff"].append(got["on"][0] - got["off"][0])
        created = got["on"][2]
        s["warned"] += bool(created and created.get("id") and k == "duplicate")
    elapsed = time.perf_counter() - t0
    with on.engine.connect() as conn:
        after = conn.exec_driver_sql("SELECT count(*) FROM customer").scalar()
    assert before == after, (before, after)
    found = matches_found(on, actors["on"], rng, brands)
    on.close()
    off.close()
    out = {"plan": plan, "rows_before": before, "rows_after": after, "seconds": elapsed,
           "load": [load0, os.getloadavg()], "matches": found}
    everything = {"on": [], "off": [], "on_cpu": [], "off_cpu": [], "diff": []}
    for k in KINDS:
        s = samples[k]
        for key in everything:
            everything[key] += s[key]
        out[k] = {key: stats(s[key]) for key in everything}
    out["all"] = {key: stats(v) for key, v in everything.items()}
    return out


def matches_found(runtime, actor, rng, brands) -> dict:
    """What the rules say for one create of each kind (outside the timings): a check that
    the `duplicate` kind is found and the others are not."""
    from loom.records import duplicates
    obj = runtime.spec.objects["customer"]
    out = {}
    with runtime.engine.connect() as conn:
        for i, k in enumerate(KINDS):
            vals = values(10_000 + i, k, rng, brands)
            found = duplicates.find(conn, runtime, obj, dict(vals), actor)
            out[k] = {"name": vals["name"], "matches": [(m.rule.name, m.id) for m in found][:5], "n": len(found)}
    return out


def report(results: dict) -> str:
    lines = []
    for kind, r in results["databases"].items():
        lines += [f"### {kind} ({r['rows_before']:,} customers, {results['creates']} creates per arm)", "",
                  "Look-up plans: " + "; ".join(f"{k}: {v}" for k, v in r["plan"].items()), "",
                  "| new customer | rules off | rules on | added (median of pairs) | added (p95 of pairs) "
                  "| added (difference of medians) | CPU off / on |", "|---|---|---|---|---|---|---|"]
        for k in KINDS + ["all"]:
            e = r[k]
            lines.append(f"| {k} | {lb.fmt(e['off'])} | {lb.fmt(e['on'])} | {e['diff']['median']:.2f} "
                         f"| {e['diff']['p95']:.2f} | {e['on']['median'] - e['off']['median']:.2f} "
                         f"| {e['off_cpu']['median']:.1f} / {e['on_cpu']['median']:.1f} |")
        lines += ["", "Matches (one create of each kind, outside the timings): " + "; ".join(
            f"{k} {v['name']}: {v['n']}" for k, v in r["matches"].items()),
            f"Load average {r['load'][0][0]:.1f} -> {r['load'][1][0]:.1f}; {r['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--creates", type=int, default=300, help="measured creates per arm")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOOM_CACHE_DIR", str(lb.DATA / "cache"))
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = {"rows": args.rows, "creates": args.creates, "environment": lb.environment(), "databases": {}}
    for kind in kinds:
        if not lb.cached(kind, args.rows):
            print(f"generating {args.rows:,} customers in {kind} (bench/list_bench.py) ...", flush=True)
            lb.generate(kind, args.rows)
        print(f"[{kind}] {args.warmup} + {args.creates} creates per arm ...", flush=True)
        results["databases"][kind] = bench(kind, args.rows, args.creates, args.warmup)
    results["environment"]["load_average_after"] = os.getloadavg()
    lb.RESULTS.mkdir(parents=True, exist_ok=True)
    (lb.RESULTS / "duplicates_bench.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(report(results))


if __name__ == "__main__":
    main()
