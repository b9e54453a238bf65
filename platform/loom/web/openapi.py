"""OpenAPI 3.1 for the JSON API, generated from the metadata.

One read schema and one input schema per object: field types map to JSON Schema types
and formats, dictionaries to enums of their codes, lookups to record ids, and empty values
to `null` (OpenAPI 3.1 speaks JSON Schema 2020-12, so a nullable field is `["string",
"null"]`). The document describes what the requesting user may see: objects they may
read, fields they may read (input schemas: fields they may update).
"""
from __future__ import annotations

from ..metadata.spec import FieldSpec, ObjectSpec

DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"


def _nullable(schema: dict) -> dict:
    t = schema.get("type")
    if isinstance(t, str):
        schema["type"] = [t, "null"]
    elif "enum" in schema:
        schema["enum"] = list(schema["enum"]) + [None]
    return schema


def field_schema(spec, obj: ObjectSpec, f: FieldSpec, lang: str, *, write: bool) -> dict:
    t = f.value_type
    s: dict
    if f.type == "lines":
        child = spec.objects[f.lines_object]
        props = {c.name: field_schema(spec, child, c, lang, write=write) for c in child.declared_fields
                 if c.type != "lines" and not (write and c.computed)}
        if write:
            props["id"] = {"type": ["integer", "null"]}
        s = {"type": "array", "items": {"type": "object", "properties": props}}
    elif t in ("text", "textarea", "email", "phone", "url", "autonumber", "mnemonic"):
        s = {"type": "string"}
        if f.max_length and t != "textarea":
            s["maxLength"] = f.max_length
        if t == "email":
            s["format"] = "email"
    elif t == "integer":
        s = {"type": "integer"}
        for key, bound in (("minimum", f.min), ("maximum", f.max)):
            if isinstance(bound, (int, float)):
                s[key] = bound
    elif t in ("decimal", "percent", "money", "rollup", "formula"):
        s = {"type": ["string", "number"]} if write else {"type": "string", "pattern": DECIMAL}
        s["description"] = f"decimal with {f.scale if f.scale is not None else 2} places"
    elif t == "boolean":
        s = {"type": "boolean"}
    elif t == "date":
        s = {"type": "string", "format": "date"}
    elif t == "datetime":
        s = {"type": "string", "format": "date-time"}
    elif t == "dictionary":
        items = spec.dictionaries[f.dictionary].items
        codes = [c for c, i in items.items() if i.active or not write]
        s = {"type": "array", "items": {"type": "string", "enum": codes}} if f.multiple else {"type": "string", "enum": codes}
    elif t == "state":
        s = {"type": "string", "enum": list(spec.workflows[obj.lifecycle].states)}
    elif t in ("lookup", "user", "department"):
        s = {"type": "integer", "description": f"id of a {f.target} record"}
    elif t == "file":
        s = {"type": "object"}
    else:
        s = {}
    s["title"] = f.label.text(lang)
    if f.help:
        s.setdefault("description", f.help.text(lang))
    if f.computed or f.system:
        s["readOnly"] = True
    if not (write and f.required) and f.type != "lines" and not (f.type == "dictionary" and f.multiple):
        _nullable(s)
    return s


