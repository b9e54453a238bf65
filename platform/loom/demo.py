"""Demo data: users and records generated from configuration (`loom demo`).

The generator knows nothing about any particular object. What to create lives in YAML in
the `demo/` folder of the metadata root (which the metadata reader leaves alone), read and
checked here, then written through the record service acting as each record's owner, so
permissions, numbering, defaults, formulas, rollups and history are the real ones.

    populate(runtime, scale=1.0, echo=print) -> {"users": [(username, name, roles)], "password": ...}

Files (any names; several documents per file are fine):

    users.yaml       password: demo1234          # one password for every demo user
                     email_domain: example.cn    # optional: username@domain as e-mail
                     users:
                       - {username: zhangwei, name: 张伟, roles: [sales_rep],
                          department: sales_east, manages: sales_east}   # manages: optional

    <object>.yaml    object: customer
                     count: 300                  # or  per: {customer: [1, 3]}  (rows per record
                                                 #     of a lookup target), or  rows: [...]
                     owners: {sales_rep: 3, sales_manager: 1}   # roles or usernames -> weight
                     fill: 0.5                   # chance to fill a field not mentioned
                     parts: {city: [上海, 北京]}  # named pools for templates
                     fields: {FIELD: SPEC, ...}
                     profiles: {GROUP: [{weight: 3, fields: {...}, parts: {...}}, ...]}
                     first: {FIELD: SPEC}        # with `per`: the first row of each group
                     lines: {FIELD: {min: 1, max: 3, chance: 0.8, fields: {...}}}
                     updates: {share: 0.3, times: [1, 2], by: [ROLE], where: COND, fields: {...}}
                                                 #     history: a share of the records (those matching
                                                 #     `where`) changed by their owner or, with `by`, by
                                                 #     a user of those roles who may; or a list of blocks
                     states: {STATE: weight}     # moved there through the lifecycle
                     state_values: {STATE: {FIELD: SPEC}}   # set before moving to STATE
                     comments: [..]              # for transitions that require a comment

A SPEC is a constant, a list (a pool to pick from), or a mapping with one of
  value: X | pool: [..] or {value: weight} | between: [lo, hi] (round: step) |
  days: [lo, hi] (dates around today) | template: "{part}{digits:4}" (parts: {...}) |
  copy: "field.attr|other.attr" | one_of: [{weight: n, ...SPEC}] | pick: [min, max]
and the modifiers  chance: 0.7,  match: {target field: own field} (lookups),
at_least: "lines_field.child_field" (numbers: not below the lines' total),
factor: [lo, hi] (numbers: times a random factor, e.g. a price change).
Template placeholders: a part name, {n}, {digits:N}, {letters:N}, {chars:N:ABC},
{int:LO:HI}, {pinyin:PATH}, or a PATH such as {customer.short_name|customer.name}.

Fields not mentioned get values by type (dictionary: an active code; lookup: a record the
owner may read that passes the field's filter; user: a matching user; numbers and dates in
range; text from the label), except computed, read-only, file and system fields, fields
with a default (the engine applies it) and lookups to the object itself (set only when
configured, by a later update, so older records are picked). Hidden fields (`show_if`)
are left empty, required ones (`required_if`) filled, and fields the owner may not
update (`field_permissions`) left alone.
"""
from __future__ import annotations

import datetime as dt
import decimal
import inspect
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa

from .compiler.conditions import Context
from .metadata.problems import Mark, Problem, suggest
from .metadata.yamlsource import MarkedDict, MarkedList, load_documents
from .records import computed
from .records.coerce import Invalid, bound, coerce
from .records.errors import RecordError, ValidationError
from .security.actor import Actor

SEED = 20240618
# The folder of a metadata root holding demo data.
DEMO_FOLDERS = ("demo",)
RETRIES = 5             # a row the service refuses is generated again this many times
UNIQUE_TRIES = 40

OBJECT_KEYS = {"object", "count", "per", "owners", "fill", "parts", "fields", "profiles", "first",
               "rows", "lines", "updates", "states", "state_values", "comments"}
USERS_KEYS = {"password", "email_domain", "users"}
USER_KEYS = {"username", "name", "roles", "department", "manages", "email", "phone"}
SPEC_KINDS = ("value", "pool", "between", "days", "template", "copy", "one_of", "pick")
SPEC_KEYS = set(SPEC_KINDS) | {"chance", "match", "at_least", "factor", "round", "parts", "weight"}
NUMBER_TYPES = ("integer", "decimal", "percent", "money")
TEXT_TYPES = ("text", "textarea", "email", "phone", "url")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_FUNCTIONS = ("digits", "letters", "chars", "int", "pinyin")


class DemoError(click.ClickException):
    """Bad demo configuration: every problem, each with its file and line (no traceback)."""

    def __init__(self, problems):
        self.problems = sorted(set(problems)) if not isinstance(problems, str) else []
        text = problems if isinstance(problems, str) else "\n".join(map(str, self.problems)) + \
            f"\n{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} in the demo data"
        super().__init__(text)


# ---- configuration ------------------------------------------------------------------------

@dataclass
class Gen:
    """How one field gets its value."""
    kind: str                      # auto | value | pool | between | days | template | copy | one_of | pick
    arg: object = None
    weights: list | None = None
    chance: float = 1.0
    match: dict | None = None      # lookups: {target field: own field}
    at_least: str | None = None
    factor: tuple | None = None    # numbers: multiplied by a random factor in [lo, hi]
    round: object = None
    parts: dict = field(default_factory=dict)

    def deps(self) -> set:
        out = set()
        if self.kind == "template":
            for ph in _PLACEHOLDER.findall(self.arg):
                if ph.startswith("pinyin:"):
                    ph = ph[7:]
                elif ":" in ph or ph == "n" or ph in self.parts:
                    continue
                out.update(p.split(".")[0] for p in ph.split("|"))
        elif self.kind == "copy":
            out.update(p.split(".")[0] for p in self.arg.split("|"))
        elif self.kind == "one_of":
            for g in self.arg:
                out |= g.deps()
        if self.match:
            out.update(self.match.values())
        if self.at_least:
            out.add(self.at_least.split(".")[0])
        return out


@dataclass
class Profile:
    weight: float
    fields: dict
    parts: dict


@dataclass
class LinesPlan:
    child: object                  # ObjectSpec
    min: int = 1
    max: int = 3
    chance: float = 1.0
    fields: dict = field(default_factory=dict)


@dataclass
class Plan:
    obj: object                    # ObjectSpec
    file: str
    mark: Mark
    count: int | None = None
    per: tuple | None = None       # (lookup field, min, max)
    rows: list | None = None       # [{field: Gen}]
    owners: dict | None = None     # role or username -> weight
    fill: float = 0.5
    parts: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    profiles: list = field(default_factory=list)   # [[Profile, ...] per group]
    first: dict = field(default_factory=dict)
    lines: dict = field(default_factory=dict)
    updates: list = field(default_factory=list)   # [{share, times: (lo, hi), by: [roles, users], where, fields}]
    states: dict = field(default_factory=dict)
    state_values: dict = field(default_factory=dict)
    comments: list = field(default_factory=list)


@dataclass
class DemoUser:
    username: str
    name: str
    roles: list
    department: str | None = None
    manages: list = field(default_factory=list)
    email: str | None = None
    phone: str | None = None


@dataclass
class Config:
    password: str
    users: list                    # [DemoUser]
    plans: list                    # [Plan], in creation order
    folder: Path | None = None


