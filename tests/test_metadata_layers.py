"""Layers that work: packs, `extends:`, pack menus, the overlay, the cache, the schemas."""
from __future__ import annotations

import json
import types

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

import loom.metadata as metadata
from loom.cli import main as cli
from loom.metadata import MetadataError, load_spec
from loom.metadata import sources as sources_module
from loom.metadata.fieldtypes import DECLARABLE_TYPES, FIELD_TYPES
from loom.metadata.schema import KINDS, bundled_schema

from metadata_helpers import check_files, spec_of, write_files, write_root

RETAIL_APP = """\
app: testapp
languages: [zh, en]
packs: [retail]
menu:
  - {name: sales, label: {en: Sales, zh: 销售}, items: [customer]}
"""
LIFECYCLE = """\
workflow: customer_lifecycle
kind: lifecycle
object: customer
states:
  - {name: prospect, initial: true}
  - {name: trading}
transitions:
  - {name: trade, from: prospect, to: trading}
"""


def retail_pack(**extra) -> dict:
    """A pack under packs/retail: a store object, a menu group, and whatever is passed."""
    files = {
        "app.yaml": RETAIL_APP,
        "packs/retail/pack.yaml": "pack: retail\nlabel: Retail\nmenu:\n"
                                  "  - {name: sales, items: [store]}\n"
                                  "  - {name: shops, label: {en: Shops}, items: [store]}\n",
        "packs/retail/objects/store.yaml": "object: store\nfields:\n  - {name: name, type: text}\n"
                                           "  - {name: customer, type: lookup, target: customer}\n",
    }
    files.update({f"packs/retail/{k}": v for k, v in extra.items()})
    return files


# ---- packs -------------------------------------------------------------------------------

def test_pack_named_in_app_yaml_is_layered_on_the_base(tmp_path):
    spec = spec_of(tmp_path, retail_pack())
    assert spec.packs == ("retail",)
    assert [name for name, _ in spec.layers] == ["system", "base", "pack retail"]
    assert "store" in spec.objects and spec.objects["store"].fields["customer"].target == "customer"


def test_pack_not_named_in_app_yaml_is_not_read(tmp_path):
    files = retail_pack()
    files["app.yaml"] = RETAIL_APP.replace("packs: [retail]\n", "")
    files["packs/retail/pack.yaml"] = "pack: retail\n"
    spec = spec_of(tmp_path, files)
    assert spec.packs == () and "store" not in spec.objects


def test_pack_menu_merges_into_app_groups_by_name(tmp_path):
    spec = spec_of(tmp_path, retail_pack())
    groups = {g.name: g for g in spec.menu}
    assert [g.name for g in spec.menu] == ["sales", "shops"]
    assert groups["sales"].items == ("customer", "store")        # joined the app's group
    assert groups["sales"].label.text("en") == "Sales"           # the app's label stays
    assert groups["shops"].items == ("store",)


def test_pack_from_an_installed_distribution(tmp_path, monkeypatch):
    """A pack found through a `loom.packs` entry point (a package folder)."""
    installed = write_files(tmp_path / "site-packages" / "loom_retail",
                            {"__init__.py": "", "objects/store.yaml": "object: store\nfields:\n  - {name: name, type: text}\n"})
    package = types.SimpleNamespace(__path__=[str(installed)])
    entry = types.SimpleNamespace(name="retail", load=lambda: package)
    monkeypatch.setattr(sources_module.importlib_metadata, "entry_points",
                        lambda group=None: [entry] if group == "loom.packs" else [])
    spec = spec_of(tmp_path, {"app.yaml": RETAIL_APP})
    assert spec.packs == ("retail",) and "store" in spec.objects


