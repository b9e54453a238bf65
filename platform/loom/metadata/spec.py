"""The AppSpec: an immutable, typed model of a whole application.

Built once from validated metadata (see build.py); everything after it — the compiler,
the record service, pages, API, CLI — reads this model and never YAML. All classes are
frozen dataclasses holding tuples and `FrozenDict`s, so a spec can be shared between
threads and pickled into the metadata cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .problems import suggest


class FrozenDict(dict):
    """An ordered mapping that cannot change after construction."""

    __slots__ = ()

    def _readonly(self, *args, **kwargs):
        raise TypeError("AppSpec mappings are immutable")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenDict, (list(self.items()),))

    def __hash__(self):  # type: ignore[override]
        return hash(tuple(self.items()))


@dataclass(frozen=True)
class Label:
    """A text in several languages: `label.text("zh")`."""

    texts: tuple = ()     # ((lang, text), ...)

    def text(self, lang: str | None = None) -> str:
        mapping = dict(self.texts)
        if lang in mapping:
            return mapping[lang]
        for fallback in ("en", "zh"):
            if fallback in mapping:
                return mapping[fallback]
        return self.texts[0][1] if self.texts else ""

    def __str__(self) -> str:
        return self.text()

    @classmethod
    def of(cls, value, name: str = "") -> "Label":
        if isinstance(value, str):
            return cls((("*", value),))
        if isinstance(value, dict) and value:
            return cls(tuple((k, v) for k, v in value.items()))
        return cls((("*", name.replace("_", " ").capitalize()),)) if name else cls()

    def __bool__(self):
        return bool(self.texts)


# ---- conditions (METADATA.md section 4) ---------------------------------------------

@dataclass(frozen=True)
class FieldRef:
    """`{field: other_field}` used as a value."""
    path: tuple


@dataclass(frozen=True)
class Var:
    """`$current_user`, `$today-30d`, ...: resolved when the condition is evaluated."""
    name: str            # current_user | current_department | today | now
    offset: int = 0
    unit: str = "d"      # d (days) | h (hours)


@dataclass(frozen=True)
class Compare:
    path: tuple          # ("customer", "industry")
    op: str
    value: Any = None    # literal, tuple of literals, FieldRef or Var


@dataclass(frozen=True)
class All:
    items: tuple


@dataclass(frozen=True)
class Any_:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: Any


Condition = Compare | All | Any_ | Not


# ---- objects ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Numbering:
    pattern: str
    tokens: tuple        # ("lit", "CUS-") ("date", "yyyy") ("seq", 5) ("field", "region") ("dept",)
    reset: str = "never"
    start: int = 1
    step: int = 1


@dataclass(frozen=True)
class Rollup:
    child: str           # the child object
    via: str             # its field pointing at the parent
    agg: str
    field: str | None = None
    where: Any = None
    lines: bool = False  # through a `lines` field


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    label: Label
    help: Label = Label()
    system: bool = False
    required: bool = False
    required_if: Any = None
    show_if: Any = None
    unique: bool = False
    default: Any = None
    readonly: bool = False
    hidden: bool = False
    index: bool = False
    renamed_from: str | None = None
    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    trim: bool = True
    min: Any = None
    max: Any = None
    precision: int | None = None
    scale: int | None = None
    currency: str | None = None
    dictionary: str | None = None
    multiple: bool = False
    target: str | None = None          # lookup, user, department: the object referred to
    on_delete: str = "restrict"
    filter: Any = None
    numbering: Numbering | None = None
    assign_on: str = "create"
    source: str | None = None
    expr: str | None = None
    result: str | None = None
    rollup: Rollup | None = None
    lines_object: str | None = None
    max_size: int | None = None
    accept: tuple = ()

    @property
    def is_reference(self) -> bool:
        return self.type in ("lookup", "user", "department")

    @property
    def computed(self) -> bool:
        return self.type in ("autonumber", "mnemonic", "formula", "rollup")

    @property
    def stored(self) -> bool:
        """Has a column of its own in the object's table."""
        return self.type != "lines" and not (self.type == "dictionary" and self.multiple)

    @property
    def value_type(self) -> str:
        """The type of the stored value: a formula is stored as its result type."""
        if self.type == "formula":
            return self.result or "decimal"
        if self.type == "rollup":   # min/max keep their field's type (a date stays a date)
            if self.result:
                return self.result
            return "integer" if self.rollup and self.rollup.agg == "count" else "decimal"
        return self.type


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Any
    when: Any = None
    fields: tuple = ()
    message: Label = Label()