class _Checker:
    """Reads the demo documents against the AppSpec; collects problems."""

    def __init__(self, spec, tz):
        self.spec = spec
        self.tz = tz
        self.problems: list = []

    def add(self, node, key, path, message):
        mark = node.mark_of(key) if isinstance(node, (MarkedDict, MarkedList)) and key is not None else \
            getattr(node, "mark", None) or Mark("?", 1, 1)
        self.problems.append(Problem(mark, path, message))

    # -- values ------------------------------------------------------------------------

    def literal(self, obj, f, raw, node, key, path, users):
        """A configured constant for field f, typed; None after reporting a problem."""
        if raw is None:
            return None
        if f.type == "department":
            codes = [d.code for d in self.spec.departments]
            if raw not in codes:
                self.add(node, key, path, f"'{raw}' is not a department code of roles.yaml" + suggest(raw, codes))
            return raw
        if f.type == "user":
            if raw not in users:
                self.add(node, key, path, f"'{raw}' is not a demo user" + suggest(raw, users))
            return raw
        if f.type == "lookup":
            self.add(node, key, path, f"{obj.name}.{f.name} picks {f.target} records by itself; "
                                      f"use chance or match instead of values")
            return None
        if f.type == "dictionary":
            dictionary = self.spec.dictionaries[f.dictionary]
            codes = raw if f.multiple and isinstance(raw, list) else [raw]
            for code in codes:
                item = dictionary.items.get(str(code))
                if item is None:
                    self.add(node, key, path, f"'{code}' is not an item of dictionary {f.dictionary}"
                             + suggest(code, dictionary.items))
                elif not item.active:
                    self.add(node, key, path, f"'{code}' of dictionary {f.dictionary} is no longer in use")
            return sorted(str(c) for c in codes) if f.multiple else str(raw)
        try:
            return coerce(f, raw, self.tz)
        except Invalid as e:
            self.add(node, key, path, f"{raw!r} is not a valid value of {obj.name}.{f.name}: {e.msg.text('en')}")
            return None

    def path_ok(self, obj, text, node, key, path, *, lines_ok=False) -> bool:
        """`field` or `field.attr` (dictionary value/label/code, a lookup's field, a lines
        field's child field), with `|` alternatives."""
        ok = True
        for alt in text.split("|"):
            segs = alt.strip().split(".")
            f = obj.fields.get(segs[0])
            if f is None:
                self.add(node, key, path, f"{obj.name} has no field '{segs[0]}'" + suggest(segs[0], obj.fields))
                ok = False
                continue
            if len(segs) == 1:
                continue
            if len(segs) > 2:
                self.add(node, key, path, f"'{alt}': at most one step (field.attr)")
                ok = False
            elif f.type == "dictionary":
                if segs[1] not in ("value", "label", "code"):
                    self.add(node, key, path, f"'{alt}': a dictionary field offers value, label or code")
                    ok = False
            elif f.is_reference or f.type == "lines":
                target = self.spec.objects[f.lines_object if f.type == "lines" else f.target]
                if segs[1] not in target.fields:
                    self.add(node, key, path, f"{target.name} has no field '{segs[1]}'" + suggest(segs[1], target.fields))
                    ok = False
                if f.type == "lines" and not lines_ok:
                    self.add(node, key, path, f"'{alt}': a lines field can only be summed (at_least)")
                    ok = False
            else:
                self.add(node, key, path, f"'{alt}': {f.name} is a {f.type} field, it has no '{segs[1]}'")
                ok = False
        return ok

    def gen(self, obj, f, raw, node, key, path, users, all_parts) -> Gen | None:
        """Parse one field SPEC."""
        if isinstance(raw, MarkedList):
            values = [self.literal(obj, f, v, raw, i, f"{path}[{i}]", users) for i, v in enumerate(raw)]
            if not values:
                self.add(node, key, path, "an empty pool")
                return None
            return Gen("pool", values)
        if not isinstance(raw, MarkedDict):
            return Gen("value", self.literal(obj, f, raw, node, key, path, users))
        unknown = [k for k in raw if k not in SPEC_KEYS]
        for k in unknown:
            self.add(raw, k, f"{path}.{k}", f"unknown key '{k}'" + suggest(k, SPEC_KEYS))
        kinds = [k for k in SPEC_KINDS if k in raw]
        if len(kinds) > 1:
            self.add(raw, kinds[1], f"{path}.{kinds[1]}", f"give one of {', '.join(SPEC_KINDS)}; "
                                                            f"'{kinds[0]}' and '{kinds[1]}' cannot be together")
            return None
        if unknown:
            return None
        g = Gen(kinds[0] if kinds else "auto")
        chance = raw.get("chance", 1.0)
        if not isinstance(chance, (int, float)) or isinstance(chance, bool) or not 0 <= chance <= 1:
            self.add(raw, "chance", f"{path}.chance", "expected a number from 0 to 1")
        else:
            g.chance = float(chance)
        parts = raw.get("parts") or {}
        if parts:
            g.parts = self.parts(parts, raw, "parts", f"{path}.parts")
        at = f"{path}.{g.kind}"
        arg = raw.get(g.kind)
        if g.kind == "value":
            g.arg = self.literal(obj, f, arg, raw, "value", at, users)
        elif g.kind == "pool":
            if isinstance(arg, MarkedDict) and arg:
                g.arg = [self.literal(obj, f, k, arg, k, f"{at}.{k}", users) for k in arg]
                g.weights = []
                for k, w in arg.items():
                    if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                        self.add(arg, k, f"{at}.{k}", "a weight is a number, 0 or more")
                        w = 0
                    g.weights.append(w)
                if not any(g.weights):
                    self.add(raw, "pool", at, "every weight is 0")
            elif isinstance(arg, MarkedList) and arg:
                g.arg = [self.literal(obj, f, v, arg, i, f"{at}[{i}]", users) for i, v in enumerate(arg)]
            else:
                self.add(raw, "pool", at, "expected a list of values or a mapping of value to weight")
        elif g.kind in ("between", "days", "pick"):
            wanted = {"between": NUMBER_TYPES, "days": ("date", "datetime"), "pick": ("dictionary",)}[g.kind]
            if f.value_type not in wanted or (g.kind == "pick" and not f.multiple):
                self.add(raw, g.kind, at, f"'{g.kind}' is for {' or '.join(wanted)} fields"
                         f"{' with multiple: true' if g.kind == 'pick' else ''}; {f.name} is {f.type}")
            elif not (isinstance(arg, list) and len(arg) == 2
                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arg)
                      and arg[0] <= arg[1]):
                self.add(raw, g.kind, at, "expected [low, high], two numbers, low first")
            else:
                g.arg = (arg[0], arg[1])
        elif g.kind == "template":
            if f.type not in TEXT_TYPES:
                self.add(raw, "template", at, f"templates make text; {f.name} is {f.type}")
            elif not isinstance(arg, str):
                self.add(raw, "template", at, "expected a text with {placeholders}")
            else:
                g.arg = arg
                self.template_ok(obj, arg, set(all_parts) | set(g.parts), raw, "template", at)
        elif g.kind == "copy":
            if not isinstance(arg, str):
                self.add(raw, "copy", at, "expected a field path such as product.price")
            elif self.path_ok(obj, arg, raw, "copy", at):
                g.arg = arg
        elif g.kind == "one_of":
            if not isinstance(arg, MarkedList) or not arg:
                self.add(raw, "one_of", at, "expected a list of specs")
            else:
                g.arg, g.weights = [], []
                for i, item in enumerate(arg):
                    sub = self.gen(obj, f, item, arg, i, f"{at}[{i}]", users, all_parts)
                    w = item.get("weight", 1) if isinstance(item, dict) else 1
                    if sub is not None:
                        g.arg.append(sub)
                        g.weights.append(w)
        if "round" in raw:
            r = raw["round"]
            if f.value_type not in NUMBER_TYPES or not isinstance(r, (int, float)) or isinstance(r, bool) or r <= 0:
                self.add(raw, "round", f"{path}.round", "round is a positive step for a number field")
            else:
                g.round = r
        if "match" in raw:
            m = raw["match"]
            if not f.is_reference:
                self.add(raw, "match", f"{path}.match", f"match is for lookups; {f.name} is {f.type}")
            elif not isinstance(m, MarkedDict) or not m:
                self.add(raw, "match", f"{path}.match", "expected {target field: own field}")
            else:
                target = self.spec.objects[f.target]
                for tk, own in m.items():
                    if tk not in target.fields:
                        self.add(m, tk, f"{path}.match.{tk}", f"{target.name} has no field '{tk}'" + suggest(tk, target.fields))
                    if not isinstance(own, str) or own not in obj.fields:
                        self.add(m, tk, f"{path}.match.{tk}", f"{obj.name} has no field '{own}'" + suggest(own, obj.fields))
                g.match = dict(m)
        if "factor" in raw:
            fa = raw["factor"]
            if f.value_type not in NUMBER_TYPES or not (
                    isinstance(fa, list) and len(fa) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                  for v in fa) and 0 <= fa[0] <= fa[1]):
                self.add(raw, "factor", f"{path}.factor", "factor is [low, high], for a number field")
            else:
                g.factor = (fa[0], fa[1])
        if "at_least" in raw:
            a = raw["at_least"]
            if f.value_type not in NUMBER_TYPES or not isinstance(a, str):
                self.add(raw, "at_least", f"{path}.at_least", "at_least is a field path, for a number field")
            elif self.path_ok(obj, a, raw, "at_least", f"{path}.at_least", lines_ok=True):
                g.at_least = a
        return g

    def template_ok(self, obj, text, parts, node, key, path):
        for ph in _PLACEHOLDER.findall(text):
            name, _sep, rest = ph.partition(":")
            if ph == "n" or ph in parts:
                continue
            if name in _FUNCTIONS and rest:
                if name == "pinyin" and rest not in parts:
                    self.path_ok(obj, rest, node, key, path)
                elif name in ("digits", "letters") and not rest.isdigit():
                    self.add(node, key, path, f"{{{ph}}}: expected {{{name}:N}}")
                elif name == "chars" and not re.fullmatch(r"\d+:.+", rest):
                    self.add(node, key, path, f"{{{ph}}}: expected {{chars:N:ALPHABET}}")
                elif name == "int" and not re.fullmatch(r"-?\d+:-?\d+", rest):
                    self.add(node, key, path, f"{{{ph}}}: expected {{int:LOW:HIGH}}")
                continue
            if all(seg.split(".")[0] in obj.fields for seg in ph.split("|")):
                self.path_ok(obj, ph, node, key, path)
                continue
            self.add(node, key, path, f"{{{ph}}} is neither a part, a field of {obj.name} nor a function"
                     + suggest(ph, list(parts) + list(_FUNCTIONS) + ["n"]))

    def parts(self, raw, node, key, path) -> dict:
        if not isinstance(raw, MarkedDict):
            self.add(node, key, path, "expected a mapping of part name to a list of texts")
            return {}
        out = {}
        for name, values in raw.items():
            if isinstance(values, MarkedDict) and values:
                out[name] = ([str(k) for k in values], list(values.values()))
            elif isinstance(values, list) and values:
                out[name] = ([str(v) for v in values], None)
            else:
                self.add(raw, name, f"{path}.{name}", "expected a list of texts (or text: weight)")
        return out

    def fields(self, obj, raw, node, key, path, users, all_parts) -> dict:
        if raw is None:
            return {}
        if not isinstance(raw, MarkedDict):
            self.add(node, key, path, "expected a mapping of field name to value spec")
            return {}
        out = {}
        for name, spec_raw in raw.items():
            at = f"{path}.{name}"
            f = obj.fields.get(name)
            if f is None:
                settable = [n for n, x in obj.fields.items() if not self.not_settable(obj, x) or x.type == "lines"]
                self.add(raw, name, at, f"{obj.name} has no field '{name}'" + suggest(name, settable))
                continue
            why = self.not_settable(obj, f)
            if why:
                self.add(raw, name, at, f"{obj.name}.{name} {why}; remove it")
                continue
            if f.type == "lines":
                self.add(raw, name, at, f"{obj.name}.{name} is a lines field: configure it under lines:")
                continue
            g = self.gen(obj, f, spec_raw, raw, name, at, users, all_parts)
            if g is not None:
                out[name] = g
        return out

    @staticmethod
    def not_settable(obj, f) -> str | None:
        if f.computed:
            return f"is computed by the engine ({f.type})"
        if f.system and f.name != "owner":
            return "is kept by the engine"
        if f.name == "owner":
            return "is chosen by owners:"
        if f.readonly:
            return "is read-only"
        if f.name == obj.child_of:
            return "is set from the parent"
        return None