def test_two_packs_in_order_each_extending(tmp_path):
    files = retail_pack(**{"objects/customer.yaml": "extends: customer\nfields:\n  - {name: points, type: integer}\n"})
    files["app.yaml"] = RETAIL_APP.replace("[retail]", "[retail, vip]")
    files["packs/vip/objects/customer.yaml"] = ("extends: customer\nfields:\n"
                                                "  - {name: points, label: {en: Loyalty points}}\n"
                                                "  - {name: tier, type: text}\n")
    spec = spec_of(tmp_path, files)
    cust = spec.objects["customer"]
    assert spec.packs == ("retail", "vip")
    assert cust.fields["points"].type == "integer"
    assert cust.fields["points"].label.text("en") == "Loyalty points"
    assert [n for n, f in cust.fields.items() if not f.system] == ["name", "industry", "revenue", "points", "tier"]


# ---- extends -----------------------------------------------------------------------------

CUSTOMER = """\
object: customer
label: {en: Customer, zh: 客户}
fields:
  - {name: name, type: text, required: true, max_length: 200}
  - {name: industry, type: dictionary, dictionary: industry}
  - {name: revenue, type: money}
list:
  columns: [name, industry, revenue]
  sort: [name]
  filters: [industry]
search:
  quick: [name]
  schemes:
    - {name: retail, where: {field: industry, op: eq, value: retail}}
permissions:
  sales_rep: {create: true, read: own, update: own}
"""


def test_extends_object(tmp_path):
    spec = spec_of(tmp_path, {
        "objects/customer.yaml": CUSTOMER,
        "app.yaml": RETAIL_APP,
        "packs/retail/objects/customer.yaml": """\
            extends: customer
            label: {en: Member, zh: 会员}
            fields:
              - {name: points, type: integer, default: 0}
              - {name: industry, hidden: true}
              - {name: name, max_length: 100, label: {en: Member name}}
            list:
              columns: [name, points]
            search:
              schemes:
                - {name: big, where: {field: points, op: gt, value: 1000}}
            permissions:
              sales_manager: {read: all}
        """,
    })
    cust = spec.objects["customer"]
    assert cust.label.text("zh") == "会员" and cust.label.text("en") == "Member"
    assert cust.fields["points"].type == "integer" and cust.fields["points"].default == 0
    assert cust.fields["industry"].hidden and cust.fields["industry"].dictionary == "industry"
    name = cust.fields["name"]
    assert (name.max_length, name.required, name.label.text("en")) == (100, True, "Member name")
    assert cust.list.columns == ("name", "points")          # replaced
    assert cust.list.sort == (("name", False),)             # kept
    assert cust.list.filters == ("industry",)
    assert [s.name for s in cust.search.schemes] == ["retail", "big"]
    assert cust.search.quick == ("name",)
    assert set(cust.permissions) == {"sales_rep", "sales_manager"}
    assert cust.permissions["sales_rep"].read == "own"


def test_extends_dictionary_adds_and_overrides_items_by_code(tmp_path):
    spec = spec_of(tmp_path, {
        "dictionaries/region.yaml": """\
            dictionary: region
            hierarchical: true
            items:
              - {code: east, label: East, children: [{code: shanghai, label: Shanghai}]}
              - {code: west, label: West}
        """,
        "dictionaries/more.yaml": """\
            extends: industry
            items:
              - {code: retail, label: {en: Shops}, color: green}
              - {code: food, label: Food}
        """,
        "app.yaml": RETAIL_APP,
        "packs/retail/pack.yaml": "pack: retail\n",
        "packs/retail/dictionaries/region.yaml": """\
            extends: region
            items:
              - {code: east, children: [{code: hangzhou, label: Hangzhou}]}
        """,
    })
    industry = spec.dictionaries["industry"]
    assert list(industry.items) == ["manufacturing", "retail", "legacy", "food"]
    assert industry.items["retail"].label.text("en") == "Shops" and industry.items["retail"].color == "green"
    assert not industry.items["legacy"].active
    region = spec.dictionaries["region"]
    assert list(region.items) == ["east", "shanghai", "hangzhou", "west"]
    assert region.items["hangzhou"].parent == "east" and region.items["east"].label.text() == "East"


