"""Conditions that arrive at run time (API filters, CLI --where, personal search schemes).

They follow the same language as YAML conditions and are checked by the same operator
rules (metadata/references.py), against the compiled AppSpec; a bad one is a
ValidationError naming what is wrong, never a database error.
"""
from __future__ import annotations

import re

from ..i18n import Message, _
from ..metadata.build import condition as build_condition
from ..metadata.problems import suggest
from ..metadata.references import VARIABLE, allowed_ops
from ..metadata.spec import AppSpec
from .errors import ValidationError

MAX_DEPTH = 8
MAX_ATOMS = 100
PATH = re.compile(r"^[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62}){0,3}$")


def _fail(message, **params):
    raise ValidationError(errors=[Message(message, **params)])


def _field(spec: AppSpec, obj_name: str, path: str, hidden=frozenset()):
    if not isinstance(path, str) or not PATH.match(path):
        _fail(_("'{path}' is not a field name"), path=str(path)[:60])
    obj = spec.objects[obj_name]
    parts = path.split(".")
    for i, name in enumerate(parts):
        f = obj.fields.get(name)
        if f is None or (i == 0 and name in hidden):
            _fail(_("unknown field '{field}'{hint}"), field=name,
                  hint=suggest(name, [n for n in obj.fields if n not in hidden], list_all=False))
        if i < len(parts) - 1:
            if not f.is_reference:
                _fail(_("'{field}' does not lead to another record"), field=name)
            obj = spec.objects[f.target]
    return f


def _check(spec, obj_name, raw, depth, counter, hidden):
    if depth > MAX_DEPTH:
        _fail(_("the condition is nested too deeply"))
    if not isinstance(raw, dict) or not raw:
        _fail(_("a condition is a mapping such as {example}"), example='{"field": "name", "op": "eq", "value": "x"}')
    heads = [k for k in ("all", "any", "not", "field") if k in raw]
    if len(heads) != 1:
        _fail(_("a condition has exactly one of field, all, any or not"))
    head = heads[0]
    extra = set(raw) - ({head} if head != "field" else {"field", "op", "value"})
    if extra:
        _fail(_("unknown key '{key}' in a condition"), key=sorted(extra)[0])
    if head in ("all", "any"):
        if not isinstance(raw[head], list) or not raw[head]:
            _fail(_("'{head}' needs a list of conditions"), head=head)
        for item in raw[head]:
            _check(spec, obj_name, item, depth + 1, counter, hidden)
        return
    if head == "not":
        _check(spec, obj_name, raw["not"], depth + 1, counter, hidden)
        return
    counter[0] += 1
    if counter[0] > MAX_ATOMS:
        _fail(_("the condition has too many parts"))
    f = _field(spec, obj_name, raw["field"], hidden)
    op = raw.get("op")
    ops = allowed_ops({"type": f.type, "result": f.result})
    if op not in ops:
        _fail(_("'{op}' does not apply to {field}{hint}"), op=str(op)[:20], field=raw["field"],
              hint=suggest(str(op), ops, list_all=False))
    value = raw.get("value")
    if op in ("is_null", "not_null"):
        return
    if "value" not in raw or value is None:
        _fail(_("'{op}' needs a value"), op=op)
    if op in ("in", "not_in", "between"):
        if not isinstance(value, list) or not value or (op == "between" and len(value) != 2):
            _fail(_("'{op}' needs a list of values"), op=op)
        items = value
    else:
        items = [value]
    for item in items:
        if isinstance(item, dict):
            if set(item) != {"field"}:
                _fail(_("a value refers to a field as {example}"), example='{"field": "name"}')
            _field(spec, obj_name, item["field"], hidden)
        elif isinstance(item, str) and item.startswith("$") and not VARIABLE.match(item):
            _fail(_("unknown variable '{name}'"), name=item[:30])
        elif isinstance(item, (list, dict)):
            _fail(_("a value is a text, a number, true or false"))


def parse_condition(spec: AppSpec, obj_name: str, raw, *, hidden=frozenset()):
    """A checked condition for `obj_name`; `hidden` fields may not be used (field security)."""
    _check(spec, obj_name, raw, 0, [0], frozenset(hidden))
    cond = build_condition(raw)
    # values are coerced now so a bad date or number is the caller's error, not the database's
    from ..compiler.conditions import ConditionCompiler, Context
    _values_fit(spec, obj_name, cond, ConditionCompiler(spec, None), Context())
    return cond


def _values_fit(spec, obj_name, cond, compiler, ctx):
    from ..metadata.spec import All, Any_, Compare, FieldRef, Not
    if isinstance(cond, Not):
        return _values_fit(spec, obj_name, cond.item, compiler, ctx)
    if isinstance(cond, (All, Any_)):
        for c in cond.items:
            _values_fit(spec, obj_name, c, compiler, ctx)
        return
    if isinstance(cond, Compare) and not isinstance(cond.value, FieldRef) and cond.value is not None:
        f = spec.resolve(spec.objects[obj_name], cond.path)[-1]
        try:
            compiler.resolve(f, cond.value, ctx)
        except (ValueError, TypeError, ArithmeticError):
            _fail(_("'{value}' does not fit {field}"), value=str(cond.value)[:40], field=".".join(cond.path))