def demo_folder(spec, override=None) -> Path | None:
    if override is not None:
        return Path(override)
    for name, root in reversed(spec.layers):
        if name == "system":
            continue
        for folder in DEMO_FOLDERS:
            if (Path(root) / folder).is_dir():
                return Path(root) / folder
    return None


def load_config(spec, folder=None) -> Config:
    """Read and check the demo files; DemoError lists every problem."""
    folder = demo_folder(spec, folder)
    if folder is None or not folder.is_dir():
        raise DemoError(f"no demo data: expected a folder {' or '.join(DEMO_FOLDERS)} in the metadata root"
                        + (f" ({folder})" if folder else ""))
    tz = ZoneInfo(spec.timezone)
    check = _Checker(spec, tz)
    docs = []
    for path in sorted(folder.glob("*.y*ml")):
        file = _display(path)
        found, problems = load_documents(path.read_bytes(), file)
        check.problems.extend(problems)
        docs.extend((file, d) for d in found if d is not None)

    # users first: object files name them
    password, users, email_domain = None, [], None
    user_docs = [(file, d) for file, d in docs if isinstance(d, MarkedDict) and "users" in d]
    object_docs = [(file, d) for file, d in docs if isinstance(d, MarkedDict) and "object" in d]
    for file, d in docs:
        if not isinstance(d, MarkedDict) or ("users" not in d and "object" not in d):
            first = next(iter(d), None) if isinstance(d, MarkedDict) else None
            check.problems.append(Problem(getattr(d, "mark", None) or Mark(file, 1, 1), str(first or ""),
                                          "a demo document has 'users:' (the demo users) or 'object: NAME'"))
    for file, d in user_docs:
        for k in d:
            if k not in USERS_KEYS:
                check.add(d, k, k, f"unknown key '{k}'" + suggest(k, USERS_KEYS))
        if "password" in d:
            password = d["password"]
            from .security.organization import check_password_strength
            try:
                check_password_strength(str(password))
            except ValidationError as e:
                check.add(d, "password", "password", "; ".join(m.text("en") for v in e.fields.values() for m in v))
        email_domain = d.get("email_domain", email_domain)
        items = d.get("users")
        if not isinstance(items, MarkedList):
            check.add(d, "users", "users", "expected a list of users")
            continue
        for i, u in enumerate(items):
            at = f"users[{i}]"
            if not isinstance(u, MarkedDict):
                check.add(items, i, at, "expected {username: ..., name: ..., roles: [...], department: ...}")
                continue
            for k in u:
                if k not in USER_KEYS:
                    check.add(u, k, f"{at}.{k}", f"unknown key '{k}'" + suggest(k, USER_KEYS))
            username = u.get("username")
            if not isinstance(username, str) or not re.fullmatch(r"[A-Za-z0-9_.@-]+", username):
                check.add(u, "username", f"{at}.username", "expected a user name of letters, digits and _.@-")
                continue
            if any(x.username == username for x in users):
                check.add(u, "username", f"{at}.username", f"user '{username}' is listed twice")
            roles = u.get("roles") or []
            if not isinstance(roles, list):
                check.add(u, "roles", f"{at}.roles", "expected a list of roles")
                roles = []
            for j, r in enumerate(roles):
                if not isinstance(r, str) or r not in spec.roles:
                    check.add(roles, j, f"{at}.roles[{j}]", f"'{r}' is not a role of roles.yaml" + suggest(r, spec.roles))
            codes = [dep.code for dep in spec.departments]
            dept = u.get("department")
            if dept is not None and dept not in codes:
                check.add(u, "department", f"{at}.department", f"'{dept}' is not a department of roles.yaml" + suggest(dept, codes))
            manages = u.get("manages") or []
            manages = [manages] if isinstance(manages, str) else list(manages)
            for code in manages:
                if code not in codes:
                    check.add(u, "manages", f"{at}.manages", f"'{code}' is not a department of roles.yaml" + suggest(code, codes))
            email = u.get("email") or (f"{username}@{email_domain}" if email_domain else None)
            users.append(DemoUser(username, str(u.get("name") or username),
                                  [r for r in roles if isinstance(r, str) and r in spec.roles],
                                  dept, manages, email, u.get("phone")))
    if not user_docs:
        check.problems.append(Problem(Mark(_display(folder), 1, 1), "", "no demo users: add a users.yaml with 'users:'"))
    elif password is None:
        check.problems.append(Problem(user_docs[0][1].mark, "password", "give the demo users' password"))
    usernames = [u.username for u in users]

    plans = {}
    for file, d in object_docs:
        plan = _read_plan(check, spec, file, d, users)
        if plan is None:
            continue
        if plan.obj.name in plans:
            check.add(d, "object", "object", f"{plan.obj.name} is configured twice (also in {plans[plan.obj.name].file})")
        plans[plan.obj.name] = plan
    ordered = _order(check, spec, plans)
    if check.problems:
        raise DemoError(check.problems)
    return Config(str(password), users, ordered, folder)