@dataclass(frozen=True)
class Kanban:
    group_by: str
    sum: str | None = None
    fields: tuple = ()


@dataclass(frozen=True)
class Calendar:
    start: str
    end: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class ListSpec:
    columns: tuple
    sort: tuple                        # (("updated_at", True), ...): (field, descending)
    filters: tuple = ()
    page_size: int = 50
    kanban: Kanban | None = None
    calendar: Calendar | None = None


@dataclass(frozen=True)
class Section:
    label: Label
    fields: tuple
    name: str | None = None
    columns: int = 2
    show_if: Any = None


@dataclass(frozen=True)
class Related:
    object: str
    via: str
    label: Label = Label()
    columns: tuple = ()
    sort: tuple = ()


@dataclass(frozen=True)
class Scheme:
    name: str
    label: Label
    where: Any
    sort: tuple = ()
    columns: tuple = ()


@dataclass(frozen=True)
class SearchSpec:
    quick: tuple = ()
    schemes: tuple = ()


@dataclass(frozen=True)
class Permission:
    create: bool = False
    read: Any = "none"                 # a scope name or a condition
    update: Any = "none"
    delete: Any = "none"
    export: bool = False


@dataclass(frozen=True)
class FieldPermission:
    read: tuple | None = None          # roles; None = everyone who may read the record
    update: tuple | None = None


@dataclass(frozen=True)
class Formula:
    """`{expr: "version_no + 1"}` as a value: computed over the source record."""
    expr: str


@dataclass(frozen=True)
class CreatedRef:
    """`$customer` in a conversion: the id of the record created `as: customer`."""
    name: str


@dataclass(frozen=True)
class Create:
    as_: str
    object: str
    label: Label = Label()
    optional: bool = False
    copy: bool = False
    copy_lines: tuple = ()
    values: FrozenDict = FrozenDict()
    link: str | None = None


@dataclass(frozen=True)
class Conversion:
    """Records made from one record in one step (线索转换, a new quote version)."""
    name: str
    label: Label
    creates: tuple
    roles: tuple = ()
    when: Any = None
    set: FrozenDict = FrozenDict()
    transition: str | None = None
    open: str | None = None


@dataclass(frozen=True)
class DuplicateRule:
    """Which fields identify a record, how to compare them, what a match does."""
    name: str
    label: Label
    fields: tuple
    normalize: str = "text"            # text | company | phone | email
    match: str = "exact"               # exact | similar
    threshold: float = 0.85
    action: str = "warn"               # block | warn
    reveal: str = "owner"              # owner | none

    @property
    def column(self) -> str:
        return f"dup_{self.name}"


@dataclass(frozen=True)
class Pool:
    """公海: records without an owner, visible to `roles`, claimed and returned."""
    roles: tuple
    managers: tuple = ()
    claim_limit: int | None = None
    return_reasons: str | None = None
    return_after_days: int | None = None


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    label: Label
    plural: Label
    table: str
    fields: FrozenDict                 # name -> FieldSpec, declared fields first, then system
    title: str
    list: ListSpec
    form: tuple                        # Sections
    detail: tuple                      # Sections
    related: tuple = ()
    search: SearchSpec = SearchSpec()
    rules: tuple = ()
    permissions: FrozenDict = FrozenDict()
    field_permissions: FrozenDict = FrozenDict()
    lifecycle: str | None = None
    child_of: str | None = None
    system: bool = False
    description: Label = Label()
    icon: str | None = None
    source: str = ""                   # file:line of the definition
    conversions: tuple = ()
    duplicates: tuple = ()
    pool: Pool | None = None

    @property
    def owned(self) -> bool:
        """Has owner and department (every business object but children and system ones)."""
        return not self.system and not self.child_of

    def field(self, name: str) -> FieldSpec:
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"{self.name} has no field '{name}'" + suggest(name, self.fields, list_all=False)) from None

    @property
    def declared_fields(self):
        return [f for f in self.fields.values() if not f.system]


