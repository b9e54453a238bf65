"""Combining layers: one definition per name, changed only through `extends:`.

A later layer may add definitions and extend earlier ones; defining a name twice (in two
files or two layers) is an error naming both places. Extensions merge by rules that suit
each part: named lists (fields, rules, states, transitions, steps, dictionary items,
search schemes) merge item by item on their key, view and permission maps merge key by
key, anything else is replaced. A field's stored type cannot be changed by extension.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .problems import Mark, Problem, format_path, suggest
from .sources import Document, Sources, display_path
from .yamlsource import MarkedDict, MarkedList

# Named lists merged item by item: kind -> {key: item key}
KEYED_LISTS = {
    "object": {"fields": "name", "rules": "name", "conversions": "name", "duplicates": "name"},
    "dictionary": {"items": "code"},
    "workflow": {"states": "name", "transitions": "name", "steps": "name"},
}
# Maps merged key by key (one level deep); search.schemes merges by name inside.
SHALLOW_MAPS = {
    "object": {"list", "form", "detail", "search", "permissions", "field_permissions", "pool"},
    "workflow": {"on_approved", "on_rejected"},
}
NESTED_KEYED = {("search", "schemes"): "name", ("detail", "related"): ("object", "via")}
# Sections merge by name when an extension names every section it lists (so a pack can add
# one section, or change one, and keep the rest); otherwise the extension's list replaces it.
ORDERED_BY_NAME = {("form", "sections"), ("detail", "sections")}
# What an item of a named list is called in messages.
_NOUNS = {"fields": "field", "rules": "rule", "items": "code", "children": "code", "states": "state",
          "transitions": "transition", "steps": "step", "schemes": "search scheme"}


@dataclass
class Definition:
    kind: str
    name: str
    data: MarkedDict
    doc: Document                        # where it was first defined
    extensions: list = field(default_factory=list)


@dataclass
class Merged:
    app: MarkedDict | None = None
    app_doc: Document | None = None
    packs: list = field(default_factory=list)        # pack manifests (Documents)
    roles: list = field(default_factory=list)        # (MarkedDict item, Document)
    departments: list = field(default_factory=list)  # (MarkedDict item, Document)
    definitions: dict = field(default_factory=dict)  # kind -> {name: Definition}
    broken: set = field(default_factory=set)         # (kind, name) that failed validation
    problems: list = field(default_factory=list)

    def of(self, kind: str) -> dict:
        return self.definitions.setdefault(kind, {})


def _copy(node: MarkedDict) -> MarkedDict:
    out = MarkedDict(node, mark=node.mark)
    out.marks, out.value_marks, out.raw = dict(node.marks), dict(node.value_marks), dict(node.raw)
    return out


def _set(target: MarkedDict, source: MarkedDict, key, value=None):
    target[key] = source[key] if value is None else value
    for attr in ("marks", "value_marks", "raw"):
        marks = getattr(source, attr)
        if key in marks:
            getattr(target, attr)[key] = marks[key]
        else:
            getattr(target, attr).pop(key, None)


def _merge_keyed(base: MarkedList, ext: MarkedList, key: str, problems: list, where: tuple, merge_item):
    """Merge a named list item by item. `origin` remembers, for every item, its index in
    each file that wrote it, so a problem is shown with the path its own file has."""
    out = MarkedList(base, mark=base.mark)
    out.marks = dict(base.marks)
    out.origin = {i: dict(_origin(base, i)) for i in range(len(base))}
    keyof = (lambda item: tuple(item.get(k) for k in key)) if isinstance(key, tuple) else (lambda item: item.get(key))
    index = {keyof(item): i for i, item in enumerate(out) if isinstance(item, dict)}
    here: dict = {}  # name -> mark, within this extension
    for j, item in enumerate(ext):
        if not isinstance(item, dict):
            continue
        name = keyof(item)
        mark = ext.marks.get(j, ext.mark)
        if name in here:
            noun = _NOUNS.get(where[-1], key) if where else key
            problems.append(Problem(mark, format_path(where + (j,)),
                                    f"{noun} '{name}' is listed twice (first at line {here[name].line})"))
            continue
        here[name] = mark
        if name in index:
            i = index[name]
            out[i] = merge_item(out[i], item, problems, where + (j,))
        else:
            i = index[name] = len(out)
            out.marks[i] = mark
            out.append(item)
            out.origin[i] = {}
        out.origin[i].update(_origin(ext, j))
    return out


def _merge_sections(base: MarkedList, ext: MarkedList, problems: list, where: tuple) -> MarkedList:
    """Sections by name: a named one changes the base's section of that name, a new one
    goes after the section that comes before it in the extension (or first). Base sections
    without a name stay where they are."""
    by_name = {item.get("name"): i for i, item in enumerate(base) if isinstance(item, dict) and item.get("name")}
    items = {("base", i): item for i, item in enumerate(base)}
    marks = {("base", i): base.marks.get(i, base.mark) for i in range(len(base))}
    order = [("base", i) for i in range(len(base))]
    previous = None
    for j, item in enumerate(ext):
        name = item.get("name")
        if name in by_name:
            token = ("base", by_name[name])
            items[token] = _merge_item(items[token], item, problems, where + (j,))
        else:
            token = ("ext", j)
            items[token], marks[token] = item, ext.marks.get(j, ext.mark)
            order.insert(order.index(previous) + 1 if previous in order else 0, token)
        previous = token
    out = MarkedList([items[t] for t in order], mark=base.mark)
    out.marks = {i: marks[t] for i, t in enumerate(order)}
    return out


def _origin(items: MarkedList, i: int) -> dict:
    if getattr(items, "origin", None) and i in items.origin:
        return items.origin[i]
    mark = items.marks.get(i)
    return {mark.file: i} if mark else {}


def _merge_field(base: MarkedDict, ext: MarkedDict, problems: list, where: tuple) -> MarkedDict:
    out = _copy(base)
    if "type" in ext and "type" in base and ext["type"] != base["type"]:
        problems.append(Problem(ext.value_mark("type"), format_path(where + ("type",)),
                                f"cannot change the stored type of '{ext.get('name')}' from {base['type']} "
                                f"to {ext['type']} in an extension (defined at {base.mark}); "
                                f"add a new field instead"))
        return out
    for k in ext:
        _set(out, ext, k)
    return out


def _merge_item(base: MarkedDict, ext: MarkedDict, problems: list, where: tuple) -> MarkedDict:
    out = _copy(base)
    for k in ext:
        if k == "children" and isinstance(base.get(k), list) and isinstance(ext[k], list):
            _set(out, ext, k, _merge_keyed(base[k], ext[k], "code", problems, where + (k,), _merge_item))
        else:
            _set(out, ext, k)
    return out


def _merge_shallow(base: MarkedDict, ext: MarkedDict, prefix: str, problems: list) -> MarkedDict:
    out = _copy(base) if isinstance(base, dict) else ext
    if out is ext:
        return ext
    for k in ext:
        keyed = NESTED_KEYED.get((prefix, k))
        if (prefix, k) in ORDERED_BY_NAME and isinstance(base.get(k), list) and isinstance(ext[k], list) \
                and ext[k] and all(isinstance(i, dict) and i.get("name") for i in ext[k]):
            _set(out, ext, k, _merge_sections(base[k], ext[k], problems, (prefix, k)))
        elif keyed and isinstance(base.get(k), list) and isinstance(ext[k], list):
            _set(out, ext, k, _merge_keyed(base[k], ext[k], keyed, problems, (prefix, k), _merge_item))
        else:
            _set(out, ext, k)
    return out


def extend(kind: str, base: MarkedDict, ext: MarkedDict, problems: list) -> MarkedDict:
    """The definition `base` with the extension `ext` applied."""
    out = _copy(base)
    keyed = KEYED_LISTS.get(kind, {})
    shallow = SHALLOW_MAPS.get(kind, set())
    for k in ext:
        if k == "extends":
            continue
        if k in keyed and isinstance(base.get(k), list) and isinstance(ext[k], list):
            merge_item = _merge_field if (kind, k) == ("object", "fields") else _merge_item
            _set(out, ext, k, _merge_keyed(base[k], ext[k], keyed[k], problems, (k,), merge_item))
        elif k in shallow and isinstance(base.get(k), dict) and isinstance(ext[k], dict):
            _set(out, ext, k, _merge_shallow(base[k], ext[k], k, problems))
        else:
            _set(out, ext, k)
    return out


def _split_dictionaries(doc: Document) -> list:
    items = doc.data.get("dictionaries") or []
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("dictionary"), str):
            out.append(Document("dictionary", item["dictionary"], item, doc.layer, doc.file, ("dictionaries", i)))
    return out


def merge(sources: Sources, valid: list, broken: list) -> Merged:
    """Combine validated documents layer by layer. `broken` documents failed validation:
    their names are remembered so references to them do not cascade into more errors."""
    merged = Merged()
    problems = merged.problems
    for doc in broken:
        if doc.name or doc.kind == "app":
            merged.broken.add((doc.kind, doc.name))
    merged.broken.update(sources.unreadable)
    docs = []
    for doc in valid:
        docs.extend(_split_dictionaries(doc) if doc.kind == "dictionary" and doc.name is None else [doc])

    for layer in sources.layers:
        in_layer = [d for d in docs if d.layer is layer]
        for doc in in_layer:
            if "system" in doc.data and layer.name != "system":
                problems.append(Problem(doc.data.mark_of("system"), "system",
                                        "'system' is reserved for the engine's own objects"))
            if doc.kind == "app":
                if layer.name != "base":
                    problems.append(Problem(doc.mark, "", "app.yaml belongs to the base metadata root; "
                                                          "a pack describes itself in pack.yaml"))
                elif merged.app is not None:
                    problems.append(Problem(doc.mark, "", f"the application is already defined at {merged.app.mark}"))
                else:
                    merged.app, merged.app_doc = doc.data, doc
            elif doc.kind == "pack":
                merged.packs.append(doc)
            elif doc.kind == "roles":
                _collect(doc, "roles", "name", "role", merged.roles, problems)
                _collect(doc, "departments", "code", "department", merged.departments, problems)
            elif not doc.extends:
                table = merged.of(doc.kind)
                if doc.name in table:
                    first = table[doc.name].doc
                    hint = f"; use 'extends: {doc.name}' to change it" if first.layer is not layer else ""
                    problems.append(Problem(doc.mark, "", f"{doc.kind} '{doc.name}' is already defined at "
                                                          f"{first.mark} ({first.layer.name}){hint}"))
                else:
                    table[doc.name] = Definition(doc.kind, doc.name, doc.data, doc)
        for doc in in_layer:
            if doc.extends:
                table = merged.of(doc.kind)
                target = table.get(doc.name)
                if target is None:
                    if (doc.kind, doc.name) not in merged.broken:
                        problems.append(Problem(doc.data.value_mark("extends"), "extends",
                                                f"there is no {doc.kind} '{doc.name}' to extend" + suggest(doc.name, table)))
                    continue
                target.data = extend(doc.kind, target.data, doc.data, problems)
                target.extensions.append(doc)
    app_unreadable = any(kind == "app" for kind, _ in merged.broken)
    if merged.app is None and app_unreadable:
        # Its own problems are reported; check everything else as under an app without a
        # menu, so one slip in app.yaml does not hide the rest of the run's errors.
        merged.app = MarkedDict(mark=Mark("app.yaml", 1, 1))
    elif merged.app is None and any(l.name == "base" for l in sources.layers):
        base = next(l for l in sources.layers if l.name == "base")
        problems.append(Problem(Mark(display_path(base.root / "app.yaml"), 1, 1), "",
                                "no app.yaml: the metadata root needs one ('app: NAME', languages, menu)"))
    return merged


def _collect(doc: Document, key: str, id_key: str, noun: str, into: list, problems: list):
    seen = {item.get(id_key): item for item, _ in into}
    for item in doc.data.get(key) or []:
        name = item.get(id_key)
        if name in seen:
            problems.append(Problem(item.mark, f"{key}", f"{noun} '{name}' is already defined at {seen[name].mark}"))
            continue
        seen[name] = item
        into.append((item, doc))
