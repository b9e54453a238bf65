"""Numbers under concurrency: writers that overlap never share a number, committed numbers
have no gaps, a rolled-back write gives its number back, and a long import does not hold
the counter for longer than one batch at a time.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import time

import pytest

from loom.metadata import load_spec
from loom.runtime import Runtime
from loom.security.actor import Actor
from loom.storage.database import create_engine

from records_helpers import drop_templates, open_runtime, write_metadata  # noqa: F401

ITEM = {"objects/item.yaml": """
    object: item
    label: {en: Item, zh: 物品}
    title: name
    fields:
      - {name: code, type: autonumber, numbering: {pattern: "IT-{seq:5}"}}
      - {name: name, type: text, required: true}
      - {name: mnemonic, type: mnemonic, source: name}
"""}
SYSTEM = Actor.system()


def _create_many(runtime, worker: int, count: int) -> list[str]:
    return [runtime.records.create("item", {"name": f"物品 {worker}-{i}"}, SYSTEM)["code"] for i in range(count)]


def _assert_consecutive(codes, total):
    assert len(codes) == total
    assert len(set(codes)) == total, "a number was given twice"
    assert sorted(codes) == [f"IT-{n:05d}" for n in range(1, total + 1)], "the numbers have gaps"


def test_threads_on_sqlite_get_distinct_consecutive_numbers(tmp_path):
    runtime = open_runtime(tmp_path, f"sqlite:///{tmp_path / 'threads.db'}", ITEM)
    start = threading.Barrier(8)

    def work(worker):
        start.wait()
        return _create_many(runtime, worker, 250)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = [c for batch in pool.map(work, range(8)) for c in batch]
    _assert_consecutive(codes, 2000)
    assert runtime.records.count("item", SYSTEM, cap=None) == 2000
    runtime.close()


def _process_worker(root, url, worker, start_at):
    """One process with its own Runtime (and so its own connections), writing from two
    threads: 2 x 250 creates."""
    runtime = Runtime(load_spec(root), create_engine(url))
    try:
        time.sleep(max(0.0, start_at - time.time()))   # start together
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            parts = pool.map(lambda t: _create_many(runtime, worker * 10 + t, 250), range(2))
            return [c for part in parts for c in part]
    finally:
        runtime.close()


@pytest.mark.postgres
def test_processes_on_postgresql_get_distinct_consecutive_numbers(tmp_path):
    from conftest import create_postgres_database
    url, drop = create_postgres_database()
    try:
        runtime = open_runtime(tmp_path, url, ITEM)
        root = write_metadata(tmp_path / "metadata", ITEM)
        context = multiprocessing.get_context("spawn")   # no connections inherited from this process
        with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
            start_at = time.time() + 3
            futures = [pool.submit(_process_worker, str(root), url, w, start_at) for w in range(4)]
            codes = [c for f in futures for c in f.result(timeout=300)]
        _assert_consecutive(codes, 2000)
        assert runtime.records.count("item", SYSTEM, cap=None) == 2000
        runtime.close()
    finally:
        drop()


def test_a_rolled_back_create_gives_its_number_back(tmp_path, db_url):
    runtime = open_runtime(tmp_path, db_url, ITEM)
    svc = runtime.records
    assert svc.create("item", {"name": "a"}, SYSTEM)["code"] == "IT-00001"
    with pytest.raises(ZeroDivisionError):
        with svc.transaction() as conn:
            assert svc.create("item", {"name": "b"}, SYSTEM, conn=conn)["code"] == "IT-00002"
            1 / 0
    assert svc.create("item", {"name": "c"}, SYSTEM)["code"] == "IT-00002"
    # a refused create takes no number either
    with pytest.raises(Exception):
        svc.create("item", {"name": ""}, SYSTEM)
    assert svc.create("item", {"name": "d"}, SYSTEM)["code"] == "IT-00003"
    runtime.close()


def test_an_import_does_not_hold_the_counter_for_longer_than_a_batch(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        db_url = f"sqlite:///{tmp_path / 'bulk.db'}"
    runtime = open_runtime(tmp_path, db_url, ITEM)
    svc = runtime.records
    batch_times: list[float] = []
    first_batch = threading.Event()

    def progress(done):
        batch_times.append(time.perf_counter())
        first_batch.set()

    def bulk():
        rows = ({"name": f"导入 {i}"} for i in range(4000))
        svc.bulk_create("item", rows, SYSTEM, batch_size=250, progress=progress)
        return time.perf_counter()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        bulk_done = pool.submit(bulk)
        assert first_batch.wait(60)
        single_start = time.perf_counter()
        single = svc.create("item", {"name": "单条"}, SYSTEM)
        single_end = time.perf_counter()
        bulk_end = bulk_done.result(timeout=300)
    batches = [b - a for a, b in zip([started] + batch_times, batch_times)]
    one_batch = max(batches)
    print(f"bulk {bulk_end - started:.2f}s in {len(batches)} batches (longest {one_batch:.3f}s); "
          f"single create {single_end - single_start:.3f}s, {bulk_end - single_end:.2f}s before the import ended")
    assert single_end < bulk_end, "the single create waited for the whole import"
    assert single_end - single_start < 2 * one_batch + 0.5, (single_end - single_start, one_batch)
    codes = [r["code"] for r in svc.query("item", SYSTEM, sort=["code"], limit=1000).rows]
    assert single["code"] in codes
    assert svc.count("item", SYSTEM, cap=None) == 4001
    runtime.close()