def _read_plan(check: _Checker, spec, file, d: MarkedDict, users) -> Plan | None:
    name = d.get("object")
    if not isinstance(name, str) or name not in spec.objects:
        check.add(d, "object", "object", f"there is no object '{name}'" + suggest(
            name, [n for n, o in spec.objects.items() if not (o.system or o.child_of)]))
        return None
    obj = spec.objects[name]
    if obj.system or obj.child_of:
        check.add(d, "object", "object", f"{name} cannot have demo records of its own"
                  + (f": it is the lines of {obj.child_of}, configure them there under lines:" if obj.child_of
                     else " (users come from users.yaml)"))
        return None
    for k in d:
        if k not in OBJECT_KEYS:
            check.add(d, k, k, f"unknown key '{k}'" + suggest(k, OBJECT_KEYS))
    usernames = [u.username for u in users]
    plan = Plan(obj, file, d.mark)
    parts = check.parts(d["parts"], d, "parts", "parts") if "parts" in d else {}
    plan.parts = parts
    # every part name a template of this object may use
    all_parts = set(parts)
    raw_profiles = d.get("profiles")
    groups = []
    if raw_profiles is not None:
        if isinstance(raw_profiles, MarkedList):
            groups = [("profiles", raw_profiles, raw_profiles)]
        elif isinstance(raw_profiles, MarkedDict):
            groups = [(f"profiles.{g}", v, raw_profiles) for g, v in raw_profiles.items()]
        else:
            check.add(d, "profiles", "profiles", "expected a list of profiles, or groups of them")
    for _path, items, _node in groups:
        for item in items if isinstance(items, list) else []:
            if isinstance(item, MarkedDict) and isinstance(item.get("parts"), MarkedDict):
                all_parts |= set(item["parts"])
    plan.fields = check.fields(obj, d.get("fields"), d, "fields", "fields", usernames, all_parts)
    for path, items, node in groups:
        if not isinstance(items, MarkedList) or not items:
            check.add(node, path.split(".")[-1], path, "expected a list of profiles")
            continue
        group = []
        for i, item in enumerate(items):
            at = f"{path}[{i}]"
            if not isinstance(item, MarkedDict):
                check.add(items, i, at, "expected {weight: n, fields: {...}, parts: {...}}")
                continue
            for k in item:
                if k not in ("weight", "fields", "parts", "name"):
                    check.add(item, k, f"{at}.{k}", f"unknown key '{k}'" + suggest(k, ["weight", "fields", "parts", "name"]))
            w = item.get("weight", 1)
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                check.add(item, "weight", f"{at}.weight", "a weight is a number, 0 or more")
                w = 0
            group.append(Profile(w, check.fields(obj, item.get("fields"), item, "fields", f"{at}.fields", usernames, all_parts),
                                 check.parts(item["parts"], item, "parts", f"{at}.parts") if "parts" in item else {}))
        if group and not any(p.weight for p in group):
            check.add(node, path.split(".")[-1], path, "every weight of this group is 0")
        plan.profiles.append(group)

    sizes = [k for k in ("count", "per", "rows") if k in d]
    if len(sizes) != 1:
        check.add(d, sizes[1] if len(sizes) > 1 else "object", sizes[1] if len(sizes) > 1 else "",
                  "give exactly one of count (a number), per ({lookup: [min, max]}) or rows (a list)")
    elif "count" in d:
        c = d["count"]
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            check.add(d, "count", "count", "expected a whole number, 0 or more")
        else:
            plan.count = c
    elif "per" in d:
        per = d["per"]
        if not isinstance(per, MarkedDict) or len(per) != 1:
            check.add(d, "per", "per", "expected {lookup field: [min, max]}")
        else:
            (fname, rng_), = per.items()
            f = obj.fields.get(fname)
            if f is None or f.type != "lookup":
                check.add(per, fname, f"per.{fname}", f"{name} has no lookup field '{fname}'"
                          + suggest(fname, [x.name for x in obj.fields.values() if x.type == "lookup"]))
            elif not (isinstance(rng_, list) and len(rng_) == 2 and all(isinstance(v, int) and v >= 0 for v in rng_)
                      and rng_[0] <= rng_[1]):
                check.add(per, fname, f"per.{fname}", "expected [min, max], whole numbers, min first")
            else:
                plan.per = (fname, rng_[0], rng_[1])
    else:
        rows = d["rows"]
        if not isinstance(rows, MarkedList) or not rows:
            check.add(d, "rows", "rows", "expected a list of records")
        else:
            plan.rows = []
            for i, row in enumerate(rows):
                if not isinstance(row, MarkedDict):
                    check.add(rows, i, f"rows[{i}]", "expected a mapping of field to value")
                    continue
                plan.rows.append(check.fields(obj, row, rows, i, f"rows[{i}]", usernames, all_parts))

    if "first" in d:
        if plan.per is None:
            check.add(d, "first", "first", "first: is for objects created per record (per:)")
        plan.first = check.fields(obj, d["first"], d, "first", "first", usernames, all_parts)
    if "fill" in d:
        fill = d["fill"]
        if not isinstance(fill, (int, float)) or isinstance(fill, bool) or not 0 <= fill <= 1:
            check.add(d, "fill", "fill", "expected a number from 0 to 1")
        else:
            plan.fill = float(fill)
    if "owners" in d:
        plan.owners = _owners(check, spec, obj, d, users)
    if "lines" in d:
        raw = d["lines"]
        if not isinstance(raw, MarkedDict):
            check.add(d, "lines", "lines", "expected {lines field: {min, max, chance, fields}}")
        else:
            for lname, conf in raw.items():
                at = f"lines.{lname}"
                f = obj.fields.get(lname)
                if f is None or f.type != "lines":
                    check.add(raw, lname, at, f"{name} has no lines field '{lname}'"
                              + suggest(lname, [x.name for x in obj.fields.values() if x.type == "lines"]))
                    continue
                if not isinstance(conf, MarkedDict):
                    check.add(raw, lname, at, "expected {min, max, chance, fields}")
                    continue
                for k in conf:
                    if k not in ("min", "max", "chance", "fields"):
                        check.add(conf, k, f"{at}.{k}", f"unknown key '{k}'" + suggest(k, ["min", "max", "chance", "fields"]))
                child = spec.objects[f.lines_object]
                lp = LinesPlan(child, conf.get("min", 1), conf.get("max", 3), conf.get("chance", 1.0))
                if not (isinstance(lp.min, int) and isinstance(lp.max, int) and 0 <= lp.min <= lp.max):
                    check.add(conf, "min", at, "min and max are whole numbers, min first")
                if not isinstance(lp.chance, (int, float)) or not 0 <= lp.chance <= 1:
                    check.add(conf, "chance", f"{at}.chance", "expected a number from 0 to 1")
                lp.fields = check.fields(child, conf.get("fields"), conf, "fields", f"{at}.fields", usernames, all_parts)
                plan.lines[lname] = lp
    if "updates" in d:
        raw = d["updates"]
        blocks = [(raw, "updates")] if isinstance(raw, MarkedDict) else \
            [(b, f"updates[{i}]") for i, b in enumerate(raw)] if isinstance(raw, MarkedList) else []
        if not blocks:
            check.add(d, "updates", "updates", "expected {share, times, by, fields}, or a list of them")
        for block, at in blocks:
            if not isinstance(block, MarkedDict):
                check.add(raw, int(at[8:-1]), at, "expected {share, times, by, fields}")
                continue
            keys = ["share", "times", "by", "where", "fields"]
            for k in block:
                if k not in keys:
                    check.add(block, k, f"{at}.{k}", f"unknown key '{k}'" + suggest(k, keys))
            share, times, by = block.get("share", 0.2), block.get("times", [1, 1]), block.get("by") or []
            if not isinstance(share, (int, float)) or not 0 <= share <= 1:
                check.add(block, "share", f"{at}.share", "expected a number from 0 to 1")
                share = 0
            if not (isinstance(times, list) and len(times) == 2 and all(isinstance(t, int) and t >= 0 for t in times)
                    and times[0] <= times[1]):
                check.add(block, "times", f"{at}.times", "expected [min, max] updates per chosen record")
                times = [1, 1]
            by = [by] if isinstance(by, str) else by
            for who in by if isinstance(by, list) else []:
                if who not in spec.roles and who not in usernames:
                    check.add(block, "by", f"{at}.by", f"'{who}' is neither a role nor a demo user"
                              + suggest(who, list(spec.roles) + usernames))
            where = None
            if "where" in block:
                from .records.conditions_input import parse_condition
                try:
                    where = parse_condition(spec, obj.name, block["where"])
                except ValidationError as e:
                    check.add(block, "where", f"{at}.where", f"not a valid condition: {e}")
            plan.updates.append({"share": share, "times": tuple(times), "by": list(by) if isinstance(by, list) else [],
                                 "where": where,
                                 "fields": check.fields(obj, block.get("fields"), block, "fields", f"{at}.fields",
                                                        usernames, all_parts)})
    lifecycle = spec.lifecycle_of(obj)
    for key in ("states", "state_values"):
        if key not in d:
            continue
        raw = d[key]
        if lifecycle is None:
            check.add(d, key, key, f"{name} has no lifecycle")
            continue
        if not isinstance(raw, MarkedDict):
            check.add(d, key, key, "expected a mapping by state")
            continue
        for state, v in raw.items():
            if state not in lifecycle.states:
                check.add(raw, state, f"{key}.{state}", f"'{state}' is not a state of {lifecycle.name}"
                          + suggest(state, lifecycle.states))
            elif key == "states":
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    check.add(raw, state, f"{key}.{state}", "a weight is a number, 0 or more")
                else:
                    plan.states[state] = v
            else:
                plan.state_values[state] = check.fields(obj, v, raw, state, f"{key}.{state}", usernames, all_parts)
    if "comments" in d:
        c = d["comments"]
        if not isinstance(c, list) or not all(isinstance(x, str) for x in c):
            check.add(d, "comments", "comments", "expected a list of texts")
        else:
            plan.comments = list(c)
    # required fields the generator cannot make up
    configured = set(plan.fields) | {k for g in plan.profiles for p in g for k in p.fields}
    if plan.rows:
        configured |= set.intersection(*[set(r) for r in plan.rows]) if plan.rows else set()
    for f in obj.declared_fields:
        if not f.required or f.name in configured or _Checker.not_settable(obj, f) or f.type == "lines":
            continue
        if plan.per and f.name == plan.per[0]:
            continue
        if f.default is None and f.type in TEXT_TYPES and f.pattern:
            check.add(d, "fields", "fields", f"{name}.{f.name} is required and must match {f.pattern}: "
                                             f"give it a template or a pool")
    return plan


