"""Create and edit forms generated with WTForms from an object's metadata.

WTForms renders the widgets and reads the submission; it does not validate. The values
go to the record service as the user typed them, and the service's errors are shown
next to their fields — so a rule lives in one place and the API, imports and pages agree.
"""
from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import DateInput, DateTimeLocalInput, EmailInput, NumberInput, TelInput, URLInput

from ..metadata.spec import FieldSpec, ObjectSpec

WIDGETS = {"email": EmailInput(), "phone": TelInput(), "url": URLInput(), "date": DateInput(),
           "datetime": DateTimeLocalInput()}


def _label(f: FieldSpec, lang: str) -> str:
    return f.label.text(lang)


def _dictionary_choices(spec, f: FieldSpec, lang: str, current=None) -> list:
    """Active items (indented by depth when hierarchical); an inactive item only if held."""
    dictionary = spec.dictionaries[f.dictionary]
    held = set(current or []) if f.multiple else {current}
    choices = [] if f.multiple else [SelectChoice("", "")]
    for code, item in dictionary.items.items():
        if item.active or code in held:
            choices.append(SelectChoice(code, "　" * item.depth + item.label.text(lang)))
    return choices


def _field(f: FieldSpec, lang: str):
    kw = {"label": _label(f, lang), "description": f.help.text(lang) if f.help else ""}
    render = {"data-field": f.name}
    if f.max_length and f.type in ("text", "email", "phone", "url"):
        render["maxlength"] = f.max_length
    t = f.type
    if t == "textarea":
        return TextAreaField(render_kw={**render, "rows": 4}, **kw)
    if t == "boolean":
        return BooleanField(render_kw=render, **kw)
    if t == "dictionary":
        cls = SelectMultipleField if f.multiple else SelectField
        return cls(choices=[], validate_choice=False, render_kw=render, **kw)
    if t in ("user", "department"):
        return SelectField(choices=[], validate_choice=False, render_kw=render, **kw)
    if t == "lookup":
        return StringField(render_kw={**render, "data-lookup": f.target}, **kw)
    if t in ("integer",):
        return StringField(widget=NumberInput(step=1), render_kw={**render, "inputmode": "numeric"}, **kw)
    if t in ("decimal", "percent", "money"):
        return StringField(render_kw={**render, "inputmode": "decimal"}, **kw)
    return StringField(widget=WIDGETS.get(t, StringField.widget), render_kw=render, **kw)


def input_fields(obj: ObjectSpec, sections, allowed=None) -> list[FieldSpec]:
    """The fields a person types into, in section order (`allowed`: those they may update)."""
    out = []
    for section in sections:
        for name in section.fields:
            f = obj.fields[name]
            if (not f.system or name == "owner") and not f.computed and not f.readonly \
                    and f.type not in ("lines", "file") and (allowed is None or name in allowed):
                out.append(f)
    return out


@lru_cache(maxsize=256)
def form_class(spec, obj_name: str, lang: str, allowed: frozenset):
    obj = spec.objects[obj_name]
    attrs = {f.name: _field(f, lang) for f in input_fields(obj, obj.form, allowed)}
    return type(f"{obj_name.title()}Form", (FlaskForm,), attrs)


def allowed_fields(runtime, obj, actor) -> frozenset:
    return runtime.records.policy.updatable_fields(actor, obj) if actor is not None else frozenset(obj.fields)


def build(runtime, obj: ObjectSpec, lang: str, *, record=None, formdata=None, actor=None):
    """A bound form: from the submission, or from a record being edited."""
    allowed = allowed_fields(runtime, obj, actor)
    cls = form_class(runtime.spec, obj.name, lang, allowed)
    if formdata is None and (record is None or "id" not in record) and actor is not None:
        record = {**new_record_defaults(runtime, obj, actor), **(record or {})}
    form = cls(formdata=formdata, data=_form_data(obj, record) if record and formdata is None else None)
    users = departments = None
    for f in input_fields(obj, obj.form, allowed):
        field = form[f.name]
        current = (record or {}).get(f.name)
        if f.type == "dictionary":
            field.choices = _dictionary_choices(runtime.spec, f, lang, current)
        elif f.type == "user":
            users = users if users is not None else _options(runtime, "user", actor)
            field.choices = [SelectChoice("", "")] + [SelectChoice(str(i), t) for i, t in users]
        elif f.type == "department":
            departments = departments if departments is not None else _options(runtime, "department", actor)
            field.choices = [SelectChoice("", "")] + [SelectChoice(str(i), t) for i, t in departments]
    return form


def new_record_defaults(runtime, obj: ObjectSpec, actor) -> dict:
    """What a new record starts with: metadata defaults (resolved as the service resolves
    them) and the author as owner."""
    service = runtime.records
    with runtime.engine.connect() as conn:
        ctx = service.context(actor, conn)
        values = {f.name: service._default(f, actor, ctx) for f in obj.fields.values()
                  if f.default is not None and not f.system}
    if "owner" in obj.fields:
        values["owner"] = actor.id
    return values


def _options(runtime, obj_name, actor, limit=500):
    obj = runtime.spec.objects[obj_name]
    table = runtime.table(obj)
    q = sa.select(table.c.id, table.c[obj.title]).where(table.c.deleted_at.is_(None)).order_by(table.c[obj.title]).limit(limit)
    if obj_name == "user":
        q = q.where(table.c.active.is_not(False))
    with runtime.engine.connect() as conn:
        return [(i, t) for i, t in conn.execute(q)]


def _form_data(obj: ObjectSpec, record: dict) -> dict:
    data = {}
    for name, f in obj.fields.items():
        value = record.get(name)
        if value is None:
            continue
        if f.type in ("user", "department"):
            data[name] = str(value)
        elif f.type == "datetime":
            data[name] = value.strftime("%Y-%m-%dT%H:%M")
        elif f.type in ("date",):
            data[name] = value.isoformat()
        else:
            data[name] = value if f.type in ("boolean", "dictionary") else str(value)
    return data


def submitted(obj: ObjectSpec, form, formdata) -> dict:
    """The values to hand to the record service: what was typed, untouched."""
    values = {}
    for f in input_fields(obj, obj.form, frozenset(name for name in obj.fields if name in form)):
        if f.type != "boolean" and f.name not in formdata:
            continue  # not on the page that was posted: leave it to defaults
        if f.type == "boolean":
            values[f.name] = bool(form[f.name].data)
        elif f.type == "dictionary" and f.multiple:
            values[f.name] = formdata.getlist(f.name)
        elif f.type == "datetime":
            raw = formdata.get(f.name) or ""
            values[f.name] = raw.replace("T", " ") if raw else None
        else:
            values[f.name] = formdata.get(f.name)
    for name, f in obj.fields.items():
        if f.type == "lines":
            values[name] = lines_from(formdata, name)
    return values


def lines_from(formdata, name: str) -> list[dict]:
    """Rows of a lines field posted as `<field>-<row>-<column>`, in row order."""
    rows: dict = {}
    prefix = f"{name}-"
    for key in formdata.keys():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix):].split("-", 1)
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        index, column = int(parts[0]), parts[1]
        values = formdata.getlist(key)
        rows.setdefault(index, {})[column] = values if len(values) > 1 else values[0]
    out = []
    for index in sorted(rows):
        row = rows[index]
        if row.pop("_removed", None):
            continue
        if row.get("id"):
            try:
                row["id"] = int(row["id"])
            except ValueError:
                row.pop("id")
        else:
            row.pop("id", None)
        if any(v not in ("", None) for k, v in row.items() if k != "id") or "id" in row:
            out.append(row)
    return out
