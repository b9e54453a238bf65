"""Benchmark: writing records through the record service.

Measures, in the same run and on the same kind of database:
  - service: N single-record creates through RecordService.create (an object with an
    autonumber, a mnemonic, quick-search columns and history), one transaction each;
  - raw: the same N rows (values computed beforehand) inserted with SQLAlchemy Core, each
    in its own transaction together with the counter update (the floor for a numbered
    single-row write);
  - bulk: RecordService.bulk_create of M rows (SQLite only unless --bulk-everywhere), with
    time and the process's peak memory (getrusage; each phase runs in its own process so
    the peaks do not mix).

    python bench/records_bench.py [--creates 10000] [--bulk 100000] [--postgres URL]

--postgres takes a server URL (postgresql://postgres@127.0.0.1:5432/postgres); a scratch
database is created there and dropped afterwards.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "platform"))

METADATA = {
    "app.yaml": "app: bench\nlabel: {en: Bench, zh: 基准}\nlanguages: [zh, en]\n",
    "roles.yaml": "roles:\n  - {name: admin, superuser: true}\n",
    "objects/account.yaml": """\
object: account
label: {en: Account, zh: 客户}
title: name
fields:
  - {name: code, type: autonumber, numbering: {pattern: "AC{yyyy}-{seq:6}", reset: yearly}}
  - {name: name, type: text, required: true, max_length: 100}
  - {name: mnemonic, type: mnemonic, source: name}
  - {name: phone, type: phone}
  - {name: employees, type: integer, min: 0}
  - {name: revenue, type: money, min: 0}
search:
  quick: [name, code, mnemonic, phone]
""",
}
CITIES = ["北京", "上海", "深圳", "杭州", "重庆", "成都", "武汉", "南京", "苏州", "西安", "长沙", "青岛"]
TRADES = ["科技", "网络", "电子", "商贸", "实业", "医药", "能源", "建设", "汽车", "物流", "食品", "传媒"]
SUFFIXES = ["有限公司", "股份有限公司", "集团", "研究院"]


def name_of(i: int) -> str:
    """A company name: city, a two-character brand (from some 20,000 characters, so brands
    rarely repeat and per-word caches get no easy ride), trade, legal form, number."""
    brand = "".join(chr(0x4E00 + (i * 7919 + k * 104729) % 20900) for k in range(2))
    return f"{CITIES[i % 12]}{brand}{TRADES[(i // 12) % 12]}{SUFFIXES[i % 4]}{i}"


def values_of(i: int) -> dict:
    return {"name": name_of(i), "phone": f"021-{50000000 + i}", "employees": i % 500, "revenue": f"{i * 10}.5"}


def write_metadata(root: Path) -> Path:
    for rel, text in METADATA.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def open_runtime(root, url):
    from loom.metadata import load_spec
    from loom.runtime import Runtime
    from loom.storage.database import create_engine
    runtime = Runtime(load_spec(root), create_engine(url))
    runtime.setup()
    return runtime


class Clock:
    """Wall time, this process's CPU time, and the machine's load while measuring: on a
    shared machine the wall time stretches with the load, the CPU time much less."""

    def __init__(self):
        self.wall, self.cpu, self.load = time.perf_counter(), time.process_time(), os.getloadavg()[0]

    def read(self, n: int) -> dict:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return {"seconds": wall, "cpu_seconds": cpu, "per_second": n / wall,
                "load": (self.load, os.getloadavg()[0])}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- phases (each in a process of its own) -------------------------------------------------

def phase_service(root, url, n):
    from loom.security.actor import Actor
    runtime = open_runtime(root, url)
    svc, actor = runtime.records, Actor.system()
    for i in range(50):  # warm up: statement caches, pypinyin's dictionary
        svc.create("account", values_of(10_000_000 + i), actor)
    clock = Clock()
    for i in range(n):
        svc.create("account", values_of(i), actor)
    out = clock.read(n)
    runtime.close()
    return out


def phase_raw(root, url, n):
    """The same rows as the service writes, computed beforehand; Core inserts plus the
    counter update, one transaction per row."""
    import datetime as dt
    import sqlalchemy as sa
    from loom.records import computed
    from loom.records.numbering import next_values
    from loom.storage.database import write_transaction
    runtime = open_runtime(root, url)
    table, counter = runtime.table("account"), runtime.schema.system["counter"]
    year = dt.date.today().year
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for i in range(n + 50):
        v = values_of(i if i < n else 10_000_000 + i)
        mnemonic = computed.mnemonic(v["name"])
        quick = [v["name"], None, mnemonic, v["phone"]]
        rows.append(dict(name=v["name"], phone=v["phone"], employees=v["employees"], revenue=v["revenue"],
                         mnemonic=mnemonic, created_at=now, updated_at=now, version=1,
                         search_text=computed.search_text(quick), search_tokens=computed.search_tokens(quick)))
    insert = table.insert()

    def write(row):
        with write_transaction(runtime.engine) as conn:
            seq = next_values(conn, counter, f"account.code|AC{year}-#|{year}", 1, 1, 1)[0]
            conn.execute(insert, dict(row, code=f"AC{year}-{seq:06d}"))
    for row in rows[n:]:
        write(row)
    clock = Clock()
    for row in rows[:n]:
        write(row)
    out = clock.read(n)
    runtime.close()
    return out


def phase_bulk(root, url, m, batch_size):
    from loom.security.actor import Actor
    runtime = open_runtime(root, url)
    before = peak_mb()
    clock = Clock()
    result = runtime.records.bulk_create("account", (values_of(i) for i in range(m)), Actor.system(),
                                         batch_size=batch_size)
    out = clock.read(m)
    assert len(result.created) == m and not result.errors, result.errors[:3]
    runtime.close()
    return dict(out, peak_mb=peak_mb(), peak_mb_before=before)


def _run(fn, *args):
    """A phase in a fresh process: its own imports, connections and memory peak."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


