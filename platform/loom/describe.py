"""A person-readable description of one object: `loom describe customer`."""
from __future__ import annotations

from .compiler.tables import Schema
from .metadata.spec import All, Any_, AppSpec, Compare, FieldRef, Not, ObjectSpec, Var


def condition_text(cond) -> str:
    if cond is None:
        return ""
    if isinstance(cond, Not):
        return f"not ({condition_text(cond.item)})"
    if isinstance(cond, (All, Any_)):
        joiner = " and " if isinstance(cond, All) else " or "
        return "(" + joiner.join(condition_text(c) for c in cond.items) + ")"
    value = cond.value
    if isinstance(value, FieldRef):
        value = ".".join(value.path)
    elif isinstance(value, Var):
        value = value_text(value)
    if cond.op in ("is_null", "not_null"):
        return f"{'.'.join(cond.path)} {cond.op}"
    shown = repr(value) if isinstance(cond.value, str) else str(value)
    return f"{'.'.join(cond.path)} {cond.op} {shown}"


def value_text(value) -> str:
    if isinstance(value, Var):
        return f"${value.name}" + (f"{value.offset:+d}{value.unit}" if value.offset else "")
    return "" if value is None else str(value)


def _scope(scope) -> str:
    return scope if isinstance(scope, str) else f"where {condition_text(scope)}"


def _field_line(obj: ObjectSpec, f, schema: Schema) -> str:
    table = schema.tables[obj.name]
    column = table.c.get(f.name)
    flags = [flag for flag, on in (("required", f.required), ("unique", f.unique), ("readonly", f.readonly),
                                   ("hidden", f.hidden), ("system", f.system)) if on]
    detail = ""
    if f.type == "dictionary":
        detail = f"-> {f.dictionary}" + (" (several)" if f.multiple else "")
    elif f.is_reference:
        detail = f"-> {f.target}" + (f" on delete {f.on_delete}" if f.on_delete != "restrict" else "")
    elif f.type == "autonumber":
        detail = f"{f.numbering.pattern} reset {f.numbering.reset}" + (f", on {f.assign_on}" if f.assign_on != "create" else "")
    elif f.type == "formula":
        detail = f"= {f.expr}"
    elif f.type == "rollup":
        r = f.rollup
        detail = f"{r.agg}({r.field or '*'}) of {r.child} via {r.via}" + (f" where {condition_text(r.where)}" if r.where else "")
    elif f.type == "mnemonic":
        detail = f"initials of {f.source}"
    elif f.type == "lines":
        detail = f"rows of {f.lines_object}"
    if f.min is not None or f.max is not None:
        detail += f" range [{value_text(f.min)}..{value_text(f.max)}]"
    if f.default is not None:
        detail += f" default {value_text(f.default) if isinstance(f.default, Var) else repr(f.default)}"
    col = str(column.type) if column is not None else ("side table" if f.multiple else "-")
    label = f"{f.label.text('zh')} / {f.label.text('en')}"
    return f"  {f.name:<22} {f.type:<11} {col:<14} {label:<30} {' '.join(flags)} {detail}".rstrip()


def describe(spec: AppSpec, schema: Schema, name: str) -> str:
    obj = spec.object(name)
    table = schema.tables[obj.name]
    lines = [f"{obj.name} — {obj.label.text('zh')} / {obj.label.text('en')}",
             f"table {table.name}; title field {obj.title}" + (f"; lines of {obj.child_of}" if obj.child_of else "")
             + (f"; defined at {obj.source}" if obj.source else ""), "", "fields:"]
    lines += [_field_line(obj, f, schema) for f in obj.fields.values()]
    lines += ["", "indexes:"]
    for index in sorted(table.indexes, key=lambda i: i.name or ""):
        lines.append(f"  {index.name}({', '.join(c.name for c in index.columns)})"
                     + (" unique among non-deleted" if index.unique else ""))
    if obj.rules:
        lines += ["", "rules:"] + [f"  {r.name}: {condition_text(r.condition)}" for r in obj.rules]
    lines += ["", f"list: columns {', '.join(obj.list.columns)}; sort "
              f"{', '.join(('-' if d else '') + n for n, d in obj.list.sort)}; filters {', '.join(obj.list.filters) or '-'}"]
    if obj.search.quick:
        lines.append(f"quick search: {', '.join(obj.search.quick)}")
    for s in obj.search.schemes:
        lines.append(f"scheme {s.name}: {condition_text(s.where)}")
    lifecycle = spec.lifecycle_of(obj)
    if lifecycle:
        lines += ["", f"lifecycle {lifecycle.name}:"]
        for s in lifecycle.states.values():
            marks = [m for m, on in (("initial", s.initial), ("final", s.final), ("locked", s.locked)) if on]
            lines.append(f"  state {s.name} ({s.label.text('zh')}) {' '.join(marks)}".rstrip())
        for t in lifecycle.transitions.values():
            extra = [f"roles {', '.join(t.roles)}" if t.roles else "", f"when {condition_text(t.when)}" if t.when else "",
                     "comment required" if t.require_comment else "", f"approval {t.approval}" if t.approval else ""]
            lines.append(f"  {t.name}: {' | '.join(t.sources)} -> {t.to} {'; '.join(e for e in extra if e)}".rstrip())
    lines += ["", "permissions:"]
    if not obj.permissions:
        lines.append("  superusers only")
    for role, p in obj.permissions.items():
        lines.append(f"  {role}: create {'yes' if p.create else 'no'}, read {_scope(p.read)}, update {_scope(p.update)}, "
                     f"delete {_scope(p.delete)}, export {'yes' if p.export else 'no'}")
    for fname, fp in obj.field_permissions.items():
        lines.append(f"  field {fname}: read {', '.join(fp.read) if fp.read is not None else 'all'}; "
                     f"update {', '.join(fp.update) if fp.update is not None else 'all'}")
    if obj.related:
        lines += ["", "related: " + ", ".join(f"{r.object} via {r.via}" for r in obj.related)]
    return "\n".join(lines)
