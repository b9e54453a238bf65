"""Finding metadata: layers of roots, their files, and the documents in them.

Layers, in order: the engine's own system layer (users, departments), the base root, the
packs named in its app.yaml, and an optional overlay (LOOM_OVERLAY). Each YAML document
is tagged with its kind and name; a document that extends another (`extends: NAME`)
takes its kind from the folder it lives in.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path

from .problems import Mark, Problem, suggest
from .yamlsource import MarkedDict, load_documents

# The key naming what a document defines -> its kind.
DEFINING_KEYS = {
    "app": "app", "pack": "pack", "roles": "roles", "departments": "roles",
    "dictionary": "dictionary", "dictionaries": "dictionary", "object": "object",
    "workflow": "workflow", "report": "report", "automation": "automation",
}
# Folder -> kind, for `extends:` documents.
FOLDER_KINDS = {"dictionaries": "dictionary", "objects": "object", "workflows": "workflow",
                "reports": "report", "automations": "automation"}
NAME_KEYS = {"app": "app", "pack": "pack", "dictionary": "dictionary", "object": "object",
             "workflow": "workflow", "report": "report", "automation": "automation"}
# A top-level `object: NAME` line, found by text when a file cannot be read as YAML.
_DEFINES = re.compile(rb"^(app|dictionary|object|workflow|report|automation):[ \t]*['\"]?([a-z][a-z0-9_]{0,62})['\"]?[ \t]*(?:#.*)?\r?$",
                      re.MULTILINE)


@dataclass
class Layer:
    name: str           # "system", "base", "pack retail", "overlay"
    root: Path


@dataclass
class Document:
    kind: str
    name: str | None    # None for roles documents
    data: MarkedDict
    layer: Layer
    file: str           # as shown in messages
    path: tuple = ()    # where the document sits in its file (for `dictionaries: [...]` items)
    extends: bool = False

    @property
    def mark(self) -> Mark:
        return self.data.mark


@dataclass
class Sources:
    """Everything read from disk, before validation."""

    layers: list = field(default_factory=list)
    documents: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    # (kind, name) that files which could not be read seem to define: references to them
    # are taken on trust, so one broken file gives one error, not one per use of its name.
    unreadable: set = field(default_factory=set)


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it, as compilers print paths."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def system_root() -> Path:
    return Path(str(resources.files(__package__).joinpath("system")))


def _yaml_files(root: Path):
    """YAML files of a root, in a stable order: packs/ are layers of their own and demo/
    holds demo data (see loom/demo.py), not definitions."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] in (("packs",), ("demo",)):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def _classify(data, layer: Layer, path: Path, file: str) -> tuple[list, list]:
    """Tag a parsed document with its kind; split `dictionaries:` lists."""
    start = Mark(file, 1, 1)
    if data is None:
        return [], [Problem(start, "", "the document is empty; expected a definition such as 'object: NAME'")]
    if not isinstance(data, dict):
        kind_of = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
        return [], [Problem(getattr(data, "mark", start), "", f"expected a mapping such as 'object: NAME', got {kind_of}")]
    if "extends" in data:
        folder = path.parent.name
        kind = FOLDER_KINDS.get(folder)
        if kind is None:
            return [], [Problem(data.mark_of("extends"), "extends",
                                f"cannot tell what this extends: put it in one of "
                                f"{', '.join(sorted(FOLDER_KINDS))}/")]
        others = [k for k in data if k in NAME_KEYS]
        if others:
            return [], [Problem(data.mark_of(others[0]), others[0],
                                f"a document either defines ('{others[0]}:') or extends ('extends:'), not both")]
        name = data["extends"]
        return [Document(kind, name if isinstance(name, str) else None, data, layer, file, extends=True)], []
    keys = [k for k in data if k in DEFINING_KEYS]
    kinds = {DEFINING_KEYS[k] for k in keys}
    if len(kinds) > 1:
        folder = FOLDER_KINDS.get(path.parent.name)
        if folder in kinds:  # objects/x.yaml defines an object; other keys are its mistakes
            kinds, keys = {folder}, [k for k in keys if DEFINING_KEYS[k] == folder]
        elif "object" in keys:  # workflows, reports and automations name their object
            keys.remove("object")
            kinds = {DEFINING_KEYS[k] for k in keys}
    if not data:
        return [], [Problem(data.mark, "", "the document is an empty mapping; expected a definition such as 'object: NAME'")]
    if not kinds:
        first = next(iter(data))
        return [], [Problem(data.mark_of(first), str(first),
                            f"cannot tell what this document defines from its keys"
                            + suggest(first, DEFINING_KEYS.keys()))]
    if len(kinds) > 1:
        return [], [Problem(data.mark_of(keys[1]), str(keys[1]),
                            f"one document defines one thing: '{keys[0]}' and '{keys[1]}' cannot be together")]
    kind = kinds.pop()
    if kind == "dictionary" and "dictionaries" in data:
        return [Document("dictionary", None, data, layer, file)], []  # split after validation
    name = data.get(NAME_KEYS[kind]) if kind in NAME_KEYS else None
    return [Document(kind, name if isinstance(name, str) else None, data, layer, file)], []