def _owners(check, spec, obj, d, users) -> dict | None:
    raw = d["owners"]
    if isinstance(raw, list):
        raw_map = {k: 1 for k in raw}
        node = raw
    elif isinstance(raw, MarkedDict):
        raw_map, node = dict(raw), raw
    else:
        check.add(d, "owners", "owners", "expected roles or usernames, as a list or with weights")
        return None
    out = {}
    for i, (k, w) in enumerate(raw_map.items()):
        key = i if isinstance(node, list) else k
        who = [u for u in users if u.username == k] or [u for u in users if k in u.roles]
        if k not in spec.roles and not any(u.username == k for u in users):
            check.add(node, key, f"owners.{k}", f"'{k}' is neither a role nor a demo user"
                      + suggest(k, list(spec.roles) + [u.username for u in users]))
            continue
        if not who:
            check.add(node, key, f"owners.{k}", f"no demo user has the role '{k}'")
            continue
        able = [u for u in who if _may_create(spec, obj, u.roles)]
        if not able:
            check.add(node, key, f"owners.{k}", f"'{k}' may not create {obj.name} records (permissions)")
            continue
        if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
            check.add(node, key, f"owners.{k}", "a weight is a number, 0 or more")
            continue
        out[k] = w
    return out


def _may_create(spec, obj, roles) -> bool:
    """What the permission policy answers for `create`, from role names alone."""
    return any(spec.roles[r].superuser or getattr(obj.permissions.get(r), "create", False) for r in roles)


def _order(check, spec, plans: dict) -> list:
    """Plans so that the objects a lookup points at are created first."""
    def deps(plan, required_only):
        out = set()
        fields = list(plan.obj.declared_fields)
        for lp in plan.lines.values():
            fields += [f for f in lp.child.declared_fields if f.name != lp.child.child_of]
        for f in fields:
            if f.type == "lookup" and f.target != plan.obj.name and (f.required or not required_only):
                out.add(f.target)
        if plan.per:
            out.add(plan.obj.fields[plan.per[0]].target)
        return out

    for plan in plans.values():
        for f in plan.obj.declared_fields:
            if f.type == "lookup" and f.required and f.target not in plans and f.target != plan.obj.name:
                check.problems.append(Problem(plan.mark, "object", f"{plan.obj.name}.{f.name} needs {f.target} "
                                              f"records, but the demo data has no {f.target}.yaml"))
    ordered, done = [], set()
    todo = [p for name, p in plans.items()]
    todo.sort(key=lambda p: list(spec.objects).index(p.obj.name))
    while todo:
        ready = [p for p in todo if deps(p, False) & set(plans) <= done] or \
                [p for p in todo if deps(p, True) & set(plans) <= done]
        if not ready:
            check.problems.append(Problem(todo[0].mark, "object", "these objects need each other's records first: "
                                          + ", ".join(p.obj.name for p in todo)))
            break
        ordered.append(ready[0])
        done.add(ready[0].obj.name)
        todo.remove(ready[0])
    return ordered


def _display(path: Path) -> str:
    from .metadata.sources import display_path
    return display_path(path)


# ---- generation ---------------------------------------------------------------------------