# ---- dictionaries, workflows, roles -------------------------------------------------

@dataclass(frozen=True)
class DictItem:
    code: str
    label: Label
    color: str | None = None
    active: bool = True
    value: Any = None
    parent: str | None = None
    depth: int = 0
    description: Label = Label()


@dataclass(frozen=True)
class DictionarySpec:
    name: str
    label: Label
    items: FrozenDict                  # code -> DictItem, depth-first order
    hierarchical: bool = False

    def active_codes(self):
        return [c for c, item in self.items.items() if item.active]


@dataclass(frozen=True)
class State:
    name: str
    label: Label
    initial: bool = False
    final: bool = False
    locked: bool = False
    color: str | None = None


@dataclass(frozen=True)
class Transition:
    name: str
    label: Label
    sources: tuple
    to: str
    roles: tuple = ()
    when: Any = None
    require_comment: bool = False
    set: FrozenDict = FrozenDict()
    approval: str | None = None
    confirm: Label = Label()


@dataclass(frozen=True)
class Lifecycle:
    name: str
    object: str
    label: Label
    states: FrozenDict
    transitions: FrozenDict
    initial: str
    kind: str = "lifecycle"


@dataclass(frozen=True)
class Approvers:
    kind: str            # manager_of | role | user_field | users
    value: Any


@dataclass(frozen=True)
class Step:
    name: str
    label: Label
    approvers: Approvers
    policy: str = "any"
    when: Any = None


@dataclass(frozen=True)
class Outcome:
    to: str | None = None
    set: FrozenDict = FrozenDict()


@dataclass(frozen=True)
class ApprovalFlow:
    name: str
    object: str
    label: Label
    steps: tuple
    on_approved: Outcome = Outcome()
    on_rejected: Outcome = Outcome()
    allow_self_approval: bool = False
    kind: str = "approval"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    label: Label
    superuser: bool = False
    description: Label = Label()


@dataclass(frozen=True)
class DepartmentSeed:
    code: str
    name: str
    parent: str | None = None


@dataclass(frozen=True)
class MenuGroup:
    label: Label
    items: tuple
    name: str | None = None
    icon: str | None = None


@dataclass(frozen=True)
class ReportSpec:
    name: str
    object: str
    label: Label
    where: Any = None
    group_by: tuple = ()               # ((field path, bucket or None), ...)
    measures: tuple = ()               # ((agg, field or None, Label), ...)
    chart: str = "table"
    sort: tuple = ()
    limit: int | None = None


@dataclass(frozen=True)
class Action:
    kind: str            # notify | create | set | transition
    args: Any


@dataclass(frozen=True)
class AutomationSpec:
    name: str
    object: str
    label: Label
    on: str
    actions: tuple
    when: Any = None
    every: str | None = None
    active: bool = True


@dataclass(frozen=True)
class AppSpec:
    name: str
    label: Label
    languages: tuple
    default_language: str
    objects: FrozenDict
    dictionaries: FrozenDict = FrozenDict()
    workflows: FrozenDict = FrozenDict()   # lifecycles and approval flows by name
    roles: FrozenDict = FrozenDict()
    departments: tuple = ()
    menu: tuple = ()
    reports: FrozenDict = FrozenDict()
    automations: FrozenDict = FrozenDict()
    packs: tuple = ()
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    theme: str = "default"
    layers: tuple = ()                     # ((layer name, root), ...)
    fingerprint: str = ""

    def object(self, name: str) -> ObjectSpec:
        try:
            return self.objects[name]
        except KeyError:
            raise KeyError(f"no object '{name}'" + suggest(name, self.objects, list_all=False)) from None

    def lifecycle_of(self, obj: ObjectSpec) -> Lifecycle | None:
        return self.workflows.get(obj.lifecycle) if obj.lifecycle else None

    def resolve(self, obj: ObjectSpec, path) -> list:
        """The fields along a path through lookups: [customer(lookup), industry]."""
        out, current = [], obj
        for i, name in enumerate(path):
            f = current.field(name)
            out.append(f)
            if i < len(path) - 1:
                current = self.objects[f.target]
        return out
