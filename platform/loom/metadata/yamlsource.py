"""Reading YAML with a mark (file, line, column) for every node.

Mappings and sequences are built as `Node` subclasses of dict and list that remember
where each of their children starts, so any path in a document can be turned back into
a place in a file. Parsing uses libyaml (CSafeLoader) when it is available.

Three deliberate differences from PyYAML's defaults:
- only `true` and `false` are booleans (YAML 1.2): `NO`, `yes` and `off` stay strings,
  so a country code `NO` is not silently read as false;
- dates such as 2024-01-31 stay strings (checked where a date is expected);
- a key given twice in one mapping is an error instead of last-one-wins.
"""
from __future__ import annotations

import re

import yaml

from .problems import Mark, Problem

try:
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 500_000       # after alias expansion: guards against "billion laughs"
MAX_DEPTH = 40            # nesting of mappings and lists; real metadata stays under 15
# libyaml's composer recurses in C, before any Python check runs, and crashes the process
# somewhere past 20,000 levels on an 8 MB stack (threads may have less). Every level needs
# one of these characters, so a text with fewer of them cannot nest that deep and skips
# the extra pass over parser events that measures the depth first (~20% of a parse).
_NESTING_CHARS = "[{-:?"
_PREPASS_ABOVE = 2_000


class Node:
    """Mixin for marked containers: `mark` is where the container starts,
    `marks[k]` where child `k` starts (for mappings, the key's place)."""

    __slots__ = ()

    def mark_of(self, key) -> Mark:
        return self.marks.get(key, self.mark)  # type: ignore[attr-defined]


class MarkedDict(Node, dict):
    __slots__ = ("mark", "marks", "value_marks", "raw")

    def __init__(self, *args, mark: Mark | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mark = mark
        self.marks: dict = {}          # key -> mark of the key
        self.value_marks: dict = {}    # key -> mark of the value
        self.raw: dict = {}            # key -> source text of a non-string scalar value

    def value_mark(self, key) -> Mark:
        return self.value_marks.get(key) or self.mark_of(key)

    def __reduce__(self):
        return (_rebuild_dict, (dict(self), self.mark, self.marks, self.value_marks, self.raw))


class MarkedList(Node, list):
    __slots__ = ("mark", "marks", "raw", "origin")

    def __init__(self, *args, mark: Mark | None = None):
        super().__init__(*args)
        self.mark = mark
        self.marks: dict = {}          # index -> mark
        self.raw: dict = {}
        self.origin: dict = {}         # after merging layers: index -> {file: index in that file}

    def value_mark(self, index) -> Mark:
        return self.mark_of(index)

    def __reduce__(self):
        return (_rebuild_list, (list(self), self.mark, self.marks, self.raw))


def _rebuild_dict(items, mark, marks, value_marks, raw):
    d = MarkedDict(items, mark=mark)
    d.marks, d.value_marks, d.raw = marks, value_marks, raw
    return d


def _rebuild_list(items, mark, marks, raw):
    seq = MarkedList(items, mark=mark)
    seq.marks, seq.raw = marks, raw
    return seq


class _DuplicateKey(Exception):
    def __init__(self, key, mark: Mark, first: Mark):
        self.key, self.mark, self.first = key, mark, first


class _TooDeep(Exception):
    def __init__(self, mark: Mark):
        self.mark = mark


def _too_deep(mark: Mark) -> Problem:
    return Problem(mark, "", f"the document is nested more than {MAX_DEPTH} levels deep here")


_MAP, _SEQ, _STR = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_BUILDING = object()
_new_tuple = tuple.__new__


class _Loader(_BaseLoader):
    """Safe loader building marked containers.

    libyaml composes the node graph in C; the graph is then walked here directly rather
    than through PyYAML's generic constructor (twice as fast for metadata, which is mostly
    mappings of strings). Other scalars and explicit tags still go through PyYAML's own
    converters."""

    file = "<string>"

    def get_data(self):
        node = self.get_node()
        self._built: dict = {}   # id(node) -> value: an alias is the same object as its anchor
        try:
            return self._build(node, 0) if node is not None else None
        finally:   # as PyYAML's construct_document leaves it
            self._built, self.constructed_objects, self.recursive_objects = {}, {}, {}

    def _mark(self, node) -> Mark:
        m = node.start_mark
        return _new_tuple(Mark, (self.file, m.line + 1, m.column + 1))   # Mark(...) minus a call

    def _build(self, node, depth):
        done = self._built.get(id(node))
        if done is not None:
            if done is _BUILDING:   # PyYAML's words, which the problem report rephrases
                raise yaml.constructor.ConstructorError(None, None, "found unconstructable recursive node",
                                                        node.start_mark)
            return done
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            return self._build_map(node, depth + 1)
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            return self._build_seq(node, depth + 1)
        # Explicit tags reach PyYAML's converters, which raise bare errors (`!!int abc`,
        # `!!timestamp 2024-13-01`): give them the node's place.
        try:
            return self.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError) as e:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {tag.rsplit(':', 1)[-1]} ({e})",
                node.start_mark) from None

    def _build_map(self, node, depth):
        if depth > MAX_DEPTH:
            raise _TooDeep(self._mark(node))
        self._built[id(node)] = _BUILDING
        data = MarkedDict(mark=self._mark(node))
        pairs = node.value
        # `<<: *base` merge keys: flatten_mapping puts the merged pairs first. A key of the
        # mapping itself may override a merged one (that is what merging is for); only a
        # key written twice in the mapping itself is an error.
        first_own = 0
        if any(k.tag == _MERGE for k, _ in pairs):
            own = sum(1 for k, _ in pairs if k.tag != _MERGE)
            self.flatten_mapping(node)
            pairs = node.value
            first_own = len(pairs) - own
        inherited = set()
        marks, value_marks, raw = data.marks, data.value_marks, data.raw
        for i, (key_node, value_node) in enumerate(pairs):
            key = self._build(key_node, depth)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark)
            if i < first_own:
                inherited.add(key)
            elif key in data and key not in inherited:
                raise _DuplicateKey(key, self._mark(key_node), marks[key])
            else:
                inherited.discard(key)
            value = data[key] = self._build(value_node, depth)
            marks[key] = self._mark(key_node)
            value_marks[key] = self._mark(value_node)
            if value_node.tag != _STR and isinstance(value_node, yaml.ScalarNode) and not isinstance(value, str):
                raw[key] = value_node.value
        self._built[id(node)] = data
        return data

    def _build_seq(self, node, depth):
        if depth > MAX_DEPTH:
            raise _TooDeep(self._mark(node))
        self._built[id(node)] = _BUILDING
        data = MarkedList(mark=self._mark(node))
        marks, raw = data.marks, data.raw
        for i, child in enumerate(node.value):
            value = self._build(child, depth)
            data.append(value)
            marks[i] = self._mark(child)
            if child.tag != _STR and isinstance(child, yaml.ScalarNode) and not isinstance(value, str):
                raw[i] = child.value
        self._built[id(node)] = data
        return data


