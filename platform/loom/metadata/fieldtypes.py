"""The field types of the metadata language and the options each one takes.

This table is the one place that knows which option belongs to which type; the JSON
Schema lists the same names (a test keeps them in step) and the compiler maps each type
to columns.
"""
from __future__ import annotations

from dataclasses import dataclass

# Options every field may carry.
COMMON = frozenset({"name", "type", "label", "help", "hidden", "index", "show_if", "renamed_from"})
# Options for fields a user types into (not computed ones).
INPUT = frozenset({"required", "required_if", "unique", "default", "readonly"})


@dataclass(frozen=True)
class FieldType:
    name: str
    options: frozenset = frozenset()      # type-specific options
    required: tuple = ()                  # options this type cannot do without
    input: bool = True                    # a user types the value (INPUT options apply)
    kind: str = "scalar"                  # scalar | text | number | temporal | reference | computed | child
    sortable: bool = True

    @property
    def allowed(self) -> frozenset:
        return COMMON | self.options | (INPUT if self.input else frozenset())


def _t(name, options=(), required=(), **kw):
    return name, FieldType(name, frozenset(options), tuple(required), **kw)


TEXT_OPTIONS = ("max_length", "min_length", "pattern", "trim")
NUMBER_OPTIONS = ("min", "max")
DECIMAL_OPTIONS = ("precision", "scale", "min", "max")

FIELD_TYPES: dict[str, FieldType] = dict([
    _t("text", TEXT_OPTIONS, kind="text"),
    _t("textarea", TEXT_OPTIONS, kind="text", sortable=False),
    _t("email", ("max_length",), kind="text"),
    _t("phone", ("max_length",), kind="text"),
    _t("url", ("max_length",), kind="text"),
    _t("integer", NUMBER_OPTIONS, kind="number"),
    _t("decimal", DECIMAL_OPTIONS, kind="number"),
    _t("percent", DECIMAL_OPTIONS, kind="number"),
    _t("money", DECIMAL_OPTIONS + ("currency",), kind="number"),
    _t("boolean"),
    _t("date", NUMBER_OPTIONS, kind="temporal"),
    _t("datetime", NUMBER_OPTIONS, kind="temporal"),
    _t("dictionary", ("dictionary", "multiple"), ("dictionary",)),
    _t("lookup", ("target", "on_delete", "filter"), ("target",), kind="reference"),
    _t("user", ("on_delete", "filter"), kind="reference"),
    _t("department", ("on_delete", "filter"), kind="reference"),
    _t("autonumber", ("numbering", "assign_on"), ("numbering",), input=False, kind="text"),
    _t("mnemonic", ("source",), ("source",), input=False, kind="text"),
    _t("formula", ("expr", "result", "scale"), ("expr",), input=False, kind="computed"),
    _t("rollup", ("from", "agg", "field", "where"), ("from", "agg"), input=False, kind="computed"),
    _t("lines", ("object",), ("object",), input=False, kind="child", sortable=False),
    _t("file", ("max_size", "accept"), kind="scalar", sortable=False),
    # Internal: the lifecycle state of a record; never declared in YAML.
    _t("state", input=False),
])
DECLARABLE_TYPES = tuple(t for t in FIELD_TYPES if t != "state")

# What a formula may produce; also the column type it is stored in.
FORMULA_RESULTS = ("decimal", "integer", "text", "date", "boolean")
AGGREGATES = ("count", "sum", "min", "max", "avg")
ON_DELETE = ("restrict", "set_null", "cascade")
SCOPES = ("none", "own", "department", "department_tree", "all")
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between",
             "contains", "starts_with", "is_null", "not_null")
RESETS = ("never", "yearly", "monthly", "daily")

# Fields every object has; their names may not be declared.
SYSTEM_FIELDS = ("id", "owner", "department", "created_at", "created_by", "updated_at",
                 "updated_by", "version", "deleted_at", "state")
# Columns the engine keeps for quick search (see docs/search.md).
SEARCH_COLUMNS = ("search_text", "search_tokens")
RESERVED_NAMES = frozenset(SYSTEM_FIELDS + SEARCH_COLUMNS + ("line_no", "merged_into"))

# Names the engine owns at the object level.
RESERVED_OBJECTS = frozenset({"user", "department", "role", "app", "api", "admin", "static",
                              "login", "logout", "history", "search", "export", "import"})


def system_fields(*, owned: bool, has_state: bool, parent: str | None) -> list[dict]:
    """The fields the engine adds to an object, as field definitions."""
    def label(en, zh):
        return {"en": en, "zh": zh}
    fields = [{"name": "id", "type": "integer", "label": label("ID", "ID")}]
    if parent:
        fields += [
            {"name": parent, "type": "lookup", "target": parent, "on_delete": "cascade",
             "label": label(parent.replace("_", " ").capitalize(), parent)},
            {"name": "line_no", "type": "integer", "label": label("Line", "行号")},
        ]
    if owned:
        fields += [
            {"name": "owner", "type": "user", "label": label("Owner", "负责人")},
            {"name": "department", "type": "department", "label": label("Department", "部门")},
        ]
    if has_state:
        fields.append({"name": "state", "type": "state", "label": label("State", "状态")})
    fields += [
        {"name": "created_at", "type": "datetime", "label": label("Created", "创建时间")},
        {"name": "created_by", "type": "user", "label": label("Created by", "创建人")},
        {"name": "updated_at", "type": "datetime", "label": label("Updated", "修改时间")},
        {"name": "updated_by", "type": "user", "label": label("Updated by", "修改人")},
        {"name": "version", "type": "integer", "label": label("Version", "版本")},
        {"name": "deleted_at", "type": "datetime", "label": label("Deleted", "删除时间")},
    ]
    return fields
