"""Structural validation of documents against the shipped JSON Schemas (Draft 2020-12).

The schemas live next to this module, one per document kind plus `common.json`. They are
bundled into self-contained schemas (shared definitions inlined), which is also what
`loom schema export` writes, so editors need no network to resolve references.
jsonschema's errors are rewritten into messages for people, placed at the YAML node.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from importlib import resources

from jsonschema import Draft202012Validator

from .fieldtypes import FIELD_TYPES
from .problems import Problem, format_path, suggest

KINDS = ("app", "pack", "roles", "dictionary", "object", "workflow", "report", "automation")

# Nouns for enum errors: "'txt' is not a field type".
_ENUM_NOUNS = {
    "type": "field type", "op": "operator", "on_delete": "on_delete action", "agg": "aggregate",
    "kind": "workflow kind", "reset": "reset period", "color": "colour", "chart": "chart type",
    "policy": "approval policy", "bucket": "date bucket", "result": "formula result type",
    "manager_of": "manager_of value",
}
_JSON_TYPES = {"string": "a text", "integer": "a whole number", "number": "a number",
               "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "nothing"}


def _schema_text(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("schemas", f"{name}.json").read_text("utf-8"))


def _inline_refs(node, prefix_from: str, prefix_to: str):
    if isinstance(node, dict):
        return {k: (v.replace(prefix_from, prefix_to, 1) if k == "$ref" and isinstance(v, str)
                    else _inline_refs(v, prefix_from, prefix_to)) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, prefix_from, prefix_to) for v in node]
    return node


@lru_cache(maxsize=None)
def bundled_schema(kind: str) -> dict:
    """The schema of one kind with common definitions inlined (self-contained)."""
    schema = _inline_refs(_schema_text(kind), "common.json#/$defs/", "#/$defs/")
    common = _schema_text("common")["$defs"]
    defs = schema.setdefault("$defs", {})
    for name, definition in common.items():
        defs.setdefault(name, copy.deepcopy(definition))
    schema["$id"] = f"https://loom.invalid/schema/v1/{kind}.json"
    return schema


_NOTES = {"x-expected", "$comment", "description", "title"}


def _dereferenced(schema: dict) -> dict:
    """The bundled schema with every `$ref` to a definition replaced by the definition, except
    where a definition refers to itself (a condition inside `all`/`any`): jsonschema resolves
    each reference on every use, a third of the validation time of a large app."""
    defs = schema.get("$defs", {})

    def expand(node, open_defs):
        if isinstance(node, list):
            return [expand(v, open_defs) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = ref[len("#/$defs/"):] if isinstance(ref, str) and ref.startswith("#/$defs/") else None
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if name in defs and name not in open_defs and not (set(siblings) & set(defs[name])) - _NOTES:
            return {**expand(defs[name], open_defs | {name}), **expand(siblings, open_defs)}
        return {k: (v if k in ("$defs", "enum", "const") else expand(v, open_defs)) for k, v in node.items()}
    return expand(schema, frozenset())


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_dereferenced(bundled_schema(kind)), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _locate(doc, path):
    """The container holding the last element of `path`, and that element's key."""
    parent, key = None, None
    node = doc
    for part in path:
        parent, key = node, part
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return parent, key


def _value_mark(doc, path, fallback):
    parent, key = _locate(doc, path)
    if parent is None:
        return getattr(doc, "mark", None) or fallback
    return parent.value_mark(key)


def _key_mark(container, key, fallback):
    marks = getattr(container, "marks", None)
    return marks.get(key, fallback) if marks else fallback


def _raw(doc, path):
    parent, key = _locate(doc, path)
    raw = getattr(parent, "raw", None)
    return raw.get(key) if raw else None


def _describe(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, (dict, list)):
        return _JSON_TYPES["object" if isinstance(value, dict) else "array"]
    return repr(value) if isinstance(value, str) else str(value)


def _branch_errors(error):
    """For anyOf/oneOf: the errors of the one branch whose type fits the value, if any."""
    branches: dict[int, list] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errs for errs in branches.values()
               if not any(e.validator in ("type", "enum", "const") and not e.relative_path for e in errs)]
    return fitting[0] if len(fitting) == 1 else None


