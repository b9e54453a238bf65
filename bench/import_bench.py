"""Benchmark: importing customers from CSV and exporting them back, at several sizes.

For each size (default 10,000, 50,000 and 100,000 rows) a CSV file of CRM customers is
written (Chinese headers, dictionary labels, thousands separators, dates with slashes),
then, each in a fresh process on a fresh database:

  - import: loom.transfer.imports.import_file into the shipped CRM's `customer` (every
    row validated by the record service: required, dictionaries, patterns, rules, unique
    names against the file and the database; numbered CUS-yyyymm-nnnnn; mnemonic;
    quick-search columns; history), batches of 500;
  - export: loom.transfer.exports.export of all of them back to CSV (the list page's
    rows: labels, titles, formula guard), written to a file.

Reported per phase: wall and CPU seconds, rows per second, the machine's load, and
memory: the process's peak RSS (getrusage) before and after the phase, and the peak of
Python allocations during the phase (tracemalloc; --no-tracemalloc to skip it, it costs
time). Streaming shows as peaks that stay flat while the file grows.

    python bench/import_bench.py [--sizes 10000,50000,100000] [--postgres URL [--skip-sqlite]]
                                 [--no-tracemalloc] [--keep-duplicate-rules]

The CRM's duplicate rules (查重: customer names compared by similarity) are left out of the
metadata copy unless --keep-duplicate-rules: their per-row look-ups are the duplicate
checker's cost, not the import's, and are measured with that flag.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "platform"))

CITIES = ["北京", "上海", "深圳", "杭州", "重庆", "成都", "武汉", "南京", "苏州", "西安", "长沙", "青岛"]
TRADES = ["科技", "网络", "电子", "商贸", "实业", "医药", "能源", "建设", "汽车", "物流", "食品", "传媒"]
SUFFIXES = ["有限公司", "股份有限公司", "集团", "研究院"]
INDUSTRIES = ["制造业", "批发零售", "信息技术", "金融保险", "医疗健康"]
CATEGORIES = ["消费客户", "公利客户"]
REGIONS = ["310000", "320100", "330100", "440300", "110000"]
HEADER = ["客户名称", "简称", "客户类别", "行业", "地区", "电话", "邮箱", "年营业额", "员工人数", "成立日期", "备注"]


def name_of(i: int) -> str:
    brand = "".join(chr(0x4E00 + (i * 7919 + k * 104729) % 20900) for k in range(2))
    return f"{CITIES[i % 12]}{brand}{TRADES[(i // 12) % 12]}{SUFFIXES[i % 4]}{i}"


def write_csv(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(n):
            out.writerow([name_of(i), f"客户{i}", CATEGORIES[i % 2], INDUSTRIES[i % 5], REGIONS[i % 5],
                          f"021-{50000000 + i}", f"contact{i}@example.com", f"{(i % 977) * 10_000:,}.00",
                          i % 3000, f"{1990 + i % 30}/{1 + i % 12}/{1 + i % 28}", "由导入基准生成"])


def without_duplicate_rules(path: Path) -> None:
    """Drop the top-level `duplicates:` section of an object file."""
    kept, skipping = [], False
    for text in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if text.startswith("duplicates:"):
            skipping = True
            continue
        if skipping and text.strip() and not text.startswith((" ", "#")):
            skipping = False
        if not skipping:
            kept.append(text)
    path.write_text("".join(kept), encoding="utf-8")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    def __init__(self):
        self.wall, self.cpu, self.load = time.perf_counter(), time.process_time(), os.getloadavg()[0]

    def read(self, n: int) -> dict:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return {"seconds": wall, "cpu_seconds": cpu, "per_second": n / wall, "load": (self.load, os.getloadavg()[0])}


def _open(url, metadata):
    from loom.runtime import Runtime
    runtime = Runtime.open(metadata, url, cache=False)
    runtime.setup()
    return runtime


def _traced(enabled):
    import tracemalloc
    if enabled:
        tracemalloc.start()
    return tracemalloc


def phase_import(url: str, metadata: str, path: str, n: int, trace: bool) -> dict:
    from loom.security.actor import Actor
    from loom.transfer.imports import import_file
    from loom.records.computed import mnemonic
    runtime = _open(url, metadata)
    actor = Actor.system()
    mnemonic("预热")             # pypinyin's dictionaries loaded before measuring, as in a running server
    runtime.records.policy       # the service built
    before = peak_mb()
    tracemalloc = _traced(trace)
    clock = Clock()
    report = import_file(runtime, actor, "customer", path, batch_size=500)
    out = clock.read(n)
    traced = tracemalloc.get_traced_memory()[1] / 1048576 if trace else None
    if trace:
        tracemalloc.stop()
    assert report.created == n and not report.problems, [(p.row, p.text("en")) for p in report.problems[:5]]
    runtime.close()
    return dict(out, rss_before=before, rss_after=peak_mb(), traced_mb=traced)


def phase_export(url: str, metadata: str, path: str, n: int, trace: bool) -> dict:
    from loom.security.actor import Actor
    from loom.transfer.exports import export
    runtime = _open(url, metadata)
    nothing = {"field": "id", "op": "eq", "value": -1}   # warm up: modules imported, service built
    for _chunk in export(runtime, Actor.system(), "customer", "csv", lang="zh", where=nothing):
        pass
    before = peak_mb()
    tracemalloc = _traced(trace)
    clock = Clock()
    size = 0
    with open(path, "wb") as out:
        for chunk in export(runtime, Actor.system(), "customer", "csv", lang="zh"):
            out.write(chunk)
            size += len(chunk)
    result = clock.read(n)
    traced = tracemalloc.get_traced_memory()[1] / 1048576 if trace else None
    if trace:
        tracemalloc.stop()
    with open(path, encoding="utf-8-sig") as f:
        rows = sum(1 for _ in csv.reader(f))
    assert rows == n + 1, rows
    runtime.close()
    return dict(result, rss_before=before, rss_after=peak_mb(), traced_mb=traced, bytes=size)


def _run(fn, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _database(kind, server, tmp: Path):
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{uuid.uuid4().hex[:8]}.db'}", lambda: None
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    admin = make_url(server).set(drivername="postgresql+psycopg")
    name = f"loom_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()

    def drop():
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False), drop


def line(kind, n, phase, r) -> str:
    traced = f", Python peak {r['traced_mb']:.1f} MB" if r.get("traced_mb") is not None else ""
    return (f"{kind:<10} {n:>7,} {phase:<6} {r['seconds']:7.1f} s {r['per_second']:7,.0f}/s  CPU {r['cpu_seconds']:6.1f} s"
            f"  RSS {r['rss_before']:.0f} -> {r['rss_after']:.0f} MB{traced}  load {r['load'][0]:.1f}->{r['load'][1]:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--postgres", metavar="URL", help="Also run on a scratch database of this server.")
    parser.add_argument("--skip-sqlite", action="store_true", help="With --postgres: only PostgreSQL.")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--json", action="store_true", help="Print the raw figures as JSON too.")
    parser.add_argument("--keep-duplicate-rules", action="store_true",
                        help="Keep the customer's duplicate rules (per-row look-ups) in the metadata.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="loom-import-bench-"))
    kinds = ([] if args.skip_sqlite and args.postgres else ["sqlite"]) + (["postgresql"] if args.postgres else [])
    results = []
    metadata = tmp / "metadata"          # a copy: the run reads one version of the CRM throughout
    shutil.copytree(ROOT / "metadata", metadata)
    if not args.keep_duplicate_rules:
        without_duplicate_rules(metadata / "objects" / "customer.yaml")
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, tracemalloc "
              f"{'off' if args.no_tracemalloc else 'on'}, duplicate rules "
              f"{'kept' if args.keep_duplicate_rules else 'left out'}", flush=True)
        for n in sizes:
            source = tmp / f"customers-{n}.csv"
            write_csv(source, n)
            for kind in kinds:
                url, drop = _database(kind, args.postgres, tmp)
                try:
                    imported = _run(phase_import, url, str(metadata), str(source), n, not args.no_tracemalloc)
                    print(line(kind, n, "import", imported) + f"  file {source.stat().st_size / 1048576:.1f} MB",
                          flush=True)
                    exported = _run(phase_export, url, str(metadata), str(tmp / f"out-{n}.csv"), n, not args.no_tracemalloc)
                    print(line(kind, n, "export", exported) + f"  file {exported['bytes'] / 1048576:.1f} MB",
                          flush=True)
                    results.append({"database": kind, "rows": n, "import": imported, "export": exported})
                finally:
                    drop()
        if args.json:
            print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
