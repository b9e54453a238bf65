"""Broken metadata: every error is placed (file:line:col, path) and says what to do.

Each case changes the minimal valid root of metadata_helpers a little and checks the
exact place and the words that matter, including the "did you mean" suggestion. Most
cases also check that the mistake gives one problem, not a cascade of follow-on ones.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loom.cli import main as cli
from loom.metadata import check_metadata
from loom.metadata.yamlsource import MAX_DEPTH

from metadata_helpers import (BASE_FILES, assert_problem, check_files, only_problem, run_check,
                              write_root)

# A small sales module on top of the minimal root: contacts of customers, opportunities
# with a lifecycle and an approval flow.
CONTACT = """\
object: contact
fields:
  - {name: name, type: text}
  - {name: customer, type: lookup, target: customer}
  - {name: birthday, type: date}
  - {name: age, type: integer}
"""
OPPORTUNITY = """\
object: opportunity
lifecycle: opportunity_lifecycle
fields:
  - {name: name, type: text}
  - {name: amount, type: money}
  - {name: approved, type: boolean}
"""
LIFECYCLE = """\
workflow: opportunity_lifecycle
kind: lifecycle
object: opportunity
states:
  - {name: open, initial: true}
  - {name: pending, locked: true}
  - {name: won, final: true}
transitions:
  - {name: submit, from: open, to: pending, approval: discount_approval}
  - {name: win, from: [open, pending], to: won, roles: [sales_manager]}
"""
APPROVAL = """\
workflow: discount_approval
kind: approval
object: opportunity
steps:
  - name: manager
    approvers: {role: sales_manager}
