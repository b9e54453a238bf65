"""Pausing Python's cyclic garbage collector around bulk building.

Compiling the metadata allocates hundreds of thousands of small objects that live on (the
AppSpec, SQLAlchemy's tables); each allocation burst makes the collector walk every live
object again, which was a third of a cold start (bench/metadata_bench.py). What is built
holds no reference cycles that need collecting; reference counting still frees garbage
at once, and the collector runs as usual afterwards.
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