# YAML 1.2 booleans: drop yes/no/on/off (and their case variants) from the resolver.
# Dates stay text too: metadata compares them as ISO text, and PyYAML raises a bare
# ValueError (no place) for an impossible date such as 2024-13-01.
_PLAIN_TEXT = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _PLAIN_TEXT]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _measure(doc):
    """(nodes, height) of a document with aliases expanded, computed without expanding them:
    a container shared through an alias is measured once. None when an alias contains
    itself (a cycle). Iterative, so no document is too deep for it."""
    done: dict = {}        # id -> (nodes, height)
    open_: set = set()     # ids on the current path
    stack = [doc]
    while stack:
        value = stack[-1]
        key = id(value)
        if key in done:
            stack.pop()
            continue
        kids = [c for c in _children(value) if isinstance(c, (dict, list))]
        if key not in open_:
            open_.add(key)
            for c in kids:
                if id(c) in open_:
                    return None
                if id(c) not in done:
                    stack.append(c)
            continue
        stack.pop()
        open_.discard(key)
        nodes = 1 + sum(done[id(c)][0] if isinstance(c, (dict, list)) else 1 for c in _children(value))
        done[key] = (nodes, 1 + max((done[id(c)][1] for c in kids), default=0))
    return done.get(id(doc), (1, 0))


def _children(value):
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else []


def _deepest(doc, level: int):
    """The container `level` levels down along the deepest branch (for the error's place)."""
    node = doc
    for _ in range(level - 1):
        kids = [c for c in _children(node) if isinstance(c, (dict, list))]
        if not kids:
            break
        node = max(kids, key=lambda c: _measure(c)[1])
    return node