class _Generator:
    def __init__(self, runtime, config: Config, rng: random.Random, echo):
        self.runtime = runtime
        self.spec = runtime.spec
        self.service = runtime.records
        self.config = config
        self.rng = rng
        self.echo = echo
        self.tz = ZoneInfo(self.spec.timezone)
        self.now = dt.datetime.now(dt.timezone.utc)
        self.today = self.now.astimezone(self.tz).date()
        self.lang = self.spec.default_language
        self.users: dict = {}          # username -> (user record, Actor, DemoUser)
        self.departments: dict = {}    # code -> id
        self._candidates: dict = {}
        self._fetched: dict = {}
        self.used: dict = {}           # (object, field) -> set of unique values given out
        self.report: dict = {}         # object -> records created
        self.refused: dict = {}        # object -> messages of updates and transitions refused

    # -- helpers -------------------------------------------------------------------------

    def weighted(self, items, weights=None):
        if weights is None:
            return items[self.rng.randrange(len(items))]
        return self.rng.choices(items, weights=weights, k=1)[0]

    def candidates(self, actor: Actor, owner_obj, f) -> list:
        """Records of f's target that the actor may read and that pass f's filter, by id."""
        key = (actor.id, owner_obj.name, f.name)
        if key not in self._candidates:
            target = self.spec.objects[f.target]
            table = self.runtime.table(target)
            with self.service.reading() as conn:
                q = sa.select(table).where(table.c.deleted_at.is_(None),
                                           self.service.policy.filter(conn, actor, target, table))
                if f.filter is not None:
                    q = q.where(self.runtime.conditions.sql(target, f.filter, self.service.context(actor, conn)))
                if f.type == "user":
                    q = q.where(table.c.active.is_not(False))
                self._candidates[key] = [dict(r) for r in conn.execute(q.order_by(table.c.id)).mappings()]
        return self._candidates[key]

    def fetch(self, obj_name, id_):
        key = (obj_name, id_)
        if key not in self._fetched:
            table = self.runtime.table(obj_name)
            with self.service.reading() as conn:
                row = conn.execute(sa.select(table).where(table.c.id == id_)).mappings().first()
            self._fetched[key] = dict(row) if row else None
        return self._fetched[key]

    def context(self, actor: Actor) -> Context:
        return Context(user_id=actor.id, department_id=actor.department_id, now=self.now, timezone=self.tz,
                       fetch=self.fetch)

    def may_set(self, obj, f, actor: Actor) -> bool:
        """Field-level security: a field only some roles may update is left to them."""
        fp = obj.field_permissions.get(f.name)
        if fp is None or fp.update is None or actor.superuser:
            return True
        return bool(set(fp.update) & set(actor.roles))

    # -- users ---------------------------------------------------------------------------

    def create_users(self) -> list:
        """The demo users, in one transaction; department managers (`manages`) set."""
        from .security.organization import create_user, department_id
        out = []
        with self.service.transaction() as conn:
            for u in self.config.users:
                record = create_user(self.runtime, u.username, name=u.name, password=self.config.password,
                                     roles=u.roles, department=u.department, email=u.email, conn=conn)
                if u.phone:
                    self.service.update("user", record["id"], {"phone": u.phone}, Actor.system(),
                                        version=record["version"], conn=conn)
                for code in u.manages:
                    dept = self.service.get("department", department_id(self.runtime, code, conn), Actor.system(), conn=conn)
                    self.service.update("department", dept["id"], {"manager": record["id"]}, Actor.system(),
                                        version=dept["version"], conn=conn)
                out.append((u.username, u.name, list(u.roles)))
        self.load_users()
        return out

    def load_users(self):
        from .security.organization import actor_for, find_user
        for u in self.config.users:
            record = find_user(self.runtime, u.username)
            self.users[u.username] = (record, actor_for(self.runtime, record), u)
        table = self.runtime.table("department")
        with self.service.reading() as conn:
            self.departments = dict(conn.execute(sa.select(table.c.code, table.c.id)).all())

    def owner_pool(self, plan: Plan) -> list:
        """[(username, weight)] of the users who may own this object's demo records."""
        policy = self.service.policy
        if plan.owners:
            pool = {}
            for key, w in plan.owners.items():
                for username, (_rec, actor, u) in self.users.items():
                    if (username == key or key in u.roles) and policy.can(actor, plan.obj, "create"):
                        pool[username] = max(pool.get(username, 0), w)
            return [(n, w) for n, w in pool.items() if w > 0]
        able = [(n, a) for n, (_r, a, _u) in self.users.items() if policy.can(a, plan.obj, "create")]
        plain = [(n, 1) for n, a in able if not a.superuser]
        return plain or [(n, 1) for n, _a in able]

    # -- values --------------------------------------------------------------------------

    def resolve(self, obj, path: str, row: dict, chosen: dict, lines: dict):
        """The value at `field` or `field.attr` of the row being made (first non-empty alternative)."""
        for alt in path.split("|"):
            segs = alt.strip().split(".")
            f = obj.fields[segs[0]]
            value = row.get(segs[0])
            if len(segs) == 1:
                out = value
            elif f.type == "dictionary":
                item = self.spec.dictionaries[f.dictionary].items.get(value) if value is not None else None
                out = None if item is None else (item.value if segs[1] == "value" else
                                                 item.label.text(self.lang) if segs[1] == "label" else item.code)
            elif f.type == "lines":
                rows = lines.get(segs[0]) if segs[0] in lines else row.get(segs[0])
                total = None
                for r in rows or ():
                    v = r.get(segs[1])
                    if v is not None:
                        total = (total or 0) + decimal.Decimal(str(v))
                out = total
            else:
                rec = chosen.get(segs[0])
                if rec is None and value is not None:
                    rec = self.fetch(f.target, value)
                out = rec.get(segs[1]) if rec else None
            if out not in (None, ""):
                return out
        return None

    def render(self, obj, text, parts, picks, row, chosen, lines, index) -> str | None:
        """A template's text; None when a field it names is empty (no half-made values)."""
        missing = []

        def part(name):
            if name not in picks:
                values, weights = parts[name]
                picks[name] = self.weighted(values, weights)
            return picks[name]

        def field(path):
            value = self.resolve(obj, path, row, chosen, lines)
            if value in (None, ""):
                missing.append(path)
                return ""
            return str(value)

        def one(m):
            ph = m.group(1)
            name, _sep, rest = ph.partition(":")
            if ph == "n":
                return str(index)
            if ph in parts:
                return part(ph)
            if name == "digits":
                return "".join(self.rng.choice("0123456789") for _ in range(int(rest)))
            if name == "letters":
                return "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(int(rest)))
            if name == "chars":
                n, _s, alphabet = rest.partition(":")
                return "".join(self.rng.choice(alphabet) for _ in range(int(n)))
            if name == "int":
                lo, hi = rest.rsplit(":", 1) if rest.count(":") == 1 else rest.split(":")
                return str(self.rng.randint(int(lo), int(hi)))
            if name == "pinyin":
                return _pinyin(part(rest) if rest in parts else field(rest))
            return field(ph)
        text = _PLACEHOLDER.sub(one, text)
        return None if missing else text

    def produce(self, obj, f, g: Gen, actor, st) -> object:
        """One value for field f (may be None)."""
        row, chosen = st["row"], st["chosen"]
        if g.kind == "value":
            value = g.arg
        elif g.kind == "pool":
            value = self.weighted(g.arg, g.weights)
        elif g.kind == "one_of":
            value = self.produce(obj, f, self.weighted(g.arg, g.weights), actor, st)
        elif g.kind == "between":
            lo, hi = g.arg
            value = self.number(f, lo, hi, g.round)
        elif g.kind == "days":
            value = self.day(f, *g.arg)
        elif g.kind == "template":
            parts = {**st["parts"], **g.parts}
            value = self.render(obj, g.arg, parts, st["picks"], row, chosen, st["lines"], st["index"])
        elif g.kind == "copy":
            value = self.resolve(obj, g.arg, row, chosen, st["lines"])
            if value is not None and f.value_type in NUMBER_TYPES:
                value = decimal.Decimal(str(value))
        elif g.kind == "pick":
            codes = self.spec.dictionaries[f.dictionary].active_codes()
            lo, hi = g.arg
            value = sorted(self.rng.sample(codes, min(len(codes), self.rng.randint(int(lo), int(hi)))))
        else:
            value = self.auto(obj, f, g, actor, st)
        if f.type == "department" and isinstance(value, str):
            value = self.departments.get(value)
        elif f.type == "user" and isinstance(value, str):
            value = self.users[value][0]["id"] if value in self.users else None
        if g.factor and value is not None:
            value = decimal.Decimal(str(value)) * decimal.Decimal(str(self.rng.uniform(*g.factor)))
            step = decimal.Decimal(str(g.round or 1))
            value = (value / step).to_integral_value(rounding=decimal.ROUND_HALF_UP) * step
        if g.at_least and value is not None:
            floor = self.resolve(obj, g.at_least, row, chosen, st["lines"])
            if floor is not None and decimal.Decimal(str(floor)) > decimal.Decimal(str(value)):
                step = decimal.Decimal(str(g.round or 1))
                value = (decimal.Decimal(str(floor)) / step).to_integral_value(rounding=decimal.ROUND_CEILING) * step
        return value

    def number(self, f, lo, hi, step=None):
        if f.value_type == "integer":
            value = self.rng.randint(int(lo), int(hi))
            return int(round(value / step) * step) if step else value
        scale = f.scale if f.scale is not None else 2
        value = self.rng.uniform(lo, hi)
        if step:
            value = round(value / step) * step
            value = value + step if value < lo else value - step if value > hi else value
        return decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP)

    def day(self, f, lo, hi):
        d = self.rng.randint(int(lo), int(hi))
        if f.value_type == "date":
            return self.today + dt.timedelta(days=d)
        local = self.now.astimezone(self.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=d)
        value = start + dt.timedelta(minutes=self.rng.randint(8 * 60, 19 * 60))
        return min(value, local) if hi <= 0 else value

    def auto(self, obj, f, g: Gen, actor, st):
        """A plausible value from the field's type and options alone."""
        t = f.value_type
        ctx = self.context(actor)
        low = bound(f, f.min, ctx) if f.min is not None else None
        high = bound(f, f.max, ctx) if f.max is not None else None
        if f.is_reference:
            found = self.candidates(actor, st["owner_obj"], f)
            if g.match:
                found = [c for c in found if all(c.get(tk) == st["row"].get(own) for tk, own in g.match.items())]
            if f.target == obj.name and st.get("self_id") is not None:   # older records only: no cycles
                found = [c for c in found if c["id"] < st["self_id"]]
            taken = st["taken"].setdefault(f"{obj.name}.{f.name}", set())   # lines: each product once
            fresh = [c for c in found if c["id"] not in taken] or found
            if not fresh:
                return None
            pick = self.weighted(fresh)
            st["chosen"][f.name] = pick
            taken.add(pick["id"])
            return pick["id"]
        if t == "dictionary":
            codes = self.spec.dictionaries[f.dictionary].active_codes()
            if f.multiple:
                return sorted(self.rng.sample(codes, min(len(codes), self.rng.randint(0, 2))))
            return self.weighted(codes) if codes else None
        if t == "boolean":
            return self.rng.random() < 0.5
        if t in NUMBER_TYPES:
            lo = low if low is not None else 0
            hi = high if high is not None else lo + (100 if t in ("integer", "percent") else 10000)
            return self.number(f, float(lo), float(hi))
        if t in ("date", "datetime"):
            lo = -60 if low is None else max(-60, (_bound_day(low, self.tz) - self.today).days)
            hi = 60 if high is None else min(60, (_bound_day(high, self.tz) - self.today).days)
            if lo > hi:
                lo = hi - 365
            return self.day(f, lo, hi)
        if f.pattern:
            return None
        n = st["index"]
        label = f.label.text(self.lang)
        if t == "email":
            return f"demo{n}@example.com"
        if t == "phone":
            return f"1{self.rng.choice('3589')}{self.rng.randint(0, 999999999):09d}"
        if t == "url":
            return f"https://www.example.com/{n}"
        text = f"{label} {n}"
        return text[: f.max_length] if f.max_length else text

    # -- rows ----------------------------------------------------------------------------

    def make_row(self, plan: Plan, owner: str, index: int, fixed=None, first=False, base_row=None):
        """Values for one new record (lines included)."""
        obj = plan.obj
        _rec, actor, _u = self.users[owner]
        gens = dict(plan.fields)
        parts = dict(plan.parts)
        for group in plan.profiles:
            profile = self.weighted(group, [p.weight for p in group])
            gens.update(profile.fields)
            parts.update(profile.parts)
        if base_row:
            gens.update(base_row)
        if first:
            gens.update(plan.first)
        st = {"row": {}, "chosen": {}, "lines": {}, "picks": {}, "parts": parts, "index": index,
              "owner_obj": obj, "taken": {}}
        if fixed:
            for name, (value, record) in fixed.items():
                st["row"][name] = value
                st["chosen"][name] = record
        # lines first: the parent's values may add them up
        sent = {}
        for lname, lp in plan.lines.items():
            if self.rng.random() >= lp.chance:
                continue
            made = [self.make_line(lp, actor, index, st, plan.fill) for _ in range(self.rng.randint(lp.min, lp.max))]
            sent[lname] = [values for values, _full in made]
            st["lines"][lname] = [full for _values, full in made]
        self.fill(obj, gens, plan.fill, actor, st, skip=set(fixed or ()))
        return {**st["row"], **sent}

    def make_line(self, lp: LinesPlan, actor, index, parent_st, fill_chance):
        """(values to send, values with the line's formulas computed) of one line row."""
        st = {"row": {}, "chosen": {}, "lines": {}, "picks": {}, "parts": parent_st["parts"],
              "index": index, "owner_obj": lp.child, "taken": parent_st["taken"]}
        self.fill(lp.child, dict(lp.fields), fill_chance, actor, st, skip={lp.child.child_of})
        values = dict(st["row"])
        # the line's formulas, computed as the service will, let the parent add lines up
        typed = {}
        for f in lp.child.declared_fields:
            if f.computed or f.type == "lines":
                continue
            raw = values.get(f.name, f.default if not hasattr(f.default, "name") else None)
            try:
                typed[f.name] = coerce(f, raw, self.tz) if raw is not None else None
            except Invalid:
                typed[f.name] = None
        context = {"today": self.today, "now": self.now}
        for f in computed.formula_order(lp.child):
            try:
                typed[f.name] = computed.evaluate_formula(f, typed, context)
            except Exception:  # a formula over missing values: the service computes it anyway
                typed[f.name] = None
        return values, typed

    def fill(self, obj, gens: dict, fill_chance: float, actor, st, skip=()):
        """Generate the row's values in an order where each field comes after those it reads."""
        wanted = {}
        for f in obj.declared_fields:
            if f.name in skip or _Checker.not_settable(obj, f) or f.type in ("lines", "file"):
                continue
            if not self.may_set(obj, f, actor):
                continue
            if f.name in gens:
                wanted[f.name] = gens[f.name]
            elif f.default is not None or (f.type == "lookup" and f.target == obj.name):
                continue   # the engine's default applies; self-references only when configured
            elif f.required:
                wanted[f.name] = Gen("auto")
            elif f.pattern and f.type in TEXT_TYPES:
                continue
            else:
                wanted[f.name] = Gen("auto", chance=fill_chance)
        for name in _dependency_order(wanted):
            if name in st["row"]:
                continue
            g = wanted[name]
            f = obj.fields[name]
            if f.type == "lookup" and f.target == obj.name:
                continue   # self-references are set later, by an update (see _link)
            if g.chance < 1 and self.rng.random() >= g.chance and not f.required:
                continue
            st["row"][name] = self.unique(obj, f, g, actor, st)
        self.conditional(obj, wanted, actor, st)

    def unique(self, obj, f, g, actor, st):
        value = self.produce(obj, f, g, actor, st)
        if not f.unique or value is None:
            return value
        used = self.used.setdefault((obj.name, f.name), set())
        tries = 0
        while value in used and tries < UNIQUE_TRIES:
            for ph in _PLACEHOLDER.findall(g.arg) if g.kind == "template" else ():
                st["picks"].pop(ph, None)
            value = self.produce(obj, f, g, actor, st)
            tries += 1
        used.add(value)
        return value

    def conditional(self, obj, wanted, actor, st):
        """Fill what `required_if` asks for; empty what `show_if` hides."""
        row = st["row"]
        record = dict(row, owner=actor.id, department=actor.department_id)
        lifecycle = self.spec.lifecycle_of(obj)
        if lifecycle:
            record["state"] = lifecycle.initial
        ctx = self.context(actor)
        conditions = self.runtime.conditions
        for _round in range(2):
            for f in obj.declared_fields:
                if f.required_if is not None and row.get(f.name) in (None, "", []) and f.name in wanted \
                        and conditions.matches(obj, f.required_if, record, ctx):
                    row[f.name] = record[f.name] = self.produce(obj, f, wanted[f.name], actor, st)
            for f in obj.declared_fields:
                if f.show_if is not None and row.get(f.name) not in (None, "", []) \
                        and not conditions.matches(obj, f.show_if, record, ctx):
                    row.pop(f.name)
                    record.pop(f.name, None)