def _problem(description):
    return {"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def build(runtime, actor, lang: str) -> dict:
    spec, policy = runtime.spec, runtime.records.policy
    schemas = {
        "Problem": {"type": "object", "required": ["title", "status"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            "record_errors": {"type": "array", "items": {"type": "string"}},
            "changed_fields": {"type": "array", "items": {"type": "string"}}}},
    }
    paths: dict = {}
    errors = {"400": _problem("Malformed request"), "401": _problem("No or invalid token"),
              "403": _problem("Not allowed"), "404": _problem("No such record")}
    for obj in spec.objects.values():
        if obj.child_of or not policy.can(actor, obj, "read"):
            continue
        readable = policy.readable_fields(actor, obj)
        updatable = policy.updatable_fields(actor, obj)
        sortable = [p + f.name for f in obj.fields.values() if f.name in readable and f.stored
                    and f.type not in ("textarea", "file") and not f.multiple for p in ("", "-")]
        name = obj.name.title().replace("_", "")
        read_props = {f.name: field_schema(spec, obj, f, lang, write=False) for f in obj.fields.values()
                      if f.name in readable}
        read_props["_title"] = {"type": ["string", "null"], "readOnly": True}
        input_fields = [f for f in obj.fields.values() if f.name in updatable and
                        (not f.system or f.name == "owner") and not f.computed]
        schemas[name] = {"type": "object", "title": obj.label.text(lang), "properties": read_props,
                         "required": ["id", "version"]}
        schemas[f"{name}Input"] = {"type": "object", "properties": {
            f.name: field_schema(spec, obj, f, lang, write=True) for f in input_fields},
            "required": [f.name for f in input_fields if f.required and f.default is None]}
        schemas[f"{name}Patch"] = {"type": "object", "properties": {
            **{f.name: field_schema(spec, obj, f, lang, write=True) for f in input_fields},
            "_version": {"type": "integer", "description": "the version you read (or send If-Match)"}}}
        record = {"$ref": f"#/components/schemas/{name}"}
        one = {"description": "The record", "content": {"application/json": {"schema": record}}}
        tag = obj.label.text(lang)
        id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
        paths[f"/api/v1/{obj.name}"] = {
            "get": {"tags": [tag], "summary": f"List {obj.plural.text('en')}", "operationId": f"list_{obj.name}",
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "quick search"},
                        {"name": "sort", "in": "query", "style": "form", "explode": False,
                         "schema": {"type": "array", "maxItems": 3, "items": {"type": "string", "enum": sortable}},
                         "description": "fields to sort on, - for descending"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "after", "in": "query", "schema": {"type": "string"}, "description": "cursor of the next page"},
                        {"name": "fields", "in": "query", "style": "form", "explode": False,
                         "schema": {"type": "array", "items": {"type": "string", "enum": sorted(readable)}}},
                        {"name": "where", "in": "query", "schema": {"type": "string"}, "description": "a condition as JSON"}],
                    "responses": {"200": {"description": "A page of records", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["data", "has_more"], "properties": {
                            "data": {"type": "array", "items": record}, "has_more": {"type": "boolean"},
                            "next": {"type": ["string", "null"]}}}}}}, **errors, "422": _problem("Invalid query")}},
        }
        if policy.can(actor, obj, "create"):
            paths[f"/api/v1/{obj.name}"]["post"] = {
                "tags": [tag], "summary": f"Create a {obj.label.text('en')}", "operationId": f"create_{obj.name}",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": f"#/components/schemas/{name}Input"}}}},
                "responses": {"201": one, **errors, "409": _problem("Conflict"), "422": _problem("Invalid values")}}
        item = {
            "parameters": [id_param],
            "get": {"tags": [tag], "operationId": f"get_{obj.name}", "responses": {"200": one, **errors}},
            "patch": {"tags": [tag], "operationId": f"update_{obj.name}",
                      "parameters": [{"name": "If-Match", "in": "header", "schema": {"type": "string"}}],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {
                          "$ref": f"#/components/schemas/{name}Patch"}}}},
                      "responses": {"200": one, **errors, "409": _problem("Stale version"),
                                    "422": _problem("Invalid values")}},
            "delete": {"tags": [tag], "operationId": f"delete_{obj.name}",
                       "responses": {"204": {"description": "Moved to the recycle bin"}, **errors,
                                     "409": _problem("Other records refer to it"), "422": _problem("Invalid")}},
        }
        paths[f"/api/v1/{obj.name}/{{id}}"] = item
        paths[f"/api/v1/{obj.name}/{{id}}/restore"] = {"parameters": [id_param], "post": {
            "tags": [tag], "operationId": f"restore_{obj.name}",
            "responses": {"200": one, **errors, "409": _problem("Conflict"), "422": _problem("Invalid")}}}
        paths[f"/api/v1/{obj.name}/{{id}}/history"] = {"parameters": [id_param], "get": {
            "tags": [tag], "operationId": f"history_{obj.name}",
            "responses": {"200": {"description": "Changes, newest first", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "object"}}}}}}},
                **errors}}}
        lifecycle = spec.lifecycle_of(obj)
        if lifecycle:
            paths[f"/api/v1/{obj.name}/{{id}}/transitions/{{transition}}"] = {
                "parameters": [id_param, {"name": "transition", "in": "path", "required": True,
                                          "schema": {"type": "string", "enum": list(lifecycle.transitions)}}],
                "post": {"tags": [tag], "operationId": f"transition_{obj.name}",
                         "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                             "comment": {"type": ["string", "null"]}, "values": {"type": "object"},
                             "_version": {"type": "integer"}}}}}},
                         "responses": {"200": one, **errors, "409": _problem("Conflict"),
                                       "422": _problem("Invalid")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{spec.label.text(lang)} API", "version": "1",
                 "description": "Generated from the application's metadata. Authenticate with a personal token."},
        "servers": [{"url": "/"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    }