on_approved: {to: open, set: {approved: true}}
on_rejected: {to: open}
"""
ROLES_WITH_DEPARTMENTS = "roles:\n  - {name: admin}\ndepartments:\n  - {code: hq, name: HQ}\n"

SALES = {
    "objects/contact.yaml": CONTACT,
    "objects/opportunity.yaml": OPPORTUNITY,
    "workflows/opportunity_lifecycle.yaml": LIFECYCLE,
    "workflows/discount_approval.yaml": APPROVAL,
}


def customer(fields: str = "", rest: str = "") -> dict:
    """objects/customer.yaml with `name` as field 1 (line 3) and extra field lines after it."""
    return {"objects/customer.yaml": "object: customer\nfields:\n  - {name: name, type: text}\n" + fields + rest}


def contact(extra: str) -> dict:
    """The sales module with lines appended to contact.yaml (they start at line 7)."""
    return dict(SALES, **{"objects/contact.yaml": CONTACT + extra})


def sales(**changes) -> dict:
    """The sales module with some files replaced: sales(lifecycle=..., approval=...)."""
    names = {"contact": "objects/contact.yaml", "opportunity": "objects/opportunity.yaml",
             "lifecycle": "workflows/opportunity_lifecycle.yaml",
             "approval": "workflows/discount_approval.yaml"}
    return dict(SALES, **{names[k]: v for k, v in changes.items()})


def test_minimal_roots_are_valid(tmp_path):
    assert check_files(tmp_path / "a") == []
    assert check_files(tmp_path / "b", SALES) == []


# (id, files, where, parts). Each case must give exactly one problem, at `where`.
CASES = [
    # ---- YAML itself ------------------------------------------------------------------
    ("yaml_syntax", {"objects/customer.yaml": "object: customer\nfields:\n  - {name: name, type: text\n  - {name: x}\n"},
     "objects/customer.yaml:4:5", ["invalid YAML", "did not find expected ',' or '}'",
                                   "flow mapping that starts at line 3, column 5"]),
    ("duplicate_key", {"objects/customer.yaml": "object: customer\nlabel: A\nfields: []\nlabel: B\n"},
     "objects/customer.yaml:4:1", ["key 'label' is given twice in this mapping (first at line 2)"]),
    ("tab_indentation", {"objects/customer.yaml": "object: customer\nfields:\n\t- {name: name, type: text}\n"},
     "objects/customer.yaml:3:1", ["a tab character; YAML indents with spaces only"]),
    ("tab_inside_line", {"objects/customer.yaml": "object: customer\nfields:\n  - name: name\n  \ttype: text\n"},
     "objects/customer.yaml:4:3", ["a tab character"]),
    ("odd_indentation", {"objects/customer.yaml": "object: customer\nfields:\n  - name: name\n     type: text\n"},
     "objects/customer.yaml:4:10", ["invalid YAML", "mapping values are not allowed", "check this line's indentation"]),
    ("unclosed_quote", {"objects/customer.yaml": "object: customer\nlabel: \"Customer\nfields: []\n"},
     "objects/customer.yaml:4:1", ["invalid YAML", "quoted scalar that starts at line 2, column 8"]),
    ("empty_file", {"objects/customer.yaml": ""},
     "objects/customer.yaml:1:1", ["the document is empty; expected a definition such as 'object: NAME'"]),
    ("comments_only", {"objects/customer.yaml": "# to do\n"},
     "objects/customer.yaml:1:1", ["the document is empty"]),
    ("empty_mapping", {"objects/customer.yaml": "{}\n"},
     "objects/customer.yaml:1:1", ["an empty mapping"]),
    ("list_instead_of_mapping", {"objects/customer.yaml": "- object: customer\n- fields: []\n"},
     "objects/customer.yaml:1:1", ["expected a mapping such as 'object: NAME', got a list"]),
    ("single_value", {"objects/customer.yaml": "customer\n"},
     "objects/customer.yaml:1:1", ["expected a mapping", "got a single value ('customer')"]),
    ("binary_junk", {"objects/customer.yaml": b"object: c\x00\x01\x02\xff"},
     "objects/customer.yaml:1:10", ["this is a binary file, not YAML text"]),
    ("invalid_utf8", {"objects/customer.yaml": b"object: customer\nlabel: caf\xe9\n"},
     "objects/customer.yaml:2:11", ["not valid UTF-8 (byte 0xe9)", "save it as UTF-8"]),
    ("control_character", {"objects/customer.yaml": "object: customer\nlabel: a\x07b\n"},
     "objects/customer.yaml:2:9", ["invalid YAML", "control characters are not allowed"]),
    ("recursive_alias", {"objects/customer.yaml": "object: customer\nlabel: &a [*a]\n"},
     "objects/customer.yaml:2:8", ["alias (*name) refers to a mapping or list that contains it"]),
    ("label_language_code", {"objects/customer.yaml": "object: customer\nlabel: {EN: Customer, zh: 客户}\n"},
     "objects/customer.yaml:2:9", ["label.EN: 'EN' is not valid here: expected a language code such as en, zh"]),
    ("label_number", {"objects/customer.yaml": "object: customer\nlabel: {en: 1, zh: 客户}\n"},
     "objects/customer.yaml:2:13", ["expected a text", "YAML read 1 as a number: write it in quotes ('1')"]),
    ("python_tag", {"objects/customer.yaml": "object: customer\nlabel: !!python/object:os.system {}\n"},
     "objects/customer.yaml:2:8", ["invalid YAML", "could not determine a constructor"]),
    ("unknown_document_kind", {"objects/thing.yaml": "objet: thing\nfields: []\n"},
     "objects/thing.yaml:1:1: objet", ["cannot tell what this document defines", "did you mean 'object'?"]),
    ("two_kinds_in_one_document", {"misc.yaml": "report: thing\nautomation: thing\n"},
     "misc.yaml:2:1: automation", ["one document defines one thing: 'report' and 'automation'"]),
    ("second_kind_in_a_kind_folder", {"objects/thing.yaml": "object: thing\nreport: thing\n"},
     "objects/thing.yaml:2:1: report", ["unknown key 'report'"]),
    ("bad_second_document", {"objects/two.yaml": "object: a\nfields: []\n---\nobject: b\nfiels: []\n"},
     "objects/two.yaml:5:1: fiels", ["unknown key 'fiels'; did you mean 'fields'?"]),

    # ---- unknown keys at every level ------------------------------------------------------
    ("unknown_key_object", {"objects/customer.yaml": "object: customer\nlable: Customer\n"},
     "objects/customer.yaml:2:1: lable", ["unknown key 'lable'; did you mean 'label'?", "expected one of: child_of"]),
    ("unknown_key_field", customer("  - {name: code, type: text, requird: true}\n"),
     "objects/customer.yaml:4:30: fields[1].requird", ["unknown key 'requird'; did you mean 'required'?"]),
    ("unknown_key_list", customer(rest="list: {colums: [name]}\n"),
     "objects/customer.yaml:4:8: list.colums", ["unknown key 'colums'; did you mean 'columns'?",
                                                "expected one of: calendar, columns, filters, kanban, page_size, sort"]),
    ("unknown_key_form_section", customer(rest="form:\n  sections:\n    - {label: A, feilds: [name]}\n"),
     "objects/customer.yaml:6:18: form.sections[0].feilds", ["unknown key 'feilds'; did you mean 'fields'?"]),
    ("unknown_key_permission", customer(rest="permissions:\n  sales_rep: {raed: own}\n"),
     "objects/customer.yaml:5:15: permissions.sales_rep.raed", ["unknown key 'raed'; did you mean 'read'?"]),
    ("unknown_key_field_permission", customer(rest="field_permissions:\n  name: {raed: [sales_rep]}\n"),
     "objects/customer.yaml:5:10: field_permissions.name.raed", ["unknown key 'raed'; did you mean 'read'?"]),
    ("unknown_key_workflow", sales(lifecycle=LIFECYCLE.replace("kind: lifecycle", "kind: lifecycle\nstats: []")),
     "workflows/opportunity_lifecycle.yaml:3:1: stats", ["unknown key 'stats'; did you mean 'states'?"]),
    ("unknown_key_state", sales(lifecycle=LIFECYCLE.replace("{name: won, final: true}", "{name: won, fnal: true}")),
     "workflows/opportunity_lifecycle.yaml:7:17: states[2].fnal", ["unknown key 'fnal'; did you mean 'final'?"]),
    ("unknown_key_transition", sales(lifecycle=LIFECYCLE.replace("roles: [sales_manager]", "role: [sales_manager]")),
     "workflows/opportunity_lifecycle.yaml:10:49: transitions[1].role", ["unknown key 'role'; did you mean 'roles'?"]),
    ("unknown_key_step", sales(approval=APPROVAL.replace("    approvers:", "    polcy: any\n    approvers:")),
     "workflows/discount_approval.yaml:6:5: steps[0].polcy", ["unknown key 'polcy'; did you mean 'policy'?"]),
    ("unknown_key_dictionary_item", {"dictionaries/industry.yaml": "dictionary: industry\nitems:\n  - {code: a, colour: blue}\n"},
     "dictionaries/industry.yaml:3:15: items[0].colour", ["unknown key 'colour'; did you mean 'color'?"]),
    ("unknown_key_report", dict(SALES, **{"reports/r.yaml": "report: r\nobject: opportunity\nmesures: [{agg: count}]\n"}),
     "reports/r.yaml:3:1: mesures", ["unknown key 'mesures'; did you mean 'measures'?"]),
    ("unknown_key_automation", dict(SALES, **{"automations/a.yaml":
                                              "automation: a\nobject: opportunity\non: create\nwhn: {field: amount, op: gt, value: 1}\n"}),
     "automations/a.yaml:4:1: whn", ["unknown key 'whn'; did you mean 'when'?"]),
    ("unknown_key_app", {"app.yaml": "app: testapp\nlanguage: [zh]\n"},
     "app.yaml:2:1: language", ["unknown key 'language'; did you mean 'languages'?"]),

    # ---- wrong types ------------------------------------------------------------------
    ("field_type_misspelt", customer("  - {name: code, type: txt}\n"),
     "objects/customer.yaml:4:24: fields[1].type", ["'txt' is not a field type; did you mean 'text'?",
                                                   "expected one of: autonumber, boolean"]),
    ("string_for_boolean", customer("  - {name: code, type: text, required: 'true'}\n"),
     "objects/customer.yaml:4:40: fields[1].required", ["expected true or false, got 'true'", "without quotes"]),
    ("yes_for_boolean", customer("  - {name: code, type: text, unique: yes}\n"),
     "objects/customer.yaml:4:38: fields[1].unique", ["expected true or false, got 'yes'; write true or false"]),
    ("string_for_integer", customer("  - {name: code, type: text, max_length: '20'}\n"),
     "objects/customer.yaml:4:42: fields[1].max_length", ["expected a whole number, got '20'; write 20 without quotes"]),
    ("code_that_must_be_quoted", {"dictionaries/industry.yaml": "dictionary: industry\nitems:\n  - {code: NO}\n  - {code: 01}\n"},
     "dictionaries/industry.yaml:4:12: items[1].code", ["got 1; YAML read 01 as 1: write it in quotes ('01')"]),
    ("version_like_code", {"dictionaries/industry.yaml": "dictionary: industry\nitems:\n  - {code: 1.10}\n"},
     "dictionaries/industry.yaml:3:12: items[0].code", ["YAML read 1.10 as 1.1: write it in quotes ('1.10')"]),
    ("unquoted_code_in_condition", customer("  - {name: ind, type: dictionary, dictionary: industry, "
                                            "show_if: {field: industry, op: eq, value: 01}}\n",
                                            "  - {name: industry, type: dictionary, dictionary: industry}\n"),
     "objects/customer.yaml:4:99: fields[1].show_if.value", ["expected a code of dictionary industry, got 1",
                                                            "write it in quotes ('01')"]),
    ("number_for_text_label", {"objects/customer.yaml": "object: customer\nlabel: [Customer]\n"},
     "objects/customer.yaml:2:8: label", ["expected a text, or a map of language to text", "got a list"]),

    ("impossible_date", customer("  - {name: d, type: date, default: 2024-13-01}\n"),
     "objects/customer.yaml:4:36: fields[1].default", ["expected a date such as 2024-01-31 or $today for d, got '2024-13-01'"]),
    ("explicit_tag_that_does_not_convert", {"objects/customer.yaml": "object: customer\nlabel: !!int abc\n"},
     "objects/customer.yaml:2:8", ["invalid YAML: cannot read 'abc' as int"]),
    ("scope_misspelt", customer(rest="permissions:\n  sales_rep: {read: onw}\n"),
     "objects/customer.yaml:5:21: permissions.sales_rep.read", ["got 'onw'; did you mean 'own'?"]),
    ("fields_as_a_mapping", {"objects/customer.yaml": "object: customer\nfields:\n  name: {type: text}\n"},
     "objects/customer.yaml:3:3: fields", ["expected a list, got a mapping"]),
    ("unknown_key_in_dictionaries_list", {"dictionaries/more.yaml": "dictionaries:\n  - dictionary: size\n    items: [{code: s, colr: red}]\n"},
     "dictionaries/more.yaml:3:23: dictionaries[0].items[0].colr", ["unknown key 'colr'; did you mean 'color'?"]),
    ("duplicate_code_in_dictionaries_list", {"dictionaries/more.yaml": "dictionaries:\n  - dictionary: size\n    items: [{code: s}, {code: s}]\n"},
     "dictionaries/more.yaml:3:24: dictionaries[0].items[1]", ["code 's' is listed twice"]),
    ("unknown_parent_department", {"roles.yaml": ROLES_WITH_DEPARTMENTS + "  - {code: east, name: East, parent: hqq}\n"},
     "roles.yaml:5:38: departments.east.parent", ["unknown department 'hqq'; did you mean 'hq'?"]),
    ("department_cycle", {"roles.yaml": ROLES_WITH_DEPARTMENTS + "  - {code: a, name: A, parent: b}\n  - {code: b, name: B, parent: a}\n"},
     "roles.yaml:5:32: departments.a.parent", ["the department tree has a cycle"]),

    # ---- names ------------------------------------------------------------------------
    ("invalid_field_name", customer("  - {name: Code, type: text}\n"),
     "objects/customer.yaml:4:12: fields[1].name", ["'Code' is not valid", "lower-case letters, digits and _"]),
    ("invalid_object_name", {"objects/item.yaml": "object: 1item\n"},
     "objects/item.yaml:1:9: object", ["'1item' is not valid", "starting with a letter"]),
    ("reserved_field_owner", customer("  - {name: owner, type: text}\n"),
     "objects/customer.yaml:4:12: fields[1].name", ["'owner' is a system field every object has; choose another name"]),
    ("reserved_field_created_at", customer("  - {name: created_at, type: datetime}\n"),
     "objects/customer.yaml:4:12: fields[1].name", ["'created_at' is a system field"]),
    ("reserved_field_state", customer("  - {name: state, type: text}\n"),
     "objects/customer.yaml:4:12: fields[1].name", ["'state' is a system field"]),
    ("reserved_object_name", {"objects/search.yaml": "object: search\n"},
     "objects/search.yaml:1:9: object", ["'search' is reserved by the engine; choose another object name"]),
    ("reserved_object_prefix", {"objects/loom_x.yaml": "object: loom_x\n"},
     "objects/loom_x.yaml:1:9: object", ["'loom_x' is reserved by the engine"]),

    # ---- duplicates -------------------------------------------------------------------
    ("duplicate_field", customer("  - {name: name, type: integer}\n"),
     "objects/customer.yaml:4:5: fields[1]", ["field 'name' is defined twice (first at line 3)"]),
    ("duplicate_dictionary_code", {"dictionaries/industry.yaml": "dictionary: industry\nitems:\n  - {code: a}\n  - {code: b}\n  - {code: a}\n"},
     "dictionaries/industry.yaml:5:5: items[2]", ["code 'a' is listed twice (first at line 3)"]),
    ("duplicate_object_two_files", {"objects/customer2.yaml": "object: customer\n"},
     "objects/customer2.yaml:1:1", ["object 'customer' is already defined at objects/customer.yaml:1:1 (base)"]),
    ("duplicate_dictionary_in_list", {"dictionaries/more.yaml": "dictionaries:\n  - dictionary: size\n  - dictionary: industry\n"},
     "dictionaries/more.yaml:3:5", ["dictionary 'industry' is already defined at dictionaries/industry.yaml:1:1"]),
    ("duplicate_state", sales(lifecycle=LIFECYCLE.replace("  - {name: won, final: true}\n", "  - {name: won, final: true}\n  - {name: open}\n")),
     "workflows/opportunity_lifecycle.yaml:8:5: states[3]", ["state 'open' is defined twice"]),
    ("duplicate_transition", sales(lifecycle=LIFECYCLE + "  - {name: win, from: open, to: won}\n"),
     "workflows/opportunity_lifecycle.yaml:11:5: transitions[2]", ["transition 'win' is defined twice"]),
    ("duplicate_role", {"roles.yaml": "roles:\n  - {name: admin}\n  - {name: admin}\n"},
     "roles.yaml:3:5: roles", ["role 'admin' is already defined at roles.yaml:2:5"]),

    # ---- unknown objects --------------------------------------------------------------
    ("unknown_lookup_target", customer("  - {name: parent, type: lookup, target: custmer}\n"),
     "objects/customer.yaml:4:42: fields[1].target", ["unknown object 'custmer'; did you mean 'customer'?"]),
    ("unknown_menu_object", {"app.yaml": "app: testapp\nmenu:\n  - {name: sales, items: [customer, custmer]}\n"},
     "app.yaml:3:37: menu[0].items[1]", ["unknown object 'custmer'; did you mean 'customer'?"]),
    ("unknown_menu_report", {"app.yaml": "app: testapp\nmenu:\n  - {name: sales, items: ['report:funnel']}\n"},
     "app.yaml:3:27: menu[0].items[0]", ["unknown report 'funnel'"]),
    ("unknown_related_object", dict(SALES, **customer(rest="detail:\n  related:\n    - {object: contct, via: customer}\n")),
     "objects/customer.yaml:6:16: detail.related[0].object", ["unknown object 'contct'; did you mean 'contact'?"]),
    ("unknown_related_via", dict(SALES, **customer(rest="detail:\n  related:\n    - {object: contact, via: custmer}\n")),
     "objects/customer.yaml:6:30: detail.related[0].via", ["'custmer' is not a field of contact that refers to customer",
                                                           "did you mean 'customer'?"]),
    ("unknown_rollup_object", dict(SALES, **customer("  - {name: n, type: rollup, from: {object: contat, via: customer}, agg: count}\n")),
     "objects/customer.yaml:4:44: fields[1].from.object", ["unknown object 'contat'; did you mean 'contact'?"]),
    ("unknown_lines_object", customer("  - {name: items, type: lines, object: customer_item}\n"),
     "objects/customer.yaml:4:40: fields[1].object", ["unknown object 'customer_item'", "did you mean 'customer'?"]),
    ("unknown_report_object", dict(SALES, **{"reports/r.yaml": "report: r\nobject: oportunity\n"}),
     "reports/r.yaml:2:9: object", ["unknown object 'oportunity'; did you mean 'opportunity'?"]),
    ("unknown_workflow_object", sales(approval=APPROVAL.replace("object: opportunity", "object: oportunity")),
     "workflows/discount_approval.yaml:3:9: object", ["unknown object 'oportunity'; did you mean 'opportunity'?"]),

    # ---- unknown fields ---------------------------------------------------------------
    ("unknown_list_column", contact("list: {columns: [name, nmae]}\n"),
     "objects/contact.yaml:7:24: list.columns[1]", ["unknown field 'nmae' in contact; did you mean 'name'?"]),
    ("unknown_list_sort", contact("list: {sort: [-nam]}\n"),
     "objects/contact.yaml:7:15: list.sort[0]", ["unknown field 'nam' to sort on in contact; did you mean 'name'?"]),
    ("unknown_list_filter", contact("list: {filters: [customr]}\n"),
     "objects/contact.yaml:7:18: list.filters[0]", ["unknown filter field 'customr' in contact; did you mean 'customer'?"]),
    ("unknown_form_field", contact("form:\n  sections:\n    - {fields: [name, custmer]}\n"),
     "objects/contact.yaml:9:23: form.sections[0].fields[1]", ["unknown field 'custmer' in contact; did you mean 'customer'?"]),
    ("unknown_detail_field", contact("detail:\n  sections:\n    - {fields: [nam]}\n"),
     "objects/contact.yaml:9:17: detail.sections[0].fields[0]", ["unknown field 'nam' in contact; did you mean 'name'?"]),
    ("unknown_quick_search_field", contact("search: {quick: [name, nme]}\n"),
     "objects/contact.yaml:7:24: search.quick[1]", ["unknown quick-search field 'nme' in contact; did you mean 'name'?"]),
    ("unknown_scheme_field", contact("search:\n  schemes:\n    - {name: s, where: {field: nam, op: eq, value: x}}\n"),
     "objects/contact.yaml:9:32: search.schemes[0].where.field", ["unknown field 'nam' in contact; did you mean 'name'?"]),
    ("unknown_condition_field_nested", contact("rules:\n  - name: r\n    assert: {any: [{field: age, op: gt, value: 1}, {not: {field: agee, op: is_null}}]}\n"),
     "objects/contact.yaml:9:66: rules[0].assert.any[1].not.field", ["unknown field 'agee' in contact; did you mean 'age'?"]),
    ("unknown_field_through_lookup", contact("search:\n  schemes:\n    - {name: s, where: {field: customer.industri, op: eq, value: retail}}\n"),
     "objects/contact.yaml:9:32: search.schemes[0].where.field", ["unknown field 'customer.industri' in customer",
                                                                  "did you mean 'industry'?"]),
    ("path_through_non_lookup", contact("list: {columns: [name.industry]}\n"),
     "objects/contact.yaml:7:18: list.columns[0]", ["'name' is a text field; only lookup, user and department fields lead further"]),
    ("unknown_formula_field", contact("  - {name: f, type: formula, expr: 'age * 2 + agee'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["unknown field 'agee' in the formula; did you mean 'age'?"]),
    ("unknown_rollup_field", dict(SALES, **customer("  - {name: n, type: rollup, from: {object: contact, via: customer}, agg: sum, field: ag}\n")),
     "objects/customer.yaml:4:86: fields[1].field", ["unknown field 'ag' in contact; did you mean 'age'?"]),
    ("unknown_numbering_field", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C-{field:nmae}-{seq:4}'}}\n"),
     "objects/customer.yaml:4:57: fields[1].numbering.pattern", ["unknown field 'nmae' in {field:nmae}; did you mean 'name'?"]),
    ("unknown_field_permission_field", contact("field_permissions:\n  agee: {read: [sales_manager]}\n"),
     "objects/contact.yaml:8:3: field_permissions.agee", ["unknown field 'agee' in contact; did you mean 'age'?"]),
    ("unknown_show_if_field", contact("  - {name: x, type: text, show_if: {field: agee, op: gt, value: 1}}\n"),
     "objects/contact.yaml:7:44: fields[4].show_if.field", ["unknown field 'agee' in contact; did you mean 'age'?"]),
    ("unknown_required_if_field", contact("  - {name: x, type: text, required_if: {field: agee, op: gt, value: 1}}\n"),
     "objects/contact.yaml:7:48: fields[4].required_if.field", ["unknown field 'agee' in contact; did you mean 'age'?"]),
    ("unknown_lookup_filter_field", contact("  - {name: c2, type: lookup, target: customer, filter: {field: industri, op: eq, value: retail}}\n"),
     "objects/contact.yaml:7:64: fields[4].filter.field", ["unknown field 'industri' in customer; did you mean 'industry'?"]),
    ("unknown_kanban_field", contact("list: {kanban: {group_by: custmer}}\n"),
     "objects/contact.yaml:7:27: list.kanban.group_by", ["unknown kanban column field 'custmer' in contact; did you mean 'customer'?"]),
    ("kanban_on_text_field", contact("list: {kanban: {group_by: name}}\n"),
     "objects/contact.yaml:7:27: list.kanban.group_by", ["'name' (text field) cannot be used as a kanban column field"]),
    ("unknown_calendar_field", contact("list: {calendar: {start: birthdy}}\n"),
     "objects/contact.yaml:7:26: list.calendar.start", ["unknown date field 'birthdy' in contact; did you mean 'birthday'?"]),
    ("unknown_title_field", {"objects/customer.yaml": "object: customer\ntitle: nme\nfields:\n  - {name: name, type: text}\n"},
     "objects/customer.yaml:2:8: title", ["unknown title field 'nme' in customer; did you mean 'name'?"]),
    ("unknown_report_field", dict(SALES, **{"reports/r.yaml": "report: r\nobject: opportunity\ngroup_by: [stat]\n"}),
     "reports/r.yaml:3:12: group_by[0]", ["unknown field 'stat' in opportunity; did you mean 'state'?"]),
    ("unknown_field_read_by_create", dict(SALES, **{"automations/a.yaml": "automation: a\nobject: contact\non: create\n"
                                                  "do:\n  - create: {object: opportunity, values: {name: {field: nme}}}\n"}),
     "automations/a.yaml:5:58: do[0].create.values.name.field", ["unknown field 'nme' in contact; did you mean 'name'?"]),
    ("system_field_set_by_create", dict(SALES, **{"automations/a.yaml": "automation: a\nobject: contact\non: create\n"
                                                "do:\n  - create: {object: opportunity, values: {created_at: $now}}\n"}),
     "automations/a.yaml:5:44: do[0].create.values.created_at", ["'created_at' is computed by the engine and cannot be set"]),
    ("unknown_set_field", sales(approval=APPROVAL.replace("set: {approved: true}", "set: {aproved: true}")),
     "workflows/discount_approval.yaml:7:31: on_approved.set.aproved", ["unknown field 'aproved' in opportunity; did you mean 'approved'?"]),

    # ---- field options ----------------------------------------------------------------
    ("option_for_another_type", customer("  - {name: code, type: text, numbering: {pattern: 'C{seq}'}}\n"),
     "objects/customer.yaml:4:30: fields[1].numbering", ["option 'numbering' does not apply to a text field"]),
    ("dictionary_without_dictionary", customer("  - {name: size, type: dictionary}\n"),
     "objects/customer.yaml:4:5: fields[1]", ["a dictionary field needs 'dictionary'"]),
    ("lookup_without_target", customer("  - {name: parent, type: lookup}\n"),
     "objects/customer.yaml:4:5: fields[1]", ["a lookup field needs 'target'"]),
    ("unknown_dictionary", customer("  - {name: size, type: dictionary, dictionary: industy}\n"),
     "objects/customer.yaml:4:48: fields[1].dictionary", ["unknown dictionary 'industy'; did you mean 'industry'?"]),
    ("default_not_a_code", customer("  - {name: ind, type: dictionary, dictionary: industry, default: retial}\n"),
     "objects/customer.yaml:4:66: fields[1].default", ["'retial' is not a code of dictionary industry; did you mean 'retail'?"]),
    ("default_inactive_code", customer("  - {name: ind, type: dictionary, dictionary: industry, default: legacy}\n"),
     "objects/customer.yaml:4:66: fields[1].default", ["'legacy' is inactive in dictionary industry"]),
    ("default_wrong_type", customer("  - {name: n, type: integer, default: many}\n"),
     "objects/customer.yaml:4:39: fields[1].default", ["expected a number for n, got 'many'"]),
    ("min_above_max", customer("  - {name: n, type: integer, min: 10, max: 5}\n"),
     "objects/customer.yaml:4:35: fields[1].min", ["min 10 is above max 5"]),
    ("min_date_above_max", customer("  - {name: d, type: date, min: '2025-01-01', max: '2024-01-01'}\n"),
     "objects/customer.yaml:4:32: fields[1].min", ["min 2025-01-01 is above max 2024-01-01"]),
    ("scale_above_precision", customer("  - {name: n, type: decimal, precision: 4, scale: 6}\n"),
     "objects/customer.yaml:4:51: fields[1].scale", ["scale 6 is above precision 4"]),
    ("invalid_regex", customer("  - {name: code, type: text, pattern: '[a-'}\n"),
     "objects/customer.yaml:4:39: fields[1].pattern", ["invalid regular expression", "unterminated character set"]),
    ("mnemonic_of_number", contact("  - {name: m, type: mnemonic, source: age}\n"),
     "objects/contact.yaml:7:39: fields[4].source", ["'age' (integer field) cannot be used as a source text field"]),

    # ---- numbering --------------------------------------------------------------------
    ("numbering_without_seq", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C-{yyyy}'}}\n"),
     "objects/customer.yaml:4:57: fields[1].numbering.pattern", ["the pattern has no counter: add {seq:N}"]),
    ("numbering_unknown_token", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C-{yyy}-{seq:4}'}}\n"),
     "objects/customer.yaml:4:57: fields[1].numbering.pattern", ["unknown token '{yyy}'; did you mean 'yyyy'?"]),
    ("numbering_bad_width", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C-{seq:0}'}}\n"),
     "objects/customer.yaml:4:57: fields[1].numbering.pattern", ["{seq:N} with N from 1 to 99"]),
    ("numbering_monthly_without_mm", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C-{yyyy}-{seq:4}', reset: monthly}}\n"),
     "objects/customer.yaml:4:84: fields[1].numbering.reset", ["reset: monthly needs {mm} in the pattern"]),
    ("numbering_yearly_without_year", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C-{seq:4}', reset: yearly}}\n"),
     "objects/customer.yaml:4:77: fields[1].numbering.reset", ["reset: yearly needs {yyyy} in the pattern"]),

    # ---- workflows --------------------------------------------------------------------
    ("unknown_state_from", sales(lifecycle=LIFECYCLE.replace("from: [open, pending]", "from: [open, pendng]")),
     "workflows/opportunity_lifecycle.yaml:10:30: transitions[1].from[1]", ["unknown state 'pendng'; did you mean 'pending'?"]),
    ("unknown_state_to", sales(lifecycle=LIFECYCLE.replace("to: won", "to: wonn")),
     "workflows/opportunity_lifecycle.yaml:10:44: transitions[1].to", ["unknown state 'wonn'; did you mean 'won'?"]),
    ("unknown_state_in_condition", sales(opportunity=OPPORTUNITY + "search:\n  schemes:\n    - {name: s, where: {field: state, op: eq, value: opn}}\n"),
     "objects/opportunity.yaml:9:54: search.schemes[0].where.value", ["'opn' is not a state of opportunity; did you mean 'open'?"]),
    ("unknown_state_assign_on", sales(opportunity=OPPORTUNITY + "  - {name: code, type: autonumber, numbering: {pattern: 'O{seq:4}'}, assign_on: wonn}\n"),
     "objects/opportunity.yaml:7:81: fields[3].assign_on", ["'wonn' is not a state of opportunity; did you mean 'won'?"]),
    ("assign_on_without_lifecycle", customer("  - {name: code, type: autonumber, numbering: {pattern: 'C{seq:4}'}, assign_on: won}\n"),
     "objects/customer.yaml:4:81: fields[1].assign_on", ["assign_on 'won' needs a lifecycle on customer; use 'create'"]),
    ("unknown_state_on_approved", sales(approval=APPROVAL.replace("on_approved: {to: open", "on_approved: {to: opn")),
     "workflows/discount_approval.yaml:7:19: on_approved.to", ["unknown state 'opn'; did you mean 'open'?"]),
    ("unknown_transition_automation_on", dict(SALES, **{"automations/a.yaml": "automation: a\nobject: opportunity\non: transition:wn\n"}),
     "automations/a.yaml:3:5: on", ["unknown transition 'wn' of opportunity; did you mean 'win'?"]),
    ("unknown_transition_automation_do", dict(SALES, **{"automations/a.yaml": "automation: a\nobject: opportunity\non: create\ndo:\n  - transition: wn\n"}),
     "automations/a.yaml:5:17: do[0].transition", ["unknown transition 'wn'; did you mean 'win'?"]),
    ("schedule_without_every", dict(SALES, **{"automations/a.yaml": "automation: a\nobject: opportunity\non: schedule\n"}),
     "automations/a.yaml:3:5: on", ["a scheduled automation needs 'every'"]),
    ("unknown_approval_flow", sales(lifecycle=LIFECYCLE.replace("approval: discount_approval", "approval: discount_aproval")),
     "workflows/opportunity_lifecycle.yaml:9:55: transitions[0].approval", ["unknown approval flow 'discount_aproval'; did you mean 'discount_approval'?"]),
    ("approval_flow_of_another_object", sales(approval=APPROVAL.replace("object: opportunity", "object: contact")
                                              .replace("on_approved: {to: open, set: {approved: true}}\non_rejected: {to: open}\n", "")),
     "workflows/opportunity_lifecycle.yaml:9:55: transitions[0].approval", ["the approval flow 'discount_approval' is for object 'contact', not opportunity"]),
    ("approval_that_is_a_lifecycle", sales(lifecycle=LIFECYCLE.replace("approval: discount_approval", "approval: opportunity_lifecycle")),
     "workflows/opportunity_lifecycle.yaml:9:55: transitions[0].approval", ["'opportunity_lifecycle' is a lifecycle, not an approval flow"]),
    ("lifecycle_of_another_object", sales(contact=CONTACT.replace("object: contact\n", "object: contact\nlifecycle: opportunity_lifecycle\n")),
     "objects/contact.yaml:2:12: lifecycle", ["the lifecycle 'opportunity_lifecycle' belongs to object 'opportunity', not contact"]),
    ("lifecycle_that_is_an_approval_flow", sales(opportunity=OPPORTUNITY.replace("lifecycle: opportunity_lifecycle", "lifecycle: discount_approval")),
     "objects/opportunity.yaml:2:12: lifecycle", ["'discount_approval' is an approval flow, not a lifecycle"]),
    ("unknown_lifecycle", sales(opportunity=OPPORTUNITY.replace("lifecycle: opportunity_lifecycle", "lifecycle: opportunity_lifecyle")),
     "objects/opportunity.yaml:2:12: lifecycle", ["unknown workflow 'opportunity_lifecyle'; did you mean 'opportunity_lifecycle'?"]),
    ("no_initial_state", sales(lifecycle=LIFECYCLE.replace("initial: true", "locked: false")),
     "workflows/opportunity_lifecycle.yaml:5:3: states", ["no state is marked 'initial: true'"]),
    ("two_initial_states", sales(lifecycle=LIFECYCLE.replace("{name: pending, locked: true}", "{name: pending, initial: true}")),
     "workflows/opportunity_lifecycle.yaml:6:5: states[1]", ["only one state may be initial"]),
    ("steps_in_a_lifecycle", sales(lifecycle=LIFECYCLE + "steps: []\n"),
     "workflows/opportunity_lifecycle.yaml:11:1: steps", ["steps belong to an approval flow (kind: approval)"]),
    ("unknown_workflow_kind", sales(lifecycle=LIFECYCLE.replace("kind: lifecycle", "kind: lifecyle")),
     "workflows/opportunity_lifecycle.yaml:2:7: kind", ["'lifecyle' is not a workflow kind; did you mean 'lifecycle'?"]),

    # ---- roles ------------------------------------------------------------------------
    ("unknown_role_permissions", contact("permissions:\n  sales_rpe: {read: own}\n"),
     "objects/contact.yaml:8:3: permissions.sales_rpe", ["unknown role 'sales_rpe'; did you mean 'sales_rep'?"]),
    ("unknown_role_transition", sales(lifecycle=LIFECYCLE.replace("roles: [sales_manager]", "roles: [sales_mangr]")),
     "workflows/opportunity_lifecycle.yaml:10:57: transitions[1].roles[0]", ["unknown role 'sales_mangr'; did you mean 'sales_manager'?"]),
    ("unknown_role_field_permissions", contact("field_permissions:\n  age: {read: [sales_mgr]}\n"),
     "objects/contact.yaml:8:16: field_permissions.age.read[0]", ["unknown role 'sales_mgr'; did you mean 'sales_manager'?"]),
    ("unknown_role_approvers", sales(approval=APPROVAL.replace("role: sales_manager", "role: sales_mngr")),
     "workflows/discount_approval.yaml:6:23: steps[0].approvers.role", ["unknown role 'sales_mngr'; did you mean 'sales_manager'?"]),
    ("unknown_role_notify", dict(SALES, **{"automations/a.yaml": "automation: a\nobject: opportunity\non: create\n"
                                          "do:\n  - notify: {to: 'role:sales_mgr', message: hi}\n"}),
     "automations/a.yaml:5:18: do[0].notify.to", ["unknown role 'sales_mgr'; did you mean 'sales_manager'?"]),

    # ---- conditions -------------------------------------------------------------------
    ("operator_for_another_type", contact("rules:\n  - {name: r, assert: {field: age, op: contains, value: 1}}\n"),
     "objects/contact.yaml:8:40: rules[0].assert.op", ["'contains' does not apply to age (integer field)"]),
    ("operator_misspelt", contact("rules:\n  - {name: r, assert: {field: age, op: gte_, value: 1}}\n"),
     "objects/contact.yaml:8:40: rules[0].assert.op", ["'gte_' is not an operator; did you mean 'gte'?"]),
    ("in_without_a_list", contact("rules:\n  - {name: r, assert: {field: age, op: in, value: 1}}\n"),
     "objects/contact.yaml:8:51: rules[0].assert.value", ["'in' needs a list of values"]),
    ("between_with_three_values", contact("rules:\n  - {name: r, assert: {field: age, op: between, value: [1, 2, 3]}}\n"),
     "objects/contact.yaml:8:56: rules[0].assert.value", ["'between' needs a list of two values [low, high]"]),
    ("is_null_with_a_value", contact("rules:\n  - {name: r, assert: {field: age, op: is_null, value: 1}}\n"),
     "objects/contact.yaml:8:49: rules[0].assert.value", ["'is_null' takes no value"]),
    ("eq_without_a_value", contact("rules:\n  - {name: r, assert: {field: age, op: eq}}\n"),
     "objects/contact.yaml:8:23: rules[0].assert", ["'eq' needs a value"]),
    ("variable_that_does_not_fit", contact("rules:\n  - {name: r, assert: {field: birthday, op: eq, value: $current_user}}\n"),
     "objects/contact.yaml:8:56: rules[0].assert.value", ["$current_user does not fit birthday (date field)"]),
    ("unknown_variable", contact("rules:\n  - {name: r, assert: {field: birthday, op: lt, value: $tody}}\n"),
     "objects/contact.yaml:8:56: rules[0].assert.value", ["unknown variable '$tody'; did you mean '$today'?"]),
    ("two_condition_heads", contact("rules:\n  - {name: r, assert: {field: age, op: gt, value: 1, all: []}}\n"),
     "objects/contact.yaml:8:23: rules[0].assert", ["a condition has exactly one of 'field', 'all', 'any' or 'not'",
                                                   "found all, field"]),
    ("compare_with_field_of_other_type", contact("rules:\n  - {name: r, assert: {field: age, op: gt, value: {field: birthday}}}\n"),
     "objects/contact.yaml:8:59: rules[0].assert.value.field", ["cannot compare age (integer) with birthday (date)"]),

    # ---- formulas ---------------------------------------------------------------------
    ("formula_attribute_access", contact("  - {name: f, type: formula, expr: 'name.upper()'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["attribute access (a.b) is not allowed in formulas"]),
    ("formula_dunder_import", contact("  - {name: f, type: formula, expr: '__import__(\"os\")'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["unknown function '__import__'"]),
    ("formula_import_statement", contact("  - {name: f, type: formula, expr: 'import os'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["import is not allowed"]),
    ("formula_unknown_function", contact("  - {name: f, type: formula, expr: 'rnd(age, 2)'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["unknown function 'rnd'; did you mean 'round'?"]),
    ("formula_power", contact("  - {name: f, type: formula, expr: 'age ** 99'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["'**' is not allowed; use power(x, n)"]),
    ("formula_syntax", contact("  - {name: f, type: formula, expr: 'age * (2'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["invalid expression"]),
    ("formula_cycle", contact("  - {name: a, type: formula, expr: 'b + 1'}\n  - {name: b, type: formula, expr: 'a + 1'}\n"),
     "objects/contact.yaml:7:36: fields[4].expr", ["formula 'a' depends on itself: a -> b -> a"]),

    # ---- layers and extends -----------------------------------------------------------
    ("extends_unknown", {"objects/ext.yaml": "extends: custmer\nlabel: Client\n"},
     "objects/ext.yaml:1:10: extends", ["there is no object 'custmer' to extend; did you mean 'customer'?"]),
    ("extends_changes_type", {"objects/ext.yaml": "extends: customer\nfields:\n  - {name: revenue, type: integer}\n"},
     "objects/ext.yaml:3:27: fields[0].type", ["cannot change the stored type of 'revenue' from money to integer",
                                              "defined at objects/customer.yaml:6:5", "add a new field instead"]),
    ("extends_unknown_field", {"objects/ext.yaml": "extends: customer\nfields:\n  - {name: revenue, label: Sales}\n  - {name: nam, label: X}\n"},
     "objects/ext.yaml:4:5: fields[1]", ["'nam' is not a field of customer", "did you mean 'name'?"]),
    ("extends_twice_in_one_file", {"objects/ext.yaml": "extends: customer\nfields:\n  - {name: name, label: A}\n  - {name: name, label: B}\n"},
     "objects/ext.yaml:4:5: fields[1]", ["field 'name' is listed twice (first at line 3)"]),
    ("extension_error_has_its_own_path", {"objects/ext.yaml": "extends: customer\nfields:\n  - {name: size, type: dictionary, dictionary: sizes}\n"},
     "objects/ext.yaml:3:48: fields[0].dictionary", ["unknown dictionary 'sizes'"]),
    ("extends_outside_a_kind_folder", {"ext.yaml": "extends: customer\n"},
     "ext.yaml:1:1: extends", ["cannot tell what this extends: put it in one of automations, dictionaries, objects"]),
    ("extends_and_defines", {"objects/ext.yaml": "extends: customer\nobject: customer\n"},
     "objects/ext.yaml:2:1: object", ["either defines ('object:') or extends ('extends:'), not both"]),
    ("child_without_lines_field", {"objects/item.yaml": "object: item\nchild_of: customer\nfields:\n  - {name: qty, type: integer}\n"},
     "objects/item.yaml:2:11: child_of", ["no lines field of customer uses 'item'", "{name: ..., type: lines, object: item}"]),
    ("lines_of_a_non_child", dict(SALES, **customer("  - {name: contacts, type: lines, object: contact}\n")),
     "objects/customer.yaml:4:43: fields[1].object", ["'contact' must declare 'child_of: customer'"]),
    ("system_key_outside_engine", {"objects/customer.yaml": "object: customer\nsystem: true\n"},
     "objects/customer.yaml:2:1: system", ["'system' is reserved for the engine's own objects"]),
    ("pack_that_does_not_exist", {"app.yaml": "app: testapp\npacks: [retail]\n", "packs/retial/pack.yaml": "pack: retial\n"},
     "app.yaml:2:9: packs[0]", ["pack 'retail' not found: no folder packs/retail", "did you mean 'retial'?"]),
    ("pack_path_that_does_not_exist", {"app.yaml": "app: testapp\npacks: [../shared/retail]\n"},
     "app.yaml:2:9: packs[0]", ["pack '../shared/retail' not found: no folder ../shared/retail"]),
    ("app_yaml_in_a_pack", {"app.yaml": "app: testapp\npacks: [retail]\n", "packs/retail/app.yaml": "app: other\n"},
     "packs/retail/app.yaml:1:1", ["app.yaml belongs to the base metadata root; a pack describes itself in pack.yaml"]),
    ("no_app_yaml", {"app.yaml": None},
     "app.yaml:1:1", ["no app.yaml: the metadata root needs one"]),
    ("default_language_not_listed", {"app.yaml": "app: testapp\nlanguages: [zh, en]\ndefault_language: fr\n"},
     "app.yaml:3:19: default_language", ["'fr' is not one of the languages"]),
]


@pytest.mark.parametrize("files, where, parts", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_definition(tmp_path, files, where, parts):
    only_problem(check_files(tmp_path, files), where, *parts)


def test_case_ids_are_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 45


def test_automation_create_reads_the_triggering_record(tmp_path):
    """{field: x} in create.values is a field of the record that triggered the rule, and
    assigning owner is allowed (METADATA.md section 9)."""
    problems = check_files(tmp_path, dict(SALES, **{"automations/a.yaml": """\
        automation: a
        object: contact
        on: create
        do:
          - create: {object: opportunity, values: {name: {field: name}, owner: {field: owner}, amount: 0}}
          - set: {owner: $current_user}
    """}))
    assert problems == []


# ---- files that must fail fast --------------------------------------------------------

def test_huge_file_is_refused_quickly(tmp_path):
    text = "object: customer\nfields:\n" + "  - {name: f, type: text}  # padding\n" * 160_000
    assert len(text) > 5 * 1024 * 1024
    start = time.monotonic()
    problems = check_files(tmp_path, {"objects/customer.yaml": text})
    assert time.monotonic() - start < 5
    only_problem(problems, "objects/customer.yaml:1:1", "file is too large (5.", "limited to 5 MB")


def billion_laughs(levels: int = 9) -> str:
    lines = ["object: customer", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(tmp_path):
    start = time.monotonic()
    problems = check_files(tmp_path, {"objects/customer.yaml": billion_laughs()})
    assert time.monotonic() - start < 5
    only_problem(problems, "objects/customer.yaml:1:1", "more than 500,000 nodes", "aliases (*name) expanded")


def test_aliases_and_merge_keys_of_normal_size_work(tmp_path):
    """`<<: *base` is ordinary YAML: a key of the mapping itself overrides a merged one."""
    problems = check_files(tmp_path, {"objects/customer.yaml": """\
        object: customer
        fields:
          - &text {name: name, type: text, max_length: 100}
          - {<<: *text, name: code, max_length: 20}
    """})
    assert problems == []


@pytest.mark.parametrize("text, where", [
    ("object: customer\nlabel: " + "[" * 100_000 + "]" * 100_000 + "\n", "objects/customer.yaml:2:47"),
    ("object: customer\nlabel: " + "[" * 2_000 + "]" * 2_000 + "\n", "objects/customer.yaml:2:47"),
    ("object: customer\nlabel:\n" + "".join("  " * i + "a:\n" for i in range(1, 300)), "objects/customer.yaml:42:81"),
    ("object: customer\nlabel:\n" + "- " * 50_000 + "x\n", "objects/customer.yaml:3:79"),
    ("object: customer\na: &a " + "[" * 30 + "]" * 30 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
     "objects/customer.yaml:2:16"),
], ids=["flow_100k", "flow_2k", "block_300", "compact_lists_50k", "through_aliases"])
def test_deep_nesting_is_refused_quickly(tmp_path, text, where):
    start = time.monotonic()
    problems = check_files(tmp_path, {"objects/customer.yaml": text})
    assert time.monotonic() - start < 5
    only_problem(problems, where, f"nested more than {MAX_DEPTH} levels deep")


def test_nesting_just_under_the_limit_is_read(tmp_path):
    """Deep but legal conditions reach the checks (and fail there, not in the reader)."""
    cond = "{field: agee, op: is_null}"
    for _ in range(MAX_DEPTH // 2 - 4):
        cond = "{not: " + cond + "}"
    problems = check_files(tmp_path, contact(f"rules:\n  - name: r\n    assert: {cond}\n"))
    only_problem(problems, "objects/contact.yaml:9:117", "unknown field 'agee' in contact")


# ---- layers -----------------------------------------------------------------------------

def test_duplicate_object_across_base_and_pack_names_both_places(tmp_path):
    problems = check_files(tmp_path, {
        "app.yaml": "app: testapp\npacks: [retail]\n",
        "packs/retail/pack.yaml": "pack: retail\n",
        "packs/retail/objects/customer.yaml": "object: customer\nfields:\n  - {name: name, type: text}\n",
    })
    only_problem(problems, "packs/retail/objects/customer.yaml:1:1",
                 "object 'customer' is already defined at objects/customer.yaml:1:1 (base)",
                 "use 'extends: customer' to change it")


def test_duplicate_object_across_base_and_overlay(tmp_path):
    problems = check_files(tmp_path, overlay={"objects/customer.yaml": "object: customer\n"})
    only_problem(problems, "../overlay/objects/customer.yaml:1:1",
                 "object 'customer' is already defined at objects/customer.yaml:1:1 (base)")


def test_overlay_adds_and_extends_definitions(tmp_path):
    root = write_root(tmp_path)
    overlay = tmp_path / "site"
    (overlay / "objects").mkdir(parents=True)
    (overlay / "dictionaries").mkdir()
    (overlay / "objects" / "customer.yaml").write_text(
        "extends: customer\nlabel: {en: Member}\nfields:\n"
        "  - {name: vip, type: boolean, default: false}\n"
        "  - {name: industry, hidden: true}\n"
        "  - {name: store, type: lookup, target: store}\n", encoding="utf-8")
    (overlay / "objects" / "store.yaml").write_text(
        "object: store\nfields:\n  - {name: name, type: text}\n", encoding="utf-8")
    (overlay / "dictionaries" / "industry.yaml").write_text(
        "extends: industry\nitems:\n  - {code: food, label: Food}\n", encoding="utf-8")
    spec, problems = check_metadata(root, overlay)
    assert problems == []
    cust = spec.objects["customer"]
    assert cust.label.text("en") == "Member"
    assert cust.fields["vip"].type == "boolean" and cust.fields["industry"].hidden
    assert cust.fields["store"].target == "store"
    assert "store" in spec.objects
    assert list(spec.dictionaries["industry"].items) == ["manufacturing", "retail", "legacy", "food"]
    assert ("overlay", str(overlay)) in spec.layers


def test_missing_overlay_folder(tmp_path):
    root = write_root(tmp_path)
    spec, problems = check_metadata(root, tmp_path / "nowhere")
    assert spec is None
    assert [p.message for p in problems] == ["the overlay folder (LOOM_OVERLAY) does not exist"]


# ---- many problems in one run -----------------------------------------------------------

def test_errors_from_several_files_are_reported_together_and_sorted(tmp_path):
    problems = check_files(tmp_path, dict(SALES, **{
        "objects/contact.yaml": CONTACT + "list: {columns: [nmae]}\n",
        "objects/customer.yaml": "object: customer\nlable: X\nfields:\n  - {name: name, type: txt}\n",
        "dictionaries/industry.yaml": "dictionary: industry\nitems:\n  - {code: a}\n  - {code: a}\n",
        "workflows/opportunity_lifecycle.yaml": LIFECYCLE.replace("to: won", "to: wonn"),
        "app.yaml": "app: testapp\nmenu:\n  - {name: x, items: [custmer]}\n",
    }))
    assert [p.split(": ", 1)[0] for p in problems] == [
        "app.yaml:3:23",
        "dictionaries/industry.yaml:4:5",
        "objects/contact.yaml:7:18",
        "objects/customer.yaml:2:1",
        "objects/customer.yaml:4:24",
        "workflows/opportunity_lifecycle.yaml:10:44",
    ]
    assert_problem(problems, "app.yaml:3:23", "unknown object 'custmer'; did you mean 'customer'?")
    assert_problem(problems, "objects/customer.yaml:4:24", "'txt' is not a field type")


@pytest.mark.parametrize("app", ["app: testapp\nlanguage: [zh]\n", "app: testapp\nmenu: [\n", b"\x00\x01"],
                         ids=["unknown_key", "syntax", "binary"])
def test_a_broken_app_yaml_does_not_hide_other_problems(tmp_path, app):
    problems = check_files(tmp_path, {"app.yaml": app, **customer("  - {name: code, type: txt}\n")})
    assert len(problems) == 2 and problems[0].startswith("app.yaml:")
    assert_problem(problems, "objects/customer.yaml:4:24: fields[1].type", "did you mean 'text'?")


def test_a_broken_file_does_not_cascade(tmp_path):
    """References to what an unreadable file defines are taken on trust: one error."""
    problems = check_files(tmp_path, dict(SALES, **{
        "objects/customer.yaml": "object: customer\nfields: [\n",
    }))
    only_problem(problems, "objects/customer.yaml:3:1", "invalid YAML")


def test_a_broken_lifecycle_does_not_cascade(tmp_path):
    problems = check_files(tmp_path, sales(lifecycle=LIFECYCLE.replace("kind: lifecycle", "kind: lifecycle\nstats: []"),
                                           contact=CONTACT + "list: {sort: [-birthday]}\n"))
    only_problem(problems, "workflows/opportunity_lifecycle.yaml:3:1", "unknown key 'stats'")


# ---- the command line ---------------------------------------------------------------------

def test_loom_check_prints_every_problem_and_exits_1(tmp_path, monkeypatch):
    root = write_root(tmp_path, {
        "objects/customer.yaml": "object: customer\nfields:\n  - {name: name, type: txt}\n",
        "dictionaries/industry.yaml": "dictionary: industry\nitems: [{code: 01}]\n",
    })
    monkeypatch.chdir(root)
    monkeypatch.delenv("LOOM_CACHE_DIR", raising=False)
    monkeypatch.delenv("LOOM_OVERLAY", raising=False)
    result = CliRunner().invoke(cli, ["check", "--metadata", "."])
    text = result.output  # stdout and stderr as a terminal shows them
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit) and "Traceback" not in text
    assert "objects/customer.yaml:3:24: fields[0].type: 'txt' is not a field type; did you mean 'text'?" in text
    assert "dictionaries/industry.yaml:2:16: items[0].code:" in text
    assert "2 problems found" in text


def test_loom_check_on_binary_and_huge_files_never_shows_a_traceback(tmp_path, monkeypatch):
    root = write_root(tmp_path, {"objects/customer.yaml": bytes(range(256)) * 4,
                                 "objects/big.yaml": billion_laughs()})
    monkeypatch.chdir(root)
    monkeypatch.delenv("LOOM_CACHE_DIR", raising=False)
    result = CliRunner().invoke(cli, ["check", "--metadata", "."])
    text = result.output
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit) and "Traceback" not in text
    assert "objects/customer.yaml:1:1: this is a binary file" in text


def test_loom_check_ok(tmp_path, monkeypatch):
    root = write_root(tmp_path, SALES)
    monkeypatch.delenv("LOOM_CACHE_DIR", raising=False)
    result = CliRunner().invoke(cli, ["check", "--metadata", str(root)])
    assert result.exit_code == 0, result.output
    assert "ok: testapp" in result.output


# ---- fuzzing ------------------------------------------------------------------------------

_PLACE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): ")


def _check_fuzzed(data: bytes, name: str = "objects/customer.yaml") -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_root(Path(tmp), {name: data})
        spec, problems = run_check(root)          # must never raise
        assert (spec is None) == bool(problems)
        lines = data.count(b"\n") + 1
        for p in problems:
            m = _PLACE.match(str(p))
            assert m, str(p)
            assert p.mark.line >= 1 and p.mark.column >= 1
            if p.mark.file == name:
                assert p.mark.line <= lines + 1, str(p)
        return [str(p) for p in problems]


# LOOM_FUZZ_EXAMPLES=5000 for a longer hunt.
_fuzz = settings(max_examples=int(os.environ.get("LOOM_FUZZ_EXAMPLES", 100)), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    problems = _check_fuzzed(data)
    assert problems or b":" in data  # only a mapping of known keys could be valid


_YAMLISH = st.lists(st.sampled_from([
    "object:", "extends:", "fields:", "- ", "  ", "    ", "{", "}", "[", "]", ",", ":", " ", "\n", "\t",
    "&a ", "*a", "<<: ", "'", '"', "#", "---\n", "name: x", "type: text", "type: lookup", "target:",
    "customer", "01", "yes", "~", "!!str", "!x", "%YAML 1.1\n", "? ", "|\n", ">-\n", "\\", "\x00", "é", "客户",
    "show_if: {field: name, op: eq, value: 1}", "op: in", "value: [1, 2]", "dictionary: industry",
    "label: {en: A}", "numbering: {pattern: 'A{seq}'}", "expr: 'a +'", "lifecycle: x", "list: {columns: [name]}",
]), max_size=60).map("".join)


@_fuzz
@given(_YAMLISH)
def test_fuzz_yamlish_text(text):
    _check_fuzzed(text.encode("utf-8"))


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(
        ["", "x", "name", "text", "lookup", "customer", "industry", "retail", "$today", "$current_user",
         "eq", "in", "between", "is_null", "{seq}", "a.b", "customer.name", "count", "sum", "open"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "type", "field", "op", "value", "all", "any", "not", "target", "object",
                         "dictionary", "from", "agg", "expr", "pattern", "columns", "sections", "fields"]),
        inner, max_size=4),
    max_leaves=12)


@_fuzz
@given(st.dictionaries(st.sampled_from(["label", "title", "lifecycle", "child_of", "list", "form", "detail",
                                        "search", "permissions", "field_permissions", "rules", "fields"]),
                       _VALUES, max_size=4),
       st.lists(st.dictionaries(st.sampled_from(["name", "type", "target", "dictionary", "default", "min",
                                                 "max", "show_if", "filter", "from", "agg", "field", "expr",
                                                 "numbering", "object", "source", "multiple", "where"]),
                                _VALUES, max_size=5), max_size=4))
def test_fuzz_object_shaped_documents(body, fields):
    """Documents that look like objects get past the reader: the checks must cope too."""
    import yaml
    doc = {"object": "customer", **body}
    doc["fields"] = [{"name": "name", "type": "text"}] + [dict({"name": f"f{i}"}, **f) for i, f in enumerate(fields)]
    _check_fuzzed(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8"))
