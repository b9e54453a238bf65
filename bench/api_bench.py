"""Benchmark: API list throughput under load, gunicorn with 4 workers on PostgreSQL.

In the same run, with the same gunicorn settings and the same load generator (wrk, a
separate process), it measures:
  - the floor: a minimal Flask app answering the same request with one raw SQL query
    (the same 50 customers, same order, the same columns as Loom's answer) serialized
    with json.dumps;
  - Loom: GET /api/v1/customer?limit=50 with a personal token (authentication, the
    permission filter, field security, serialization — everything a real call does);
  - Loom: GET /api/v1/customer/<id> and a quick search (?q=科技).
Reported: requests/s, p50/p99 latency, non-2xx responses and socket errors (must be 0),
and the load average before and after each scenario (the machine may be shared). Before
the load, one request of each kind is checked: 200, 50 customers (the floor's and Loom's
the same ids in the same order, the same columns), the record asked for, 50 search
results, and 401 for a wrong token and for none. Each scenario starts with a short wrk
run that is not counted (warm-up).

The data is loaded through the record service, then ANALYZEd: without statistics (a
server with autovacuum off, or before autovacuum comes round) PostgreSQL plans the list
for an empty table and sorts the whole table on every request.

    python bench/api_bench.py [--rows 20000] [--seconds 20] [--connections 16] [--warmup 3]

Needs PostgreSQL at 127.0.0.1:5432 (user postgres) and `wrk` (Debian package).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "platform"))
PG = os.environ.get("LOOM_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DB = "loom_bench_api"

FLOOR = textwrap.dedent("""
    import json, os
    import sqlalchemy as sa
    from flask import Flask, Response
    engine = sa.create_engine(os.environ["LOOM_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"),
                              connect_args={"prepare_threshold": None})
    app = Flask(__name__)
    SQL = sa.text(f"SELECT {os.environ['LOOM_BENCH_COLUMNS']} "
                  "FROM customer WHERE deleted_at IS NULL ORDER BY updated_at DESC, id DESC LIMIT 51")

    @app.route("/api/v1/customer")
    def customers():
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(SQL)]
        for row in rows:
            row["_title"] = row["name"]
        body = {"data": rows[:50], "has_more": len(rows) > 50}
        return Response(json.dumps(body, default=str, ensure_ascii=False), mimetype="application/json")
