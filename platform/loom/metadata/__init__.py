"""Metadata: YAML packs -> a validated, immutable AppSpec.

    spec = load_spec("metadata")          # raises MetadataError with every problem

The pipeline: read layers (sources) -> JSON Schema per document (schema) -> merge
`extends:` (merge) -> cross-references (references) -> AppSpec (build). A cache keyed by
the content of every file skips all of it when nothing changed.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

from ..gcpause import paused_gc
from . import schema
from .build import build
from .merge import merge
from .problems import MetadataError, Problem
from .references import check
from .sources import fingerprint, read_sources
from .spec import AppSpec

__all__ = ["load_spec", "check_metadata", "MetadataError", "Problem", "AppSpec"]


def check_metadata(root, overlay=None) -> tuple[AppSpec | None, list[Problem]]:
    """Validate and build without the cache. Returns (spec or None, problems)."""
    with paused_gc():
        return _check(root, overlay)


def _check(root, overlay):
    sources = read_sources(root, overlay)
    problems = list(sources.problems)
    valid, broken = [], []
    for doc in sources.documents:
        found = schema.validate(doc.kind, doc.data, doc.mark)
        problems.extend(found)
        (broken if found else valid).append(doc)
    merged = merge(sources, valid, broken)
    problems.extend(merged.problems)
    merged.problems = []
    problems.extend(check(merged))
    if problems:
        return None, sorted(set(problems))
    return build(merged, sources.layers), []


def _cache_file(cache_dir, key: str) -> Path:
    return Path(cache_dir) / f"metadata-{key[:32]}.pickle"


def load_spec(root=None, overlay=None, cache_dir=None) -> AppSpec:
    """The AppSpec of a metadata root (default: $LOOM_METADATA or ./metadata).

    With `cache_dir`, a spec built from the same file contents is read back instead of
    validated again."""
    root = Path(root or os.environ.get("LOOM_METADATA") or "metadata")
    overlay = overlay if overlay is not None else os.environ.get("LOOM_OVERLAY") or None
    key = fingerprint(root, overlay) if cache_dir else ""
    if cache_dir:
        cached = _cache_file(cache_dir, key)
        if cached.exists():
            try:
                with paused_gc():
                    spec = pickle.loads(cached.read_bytes())
                if isinstance(spec, AppSpec) and spec.fingerprint == key:
                    return spec
            except Exception:  # a stale or torn cache file is rebuilt, never trusted
                pass
    spec, problems = check_metadata(root, overlay)
    if problems:
        raise MetadataError(problems)
    if cache_dir:
        from dataclasses import replace
        spec = replace(spec, fingerprint=key)
        _write_atomically(_cache_file(cache_dir, key), pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
    return spec


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("metadata-*.pickle"):
        old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".metadata-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