def test_extends_workflow_adds_states_and_transitions(tmp_path):
    spec = spec_of(tmp_path, {
        "objects/customer.yaml": CUSTOMER.replace("label: {en", "lifecycle: customer_lifecycle\nlabel: {en"),
        "workflows/customer_lifecycle.yaml": LIFECYCLE,
        "app.yaml": RETAIL_APP,
        "packs/retail/pack.yaml": "pack: retail\n",
        "packs/retail/workflows/customer_lifecycle.yaml": """\
            extends: customer_lifecycle
            states:
              - {name: dormant, color: gray}
              - {name: trading, label: {en: Active}}
            transitions:
              - {name: sleep, from: trading, to: dormant}
              - {name: wake, from: dormant, to: trading}
        """,
    })
    lc = spec.workflows["customer_lifecycle"]
    assert list(lc.states) == ["prospect", "trading", "dormant"]
    assert lc.states["trading"].label.text("en") == "Active" and lc.initial == "prospect"
    assert list(lc.transitions) == ["trade", "sleep", "wake"]


def test_extends_in_the_same_layer(tmp_path):
    """An extension may sit beside its definition (e.g. kept in a separate file)."""
    spec = spec_of(tmp_path, {"objects/customer_extra.yaml": "extends: customer\nfields:\n  - {name: vip, type: boolean}\n"})
    assert spec.objects["customer"].fields["vip"].type == "boolean"


def test_extends_a_system_object(tmp_path):
    spec = spec_of(tmp_path, {"objects/user.yaml": "extends: user\nfields:\n  - {name: employee_no, type: text}\n"})
    user = spec.objects["user"]
    assert user.system and user.fields["employee_no"].type == "text"


def test_extension_problems_point_into_the_extension(tmp_path):
    problems = check_files(tmp_path, {
        "app.yaml": RETAIL_APP,
        "packs/retail/pack.yaml": "pack: retail\n",
        "packs/retail/objects/customer.yaml": "extends: customer\nfields:\n  - {name: industry, hidden: true}\n"
                                              "  - {name: size, type: dictionary, dictionary: sizes}\n",
    })
    assert len(problems) == 1
    assert problems[0].startswith("packs/retail/objects/customer.yaml:4:48: fields[1].dictionary: unknown dictionary 'sizes'")


# ---- overlay -----------------------------------------------------------------------------

def test_overlay_comes_after_packs(tmp_path):
    files = retail_pack(**{"objects/customer.yaml": "extends: customer\nfields:\n  - {name: points, type: integer}\n"})
    root = write_root(tmp_path, files)
    overlay = write_files(tmp_path / "site", {
        "objects/customer.yaml": "extends: customer\nfields:\n  - {name: points, hidden: true}\n",
        "objects/store.yaml": "extends: store\nlabel: Outlet\n",
        "reports/stores.yaml": "report: stores\nobject: store\ngroup_by: [customer]\n",
    })
    spec = load_spec(root, overlay)
    assert [n for n, _ in spec.layers] == ["system", "base", "pack retail", "overlay"]
    assert spec.objects["customer"].fields["points"].hidden
    assert spec.objects["store"].label.text() == "Outlet"
    assert "stores" in spec.reports


def test_overlay_from_the_environment(tmp_path, monkeypatch):
    root = write_root(tmp_path)
    overlay = write_files(tmp_path / "site", {"objects/customer.yaml": "extends: customer\nlabel: Client\n"})
    monkeypatch.setenv("LOOM_OVERLAY", str(overlay))
    assert load_spec(root).objects["customer"].label.text() == "Client"


def test_load_spec_raises_with_every_problem(tmp_path):
    root = write_root(tmp_path, {"objects/customer.yaml": "object: customer\nlable: X\nfields:\n  - {name: n, type: txt}\n"})
    with pytest.raises(MetadataError) as info:
        load_spec(root, overlay="")
    assert [p.path for p in info.value.problems] == ["lable", "fields[0].type"]


# ---- the cache ----------------------------------------------------------------------------

