"""Cross-reference checks on merged metadata.

Runs after every document passed its JSON Schema, so shapes are known; what remains is
meaning: names that must exist (objects, fields, paths through lookups, dictionaries and
their codes, states, transitions, approval flows, roles), options that fit their field's
type, numbering patterns, formulas, conditions whose operators and values fit their
fields. Every problem is placed at the YAML node it is about, with a suggestion for a
misspelt name. Names defined by a document that failed validation are taken on trust,
so one broken file does not bury the run in follow-on errors.
"""
from __future__ import annotations

import datetime as dt
import re

from .expressions import ExpressionError, parse as parse_expression
from .fieldtypes import (DECLARABLE_TYPES, FIELD_TYPES, RESERVED_NAMES, RESERVED_OBJECTS,
                         system_fields)
from .merge import Merged
from .numbering import RESET_NEEDS, PatternError, parse_pattern
from .problems import Problem, format_path, suggest

VARIABLE = re.compile(r"^\$(current_user|current_department|today|now)(?:([+-])(\d{1,5})([dh]))?$")

TEXT_TYPES = {"text", "textarea", "email", "phone", "url", "autonumber", "mnemonic"}
NUMBER_TYPES = {"integer", "decimal", "percent", "money"}
TEMPORAL_TYPES = {"date", "datetime"}
ORDERED_OPS = {"gt", "gte", "lt", "lte", "between"}
TEXT_OPS = {"contains", "starts_with"}
ALL_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "contains",
           "starts_with", "is_null", "not_null"}


# System fields a transition, an approval outcome or an automation may write: assigning
# a record (分配) changes its owner and department.
ASSIGNABLE_SYSTEM = {"owner", "department"}


class _Anything(list):
    """Stands for the names of a definition that is broken: everything is in it."""

    def __contains__(self, item) -> bool:
        return True


ANYTHING = _Anything()


def value_kind(f: dict) -> str:
    """Classify a field definition by what its values are: text, number, temporal, ..."""
    t = f.get("type")
    if t == "formula":
        t = f.get("result") or "decimal"
    if t == "rollup":
        return "number"
    if t in TEXT_TYPES:
        return "text"
    if t in NUMBER_TYPES:
        return "number"
    if t in TEMPORAL_TYPES:
        return "temporal"
    if t in ("lookup", "user", "department"):
        return "reference"
    return t or "unknown"  # boolean, dictionary, state, lines, file


def allowed_ops(f: dict) -> set:
    kind = value_kind(f)
    if kind == "text":
        return ALL_OPS
    if kind in ("number", "temporal"):
        return ALL_OPS - TEXT_OPS
    if kind in ("boolean",):
        return {"eq", "ne", "is_null", "not_null"}
    if kind in ("dictionary", "state", "reference"):
        return {"eq", "ne", "in", "not_in", "is_null", "not_null"}
    if kind in ("file",):
        return {"is_null", "not_null"}
    return set()


def _parse_date(text):
    for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
        try:
            return parse(text)
        except (TypeError, ValueError):
            continue
    return None