def read_layer(layer: Layer, sources: Sources) -> None:
    for path in _yaml_files(layer.root):
        file = display_path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            sources.problems.append(Problem(Mark(file, 1, 1), "", f"cannot read the file: {e.strerror}"))
            continue
        docs, problems = load_documents(data, file)
        sources.problems.extend(problems)
        if problems:
            sources.unreadable.update(_guess_names(data, path))
        if not docs and not problems:
            docs = [None]  # an empty file: report it like an empty document
        for doc in docs:
            found, problems = _classify(doc, layer, path, file)
            sources.documents.extend(found)
            sources.problems.extend(problems)
            if problems:
                sources.unreadable.update(_guess_names(data, path))


def _guess_names(data: bytes, path: Path) -> set:
    """What an unreadable file seems to define: its `object: NAME` lines, else the file
    name inside a kind's folder (objects/customer.yaml -> object customer)."""
    found = {(kind.decode(), name.decode()) for kind, name in _DEFINES.findall(data[:1_000_000])}
    kind = FOLDER_KINDS.get(path.parent.name) or ("app" if path.stem == "app" else None)
    if not found and kind and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", path.stem):
        found.add((kind, path.stem))
    return found


def _pack_folder(base: Path, entry: str) -> Path:
    """Where a pack named in app.yaml would be on disk: a path, or a folder under packs/."""
    if "/" in entry or entry.startswith("."):
        candidate = Path(entry)
        return candidate if candidate.is_absolute() else base / candidate
    return base / "packs" / entry


def _pack_root(base: Path, entry: str) -> Path | None:
    """A pack named in app.yaml: a folder under packs/, a path, or an entry point."""
    local = _pack_folder(base, entry)
    if local.is_dir() or "/" in entry or entry.startswith("."):
        return local
    for ep in importlib_metadata.entry_points(group="loom.packs"):
        if ep.name == entry:
            target = ep.load()
            where = getattr(target, "__path__", None)
            return Path(list(where)[0]) if where else Path(str(target))
    return None


def _declared_packs(sources: Sources, base_layer: Layer) -> list:
    for doc in sources.documents:
        if doc.kind == "app" and doc.layer is base_layer:
            packs = doc.data.get("packs") or []
            return [(p, doc.data["packs"].mark_of(i), i) for i, p in enumerate(packs) if isinstance(p, str)] \
                if isinstance(packs, list) else []
    return []


def read_sources(root, overlay=None) -> Sources:
    """Read every layer's files. Problems are collected, never raised."""
    sources = Sources()
    root = Path(root)
    system = Layer("system", system_root())
    sources.layers.append(system)
    read_layer(system, sources)
    if not root.is_dir():
        sources.problems.append(Problem(Mark(display_path(root), 1, 1), "",
                                        "the metadata folder does not exist"))
        return sources
    base = Layer("base", root)
    sources.layers.append(base)
    read_layer(base, sources)
    for entry, mark, i in _declared_packs(sources, base):
        pack_root = _pack_root(root, entry)
        if pack_root is None or not pack_root.is_dir():
            available = [p.name for p in (root / "packs").iterdir() if p.is_dir()] if (root / "packs").is_dir() else []
            sources.problems.append(Problem(mark, f"packs[{i}]", f"pack '{entry}' not found: no folder "
                                            f"{display_path(_pack_folder(root, entry))} and no installed "
                                            f"'loom.packs' entry point" + suggest(entry, available)))
            continue
        layer = Layer(f"pack {entry}", pack_root)
        sources.layers.append(layer)
        read_layer(layer, sources)
    if overlay:
        overlay = Path(overlay)
        if not overlay.is_dir():
            sources.problems.append(Problem(Mark(display_path(overlay), 1, 1), "",
                                            "the overlay folder (LOOM_OVERLAY) does not exist"))
        else:
            layer = Layer("overlay", overlay)
            sources.layers.append(layer)
            read_layer(layer, sources)
    return sources


def fingerprint(root, overlay=None) -> str:
    """A digest of every metadata file that could take part (packs included, used or not)
    and of the engine's own metadata code, without parsing anything."""
    hasher = hashlib.sha256()
    engine = Path(__file__).parent
    for path in sorted(engine.rglob("*")):
        if path.suffix in (".py", ".json", ".yaml"):
            hasher.update(str(path.relative_to(engine)).encode() + str(path.stat().st_mtime_ns).encode())
    for top in filter(None, [Path(root), overlay and Path(overlay)]):
        if not top.is_dir():
            hasher.update(b"missing:" + str(top).encode())
            continue
        for path in sorted(top.rglob("*.y*ml")):
            try:
                content = path.read_bytes()
            except OSError as e:  # validation reports it; the key only has to differ
                content = f"unreadable: {e}".encode()
            hasher.update(str(path.relative_to(top)).encode() + b"\0" + content + b"\0")
    return hasher.hexdigest()
