"""Benchmark: validating and compiling a large metadata root.

Generates 200 objects x 30 fields (with dictionaries, lookups, formulas, rollups,
numbering, lifecycles) and measures, in the same run:
  - bare parse: every file through PyYAML's C loader, nothing else (the floor);
  - cold: `check_metadata` (read, JSON Schema, merge, cross-references, AppSpec) + table compile;
  - warm: `load_spec` with a cache from an earlier run (files unchanged), + table compile;
  - cache read alone: unpickling the cached AppSpec (what a warm start cannot avoid).

    python bench/metadata_bench.py [--objects 200] [--fields 30] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "platform"))

from loom.compiler.tables import compile_schema  # noqa: E402
from loom.gcpause import paused_gc  # noqa: E402
from loom.metadata import check_metadata, load_spec  # noqa: E402
from loom.metadata.yamlsource import parse_bare  # noqa: E402

TYPES = ["text", "integer", "money", "date", "boolean", "dictionary", "email", "phone", "textarea", "percent"]


def generate(root: Path, n_objects: int, n_fields: int) -> None:
    for folder in ("objects", "dictionaries", "workflows"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names = [f"obj{i:03d}" for i in range(n_objects)]
    (root / "app.yaml").write_text(
        "app: bench\nlabel: {en: Bench, zh: 基准}\nlanguages: [zh, en]\nmenu:\n"
        + "".join(f"  - {{name: g{g}, label: {{en: Group {g}, zh: 组{g}}}, items: [{', '.join(names[g::10])}]}}\n"
                  for g in range(10)), encoding="utf-8")
    (root / "roles.yaml").write_text(
        "roles:\n  - {name: admin, superuser: true}\n  - {name: rep, label: {en: Rep, zh: 销售}}\n"
        "  - {name: manager, label: {en: Manager, zh: 经理}}\n", encoding="utf-8")
    for d in range(20):
        items = "".join(f"  - {{code: c{j}, label: {{en: Item {j}, zh: 项{j}}}, color: blue}}\n" for j in range(15))
        (root / "dictionaries" / f"dict{d:02d}.yaml").write_text(
            f"dictionary: dict{d:02d}\nlabel: {{en: Dict {d}, zh: 字典{d}}}\nitems:\n{items}", encoding="utf-8")
    for i, name in enumerate(names):
        lines = [f"object: {name}", f"label: {{en: Object {i}, zh: 对象{i}}}", f"lifecycle: {name}_flow", "fields:",
                 f"  - {{name: code, type: autonumber, label: {{en: Code, zh: 编号}}, "
                 f"numbering: {{pattern: \"O{i}-{{yyyy}}{{mm}}-{{seq:5}}\", reset: monthly}}}}",
                 "  - {name: name, type: text, label: {en: Name, zh: 名称}, required: true, max_length: 200}",
                 "  - {name: mnemonic, type: mnemonic, source: name}"]
        if i:
            lines.append(f"  - {{name: parent, type: lookup, target: {names[i - 1]}, on_delete: set_null}}")
        for j in range(n_fields - len(lines) + 4 - 2):
            t = TYPES[j % len(TYPES)]
            extra = f", dictionary: dict{j % 20:02d}" if t == "dictionary" else (", min: 0" if t in ("integer", "money") else "")
            lines.append(f"  - {{name: f{j:02d}, type: {t}, label: {{en: Field {j}, zh: 字段{j}}}{extra}}}")
        lines.append("  - {name: total, type: formula, expr: \"f01 * 2 + f02\"}")
        if i + 1 < n_objects:
            lines.append(f"  - {{name: children, type: rollup, from: {{object: {names[i + 1]}, via: parent}}, agg: count}}")
        lines += ["list:", "  columns: [code, name, f00, f01, state]", "  filters: [f05, state, owner]",
                  "search:", "  quick: [name, code, mnemonic]", "  schemes:",
                  "    - {name: mine, where: {all: [{field: owner, op: eq, value: $current_user}, "
                  "{field: f01, op: gt, value: 10}]}}",
                  "permissions:", "  rep: {create: true, read: own, update: own}",
                  "  manager: {read: department_tree, update: department_tree, delete: department, export: true}"]
        (root / "objects" / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (root / "workflows" / f"{name}_flow.yaml").write_text(
            f"workflow: {name}_flow\nkind: lifecycle\nobject: {name}\nstates:\n"
            "  - {name: draft, initial: true}\n  - {name: active}\n  - {name: closed, final: true}\n"
            "transitions:\n  - {name: activate, from: draft, to: active, roles: [rep, manager]}\n"
            "  - {name: close, from: [draft, active], to: closed, require_comment: true, "
            "when: {field: f01, op: gte, value: 0}}\n", encoding="utf-8")


def timed(fn, repeat):
    """Median (wall, CPU) seconds: CPU time is what a busy machine does not inflate."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--fields", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "metadata"
        generate(root, args.objects, args.fields)
        files = sorted(root.rglob("*.yaml"))
        size = sum(f.stat().st_size for f in files)
        spec, problems = check_metadata(root)
        assert not problems, problems[:5]
        n_fields = sum(len(o.declared_fields) for o in spec.objects.values())

        def bare():
            for f in files:
                parse_bare(f.read_text("utf-8"))

        def bare_no_gc():   # the floor with the collector paused, as Loom's compile runs
            with paused_gc():
                bare()

        def cold():
            spec, _ = check_metadata(root)
            compile_schema(spec)

        cache = Path(tmp) / "cache"
        load_spec(root, cache_dir=cache)
        cached = next(cache.glob("metadata-*.pickle"))

        def warm():
            compile_schema(load_spec(root, cache_dir=cache))

        def cache_read():
            pickle.loads(cached.read_bytes())

        t_bare, t_cold = timed(bare, args.repeat), timed(cold, args.repeat)
        t_bare_no_gc = timed(bare_no_gc, args.repeat)
        t_warm, t_read = timed(warm, args.repeat), timed(cache_read, args.repeat)
        print(f"metadata: {len(files)} files, {size / 1024:.0f} KiB, {len(spec.objects)} objects, {n_fields} fields")
        print(f"{'':30}{'wall ms':>9}{'CPU ms':>9}   ratio (wall | CPU)")
        for label, (wall, cpu), base, of in (
                ("bare parse (C loader)", t_bare, None, ""), ("cold check + compile", t_cold, t_bare, "bare parse"),
                ("  the same, collector paused", t_bare_no_gc, None, ""),
                ("cold against that", t_cold, t_bare_no_gc, "bare parse, collector paused"),
                ("warm start (cache) + compile", t_warm, t_bare, "bare parse"), ("cache read alone", t_read, None, "")):
            ratio = f"   {wall / base[0]:5.2f}x | {cpu / base[1]:5.2f}x {of}" if base else ""
            print(f"{label:30}{wall * 1000:9.1f}{cpu * 1000:9.1f}{ratio}")
        print(f"warm start is {t_warm[0] / t_read[0]:.2f}x (wall) the cache read alone")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

if __name__ == "__main__":
    main()