def _bound_day(value, tz) -> dt.date:
    return value.astimezone(tz).date() if isinstance(value, dt.datetime) else value


def _dependency_order(gens: dict) -> list:
    order, done = [], set()

    def visit(name, trail=()):
        if name in done or name in trail or name not in gens:
            return
        for dep in sorted(gens[name].deps()):
            visit(dep, trail + (name,))
        done.add(name)
        order.append(name)
    for name in gens:
        visit(name)
    return order


def _pinyin(text) -> str:
    if text is None:
        return ""
    from pypinyin import lazy_pinyin
    return re.sub(r"[^a-z0-9]", "", "".join(lazy_pinyin(str(text))).lower())


# ---- populate -------------------------------------------------------------------------------

def _existing(runtime, config: Config) -> str | None:
    """Why the database is not empty enough for demo data, or None."""
    from .security.organization import find_user
    for u in config.users:
        if find_user(runtime, u.username) is not None:
            return f"demo user '{u.username}' already exists"
    with runtime.records.reading() as conn:
        for plan in config.plans:
            table = runtime.table(plan.obj)
            if conn.execute(sa.select(table.c.id).limit(1)).first() is not None:
                return f"the database already has {plan.obj.name} records"
    return None


def populate(runtime, *, scale: float = 1.0, echo=None, seed: int = SEED, folder=None) -> dict:
    """Create the demo users and records of the metadata's demo folder.

    Returns {"users": [(username, name, roles)], "password": ..., "objects": {name: created},
    "planned": {name: records meant}, "skipped": {name: [rows the service refused, why]},
    "refused": {name: [updates refused]}, "seconds": ...}. Nothing is written, and "users"
    is empty, when the database already has demo users or records of the demo objects.
    `scale` multiplies `count` and `rows` (not `per`, which follows the parents).
    Raises DemoError (a click exception: a message, no traceback) for bad demo files."""
    echo = echo or (lambda *_a, **_k: None)
    started = time.perf_counter()
    config = load_config(runtime.spec, folder)
    why = _existing(runtime, config)
    if why:
        echo(f"Demo data not created: {why}.")
        return {"users": [], "password": config.password, "objects": {}, "planned": {}, "skipped": {},
                "refused": {}, "seconds": 0.0}
    gen = _Generator(runtime, config, random.Random(seed), echo)
    users = gen.create_users()
    echo(f"{len(users)} demo users")
    planned, skipped = {}, {}
    for plan in config.plans:
        t0 = time.perf_counter()
        name = plan.obj.name
        created, skipped[name], planned[name] = _create(gen, plan, scale)
        changes = _link(gen, plan, created) + _update(gen, plan, created)
        _states(gen, plan, created)
        gen._candidates.clear()
        gen.report[name] = len(created)
        note = f", {len(skipped[name])} skipped" if skipped[name] else ""
        echo(f"{plan.obj.plural.text(gen.lang)} ({name}): {len(created)} created{note}, "
             f"{changes} updates, {time.perf_counter() - t0:.1f}s")
        for message in (skipped[name] + gen.refused.get(name, []))[:3]:
            echo(f"  refused: {message}")
    seconds = time.perf_counter() - started
    echo(f"Demo data ready in {seconds:.1f}s")
    return {"users": users, "password": config.password, "objects": dict(gen.report), "planned": planned,
            "skipped": skipped, "refused": dict(gen.refused), "seconds": seconds}