""")


def prepare(rows: int):
    import sqlalchemy as sa
    from loom.runtime import Runtime
    from loom.security import tokens
    from loom.security.organization import actor_for, create_user
    admin = sa.create_engine(f"{PG}/postgres".replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{DB}"')
    admin.dispose()
    url = f"{PG}/{DB}"
    runtime = Runtime.open(ROOT / "metadata", url, cache=False)
    runtime.setup()
    user = create_user(runtime, "bench", password="secret123", roles=["admin"])
    actor = actor_for(runtime, user)
    prefixes = ["华信", "明远", "东方", "中科", "新华", "长城", "金桥", "天元", "博雅", "恒通"]
    suffixes = ["科技有限公司", "贸易有限公司", "网络科技有限公司", "电子有限公司", "实业有限公司"]
    values = ({"name": f"{prefixes[i % 10]}{i}{suffixes[i % 5]}", "phone": f"021-{50000000 + i}",
               "category": "consumer"} for i in range(rows))
    started = time.perf_counter()
    result = runtime.records.bulk_create("customer", values, actor, batch_size=1000, allow_duplicates=True)
    print(f"prepared {len(result.created)} customers through the record service in "
          f"{time.perf_counter() - started:.1f} s ({len(result.errors)} refused)")
    with runtime.engine.connect() as conn:   # statistics, as autovacuum would gather them
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    _id, token = tokens.create(runtime, user["id"], "bench")
    first = result.created[len(result.created) // 2]
    # the columns Loom's answer carries (not the engine's search and duplicate-key columns)
    columns = [c.name for c in runtime.schema.table(runtime.spec.objects["customer"]).columns
               if c.name not in ("search_text", "search_tokens") and not c.name.startswith("dup_")]
    runtime.close()
    return url, token, first, columns


def fetch(url: str, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def check(condition: bool, what: str):
    print(f"  check: {what}: {'ok' if condition else 'FAILED'}")
    if not condition:
        raise SystemExit(f"check failed: {what}")


def serve(app_spec: str, env: dict, port: int, workdir: Path):
    command = [sys.executable, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
               app_spec]
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=workdir)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.5)
    return process


def wrk(url: str, headers: dict, seconds: int, connections: int, warmup: int = 0) -> dict:
    if warmup:
        wrk(url, headers, warmup, connections)
    load_before = os.getloadavg()[0]
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        command += ["-H", f"{k}: {v}"]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def percentile(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", output)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return {"rps": rps, "p50": percentile(50), "p99": percentile(99), "requests": requests,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0,
            "load": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each scenario, not counted")
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    url, token, record_id, columns = prepare(args.rows)
    results = {}
    run = dict(seconds=args.seconds, connections=args.connections, warmup=args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "floor.py").write_text(FLOOR)
        env = {"LOOM_DATABASE_URL": url, "LOOM_METADATA": str(ROOT / "metadata"), "LOOM_INSTANCE": str(work / "instance"),
               "SECRET_KEY": "bench", "LOOM_SCHEDULER": "off", "PYTHONPATH": str(ROOT / "platform"),
               "LOOM_BENCH_COLUMNS": ", ".join(columns)}
        floor = serve("floor:app", env, 8771, work)
        try:
            status, body = fetch("http://127.0.0.1:8771/api/v1/customer", {})
            check(status == 200 and len(body["data"]) == 50, "floor: 200 with 50 customers")
            floor_ids = [r["id"] for r in body["data"]]
            results["floor: list 50"] = wrk("http://127.0.0.1:8771/api/v1/customer", {}, **run)
        finally:
            floor.send_signal(signal.SIGTERM)
            floor.wait()
        loom = serve("loom.web.wsgi:app", env, 8772, work)
        auth = {"Authorization": f"Bearer {token}"}
        try:
            base = "http://127.0.0.1:8772/api/v1/customer"
            search = f"{base}?limit=50&q=%E7%A7%91%E6%8A%80"
            check(fetch(f"{base}?limit=50", {"Authorization": "Bearer loom_not-a-token"})[0] == 401,
                  "loom: a wrong token gets 401")
            check(fetch(f"{base}?limit=50", {})[0] == 401, "loom: no token gets 401")
            status, body = fetch(f"{base}?limit=50", auth)
            check(status == 200 and [r["id"] for r in body["data"]] == floor_ids
                  and set(body["data"][0]) == set(columns) | {"_title"},
                  "loom: 200 with the floor's 50 customers, same order, same columns")
            status, body = fetch(f"{base}/{record_id}", auth)
            check(status == 200 and body.get("id") == record_id, f"loom: 200 with customer #{record_id}")
            status, body = fetch(search, auth)
            check(status == 200 and len(body["data"]) == 50 and all("科技" in r["name"] for r in body["data"]),
                  "loom: search 200 with 50 customers named ...科技...")
            results["loom: list 50"] = wrk(f"{base}?limit=50", auth, **run)
            results["loom: get one"] = wrk(f"{base}/{record_id}", auth, **run)
            results["loom: search 科技"] = wrk(search, auth, **run)
        finally:
            loom.send_signal(signal.SIGTERM)
            loom.wait()
    floor_rps = results["floor: list 50"]["rps"]
    print(f"\n{args.rows} customers, gunicorn -w 4, wrk -t2 -c{args.connections} -d{args.seconds}s\n")
    print(f"{'request':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs floor':>9} {'requests':>9} {'non-2xx':>8} "
          f"{'sock err':>9}  load before -> after")
    for name, r in results.items():
        print(f"{name:<20} {r['rps']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['rps'] / floor_rps:>8.2f}x "
              f"{r['requests']:>9} {r['non2xx']:>8} {r['socket_errors']:>9}  {r['load'][0]:.2f} -> {r['load'][1]:.2f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