def _prepass_depth(text: str, file: str) -> Mark | None:
    """Where a text first nests deeper than MAX_DEPTH, read from parser events alone (no
    recursion). Only for texts with enough structure to crash the composer."""
    if sum(text.count(c) for c in _NESTING_CHARS) <= _PREPASS_ABOVE:
        return None
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    m = event.start_mark
                    return Mark(file, m.line + 1, m.column + 1)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None  # the real parse reports it, and got no deeper than this
    return None


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def load_documents(data: bytes, file: str) -> tuple[list, list[Problem]]:
    """Parse every YAML document of a file. Returns (documents, problems); a file with a
    problem yields no documents, so nothing half-read goes further."""
    start = Mark(file, 1, 1)
    if len(data) > MAX_FILE_BYTES:
        return [], [Problem(start, "", f"file is too large ({len(data) / 1048576:.1f} MB); "
                                      f"metadata files are limited to {MAX_FILE_BYTES // 1048576} MB")]
    if b"\x00" in data:
        line, col = _position(data.decode("latin-1"), data.index(b"\x00"))
        return [], [Problem(Mark(file, line, col), "", "this is a binary file, not YAML text")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, col = _position(data[: e.start].decode("utf-8", "replace"), e.start)
        return [], [Problem(Mark(file, line, col), "",
                            f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x}); save it as UTF-8")]
    deep = _prepass_depth(text, file)
    if deep:
        return [], [_too_deep(deep)]
    loader = _Loader(text)
    loader.file = file
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
    except _DuplicateKey as e:
        return [], [Problem(e.mark, "", f"key '{e.key}' is given twice in this mapping (first at line {e.first.line})")]
    except _TooDeep as e:
        return [], [_too_deep(e.mark)]
    except yaml.MarkedYAMLError as e:
        return [], [_syntax_problem(e, text, file)]
    except yaml.YAMLError as e:  # reader errors: control characters and the like
        m = getattr(e, "position", None)
        mark = Mark(file, *_position(text, m)) if isinstance(m, int) else start
        return [], [Problem(mark, "", f"invalid YAML: {getattr(e, 'reason', e)}")]
    except RecursionError:  # merge keys (<<:) that include themselves, or chain without end
        return [], [Problem(start, "", "the merge keys (<<: *name) of this document refer to each other "
                                       "too deeply or in a circle")]
    finally:
        loader.dispose()
    # without anchors there are no aliases: the constructor's depth check and the file's size
    # bound the document already
    problems = [p for doc in docs for p in _size_problems(doc, start)] if "&" in text else []
    return ([] if problems else docs), problems


def _size_problems(doc, start: Mark) -> list:
    measured = _measure(doc)
    where = getattr(doc, "mark", None) or start
    if measured is None:
        return [Problem(where, "", "an alias (*name) refers to a mapping or list that contains it: "
                                   "the document would be endless")]
    nodes, height = measured
    if nodes > MAX_NODES:
        return [Problem(where, "", f"the document has more than {MAX_NODES:,} nodes with its aliases "
                                   f"(*name) expanded; write it out instead of repeating aliases")]
    if height > MAX_DEPTH:  # reached through aliases: the constructor saw each part shallower
        return [_too_deep(getattr(_deepest(doc, MAX_DEPTH + 1), "mark", None) or where)]
    return []


# libyaml's words for common slips -> what to do about them.
_HINTS = {
    "mapping values are not allowed": "check this line's indentation, or quote a text that contains ': '",
    "did not find expected key": "check the indentation: keys of one mapping start in the same column",
    "did not find expected '-' indicator": "check the indentation: items of one list start in the same column",
    "cannot start any token": "quote a text that starts with @, ` or %",
}


def _syntax_problem(e: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """A parser error in words: where it went wrong, and where the construct it was
    reading began when that is elsewhere."""
    m = e.problem_mark or e.context_mark
    if m is None:
        return Problem(Mark(file, 1, 1), "", f"invalid YAML: {e.problem or e.context}")
    mark = Mark(file, m.line + 1, m.column + 1)
    if "recursive" in (e.problem or ""):
        return Problem(mark, "", "an alias (*name) refers to a mapping or list that contains it: "
                                 "the document would be endless")
    if 0 <= m.index < len(text) and text[m.index] == "\t":
        return Problem(mark, "", "invalid YAML: a tab character; YAML indents with spaces only")
    what = e.problem or ""
    ctx, cm = e.context, e.context_mark
    if ctx and cm is not None and (cm.line, cm.column) != (m.line, m.column):
        what += f" ({ctx.replace('while ', '')} that starts at line {cm.line + 1}, column {cm.column + 1})"
    elif ctx:
        what += f" ({ctx.replace('while ', '')})"
    hint = next((h for k, h in _HINTS.items() if k in what), None)
    return Problem(mark, "", f"invalid YAML: {what}" + (f"; {hint}" if hint else ""))


def parse_bare(text: str):
    """The baseline the benchmark compares against: libyaml alone, no marks."""
    return list(yaml.load_all(text, Loader=_BaseLoader))
