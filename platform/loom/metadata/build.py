"""Merged, checked metadata -> AppSpec.

Runs only when validation found nothing, so it trusts shapes and names. It fills in the
defaults the language promises (labels from names, list columns, forms, quick search).
"""
from __future__ import annotations

import re

from .fieldtypes import FIELD_TYPES, system_fields
from .merge import Merged
from .numbering import parse_pattern
from .spec import (Action, All, Any_, AppSpec, ApprovalFlow, Approvers, AutomationSpec, Calendar,
                   Compare, Conversion, Create, CreatedRef, DepartmentSeed, DictionarySpec, DictItem, DuplicateRule,
                   FieldPermission, FieldRef, FieldSpec, Formula, FrozenDict, Kanban, Label, Lifecycle,
                   ListSpec, MenuGroup,
                   Not, Numbering, ObjectSpec, Outcome, Permission, Pool, Related, ReportSpec, RoleSpec,
                   Rollup, Rule, Scheme, SearchSpec, Section, State, Step, Transition, Var)

_VARIABLE = re.compile(r"^\$(current_user|current_department|today|now)(?:([+-])(\d+)([dh]))?$")
_SIZE = re.compile(r"^([0-9]+) ?(KB|MB|GB)$")
_UNITS = {"KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def freeze(value):
    if isinstance(value, dict):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def value_of(raw):
    """A literal, `{field: x}` or `$variable` from YAML as a spec value."""
    if isinstance(raw, str):
        m = _VARIABLE.match(raw)
        if m:
            offset = int(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
            return Var(m.group(1), offset, m.group(4) or "d")
        return raw
    if isinstance(raw, dict) and "field" in raw:
        return FieldRef(tuple(raw["field"].split(".")))
    if isinstance(raw, list):
        return tuple(value_of(v) for v in raw)
    return raw


def condition(raw):
    if raw is None:
        return None
    if "all" in raw:
        return All(tuple(condition(c) for c in raw["all"]))
    if "any" in raw:
        return Any_(tuple(condition(c) for c in raw["any"]))
    if "not" in raw:
        return Not(condition(raw["not"]))
    return Compare(tuple(raw["field"].split(".")), raw["op"], value_of(raw.get("value")))


def raw_value(value):
    """The inverse of value_of: a spec value as YAML would write it (for snapshots)."""
    if isinstance(value, Var):
        return f"${value.name}" + (f"{value.offset:+d}{value.unit}" if value.offset else "")
    if isinstance(value, FieldRef):
        return {"field": ".".join(value.path)}
    if isinstance(value, tuple):
        return [raw_value(v) for v in value]
    return value


def raw_condition(cond):
    """The inverse of condition: a spec condition as the mapping YAML would hold."""
    if cond is None:
        return None
    if isinstance(cond, All):
        return {"all": [raw_condition(c) for c in cond.items]}
    if isinstance(cond, Any_):
        return {"any": [raw_condition(c) for c in cond.items]}
    if isinstance(cond, Not):
        return {"not": raw_condition(cond.item)}
    out = {"field": ".".join(cond.path), "op": cond.op}
    if cond.op not in ("is_null", "not_null"):
        out["value"] = raw_value(cond.value)
    return out


def _sort(keys) -> tuple:
    return tuple((k.lstrip("-"), k.startswith("-")) for k in keys or ())


def _size(raw):
    if raw is None or isinstance(raw, int):
        return raw
    m = _SIZE.match(raw)
    return int(m.group(1)) * _UNITS[m.group(2)]


def build_field(raw: dict, *, system: bool = False) -> FieldSpec:
    ftype = raw["type"]
    kwargs = dict(
        name=raw["name"], type=ftype, label=Label.of(raw.get("label"), raw["name"]),
        help=Label.of(raw.get("help")), system=system,
        required=raw.get("required", False), required_if=condition(raw.get("required_if")),
        show_if=condition(raw.get("show_if")), unique=raw.get("unique", False),
        default=value_of(raw.get("default")), readonly=raw.get("readonly", False),
        hidden=raw.get("hidden", False), index=raw.get("index", False),
        renamed_from=raw.get("renamed_from"), max_length=raw.get("max_length"),
        min_length=raw.get("min_length"), pattern=raw.get("pattern"), trim=raw.get("trim", True),
        min=value_of(raw.get("min")), max=value_of(raw.get("max")),
        precision=raw.get("precision"), scale=raw.get("scale"), currency=raw.get("currency"),
        dictionary=raw.get("dictionary"), multiple=raw.get("multiple", False),
        on_delete=raw.get("on_delete", "restrict"), filter=condition(raw.get("filter")),
        assign_on=raw.get("assign_on", "create"), source=raw.get("source"), expr=raw.get("expr"),
        result=raw.get("result"), max_size=_size(raw.get("max_size")),
        accept=tuple(raw.get("accept") or ()),
    )
    if ftype in ("decimal", "percent", "money"):
        kwargs["precision"] = kwargs["precision"] or 18
        kwargs["scale"] = kwargs["scale"] if kwargs["scale"] is not None else (2 if ftype != "decimal" else 4)
    if ftype == "formula" and (raw.get("result") or "decimal") == "decimal":
        kwargs["scale"] = kwargs["scale"] if kwargs["scale"] is not None else 2
    if ftype in ("text", "email", "phone", "url", "autonumber", "mnemonic"):
        kwargs["max_length"] = kwargs["max_length"] or {"text": 255, "url": 2000}.get(ftype, 100)
    if ftype == "lookup":
        kwargs["target"] = raw["target"]
    elif ftype in ("user", "department"):
        kwargs["target"] = ftype
    if ftype == "autonumber":
        n = raw["numbering"]
        kwargs["numbering"] = Numbering(n["pattern"], parse_pattern(n["pattern"]), n.get("reset", "never"),
                                        n.get("start", 1), n.get("step", 1))
    if ftype == "lines":
        kwargs["lines_object"] = raw["object"]
    return FieldSpec(**kwargs)


def _rollup(raw: dict, owner: str, objects_raw: dict) -> Rollup:
    src = raw["from"]
    if isinstance(src, str):
        lines = next(f for f in objects_raw[owner].get("fields") or [] if f.get("name") == src)
        return Rollup(lines["object"], owner, raw["agg"], raw.get("field"), condition(raw.get("where")), True)
    return Rollup(src["object"], src["via"], raw["agg"], raw.get("field"), condition(raw.get("where")))


def _rollup_result(rollup: Rollup, objects_raw: dict) -> str | None:
    """min and max of a date, a timestamp or a whole number keep that type."""
    if rollup.agg not in ("min", "max") or not rollup.field:
        return None
    child = next((f for f in objects_raw.get(rollup.child, {}).get("fields") or [] if f.get("name") == rollup.field), None)
    kind = (child or {}).get("type")
    return kind if kind in ("date", "datetime", "integer") else None


def _section(raw: dict, default_label: Label) -> Section:
    return Section(Label.of(raw.get("label")) or default_label, tuple(raw["fields"]), raw.get("name"),
                   raw.get("columns", 2 if len(raw["fields"]) > 1 else 1), condition(raw.get("show_if")))


DETAILS = Label((("en", "Details"), ("zh", "基本信息")))
RECORD_INFO = Label((("en", "Record"), ("zh", "记录信息")))


def build_object(name: str, raw: dict, objects_raw: dict, system_layer: bool) -> ObjectSpec:
    is_system = bool(raw.get("system")) and system_layer
    parent = raw.get("child_of")
    declared = {}
    for f in raw.get("fields") or []:
        spec = build_field(f)
        if spec.type == "rollup":
            rollup = _rollup(f, name, objects_raw)
            spec = _replace(spec, rollup=rollup, result=_rollup_result(rollup, objects_raw))
        declared[spec.name] = spec
    system = [build_field(f, system=True) for f in
              system_fields(owned=not is_system and not parent, has_state=bool(raw.get("lifecycle")), parent=parent)]
    fields = FrozenDict(list(declared.items()) + [(f.name, f) for f in system if f.name not in declared])
    visible = [f for f in declared.values() if not f.hidden]

    title = raw.get("title")
    if not title:
        texts = [f.name for f in visible if f.type in ("text", "autonumber")]
        title = next((n for n in ("name", "title", "subject") if n in declared), texts[0] if texts else "id")

    lst = raw.get("list") or {}
    columns = lst.get("columns")
    if not columns:
        rest = [f.name for f in visible if f.name != title and f.type not in ("lines", "textarea", "file")
                and not (f.type == "dictionary" and f.multiple)][:4]
        columns = [title] + rest + (["state"] if "state" in fields else []) + ["updated_at"]
    filters = lst.get("filters")
    if filters is None:
        filters = [f.name for f in visible if f.type == "dictionary"][:4] + \
                  [n for n in ("state", "owner") if n in fields]
    kanban = lst.get("kanban")
    calendar = lst.get("calendar")
    list_spec = ListSpec(
        columns=tuple(columns), sort=_sort(lst.get("sort") or ["-updated_at"]), filters=tuple(filters),
        page_size=lst.get("page_size", 50),
        kanban=Kanban(kanban["group_by"], kanban.get("sum"), tuple(kanban.get("fields") or ())) if kanban else None,
        calendar=Calendar(calendar["start"], calendar.get("end"), calendar.get("title")) if calendar else None,
    )

    form_raw = (raw.get("form") or {}).get("sections")
    if form_raw:
        form = tuple(_section(s, DETAILS) for s in form_raw)
    else:
        inputs = tuple(f.name for f in visible if not f.computed)
        form = (Section(DETAILS, inputs, None, 2),) if inputs else ()
    detail_raw = (raw.get("detail") or {}).get("sections")
    if detail_raw:
        detail = tuple(_section(s, DETAILS) for s in detail_raw)
    else:
        placed = {n for s in form for n in s.fields}
        computed = tuple(f.name for f in visible if f.computed and f.name not in placed)
        detail = form
        if computed:
            first = detail[0] if detail else Section(DETAILS, (), None, 2)
            detail = (Section(first.label, computed + first.fields, first.name, first.columns, first.show_if),) + detail[1:]
        info = tuple(n for n in ("owner", "department", "created_at", "created_by", "updated_at", "updated_by")
                     if n in fields)
        detail += (Section(RECORD_INFO, info, "record", 2),)
    related = tuple(Related(r["object"], r["via"], Label.of(r.get("label")), tuple(r.get("columns") or ()),
                            _sort(r.get("sort"))) for r in (raw.get("detail") or {}).get("related") or ())

    search_raw = raw.get("search") or {}
    quick = search_raw.get("quick")
    if quick is None:
        quick = [n for n in (title,) if fields[n].type in ("text", "autonumber")] + \
                [f.name for f in visible if f.type in ("autonumber", "mnemonic") and f.name != title]
    search = SearchSpec(tuple(quick), tuple(
        Scheme(s["name"], Label.of(s.get("label"), s["name"]), condition(s["where"]), _sort(s.get("sort")),
               tuple(s.get("columns") or ())) for s in search_raw.get("schemes") or ()))

    permissions = FrozenDict((role, _permission(p)) for role, p in (raw.get("permissions") or {}).items())
    field_permissions = FrozenDict(
        (f, FieldPermission(tuple(p["read"]) if "read" in p else None,
                            tuple(p["update"]) if "update" in p else None))
        for f, p in (raw.get("field_permissions") or {}).items())
    rules = tuple(Rule(r["name"], condition(r["assert"]), condition(r.get("when")), tuple(r.get("fields") or ()),
                       Label.of(r.get("message"), r["name"])) for r in raw.get("rules") or ())
    label = Label.of(raw.get("label"), name)
    conversions = tuple(_conversion(c) for c in raw.get("conversions") or ())
    duplicates = tuple(DuplicateRule(d["name"], Label.of(d.get("label"), d["name"]), tuple(d["fields"]),
                                     d.get("normalize", "text"), d.get("match", "exact"), d.get("threshold", 0.85),
                                     d.get("action", "warn"), d.get("reveal", "owner"))
                       for d in raw.get("duplicates") or ())
    p = raw.get("pool")
    pool = Pool(tuple(p["roles"]), tuple(p.get("managers") or ()), p.get("claim_limit"), p.get("return_reasons"),
                p.get("return_after_days")) if p else None
    return ObjectSpec(
        name=name, label=label, plural=Label.of(raw.get("plural")) or label,
        table=f"loom_{name}" if is_system else name, fields=fields, title=title, list=list_spec,
        form=form, detail=detail, related=related, search=search, rules=rules,
        permissions=permissions, field_permissions=field_permissions, lifecycle=raw.get("lifecycle"),
        child_of=parent, system=is_system, description=Label.of(raw.get("description")),
        icon=raw.get("icon"), source=str(raw.mark) if getattr(raw, "mark", None) else "",
        conversions=conversions, duplicates=duplicates, pool=pool,
    )


def conversion_value(raw, created: set):
    """A conversion value: literal, $variable, $created, {field: x} or {expr: ...}."""
    if isinstance(raw, dict) and "expr" in raw:
        return Formula(raw["expr"])
    if isinstance(raw, str) and raw.startswith("$") and raw[1:] in created:
        return CreatedRef(raw[1:])
    return value_of(raw)


def _conversion(raw) -> Conversion:
    created = {c["as"] for c in raw["creates"]}
    creates = tuple(Create(c["as"], c["object"], Label.of(c.get("label"), c["object"]), c.get("optional", False),
                           c.get("copy", False), tuple(c.get("copy_lines") or ()),
                           FrozenDict((k, conversion_value(v, created)) for k, v in (c.get("values") or {}).items()),
                           c.get("link")) for c in raw["creates"])
    return Conversion(raw["name"], Label.of(raw.get("label"), raw["name"]), creates, tuple(raw.get("roles") or ()),
                      condition(raw.get("when")),
                      FrozenDict((k, conversion_value(v, created)) for k, v in (raw.get("set") or {}).items()),
                      raw.get("transition"), raw.get("open"))


def _replace(spec, **changes):
    from dataclasses import replace
    return replace(spec, **changes)


def _scope(value):
    if value is True:
        return "all"
    if value is False or value is None:
        return "none"
    return value if isinstance(value, str) else condition(value)


def _permission(raw: dict) -> Permission:
    return Permission(raw.get("create", False), _scope(raw.get("read")), _scope(raw.get("update")),
                      _scope(raw.get("delete")), raw.get("export", False))


def build_dictionary(name: str, raw: dict) -> DictionarySpec:
    items = []

    def walk(nodes, parent, depth):
        for node in nodes:
            items.append((node["code"], DictItem(
                node["code"], Label.of(node.get("label"), node["code"]), node.get("color"),
                node.get("active", True), node.get("value"), parent, depth, Label.of(node.get("description")))))
            walk(node.get("children") or [], node["code"], depth + 1)
    walk(raw.get("items") or [], None, 0)
    return DictionarySpec(name, Label.of(raw.get("label"), name), FrozenDict(items), raw.get("hierarchical", False))


def build_workflow(name: str, raw: dict):
    label = Label.of(raw.get("label"), name)
    if raw["kind"] == "lifecycle":
        states = FrozenDict((s["name"], State(s["name"], Label.of(s.get("label"), s["name"]), s.get("initial", False),
                                              s.get("final", False), s.get("locked", False), s.get("color")))
                            for s in raw.get("states") or ())
        transitions = FrozenDict((t["name"], Transition(
            t["name"], Label.of(t.get("label"), t["name"]),
            (t["from"],) if isinstance(t["from"], str) else tuple(t["from"]), t["to"],
            tuple(t.get("roles") or ()), condition(t.get("when")), t.get("require_comment", False),
            freeze({k: value_of(v) for k, v in (t.get("set") or {}).items()}), t.get("approval"),
            Label.of(t.get("confirm")))) for t in raw.get("transitions") or ())
        initial = next(s.name for s in states.values() if s.initial)
        return Lifecycle(name, raw["object"], label, states, transitions, initial)

    def outcome(o):
        o = o or {}
        return Outcome(o.get("to"), freeze({k: value_of(v) for k, v in (o.get("set") or {}).items()}))
    steps = tuple(Step(s["name"], Label.of(s.get("label"), s["name"]),
                       Approvers(*next(iter(s["approvers"].items()))) if not isinstance(
                           next(iter(s["approvers"].values())), list)
                       else Approvers("users", tuple(s["approvers"]["users"])),
                       s.get("policy", "any"), condition(s.get("when"))) for s in raw.get("steps") or ())
    return ApprovalFlow(name, raw["object"], label, steps, outcome(raw.get("on_approved")),
                        outcome(raw.get("on_rejected")), raw.get("allow_self_approval", False))


def build_report(name: str, raw: dict) -> ReportSpec:
    group_by = tuple((tuple(g.split(".")), None) if isinstance(g, str) else (tuple(g["field"].split(".")), g.get("bucket"))
                     for g in raw.get("group_by") or ())
    measures = tuple((m["agg"], m.get("field"), Label.of(m.get("label"), m["agg"] + (f"_{m['field']}" if m.get("field") else "")))
                     for m in raw.get("measures") or [{"agg": "count"}])
    return ReportSpec(name, raw["object"], Label.of(raw.get("label"), name), condition(raw.get("where")),
                      group_by, measures, raw.get("chart", "table"), tuple(raw.get("sort") or ()), raw.get("limit"))


def build_automation(name: str, raw: dict) -> AutomationSpec:
    actions = tuple(Action(*next(iter(freeze(a).items()))) for a in raw.get("do") or ())
    return AutomationSpec(name, raw["object"], Label.of(raw.get("label"), name), raw["on"], actions,
                          condition(raw.get("when")), raw.get("every"), raw.get("active", True))


def _menu(merged: Merged, objects: dict) -> tuple:
    groups: list = []
    named: dict = {}
    sources = [merged.app.get("menu") or []] + [p.data.get("menu") or [] for p in merged.packs]
    for menu in sources:
        for g in menu:
            if g.get("name") in named:
                existing = groups[named[g["name"]]]
                groups[named[g["name"]]] = MenuGroup(existing.label, existing.items + tuple(
                    i for i in g.get("items") or () if i not in existing.items), existing.name, existing.icon)
                continue
            if g.get("name"):
                named[g["name"]] = len(groups)
            groups.append(MenuGroup(Label.of(g.get("label"), g.get("name") or ""), tuple(g.get("items") or ()),
                                    g.get("name"), g.get("icon")))
    if not groups:
        items = tuple(n for n, o in objects.items() if not o.system and not o.child_of)
        groups = [MenuGroup(Label((("en", "Records"), ("zh", "业务"))), items, "main")]
    return tuple(groups)


def build(merged: Merged, layers, fingerprint: str = "") -> AppSpec:
    app = merged.app
    objects_raw = {n: d.data for n, d in merged.of("object").items()}
    objects = FrozenDict((n, build_object(n, d.data, objects_raw, d.doc.layer.name == "system"))
                         for n, d in merged.of("object").items())
    dictionaries = {n: build_dictionary(n, d.data) for n, d in merged.of("dictionary").items()}
    dictionaries["roles"] = DictionarySpec("roles", Label((("en", "Roles"), ("zh", "角色"))), FrozenDict(
        (item["name"], DictItem(item["name"], Label.of(item.get("label"), item["name"])))
        for item, _ in merged.roles))
    roles = FrozenDict((item["name"], RoleSpec(item["name"], Label.of(item.get("label"), item["name"]),
                                               item.get("superuser", False), Label.of(item.get("description"))))
                       for item, _ in merged.roles)
    languages = tuple(app.get("languages") or ("zh", "en"))
    return AppSpec(
        name=app["app"], label=Label.of(app.get("label"), app["app"]), languages=languages,
        default_language=app.get("default_language") or languages[0], objects=objects,
        dictionaries=FrozenDict(dictionaries),
        workflows=FrozenDict((n, build_workflow(n, d.data)) for n, d in merged.of("workflow").items()),
        roles=roles,
        departments=tuple(DepartmentSeed(i["code"], i["name"], i.get("parent")) for i, _ in merged.departments),
        menu=_menu(merged, objects),
        reports=FrozenDict((n, build_report(n, d.data)) for n, d in merged.of("report").items()),
        automations=FrozenDict((n, build_automation(n, d.data)) for n, d in merged.of("automation").items()),
        packs=tuple(l.name.split(" ", 1)[1] for l in layers if l.name.startswith("pack ")),
        timezone=app.get("timezone", "Asia/Shanghai"), currency=app.get("currency", "CNY"),
        theme=app.get("theme", "default"), layers=tuple((l.name, str(l.root)) for l in layers),
        fingerprint=fingerprint,
    )


__all__ = ["build", "condition", "value_of", "freeze", "FIELD_TYPES"]