def _create(gen: _Generator, plan: Plan, scale: float):
    """Create the plan's records: ([(id, owner)], [messages of rows refused], records meant)."""
    obj = plan.obj
    meant = len(plan.rows) if plan.rows is not None else plan.count or 0
    pool = gen.owner_pool(plan)
    if not pool:
        return [], [f"no demo user may create {obj.name} records"], _scaled(meant, scale)
    owners, weights = [n for n, _w in pool], [w for _n, w in pool]
    required = [f for f in obj.declared_fields if f.type == "lookup" and f.required and f.target != obj.name
                and not (plan.per and f.name == plan.per[0])]

    def viable(username):
        actor = gen.users[username][1]
        return all(gen.candidates(actor, obj, f) for f in required)
    able = [n for n in owners if viable(n)]
    if not able:
        return [], [f"no owner may see the records {obj.name} needs ({', '.join(f.name for f in required)})"], \
            _scaled(meant, scale)

    def choose_owner():
        name = gen.weighted(owners, weights)
        if name in able:
            return name
        return gen.weighted(able, [weights[owners.index(n)] for n in able])

    # (owner, fixed values, first-of-group, fixed row spec) for each record to make
    jobs = []
    if plan.per:
        fname, lo, hi = plan.per
        f = obj.fields[fname]
        target = gen.runtime.table(f.target)
        with gen.service.reading() as conn:
            parents = [dict(r) for r in conn.execute(sa.select(target).where(target.c.deleted_at.is_(None))
                                                     .order_by(target.c.id)).mappings()]
        for parent in parents:
            owner_id = parent.get("owner")
            owner = next((n for n in able if gen.users[n][0]["id"] == owner_id), None)
            for k in range(gen.rng.randint(lo, hi)):
                jobs.append((owner or choose_owner(), {fname: (parent["id"], parent)}, k == 0, None))
    elif plan.rows is not None:
        n = _scaled(len(plan.rows), scale)
        picked = [plan.rows[int(i * len(plan.rows) / n)] for i in range(n)] if n else []
        jobs = [(choose_owner(), None, False, row) for row in picked]
    else:
        jobs = [(choose_owner(), None, False, None) for _ in range(_scaled(plan.count, scale))]

    created, skipped = [], []
    by_owner: dict = {}
    for i, job in enumerate(jobs):
        by_owner.setdefault(job[0], []).append((i + 1, job))
    for owner, items in by_owner.items():
        actor = gen.users[owner][1]
        pending = [(idx, job, gen.make_row(plan, owner, idx, job[1], job[2], job[3])) for idx, job in items]
        for attempt in range(RETRIES + 1):
            result = gen.service.bulk_create(obj.name, [row for _i, _j, row in pending], actor, batch_size=500)
            created += [(id_, owner) for id_ in result.created]
            if not result.errors:
                break
            failed = [(pending[i], err) for i, err in result.errors]
            if attempt == RETRIES:
                skipped += [f"{obj.name} row {idx} ({owner}): {err}" for (idx, _j, _r), err in failed]
                break
            pending = [(idx, job, gen.make_row(plan, owner, idx, job[1], job[2], job[3])) for (idx, job, _r), _e in failed]
    created.sort()
    return created, skipped, len(jobs)


def _scaled(n: int, scale: float) -> int:
    return 0 if n == 0 else max(1, int(round(n * scale)))


def _update_values(gen: _Generator, plan: Plan, gens: dict, record: dict, actor) -> dict:
    obj = plan.obj
    st = {"row": dict(record), "chosen": {}, "lines": {}, "picks": {}, "parts": dict(plan.parts),
          "index": record["id"], "owner_obj": obj, "taken": {}, "self_id": record["id"]}
    values = {}
    for name in _dependency_order(gens):
        f, g = obj.fields[name], gens[name]
        if not gen.may_set(obj, f, actor) or (g.chance < 1 and gen.rng.random() >= g.chance):
            continue
        value = gen.unique(obj, f, g, actor, st)
        if value is not None and value != record.get(name):
            values[name] = st["row"][name] = value
    return values


def _apply(gen: _Generator, obj, record: dict, values: dict, actor) -> bool:
    """Update a record as read by the actor; a refusal is reported, not raised."""
    id_ = record["id"]
    try:
        gen.service.update(obj.name, id_, values, actor, version=record["version"])
        return True
    except RecordError as e:
        gen.refused.setdefault(obj.name, []).append(f"update of {obj.name} #{id_}: {e}")
        return False


def _link(gen: _Generator, plan: Plan, created) -> int:
    """Self-references (a parent company, a contact's manager) point at older records: set
    once every record exists, as an update of each record that gets one."""
    obj = plan.obj
    gens = {n: g for n, g in plan.fields.items() if obj.fields[n].type == "lookup" and obj.fields[n].target == obj.name}
    done = 0
    for id_, owner in created if gens else ():
        actor = gen.users[owner][1]
        record = gen.service.get(obj.name, id_, actor, with_lines=False)
        values = _update_values(gen, plan, gens, record, actor)
        if values and _apply(gen, obj, record, values, actor):
            done += 1
    return done


def _update(gen: _Generator, plan: Plan, created) -> int:
    """Later edits, so records have a history: by the owner, or (`by`) by a user of those
    roles who may change the record (a manager rating a rep's customer)."""
    obj = plan.obj
    done = 0
    for block in plan.updates:
        pool = created
        if block["where"] is not None:
            pool = [(id_, owner) for id_, owner in created if gen.runtime.conditions.matches(
                obj, block["where"], gen.service.get(obj.name, id_, Actor.system(), with_lines=False),
                gen.context(gen.users[owner][1]))]
        chosen = sorted(gen.rng.sample(pool, int(round(len(pool) * block["share"]))))
        lo, hi = block["times"]
        editors = [a for n, (_r, a, u) in gen.users.items()
                   if not block["by"] or n in block["by"] or set(block["by"]) & set(u.roles)]
        for id_, owner in chosen:
            actor = gen.users[owner][1]
            record = gen.service.get(obj.name, id_, Actor.system(), with_lines=False)
            with gen.service.reading() as conn:
                def may(a):
                    return gen.service.policy.allows(conn, a, obj, "update", record, gen.fetch)
                if block["by"] or not may(actor):   # the owner edits their own, unless they may no longer
                    able = [a for a in editors if may(a)]
                    if not able:
                        continue
                    actor = gen.weighted(able)
            for _k in range(gen.rng.randint(lo, hi)):
                record = gen.service.get(obj.name, id_, actor)
                values = _update_values(gen, plan, block["fields"], record, actor)
                if values and _apply(gen, obj, record, values, actor):
                    done += 1
    return done


def _states(gen: _Generator, plan: Plan, created) -> None:
    """Move records along their lifecycle by the `states` weights.

    Each record takes the shortest path of transitions (runtime.workflows) to its drawn
    state, `state_values` set first by an
    update, acting as the owner or, when the transition needs other roles, a demo user
    with one of them who may change the record (a manager of the owner's department)."""
    transition = gen.runtime.workflows.transition
    lifecycle = gen.spec.lifecycle_of(plan.obj)
    if transition is None or not plan.states or lifecycle is None or not created:
        return
    try:
        accepted = set(inspect.signature(transition).parameters)
    except (TypeError, ValueError):
        accepted = set()
    obj = plan.obj
    names, weights = list(plan.states), list(plan.states.values())
    comments = plan.comments or ["演示数据 / demo data"]
    policy = gen.service.policy

    def acting(t, owner, id_):
        """The owner if they may take `t` on the record as it is now, else a demo user who may."""
        record = gen.service.get(obj.name, id_, Actor.system(), with_lines=False)
        with gen.service.reading() as conn:
            def may(a):
                return ((not t.roles or set(t.roles) & set(a.roles))
                        and policy.allows(conn, a, obj, "update", record, gen.fetch))
            actor = gen.users[owner][1]
            if may(actor):
                return actor
            able = [a for _n, (_r, a, _u) in gen.users.items() if may(a)]
        return gen.weighted(able) if able else None

    for id_, owner in created:
        target = gen.weighted(names, weights)
        for t in _path(lifecycle, lifecycle.initial, target):
            actor = acting(t, owner, id_)
            if actor is None:
                gen.refused.setdefault(obj.name, []).append(
                    f"{t.name} of {obj.name} #{id_}: no demo user with a role of {', '.join(t.roles)} may change it")
                break
            try:
                values = plan.state_values.get(t.to)
                if values:
                    record = gen.service.get(obj.name, id_, actor, with_lines=False)
                    v = _update_values(gen, plan, values, record, actor)
                    if v and not _apply(gen, obj, record, v, actor):
                        break
                    actor = acting(t, owner, id_) or actor   # the values may change who may act (a new assignee)
                record = gen.service.get(obj.name, id_, actor, with_lines=False)
                kwargs = {}
                if "version" in accepted:
                    kwargs["version"] = record["version"]
                if "comment" in accepted:
                    kwargs["comment"] = gen.weighted(comments)
                transition(obj.name, id_, t.name, actor, **kwargs)
            except RecordError as e:
                gen.refused.setdefault(obj.name, []).append(f"{t.name} of {obj.name} #{id_}: {e}")
                break


def _path(lifecycle, start: str, goal: str) -> list:
    """The shortest list of transitions from one state to another (approvals avoided)."""
    if start == goal:
        return []
    frontier, seen = [(start, [])], {start}
    while frontier:
        nxt = []
        for state, path in frontier:
            for t in lifecycle.transitions.values():
                if state in t.sources and t.to not in seen and not t.approval:
                    if t.to == goal:
                        return path + [t]
                    seen.add(t.to)
                    nxt.append((t.to, path + [t]))
        frontier = nxt
    return []