def _forbid_validation(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the metadata was validated again")
    monkeypatch.setattr(metadata, "check_metadata", fail)


def test_cache_returns_an_equal_spec_without_validating(tmp_path, monkeypatch):
    root = write_root(tmp_path, retail_pack())
    cache = tmp_path / "cache"
    first = load_spec(root, overlay="", cache_dir=cache)
    assert first.fingerprint and list(cache.glob("metadata-*.pickle"))
    _forbid_validation(monkeypatch)
    second = load_spec(root, overlay="", cache_dir=cache)
    assert second == first and second is not first
    assert second.objects["store"].fields == first.objects["store"].fields


def test_cache_is_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    root = write_root(tmp_path, retail_pack())
    cache = tmp_path / "cache"
    first = load_spec(root, overlay="", cache_dir=cache)
    (root / "packs/retail/objects/store.yaml").write_text(
        "object: store\nlabel: Shop\nfields:\n  - {name: name, type: text}\n", encoding="utf-8")
    second = load_spec(root, overlay="", cache_dir=cache)
    assert second.fingerprint != first.fingerprint
    assert second.objects["store"].label.text() == "Shop"
    assert len(list(cache.glob("metadata-*.pickle"))) == 1     # the stale entry is gone
    _forbid_validation(monkeypatch)
    assert load_spec(root, overlay="", cache_dir=cache) == second


def test_cache_is_invalidated_by_a_new_file_and_by_the_overlay(tmp_path):
    root = write_root(tmp_path)
    cache = tmp_path / "cache"
    first = load_spec(root, overlay="", cache_dir=cache)
    write_files(root, {"objects/lead.yaml": "object: lead\nfields:\n  - {name: name, type: text}\n"})
    second = load_spec(root, overlay="", cache_dir=cache)
    assert "lead" in second.objects and second.fingerprint != first.fingerprint
    overlay = write_files(tmp_path / "site", {"objects/lead.yaml": "extends: lead\nlabel: Prospect\n"})
    third = load_spec(root, overlay=overlay, cache_dir=cache)
    assert third.objects["lead"].label.text() == "Prospect"


def test_broken_metadata_is_never_cached(tmp_path):
    root = write_root(tmp_path, {"objects/customer.yaml": "object: customer\nfields: [\n"})
    cache = tmp_path / "cache"
    for _ in range(2):
        with pytest.raises(MetadataError):
            load_spec(root, overlay="", cache_dir=cache)
    assert not list(cache.glob("metadata-*.pickle"))


def test_a_torn_cache_file_is_rebuilt(tmp_path):
    root = write_root(tmp_path)
    cache = tmp_path / "cache"
    first = load_spec(root, overlay="", cache_dir=cache)
    [entry] = cache.glob("metadata-*.pickle")
    entry.write_bytes(entry.read_bytes()[:50])
    assert load_spec(root, overlay="", cache_dir=cache) == first


# ---- JSON Schemas -------------------------------------------------------------------------

def test_schema_export_writes_valid_draft_2020_12_schemas(tmp_path):
    out = tmp_path / "schemas"
    result = CliRunner().invoke(cli, ["schema", "export", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.stem for p in out.glob("*.json"))
    assert written == sorted(KINDS)
    for path in out.glob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "common.json" not in path.read_text(encoding="utf-8")   # self-contained


def test_exported_object_schema_accepts_a_real_object(tmp_path):
    import yaml
    out = tmp_path / "schemas"
    CliRunner().invoke(cli, ["schema", "export", str(out)])
    schema = json.loads((out / "object.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    assert not list(validator.iter_errors(yaml.safe_load(CUSTOMER)))
    assert list(validator.iter_errors({"object": "x", "fields": [{"name": "a", "type": "txt"}]}))


def _field_schema() -> dict:
    return bundled_schema("object")["$defs"]["field"]


def test_field_type_enum_matches_the_field_types():
    assert tuple(_field_schema()["properties"]["type"]["enum"]) == DECLARABLE_TYPES


def test_every_field_option_is_in_the_field_schema():
    properties = set(_field_schema()["properties"])
    for name, ftype in FIELD_TYPES.items():
        assert ftype.allowed <= properties, (name, sorted(ftype.allowed - properties))
        assert set(ftype.required) <= ftype.allowed