def _messages(error, doc):
    """Yield (path, mark-kind, message) triples for one jsonschema error."""
    path = list(error.absolute_path)
    v, schema, inst = error.validator, error.schema, error.instance
    expected = schema.get("x-expected")
    last = path[-1] if path else None

    if v in ("anyOf", "oneOf"):
        branch = _branch_errors(error)
        if branch:
            for sub in branch:
                yield from _messages(sub, doc)
            return
        words = [w for sub in error.context or () if sub.validator == "enum" and not sub.relative_path
                 for w in sub.validator_value if isinstance(w, str)]
        hint = suggest(inst, words, list_all=False) if isinstance(inst, str) and words else ""
        yield path, "value", f"expected {expected or 'a different kind of value'}, got {_describe(inst)}{hint}"
    elif v == "additionalProperties" and isinstance(inst, dict) and schema.get("x-keys-expected"):
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for key in inst:
            if not (isinstance(key, str) and any(p.search(key) for p in patterns)):
                yield path + [key], "key", f"'{key}' is not valid here: expected {schema['x-keys-expected']}"
    elif v == "additionalProperties" and isinstance(inst, dict):
        known = set(schema.get("properties", {}))
        by = schema.get("x-keys-by")  # a field: list only the options of its own type
        if by and inst.get(by) in FIELD_TYPES:
            known = FIELD_TYPES[inst[by]].allowed
        for key in inst:
            if key not in known:
                yield path + [key], "key", f"unknown key '{key}'" + suggest(key, known)
    elif v == "required":
        missing = [k for k in error.validator_value if k not in inst]
        for key in missing:
            yield path, "value", f"missing required key '{key}'"
    elif v == "enum":
        noun = _ENUM_NOUNS.get(last, "allowed value") if isinstance(last, str) else "allowed value"
        yield path, "value", f"{_describe(inst)} is not a{'n' if noun[0] in 'aeiou' else ''} {noun}" + suggest(inst, map(str, error.validator_value))
    elif v == "type":
        want = error.validator_value
        want = [want] if isinstance(want, str) else want
        text = " or ".join(_JSON_TYPES.get(t, t) for t in want)
        raw = _raw(doc, path)
        hint = ""
        if "string" in want and raw is not None:
            read = _describe(inst) if _describe(inst) != raw else \
                "nothing" if inst is None else "true or false" if isinstance(inst, bool) else "a number"
            hint = f"; YAML read {raw} as {read}: write it in quotes ('{raw}')"
        elif "boolean" in want and isinstance(inst, str) and inst.lower() in ("yes", "no", "on", "off", "y", "n"):
            hint = "; write true or false"
        elif "boolean" in want and isinstance(inst, str) and inst.lower() in ("true", "false"):
            hint = f"; write {inst.lower()} without quotes"
        elif want[0] in ("integer", "number") and isinstance(inst, str) and _is_number(inst):
            hint = f"; write {inst} without quotes"
        yield path, "value", f"expected {expected or text}, got {_describe(inst)}{hint}"
    elif v == "pattern":
        yield path, "value", f"{_describe(inst)} is not valid: expected {expected or 'text matching ' + error.validator_value}"
    elif v == "propertyNames":
        sub = schema.get("propertyNames", {})
        exp = sub.get("x-expected") or "a name of lower-case letters, digits and _"
        yield path + [inst], "key", f"'{inst}' is not a valid key here: expected {exp}"
    elif v in ("minItems", "maxItems"):
        n = error.validator_value
        word = "at least" if v == "minItems" else "at most"
        yield path, "value", f"expected {word} {n} item{'s' if n != 1 else ''}, got {len(inst)}"
    elif v in ("minProperties", "maxProperties"):
        n = error.validator_value
        if expected:
            yield path, "value", f"expected {expected}"
        else:
            word = "at least" if v == "minProperties" else "at most"
            yield path, "value", f"expected {word} {n} key{'s' if n != 1 else ''}"
    elif v in ("minimum", "maximum"):
        word = "at least" if v == "minimum" else "at most"
        yield path, "value", f"{inst} is too {'small' if v == 'minimum' else 'large'}: expected {word} {error.validator_value}"
    elif v in ("minLength", "maxLength"):
        if v == "minLength" and error.validator_value == 1:
            yield path, "value", "must not be empty"
        else:
            word = "at least" if v == "minLength" else "at most"
            yield path, "value", f"expected {word} {error.validator_value} characters"
    elif v == "uniqueItems":
        seen, dup = set(), None
        for item in inst:
            marker = json.dumps(item, sort_keys=True, default=str)
            if marker in seen:
                dup = item
                break
            seen.add(marker)
        yield path, "value", f"{_describe(dup)} is listed twice"
    else:  # a validator without a custom message: jsonschema's own text
        yield path, "value", error.message


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate(kind: str, doc, fallback_mark) -> list[Problem]:
    """All structural problems of one document of a known kind."""
    found = []
    for error in validator(kind).iter_errors(doc):
        for path, where, message in _messages(error, doc):
            if where == "key":
                parent, key = _locate(doc, path)
                mark = _key_mark(parent, key, getattr(parent, "mark", fallback_mark) or fallback_mark)
            else:
                mark = _value_mark(doc, path, fallback_mark)
            found.append((tuple(path), Problem(mark, format_path(path), message)))
    return _drop_echoes(found)


def _drop_echoes(found: list) -> list[Problem]:
    """A misspelt required key is reported once, as the unknown key with its suggestion,
    not again as the required key that is missing."""
    suggested = {(path[:-1], m.group(1)) for path, p in found
                 if (m := re.search(r"^unknown key .*; did you mean '([^']+)'", p.message))}
    return [p for path, p in found
            if not ((m := re.fullmatch(r"missing required key '([^']+)'", p.message)) and (path, m.group(1)) in suggested)]