# ---- databases -----------------------------------------------------------------------------

class Database:
    def __init__(self, kind, server=None):
        self.kind, self.server, self.made = kind, server, []
        self.tmp = Path(tempfile.mkdtemp(prefix="loom-bench-"))

    def new(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / f'{uuid.uuid4().hex[:8]}.db'}"
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url
        admin = make_url(self.server).set(drivername="postgresql+psycopg")
        name = f"loom_bench_{uuid.uuid4().hex[:10]}"
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        self.made.append((admin, name))
        return admin.set(database=name).render_as_string(hide_password=False)

    def drop(self):
        import shutil
        import sqlalchemy as sa
        for admin, name in self.made:
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)


def bench(kind, server, args, root) -> dict:
    db = Database(kind, server)
    try:
        out = {"database": kind}
        out["raw"] = _run(phase_raw, str(root), db.new(), args.creates)
        out["service"] = _run(phase_service, str(root), db.new(), args.creates)
        out["ratio"] = out["service"]["seconds"] / out["raw"]["seconds"]
        if kind == "sqlite" or args.bulk_everywhere:
            out["bulk"] = _run(phase_bulk, str(root), db.new(), args.bulk, args.batch_size)
        return out
    finally:
        db.drop()


def report(result: dict, args) -> str:
    s, r = result["service"], result["raw"]

    def load(x):
        return f"load {x['load'][0]:.1f}->{x['load'][1]:.1f}"
    lines = [f"{result['database']}: {args.creates:,} single creates: service {s['seconds']:.1f} s "
             f"({s['per_second']:,.0f}/s, CPU {s['cpu_seconds']:.1f} s, {load(s)}), raw Core {r['seconds']:.1f} s "
             f"({r['per_second']:,.0f}/s, CPU {r['cpu_seconds']:.1f} s, {load(r)}): ratio {result['ratio']:.2f}x "
             f"wall, {s['cpu_seconds'] / r['cpu_seconds']:.2f}x CPU (target <= 3x)"]
    if "bulk" in result:
        b = result["bulk"]
        lines.append(f"{result['database']}: bulk_create {args.bulk:,} rows (batches of {args.batch_size}): "
                     f"{b['seconds']:.1f} s ({b['per_second']:,.0f}/s, CPU {b['cpu_seconds']:.1f} s, {load(b)}), "
                     f"peak RSS {b['peak_mb']:.0f} MB ({b['peak_mb_before']:.0f} MB before the import) "
                     f"(target < 60 s)")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=10_000)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL server")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--bulk-everywhere", action="store_true", help="run the bulk phase on PostgreSQL too")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-bench-md-") as folder:
        run(args, write_metadata(Path(folder)))


def run(args, root):
    results = []
    if not args.no_sqlite:
        results.append(bench("sqlite", None, args, root))
        print(report(results[-1], args), flush=True)
    if args.postgres:
        results.append(bench("postgresql", args.postgres, args, root))
        print(report(results[-1], args), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