class Checker:
    def __init__(self, merged: Merged):
        self.merged = merged
        self.problems = merged.problems
        self.objects = {n: d.data for n, d in merged.of("object").items()}
        self.workflows = {n: d.data for n, d in merged.of("workflow").items()}
        self.reports = {n: d.data for n, d in merged.of("report").items()}
        self.roles = {item.get("name") for item, _ in merged.roles}
        self.dictionaries = {}
        for name, d in merged.of("dictionary").items():
            self.dictionaries[name] = dict(self._codes(d.data.get("items") or []))
        # the synthesized dictionary of roles (for user.roles)
        self.dictionaries["roles"] = {r: True for r in self.roles}
        self.fields = {name: self._fields_of(name, data) for name, data in self.objects.items()}
        # names to suggest from: valid definitions and those that failed validation
        self.names = {kind: set(merged.of(kind)) | {n for k, n in merged.broken if k == kind}
                      for kind in ("object", "workflow", "report", "dictionary")}
        self.begin()

    # ---- helpers -------------------------------------------------------------------------

    def _codes(self, items, into=None):
        into = [] if into is None else into
        for item in items:
            if isinstance(item, dict):
                into.append((item.get("code"), item.get("active", True)))
                self._codes(item.get("children") or [], into)
        return into

    def _fields_of(self, name, data) -> dict:
        declared = {}
        for f in data.get("fields") or []:
            if isinstance(f, dict) and isinstance(f.get("name"), str):
                declared.setdefault(f["name"], f)
        system = system_fields(owned=not data.get("system") and not data.get("child_of"),
                               has_state=bool(data.get("lifecycle")), parent=data.get("child_of"))
        out = dict(declared)
        for f in system:
            out.setdefault(f["name"], dict(f, system=True))
        return out

    def error(self, node, key, path, message):
        mark = node.value_mark(key) if key is not None and hasattr(node, "value_mark") else node.mark
        self.problems.append(Problem(mark, self._path(mark, path), message))

    def key_error(self, node, key, path, message):
        mark = node.mark_of(key)
        self.problems.append(Problem(mark, self._path(mark, path), message))

    def begin(self, definition=None, prefix=()):
        """Paths of the next problems are inside `definition` (a merged Definition)."""
        self._root = definition.data if definition else None
        self._file = definition.doc.file if definition else None
        self._prefix = prefix

    def _path(self, mark, path) -> str:
        """The path as the file at `mark` has it: an item an extension merged into a list
        keeps the index it has in its own file (see merge.py's `origin`)."""
        parts, node = list(path), self._root
        for i, part in enumerate(parts):
            if node is None:
                break
            origin = getattr(node, "origin", None) if isinstance(part, int) else None
            if origin and part in origin:
                parts[i] = origin[part].get(mark.file, part)
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
        prefix = self._prefix if self._root is None or mark.file == self._file else ()
        return format_path(tuple(prefix) + tuple(parts))

    def known(self, kind, name) -> bool:
        return (kind, name) in self.merged.broken

    def usable_lifecycle(self, obj: str):
        """(declared, workflow): the lifecycle an object names, and its definition when it
        is a lifecycle of this object (otherwise the object's own check reports it)."""
        declared = self.objects.get(obj, {}).get("lifecycle")
        wf = self.workflows.get(declared)
        if wf is None or wf.get("kind") != "lifecycle" or wf.get("object") != obj:
            return declared, None
        return declared, wf

    def lifecycle_states(self, obj: str):
        """State names of obj's lifecycle; None when it has none; ANYTHING when the one it
        names is broken or wrong, so uses of its states are not reported again."""
        declared, wf = self.usable_lifecycle(obj)
        if wf is None:
            return ANYTHING if declared else None
        return [s.get("name") for s in wf.get("states") or [] if isinstance(s, dict)]

    def resolve(self, obj: str, path: str, node, key, where):
        """The field definition at the end of a dotted path, or None (error reported)."""
        current = obj
        parts = path.split(".")
        for i, part in enumerate(parts):
            fields = self.fields.get(current)
            if fields is None:
                return None  # the object itself is broken or unknown: reported elsewhere
            f = fields.get(part)
            if f is None:
                shown = ".".join(parts[: i + 1])
                self.error(node, key, where, f"unknown field '{shown}' in {current}"
                           + suggest(part, [n for n in fields if not fields[n].get("type") == "lines"]))
                return None
            if i < len(parts) - 1:
                if f.get("type") not in ("lookup", "user", "department"):
                    self.error(node, key, where, f"'{'.'.join(parts[: i + 1])}' is a {f.get('type')} field; "
                                                 f"only lookup, user and department fields lead further")
                    return None
                current = f.get("target") or f.get("type")
        return f

    # ---- conditions --------------------------------------------------------------------

    def condition(self, obj: str, node, key, path):
        """Check node[key] if it is there (node: a mapping, or the list of an all/any)."""
        cond = node[key] if isinstance(node, list) else node.get(key)
        path = tuple(path) + (key,)
        if not isinstance(cond, dict):
            return
        heads = [k for k in ("all", "any", "not", "field") if k in cond]
        if len(heads) != 1:
            self.error(node, key, path, "a condition has exactly one of 'field', 'all', 'any' or 'not'"
                       + (f"; found {', '.join(heads)}" if heads else ""))
            return
        head = heads[0]
        if head in ("all", "any"):
            extra = set(cond) - {head}
            if extra:
                self.key_error(cond, sorted(extra)[0], path, f"'{sorted(extra)[0]}' does not belong with '{head}'")
            for i, _ in enumerate(cond[head]):
                self.condition(obj, cond[head], i, path + (head,))
            if not cond[head]:
                self.error(cond, head, path + (head,), f"'{head}' needs at least one condition")
            return
        if head == "not":
            extra = set(cond) - {"not"}
            if extra:
                self.key_error(cond, sorted(extra)[0], path, f"'{sorted(extra)[0]}' does not belong with 'not'")
            self.condition(obj, cond, "not", path)
            return
        if "op" not in cond:
            self.error(cond, None, path, "missing required key 'op'")
            return
        f = self.resolve(obj, cond["field"], cond, "field", path + ("field",))
        if f is None:
            return
        op = cond["op"]
        ops = allowed_ops(f)
        if op not in ops:
            self.error(cond, "op", path + ("op",), f"'{op}' does not apply to {cond['field']} "
                       f"({f.get('type')} field)" + suggest(op, ops))
            return
        self.condition_value(obj, f, cond, path)

    def owner_of(self, obj: str, path: str) -> str:
        """The object whose field ends a dotted path (state values belong to its lifecycle)."""
        current = obj
        for part in path.split(".")[:-1]:
            f = self.fields.get(current, {}).get(part) or {}
            current = f.get("target") or f.get("type") or current
        return current

    def condition_value(self, obj, f, cond, path):
        owner = self.owner_of(obj, cond["field"]) if isinstance(cond.get("field"), str) else obj
        op, has = cond["op"], "value" in cond
        value = cond.get("value")
        where = path + ("value",)
        if op in ("is_null", "not_null"):
            if has:
                self.key_error(cond, "value", where, f"'{op}' takes no value")
            return
        if not has:
            self.error(cond, None, path, f"'{op}' needs a value")
            return
        if value is None:
            self.error(cond, "value", where, "an empty value never matches; use op: is_null or not_null")
            return
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.error(cond, "value", where, f"'{op}' needs a list of values")
                return
            for item in value:
                self.literal(owner, f, item, cond, "value", where)
            return
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.error(cond, "value", where, "'between' needs a list of two values [low, high]")
                return
            for item in value:
                self.literal(owner, f, item, cond, "value", where)
            return
        if isinstance(value, list):
            self.error(cond, "value", where, f"'{op}' compares with one value; use 'in' for a list")
            return
        if isinstance(value, dict):
            other = self.resolve(obj, value.get("field", ""), value, "field", where + ("field",))
            if other is not None and value_kind(other) != value_kind(f):
                self.error(value, "field", where + ("field",),
                           f"cannot compare {cond['field']} ({f.get('type')}) with {value['field']} ({other.get('type')})")
            return
        self.literal(owner, f, value, cond, "value", where)

    def literal(self, obj, f, value, node, key, where, *, context="condition"):
        """A literal or $variable given for field `f`."""
        kind = value_kind(f)
        name = f.get("name")
        if isinstance(value, str) and value.startswith("$"):
            m = VARIABLE.match(value)
            if not m:
                self.error(node, key, where, f"unknown variable '{value}'"
                           + suggest(value, ["$current_user", "$current_department", "$today", "$now",
                                             "$today-30d", "$today+7d"]))
                return
            var, offset = m.group(1), m.group(2)
            fits = {"current_user": f.get("type") == "user" or f.get("target") == "user",
                    "current_department": f.get("type") == "department" or f.get("target") == "department",
                    "today": kind == "temporal", "now": f.get("type") == "datetime"}[var]
            if var == "now" and kind == "temporal" and context == "condition":
                fits = True
            if offset and m.group(4) == "h" and var != "now":
                fits = False
            if not fits:
                self.error(node, key, where, f"{value} does not fit {name} ({f.get('type')} field)")
            return
        if kind == "dictionary":
            codes = self.dictionaries.get(f.get("dictionary"))
            if codes is None:
                return
            if not isinstance(value, str):
                raw = node.raw.get(key) if hasattr(node, "raw") and not isinstance(value, bool) else None
                self.error(node, key, where, f"expected a code of dictionary {f.get('dictionary')}, got {value!r}"
                           + (f"; write it in quotes ('{raw}')" if raw else ""))
            elif value not in codes:
                self.error(node, key, where, f"'{value}' is not a code of dictionary {f.get('dictionary')}"
                           + suggest(value, codes))
            elif context == "default" and not codes[value]:
                self.error(node, key, where, f"'{value}' is inactive in dictionary {f.get('dictionary')}; "
                                             f"an inactive code cannot be a default")
        elif kind == "state":
            states = self.lifecycle_states(obj) or []
            if value not in states:
                self.error(node, key, where, f"'{value}' is not a state of {obj}" + suggest(value, states))
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.error(node, key, where, f"expected a number for {name}, got {value!r}")
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.error(node, key, where, f"expected true or false for {name}, got {value!r}")
        elif kind == "temporal":
            if not isinstance(value, (str, dt.date)) or (isinstance(value, str) and _parse_date(value) is None):
                self.error(node, key, where, f"expected a date such as 2024-01-31 or $today for {name}, got {value!r}")
        elif kind == "text":
            if not isinstance(value, str):
                raw = node.raw.get(key) if hasattr(node, "raw") else None
                self.error(node, key, where, f"expected a text for {name}, got {value!r}"
                           + (f"; write it in quotes ('{raw}')" if raw else ""))
        elif kind == "reference":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                self.error(node, key, where, f"expected a record id for {name}, got {value!r}")

    # ---- documents ----------------------------------------------------------------------

    def run(self):
        self.check_app()
        self.check_roles()
        for name, d in self.merged.of("dictionary").items():
            self.begin(d, d.doc.path)
            self.check_dictionary(name, d.data)
        for name, d in self.merged.of("object").items():
            self.begin(d)
            self.check_object(name, d.data, d.doc.layer.name == "system")
        for name, d in self.merged.of("workflow").items():
            self.begin(d)
            self.check_workflow(name, d.data)
        for name, d in self.merged.of("report").items():
            self.begin(d)
            self.check_report(name, d.data)
        for name, d in self.merged.of("automation").items():
            self.begin(d)
            self.check_automation(name, d.data)
        return self.problems

    def check_app(self):
        app = self.merged.app
        if app is None:
            return
        self.begin()
        languages = app.get("languages") or ["zh", "en"]
        default = app.get("default_language")
        if default and default not in languages:
            self.error(app, "default_language", ["default_language"],
                       f"'{default}' is not one of the languages" + suggest(default, languages))
        groups = [(app, "menu")] + [(p.data, "menu") for p in self.merged.packs]
        for node, key in groups:
            for i, group in enumerate(node.get(key) or []):
                for j, item in enumerate(group.get("items") or []):
                    self.menu_item(group["items"], j, ("menu", i, "items", j), item)

    def menu_item(self, node, key, path, item):
        kind, _, name = item.rpartition(":")
        if kind == "report":
            if name not in self.reports and not self.known("report", name):
                self.error(node, key, path, f"unknown report '{name}'" + suggest(name, self.names["report"], list_all=False))
        elif kind:
            self.error(node, key, path, f"unknown menu entry kind '{kind}:'; expected an object name or report:NAME")
        elif name not in self.objects:
            if not self.known("object", name):
                self.error(node, key, path, f"unknown object '{name}'" + suggest(name, self.names["object"], list_all=False))
        elif self.objects[name].get("child_of"):
            self.error(node, key, path, f"'{name}' is edited inside {self.objects[name]['child_of']}; "
                                        f"child objects have no menu entry of their own")

    def check_roles(self):
        self.begin()
        codes = {item.get("code") for item, _ in self.merged.departments}
        for item, _doc in self.merged.departments:
            parent = item.get("parent")
            if parent and parent not in codes:
                self.error(item, "parent", ["departments", item.get("code"), "parent"],
                           f"unknown department '{parent}'" + suggest(parent, codes, list_all=False))
        parents = {item.get("code"): item.get("parent") for item, _ in self.merged.departments}
        for item, _doc in self.merged.departments:
            seen, code = set(), item.get("code")
            while code in parents and code not in seen:
                seen.add(code)
                code = parents[code]
            if code in seen:
                self.error(item, "parent", ["departments", item.get("code"), "parent"],
                           "the department tree has a cycle through this parent")
                break

    def check_dictionary(self, name, data):
        seen = {}
        hierarchical = data.get("hierarchical", False)

        def walk(items, path, depth):
            for i, item in enumerate(items):
                code = item.get("code")
                if code in seen:
                    self.error(items, i, path + (i,), f"code '{code}' is listed twice (first at line {seen[code].line})")
                else:
                    seen[code] = items.mark_of(i)
                if item.get("children"):
                    if not hierarchical:
                        self.key_error(item, "children", path + (i, "children"),
                                       "only a hierarchical dictionary has children; add 'hierarchical: true'")
                    walk(item["children"], path + (i, "children"), depth + 1)
        walk(data.get("items") or [], ("items",), 0)

    # ---- objects ---------------------------------------------------------------------------

    def check_object(self, name, data, system_layer):
        fields = self.fields[name]
        if not system_layer and (name in RESERVED_OBJECTS or name.startswith("loom_")):
            self.error(data, "object" if "object" in data else None, ["object"],
                       f"'{name}' is reserved by the engine; choose another object name")
        if data.get("system") and not system_layer:
            return
        seen = {}
        reserved = self.reserved_names(data)
        for i, f in enumerate(data.get("fields") or []):
            fname = f.get("name")
            where = ("fields", i)
            if fname in seen:
                self.error(data["fields"], i, where, f"field '{fname}' is defined twice (first at line {seen[fname].line})")
                continue
            seen[fname] = data["fields"].mark_of(i)
            if fname in reserved:
                self.error(f, "name", where + ("name",), f"'{fname}' is a system field every object has; "
                                                         f"choose another name")
                continue
            if isinstance(fname, str) and fname.startswith("dup_"):
                self.error(f, "name", where + ("name",), f"'{fname}': names starting with dup_ are kept for "
                                                         f"duplicate rules' keys; choose another name")
                continue
            if "type" not in f and self.added_by_extension(data["fields"], i):
                declared = [g.get("name") for j, g in enumerate(data["fields"])
                            if isinstance(g, dict) and not self.added_by_extension(data["fields"], j)]
                self.error(f, None, where, f"'{fname}' is not a field of {name}: to change a field use its "
                                           f"name, to add one give it a type" + suggest(fname, declared, list_all=False))
                continue
            if "type" not in f:
                self.error(f, None, where, f"field '{fname}' needs a type" + suggest("", DECLARABLE_TYPES))
                continue
            self.check_field(name, data, f, where)
        self.check_title(name, data)
        self.check_lifecycle(name, data)
        self.check_child(name, data)
        for i, rule in enumerate(data.get("rules") or []):
            self.condition(name, rule, "assert", ("rules", i))
            self.condition(name, rule, "when", ("rules", i))
            for j, fname in enumerate(rule.get("fields") or []):
                self.field_name(name, rule["fields"], j, ("rules", i, "fields", j))
        self.check_views(name, data)
        self.check_permissions(name, data)
        for i, conversion in enumerate(data.get("conversions") or []):
            self.check_conversion(name, data, conversion, ("conversions", i))
        self.check_duplicates(name, data)
        self.check_pool(name, data)
        self.check_formula_cycles(name, data)

    def added_by_extension(self, items, i) -> bool:
        """Whether item i of a merged list came only from extensions (not the definition)."""
        origin = getattr(items, "origin", None)
        return bool(origin) and i in origin and self._file not in origin[i]

    @staticmethod
    def reserved_names(data) -> set:
        """Names a declared field may not take: the fields the engine adds to this object
        (declared ones shadow them in `self.fields`, so ask system_fields directly), and
        the always-reserved names. owner and department are free where the engine adds
        none (system and child objects: a user has a department of its own)."""
        owned = not data.get("system") and not data.get("child_of")
        added = system_fields(owned=owned, has_state=bool(data.get("lifecycle")), parent=data.get("child_of"))
        free = set() if owned else {"owner", "department"}
        return {f["name"] for f in added} | (RESERVED_NAMES - free)

    def field_name(self, obj, node, key, where, *, accept=None, what="field"):
        fname = node[key]
        f = self.fields.get(obj, {}).get(fname)
        if f is None:
            choices = [n for n, d in self.fields.get(obj, {}).items() if accept is None or accept(d)]
            self.error(node, key, where, f"unknown {what} '{fname}' in {obj}" + suggest(fname, choices))
            return None
        if accept is not None and not accept(f):
            self.error(node, key, where, f"'{fname}' ({f.get('type')} field) cannot be used as a {what} here")
            return None
        return f

    def check_field(self, obj, data, f, where):
        ftype = f["type"]
        spec = FIELD_TYPES[ftype]
        for opt in f:
            if opt not in spec.allowed:
                self.key_error(f, opt, where + (opt,), f"option '{opt}' does not apply to a {ftype} field")
        missing = [opt for opt in spec.required if opt not in f]
        for opt in missing:
            self.error(f, None, where, f"a {ftype} field needs '{opt}'")
        for key in ("show_if", "required_if"):
            self.condition(obj, f, key, where)
        if "pattern" in f and ftype in ("text", "textarea"):
            try:
                re.compile(f["pattern"])
            except re.error as e:
                self.error(f, "pattern", where + ("pattern",), f"invalid regular expression: {e}")
        if isinstance(f.get("min_length"), int) and isinstance(f.get("max_length"), int) \
                and f["min_length"] > f["max_length"]:
            self.error(f, "min_length", where + ("min_length",),
                       f"min_length {f['min_length']} is above max_length {f['max_length']}")
        if isinstance(f.get("scale"), int) and isinstance(f.get("precision"), int) and f["scale"] > f["precision"]:
            self.error(f, "scale", where + ("scale",), f"scale {f['scale']} is above precision {f['precision']}")
        self.check_range(obj, f, where)
        handler = getattr(self, f"field_{ftype}", None)
        if handler and not missing:  # the type's own checks read its required options
            handler(obj, data, f, where)
        if "default" in f:
            self.check_default(obj, f, where)
        if f.get("unique") and f.get("type") in ("textarea", "boolean", "file"):
            self.key_error(f, "unique", where + ("unique",), f"a {ftype} field cannot be unique")

    def check_range(self, obj, f, where):
        lo, hi = f.get("min"), f.get("max")
        kind = value_kind(f)
        for key in ("min", "max"):
            if key in f:
                if kind == "number" and (isinstance(f[key], bool) or not isinstance(f[key], (int, float))):
                    self.error(f, key, where + (key,), f"expected a number, got {f[key]!r}")
                    return
                if kind == "temporal":
                    self.literal(obj, f, f[key], f, key, where + (key,), context="range")
        if lo is None or hi is None:
            return
        if kind == "temporal" and isinstance(lo, str) and isinstance(hi, str):
            lo, hi = _parse_date(lo), _parse_date(hi)
            if lo is None or hi is None or type(lo) is not type(hi):
                return
        if isinstance(lo, (int, float, dt.date)) and type(lo) is type(hi) or \
                (isinstance(lo, (int, float)) and isinstance(hi, (int, float))):
            if lo > hi:
                self.error(f, "min", where + ("min",), f"min {f['min']} is above max {f['max']}")

    def check_default(self, obj, f, where):
        value = f["default"]
        if f.get("type") == "dictionary" and f.get("multiple"):
            if not isinstance(value, list):
                self.error(f, "default", where + ("default",), "a multiple dictionary field takes a list of codes")
                return
            for item in value:
                self.literal(obj, f, item, f, "default", where + ("default",), context="default")
            return
        if isinstance(value, (list, dict)):
            self.error(f, "default", where + ("default",), "expected a single value")
            return
        if value is None:
            return
        if isinstance(value, str) and value.startswith("$") and value_kind(f) == "text":
            self.error(f, "default", where + ("default",), f"{value} does not fit a {f['type']} field")
            return
        self.literal(obj, f, value, f, "default", where + ("default",), context="default")

    def field_dictionary(self, obj, data, f, where):
        name = f.get("dictionary")
        if name and name not in self.dictionaries and not self.known("dictionary", name):
            self.error(f, "dictionary", where + ("dictionary",), f"unknown dictionary '{name}'"
                       + suggest(name, self.names["dictionary"] | {"roles"}))

    def field_lookup(self, obj, data, f, where):
        target = f.get("target")
        if target not in self.objects:
            if not self.known("object", target):
                self.error(f, "target", where + ("target",), f"unknown object '{target}'" + suggest(target, self.names["object"]))
            return
        if self.objects[target].get("child_of"):
            self.error(f, "target", where + ("target",), f"'{target}' is a child of "
                       f"{self.objects[target]['child_of']}; look up its parent instead")
        self.check_reference_common(target, f, where)

    def field_user(self, obj, data, f, where):
        self.check_reference_common("user", f, where)

    def field_department(self, obj, data, f, where):
        self.check_reference_common("department", f, where)

    def check_reference_common(self, target, f, where):
        self.condition(target, f, "filter", where)
        if f.get("on_delete") == "set_null" and f.get("required"):
            self.key_error(f, "on_delete", where + ("on_delete",),
                           "a required field cannot be emptied on delete; use restrict or cascade")

    def field_autonumber(self, obj, data, f, where):
        numbering = f.get("numbering")
        if not isinstance(numbering, dict):
            return
        w = where + ("numbering", "pattern")
        try:
            tokens = parse_pattern(numbering.get("pattern", ""))
        except PatternError as e:
            self.error(numbering, "pattern", w, str(e))
            return
        seqs = [t for t in tokens if t[0] == "seq"]
        if not seqs:
            self.error(numbering, "pattern", w, "the pattern has no counter: add {seq:N}")
        elif len(seqs) > 1:
            self.error(numbering, "pattern", w, "the pattern has more than one {seq} counter")
        for t in tokens:
            if t[0] == "field":
                ref = self.fields[obj].get(t[1])
                if ref is None:
                    self.error(numbering, "pattern", w, f"unknown field '{t[1]}' in {{field:{t[1]}}}"
                               + suggest(t[1], [n for n, d in self.fields[obj].items() if not d.get("system")]))
                elif ref.get("type") in ("autonumber", "formula", "rollup", "lines", "mnemonic") or \
                        (ref.get("type") == "dictionary" and ref.get("multiple")):
                    self.error(numbering, "pattern", w, f"{{field:{t[1]}}}: a {ref['type']} field cannot be part of a number")
            if t[0] == "dept" and data.get("system"):
                self.error(numbering, "pattern", w, "{dept} needs an object with a department")
        reset = numbering.get("reset", "never")
        present = {t[1] for t in tokens if t[0] == "date"}
        for needed in RESET_NEEDS.get(reset, ()):
            if not needed & present:
                token = "{" + sorted(needed)[-1] + "}"
                self.error(numbering, "reset", where + ("numbering", "reset"),
                           f"reset: {reset} needs {token} in the pattern, or numbers would repeat")
                break
        assign_on = f.get("assign_on")
        if assign_on and assign_on != "create":
            states = self.lifecycle_states(obj)
            if states is None:
                self.error(f, "assign_on", where + ("assign_on",),
                           f"assign_on '{assign_on}' needs a lifecycle on {obj}; use 'create'")
            elif assign_on not in states:
                self.error(f, "assign_on", where + ("assign_on",), f"'{assign_on}' is not a state of {obj}"
                           + suggest(assign_on, ["create"] + states))

    def field_mnemonic(self, obj, data, f, where):
        src = f.get("source")
        if src:
            self.field_name(obj, f, "source", where + ("source",),
                            accept=lambda d: d.get("type") in ("text", "textarea"), what="source text field")

    def field_formula(self, obj, data, f, where):
        try:
            expr = parse_expression(f.get("expr", ""))
        except ExpressionError as e:
            self.error(f, "expr", where + ("expr",), str(e) + (f" (at character {e.column})" if e.column else ""))
            return
        for name in sorted(expr.names):
            ref = self.fields[obj].get(name)
            if ref is None:
                self.error(f, "expr", where + ("expr",), f"unknown field '{name}' in the formula"
                           + suggest(name, [n for n, d in self.fields[obj].items() if d.get("type") != "lines"]))
            elif ref.get("type") == "lines":
                self.error(f, "expr", where + ("expr",), f"'{name}' is a lines field; use a rollup to sum its rows")

    def field_rollup(self, obj, data, f, where):
        source = f.get("from")
        if isinstance(source, str):
            lines = self.fields[obj].get(source)
            if lines is None or lines.get("type") != "lines":
                self.error(f, "from", where + ("from",), f"'{source}' is not a lines field of {obj}"
                           + suggest(source, [n for n, d in self.fields[obj].items() if d.get("type") == "lines"]))
                return
            child = lines.get("object")
        else:
            child = source.get("object")
            if child not in self.objects:
                if not self.known("object", child):
                    self.error(source, "object", where + ("from", "object"), f"unknown object '{child}'"
                               + suggest(child, self.names["object"]))
                return
            via = self.fields[child].get(source.get("via"))
            if via is None or via.get("type") != "lookup" or via.get("target") != obj:
                links = [n for n, d in self.fields[child].items() if d.get("type") == "lookup" and d.get("target") == obj]
                self.error(source, "via", where + ("from", "via"),
                           f"'{source.get('via')}' is not a lookup from {child} to {obj}" + suggest(source.get("via"), links))
                return
        if child not in self.fields:
            return
        agg = f.get("agg")
        if "field" in f:
            ref = self.field_name(child, f, "field", where + ("field",), what="field")
            if ref is not None and agg in ("sum", "avg") and value_kind(ref) != "number":
                self.error(f, "field", where + ("field",), f"'{agg}' needs a number field; {f['field']} is {ref.get('type')}")
        elif agg != "count":
            self.error(f, None, where, f"a '{agg}' rollup needs 'field'")
        self.condition(child, f, "where", where)

    def field_lines(self, obj, data, f, where):
        child = f.get("object")
        if child not in self.objects:
            if not self.known("object", child):
                self.error(f, "object", where + ("object",), f"unknown object '{child}'" + suggest(child, self.names["object"]))
            return
        if self.objects[child].get("child_of") != obj:
            self.error(f, "object", where + ("object",), f"'{child}' must declare 'child_of: {obj}' to be lines of {obj}")

    def check_title(self, name, data):
        if "title" in data:
            self.field_name(name, data, "title", ("title",),
                            accept=lambda d: d.get("type") not in ("lines", "file"), what="title field")

    def check_lifecycle(self, name, data):
        lifecycle = data.get("lifecycle")
        if not lifecycle:
            return
        wf = self.workflows.get(lifecycle)
        if wf is None:
            if not self.known("workflow", lifecycle):
                self.error(data, "lifecycle", ("lifecycle",), f"unknown workflow '{lifecycle}'"
                           + suggest(lifecycle, [n for n, w in self.workflows.items() if w.get("kind") == "lifecycle"]))
        elif wf.get("kind") != "lifecycle":
            self.error(data, "lifecycle", ("lifecycle",), f"'{lifecycle}' is an {wf.get('kind')} flow, not a lifecycle")
        elif wf.get("object") != name:
            self.error(data, "lifecycle", ("lifecycle",),
                       f"the lifecycle '{lifecycle}' belongs to object '{wf.get('object')}', not {name}")
        if data.get("child_of") and lifecycle:
            self.key_error(data, "lifecycle", ("lifecycle",), "a child object follows its parent's lifecycle")

    def check_child(self, name, data):
        parent = data.get("child_of")
        if not parent:
            return
        if parent not in self.objects:
            if not self.known("object", parent):
                self.error(data, "child_of", ("child_of",), f"unknown object '{parent}'" + suggest(parent, self.names["object"]))
            return
        used = any(f.get("type") == "lines" and f.get("object") == name
                   for f in self.objects[parent].get("fields") or [] if isinstance(f, dict))
        if not used:
            self.error(data, "child_of", ("child_of",),
                       f"no lines field of {parent} uses '{name}'; add "
                       f"{{name: ..., type: lines, object: {name}}} to {parent}")
        if self.objects[parent].get("child_of"):
            self.error(data, "child_of", ("child_of",), f"'{parent}' is itself a child object; lines nest one level")

    def check_views(self, name, data):
        lst = data.get("list") or {}
        sortable = lambda d: FIELD_TYPES[d["type"]].sortable and not d.get("multiple")  # noqa: E731
        for i, _ in enumerate(lst.get("columns") or []):
            self.column(name, lst["columns"], i, ("list", "columns", i))
        for i, key in enumerate(lst.get("sort") or []):
            self.sort_key(name, lst["sort"], i, ("list", "sort", i))
        for i, _ in enumerate(lst.get("filters") or []):
            self.field_name(name, lst["filters"], i, ("list", "filters", i), what="filter field",
                            accept=lambda d: d["type"] not in ("lines", "file", "textarea", "formula") or
                            (d["type"] == "formula" and d.get("result", "decimal") != "text"))
        kanban = lst.get("kanban")
        if kanban:
            self.field_name(name, kanban, "group_by", ("list", "kanban", "group_by"), what="kanban column field",
                            accept=lambda d: d["type"] in ("dictionary", "state", "user", "lookup", "boolean")
                            and not d.get("multiple"))
            if "sum" in kanban:
                self.field_name(name, kanban, "sum", ("list", "kanban", "sum"), what="number field",
                                accept=lambda d: value_kind(d) == "number")
            for i, _ in enumerate(kanban.get("fields") or []):
                self.field_name(name, kanban["fields"], i, ("list", "kanban", "fields", i))
        calendar = lst.get("calendar")
        if calendar:
            for key in ("start", "end"):
                if key in calendar:
                    self.field_name(name, calendar, key, ("list", "calendar", key), what="date field",
                                    accept=lambda d: d["type"] in ("date", "datetime"))
            if "title" in calendar:
                self.field_name(name, calendar, "title", ("list", "calendar", "title"))
        for view in ("form", "detail"):
            sections = (data.get(view) or {}).get("sections") or []
            placed = {}
            for i, section in enumerate(sections):
                for j, fname in enumerate(section.get("fields") or []):
                    where = (view, "sections", i, "fields", j)
                    if self.field_name(name, section["fields"], j, where) is None:
                        continue
                    if fname in placed:
                        self.error(section["fields"], j, where, f"'{fname}' is already in this {view} (line {placed[fname].line})")
                    placed[fname] = section["fields"].mark_of(j)
                self.condition(name, section, "show_if", (view, "sections", i))
        for i, rel in enumerate((data.get("detail") or {}).get("related") or []):
            self.related(name, rel, ("detail", "related", i))
        search = data.get("search") or {}
        for i, _ in enumerate(search.get("quick") or []):
            self.field_name(name, search["quick"], i, ("search", "quick", i), what="quick-search field",
                            accept=lambda d: d["type"] in TEXT_TYPES)
        schemes = {}
        for i, scheme in enumerate(search.get("schemes") or []):
            if scheme.get("name") in schemes:
                self.error(search["schemes"], i, ("search", "schemes", i),
                           f"search scheme '{scheme['name']}' is defined twice (first at line {schemes[scheme['name']].line})")
            schemes[scheme.get("name")] = search["schemes"].mark_of(i)
            self.condition(name, scheme, "where", ("search", "schemes", i))
            for j, _ in enumerate(scheme.get("sort") or []):
                self.sort_key(name, scheme["sort"], j, ("search", "schemes", i, "sort", j))
            for j, _ in enumerate(scheme.get("columns") or []):
                self.column(name, scheme["columns"], j, ("search", "schemes", i, "columns", j))

    def column(self, obj, node, key, where):
        f = self.resolve(obj, node[key], node, key, where)
        if f is not None and f.get("type") == "lines":
            self.error(node, key, where, f"'{node[key]}' is a lines field; it cannot be a column")

    def sort_key(self, obj, node, key, where):
        fname = node[key].lstrip("-")
        f = self.fields.get(obj, {}).get(fname)
        if f is None:
            choices = [n for n, d in self.fields.get(obj, {}).items() if FIELD_TYPES[d["type"]].sortable]
            self.error(node, key, where, f"unknown field '{fname}' to sort on in {obj}" + suggest(fname, choices))
        elif not FIELD_TYPES[f["type"]].sortable or f.get("multiple"):
            self.error(node, key, where, f"a {f['type']} field cannot be sorted on")

    def related(self, obj, rel, where):
        child = rel.get("object")
        if child not in self.objects:
            if not self.known("object", child):
                self.error(rel, "object", where + ("object",), f"unknown object '{child}'" + suggest(child, self.names["object"]))
            return
        via = self.fields[child].get(rel.get("via"))
        if via is None or not (via.get("type") in ("lookup", "user", "department") and
                               (via.get("target") or via.get("type")) == obj):
            links = [n for n, d in self.fields[child].items()
                     if d.get("type") in ("lookup", "user", "department") and (d.get("target") or d.get("type")) == obj]
            self.error(rel, "via", where + ("via",), f"'{rel.get('via')}' is not a field of {child} that refers to {obj}"
                       + suggest(rel.get("via"), links))
        for i, _ in enumerate(rel.get("columns") or []):
            self.column(child, rel["columns"], i, where + ("columns", i))
        for i, _ in enumerate(rel.get("sort") or []):
            self.sort_key(child, rel["sort"], i, where + ("sort", i))

    def check_permissions(self, name, data):
        for role, perm in (data.get("permissions") or {}).items():
            where = ("permissions", role)
            if role not in self.roles:
                self.key_error(data["permissions"], role, where, f"unknown role '{role}'" + suggest(role, self.roles))
            for action in ("read", "update", "delete"):
                if isinstance(perm.get(action), dict):
                    self.condition(name, perm, action, where)
            if data.get("child_of"):
                self.key_error(data["permissions"], role, where, "a child object's permissions follow its parent")
        for fname, perm in (data.get("field_permissions") or {}).items():
            where = ("field_permissions", fname)
            if fname not in self.fields[name]:
                self.key_error(data["field_permissions"], fname, where, f"unknown field '{fname}' in {name}"
                               + suggest(fname, self.fields[name]))
            for action in ("read", "update"):
                for i, role in enumerate(perm.get(action) or []):
                    if role not in self.roles:
                        self.error(perm[action], i, where + (action, i), f"unknown role '{role}'" + suggest(role, self.roles))

    def conversion_values(self, source, target, node, key, where, created):
        """Values for fields of `target`: literals, $variables, $created, {field: x} of the
        source, {expr: ...} over the source."""
        values = node.get(key)
        if not isinstance(values, dict):
            return
        for fname, value in values.items():
            w = where + (key, fname)
            f = self.fields.get(target, {}).get(fname)
            if f is None:
                self.key_error(values, fname, w, f"unknown field '{fname}' in {target}"
                               + suggest(fname, [n for n, d in self.fields.get(target, {}).items() if not d.get("system")]))
                continue
            if (f.get("system") and fname != "owner") or f.get("type") in ("autonumber", "mnemonic", "formula", "rollup"):
                self.key_error(values, fname, w, f"'{fname}' is computed by the engine and cannot be set")
                continue
            if isinstance(value, dict) and "expr" in value:
                try:
                    expr = parse_expression(value["expr"])
                except ExpressionError as e:
                    self.error(value, "expr", w + ("expr",), str(e))
                    continue
                for used in sorted(expr.names - set(self.fields[source])):
                    self.error(value, "expr", w + ("expr",), f"unknown field '{used}' of {source} in the formula"
                               + suggest(used, self.fields[source]))
            elif isinstance(value, dict):
                self.resolve(source, value.get("field", ""), value, "field", w + ("field",))
            elif isinstance(value, str) and value.startswith("$") and value[1:] in created:
                made = created[value[1:]]
                if f.get("type") != "lookup" or f.get("target") != made:
                    self.error(values, fname, w, f"${value[1:]} is a {made} record; '{fname}' of {target} "
                                                 f"does not refer to {made}")
            elif value is not None:
                self.literal(target, f, value, values, fname, w, context="set")

    def check_duplicates(self, obj, data):
        seen = set()
        for i, rule in enumerate(data.get("duplicates") or []):
            where = ("duplicates", i)
            if rule.get("name") in seen:
                self.error(data["duplicates"], i, where, f"duplicate rule '{rule['name']}' is defined twice")
            seen.add(rule.get("name"))
            for j, _f in enumerate(rule.get("fields") or []):
                self.field_name(obj, rule["fields"], j, where + ("fields", j), what="field to compare",
                                accept=lambda d: d.get("type") in TEXT_TYPES and d.get("type") != "autonumber")
            if "threshold" in rule and rule.get("match", "exact") != "similar":
                self.key_error(rule, "threshold", where + ("threshold",), "a threshold applies to match: similar")
            if data.get("child_of") or data.get("system"):
                self.error(data["duplicates"], i, where, "duplicate rules are for business objects")

    def check_pool(self, obj, data):
        pool = data.get("pool")
        if not isinstance(pool, dict):
            return
        if data.get("child_of") or data.get("system"):
            self.key_error(data, "pool", ("pool",), "only business objects (with owners) can have a pool")
        for key in ("roles", "managers"):
            for j, role in enumerate(pool.get(key) or []):
                if role not in self.roles:
                    self.error(pool[key], j, ("pool", key, j), f"unknown role '{role}'" + suggest(role, self.roles))
        reasons = pool.get("return_reasons")
        if reasons and reasons not in self.dictionaries and not self.known("dictionary", reasons):
            self.error(pool, "return_reasons", ("pool", "return_reasons"), f"unknown dictionary '{reasons}'"
                       + suggest(reasons, self.names["dictionary"]))

    def check_conversion(self, obj, data, conversion, where):
        for j, role in enumerate(conversion.get("roles") or []):
            if role not in self.roles:
                self.error(conversion["roles"], j, where + ("roles", j), f"unknown role '{role}'" + suggest(role, self.roles))
        self.condition(obj, conversion, "when", where)
        created = {}
        for j, create in enumerate(conversion.get("creates") or []):
            w = where + ("creates", j)
            target, alias = create.get("object"), create.get("as")
            if alias in created or alias in ("current_user", "current_department", "today", "now"):
                self.error(create, "as", w + ("as",), f"'{alias}' is already a name in this conversion")
                continue
            if target not in self.objects:
                if not self.known("object", target):
                    self.error(create, "object", w + ("object",), f"unknown object '{target}'"
                               + suggest(target, self.names["object"]))
                continue
            if self.objects[target].get("child_of"):
                self.error(create, "object", w + ("object",), f"'{target}' is created with its parent, not on its own")
                continue
            self.conversion_values(obj, target, create, "values", w, created)
            for k, lines in enumerate(create.get("copy_lines") or []):
                mine, theirs = self.fields[obj].get(lines), self.fields[target].get(lines)
                if not mine or mine.get("type") != "lines" or not theirs or theirs.get("object") != mine.get("object"):
                    self.error(create["copy_lines"], k, w + ("copy_lines", k),
                               f"'{lines}' must be a lines field of both {obj} and {target} with the same rows")
            link = create.get("link")
            if link:
                f = self.fields[obj].get(link)
                if f is None or f.get("type") != "lookup" or f.get("target") != target:
                    self.error(create, "link", w + ("link",), f"'{link}' is not a lookup from {obj} to {target}"
                               + suggest(link, [n for n, d in self.fields[obj].items()
                                                if d.get("type") == "lookup" and d.get("target") == target]))
            created[alias] = target
        self.conversion_values(obj, obj, conversion, "set", where, created)
        transition = conversion.get("transition")
        if transition and transition not in self.transitions_of(obj):
            self.error(conversion, "transition", where + ("transition",), f"unknown transition '{transition}' of {obj}"
                       + suggest(transition, self.transitions_of(obj)))
        opened = conversion.get("open")
        if opened and opened not in created:
            self.error(conversion, "open", where + ("open",), f"'{opened}' is not created by this conversion"
                       + suggest(opened, created))

    def check_formula_cycles(self, name, data):
        fields = data.get("fields") or []
        deps = {}
        for f in fields:
            if f.get("type") == "formula":
                try:
                    deps[f["name"]] = parse_expression(f.get("expr", "")).names
                except ExpressionError:
                    continue

        def cycle_from(start):
            stack, seen = [(start, [start])], set()
            while stack:
                node, path = stack.pop()
                for nxt in deps.get(node, ()):
                    if nxt == start:
                        return path + [start]
                    if nxt in deps and nxt not in seen:
                        seen.add(nxt)
                        stack.append((nxt, path + [nxt]))
            return None

        reported = set()
        for i, f in enumerate(fields):
            if f.get("name") in deps and f["name"] not in reported:
                cycle = cycle_from(f["name"])
                if cycle:
                    reported.update(cycle)
                    self.error(f, "expr", ("fields", i, "expr"),
                               f"formula '{f['name']}' depends on itself: {' -> '.join(cycle)}")

    # ---- workflows -------------------------------------------------------------------------

    def check_workflow(self, name, data):
        obj = data.get("object")
        for key in ("kind", "object"):
            if key not in data:
                self.error(data, None, (), f"missing required key '{key}'")
        if obj not in self.objects:
            if obj and not self.known("object", obj):
                self.error(data, "object", ("object",), f"unknown object '{obj}'" + suggest(obj, self.names["object"]))
            return
        if data.get("kind") == "lifecycle":
            self.check_lifecycle_flow(name, obj, data)
        elif data.get("kind") == "approval":
            self.check_approval(name, obj, data)

    def state_ref(self, obj, node, key, where, states):
        if node[key] not in states:
            self.error(node, key, where, f"unknown state '{node[key]}'" + suggest(node[key], states))

    def set_values(self, obj, node, key, where, source=None):
        """Values written to fields of `obj`; {field: x} reads x from `source` (the record
        that triggered an automation's create), else from the record itself."""
        values = node.get(key)
        if not isinstance(values, dict):
            return
        for fname, value in values.items():
            f = self.fields[obj].get(fname)
            if f is None:
                self.key_error(values, fname, where + (key, fname), f"unknown field '{fname}' in {obj}"
                               + suggest(fname, [n for n, d in self.fields[obj].items() if not d.get("system")]))
            elif (f.get("system") and fname not in ASSIGNABLE_SYSTEM) or \
                    f.get("type") in ("autonumber", "mnemonic", "formula", "rollup", "lines"):
                self.key_error(values, fname, where + (key, fname), f"'{fname}' is computed by the engine and cannot be set")
            elif isinstance(value, dict):
                self.resolve(source or obj, value.get("field", ""), value, "field", where + (key, fname, "field"))
            elif value is not None:
                self.literal(obj, f, value, values, fname, where + (key, fname), context="set")

    def check_lifecycle_flow(self, name, obj, data):
        states = []
        initial = []
        for i, state in enumerate(data.get("states") or []):
            if state.get("name") in states:
                self.error(data["states"], i, ("states", i), f"state '{state['name']}' is defined twice")
            states.append(state.get("name"))
            if state.get("initial"):
                initial.append(i)
            if state.get("initial") and state.get("final"):
                self.key_error(state, "final", ("states", i, "final"), "a state cannot be both initial and final")
        if not states:
            self.error(data, "states" if "states" in data else None, ("states",), "a lifecycle needs states")
        elif not initial:
            self.error(data, "states", ("states",), "no state is marked 'initial: true'")
        elif len(initial) > 1:
            self.error(data["states"], initial[1], ("states", initial[1]), "only one state may be initial")
        if "steps" in data:
            self.key_error(data, "steps", ("steps",), "steps belong to an approval flow (kind: approval)")
        names = set()
        for i, tr in enumerate(data.get("transitions") or []):
            where = ("transitions", i)
            if tr.get("name") in names:
                self.error(data["transitions"], i, where, f"transition '{tr['name']}' is defined twice")
            names.add(tr.get("name"))
            for key in ("from", "to"):
                if key not in tr:
                    self.error(tr, None, where, f"missing required key '{key}'")
            sources = tr.get("from")
            if isinstance(sources, str):
                self.state_ref(obj, tr, "from", where + ("from",), states)
            elif isinstance(sources, list):
                for j, _ in enumerate(sources):
                    self.state_ref(obj, sources, j, where + ("from", j), states)
            if "to" in tr:
                self.state_ref(obj, tr, "to", where + ("to",), states)
            for j, role in enumerate(tr.get("roles") or []):
                if role not in self.roles:
                    self.error(tr["roles"], j, where + ("roles", j), f"unknown role '{role}'" + suggest(role, self.roles))
            self.condition(obj, tr, "when", where)
            self.set_values(obj, tr, "set", where)
            flow = tr.get("approval")
            if flow:
                wf = self.workflows.get(flow)
                if wf is None:
                    if not self.known("workflow", flow):
                        self.error(tr, "approval", where + ("approval",), f"unknown approval flow '{flow}'"
                                   + suggest(flow, [n for n, w in self.workflows.items() if w.get("kind") == "approval"]))
                elif wf.get("kind") != "approval":
                    self.error(tr, "approval", where + ("approval",), f"'{flow}' is a {wf.get('kind')}, not an approval flow")
                elif wf.get("object") != obj and wf.get("object") in self.objects:  # else reported at the flow
                    self.error(tr, "approval", where + ("approval",),
                               f"the approval flow '{flow}' is for object '{wf.get('object')}', not {obj}")

    def check_approval(self, name, obj, data):
        if "states" in data or "transitions" in data:
            key = "states" if "states" in data else "transitions"
            self.key_error(data, key, (key,), f"{key} belong to a lifecycle (kind: lifecycle)")
        if not data.get("steps"):
            self.error(data, "steps" if "steps" in data else None, ("steps",), "an approval flow needs steps")
        seen = set()
        for i, step in enumerate(data.get("steps") or []):
            where = ("steps", i)
            if step.get("name") in seen:
                self.error(data["steps"], i, where, f"step '{step['name']}' is defined twice")
            seen.add(step.get("name"))
            self.condition(obj, step, "when", where)
            approvers = step.get("approvers") or {}
            if "role" in approvers and approvers["role"] not in self.roles:
                self.error(approvers, "role", where + ("approvers", "role"), f"unknown role '{approvers['role']}'"
                           + suggest(approvers["role"], self.roles))
            if "user_field" in approvers:
                self.field_name(obj, approvers, "user_field", where + ("approvers", "user_field"), what="user field",
                                accept=lambda d: d.get("type") == "user")
        states = self.lifecycle_states(obj)
        for key in ("on_approved", "on_rejected"):
            outcome = data.get(key)
            if not isinstance(outcome, dict):
                continue
            if "to" in outcome:
                if states is None:
                    self.error(outcome, "to", (key, "to"), f"{obj} has no lifecycle to move to '{outcome['to']}'")
                else:
                    self.state_ref(obj, outcome, "to", (key, "to"), states)
            self.set_values(obj, outcome, "set", (key,))

    # ---- reports and automations ----------------------------------------------------------

    def check_report(self, name, data):
        obj = data.get("object")
        if "object" not in data:
            self.error(data, None, (), "missing required key 'object'")
            return
        if obj not in self.objects:
            if not self.known("object", obj):
                self.error(data, "object", ("object",), f"unknown object '{obj}'" + suggest(obj, self.names["object"]))
            return
        self.condition(obj, data, "where", ())
        for i, g in enumerate(data.get("group_by") or []):
            node, key = (g, "field") if isinstance(g, dict) else (data["group_by"], i)
            f = self.resolve(obj, node[key], node, key, ("group_by", i))
            if f is not None and isinstance(g, dict) and g.get("bucket") and value_kind(f) != "temporal":
                self.error(g, "bucket", ("group_by", i, "bucket"), f"only dates can be bucketed; {g['field']} is {f.get('type')}")
        for i, m in enumerate(data.get("measures") or []):
            if "field" in m:
                f = self.resolve(obj, m["field"], m, "field", ("measures", i, "field"))
                if f is not None and m.get("agg") in ("sum", "avg") and value_kind(f) != "number":
                    self.error(m, "field", ("measures", i, "field"), f"'{m['agg']}' needs a number field")
            elif m.get("agg") != "count":
                self.error(m, None, ("measures", i), f"'{m.get('agg')}' needs a field")

    def check_automation(self, name, data):
        obj = data.get("object")
        for key in ("object", "on"):
            if key not in data:
                self.error(data, None, (), f"missing required key '{key}'")
        if obj not in self.objects:
            if obj and not self.known("object", obj):
                self.error(data, "object", ("object",), f"unknown object '{obj}'" + suggest(obj, self.names["object"]))
            return
        on = data.get("on", "")
        if on == "schedule" and "every" not in data:
            self.error(data, "on", ("on",), "a scheduled automation needs 'every' (such as 1d)")
        if on != "schedule" and "every" in data:
            self.key_error(data, "every", ("every",), "'every' only applies to on: schedule")
        transitions = self.transitions_of(obj)
        if on.startswith("transition:") and on[11:] not in transitions:
            self.error(data, "on", ("on",), f"unknown transition '{on[11:]}' of {obj}" + suggest(on[11:], transitions))
        self.condition(obj, data, "when", ())
        for i, action in enumerate(data.get("do") or []):
            where = ("do", i)
            if "set" in action:
                self.set_values(obj, action, "set", where)
            if "transition" in action and action["transition"] not in transitions:
                self.error(action, "transition", where + ("transition",), f"unknown transition '{action['transition']}'"
                           + suggest(action["transition"], transitions))
            if "create" in action:
                target = action["create"].get("object")
                if target not in self.objects:
                    self.error(action["create"], "object", where + ("create", "object"), f"unknown object '{target}'"
                               + suggest(target, self.names["object"]))
                else:
                    self.set_values(target, action["create"], "values", where + ("create",), source=obj)
            if "notify" in action:
                to = action["notify"].get("to", "")
                kind, _, rest = to.partition(":")
                if kind == "role":
                    if rest not in self.roles:
                        self.error(action["notify"], "to", where + ("notify", "to"), f"unknown role '{rest}'"
                                   + suggest(rest, self.roles))
                else:
                    self.field_name(obj, action["notify"], "to", where + ("notify", "to"),
                                    what="user field (or role:NAME)", accept=lambda d: d.get("type") == "user")

    def transitions_of(self, obj):
        declared, wf = self.usable_lifecycle(obj)
        if wf is None:
            return ANYTHING if declared else []
        return [t.get("name") for t in wf.get("transitions") or [] if isinstance(t, dict)]


def check(merged: Merged) -> list[Problem]:
    return Checker(merged).run()
