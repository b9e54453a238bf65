"""Schema sync: the database follows the metadata without losing data, on both backends."""
from __future__ import annotations

import datetime as dt
import textwrap

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from loom.cli import main
from loom.runtime import Runtime
from loom.storage import sync

APP = """\
app: shop
languages: [en, zh]
menu: [{label: Shop, items: [customer]}]
"""
ROLES = "roles: [{name: admin, superuser: true}]\n"
CUSTOMER = """\
object: customer
lifecycle: customer_lifecycle
fields:
  - {name: name, type: text, required: true}
  - {name: notes, type: text}
  - {name: employees, type: text}
"""
LIFECYCLE = """\
workflow: customer_lifecycle
kind: lifecycle
object: customer
states:
  - {name: potential, initial: true}
  - {name: trading}
  - {name: lost, final: true}
transitions:
  - {name: trade, from: potential, to: trading}
"""


def write_root(root, customer=CUSTOMER, lifecycle=LIFECYCLE):
    (root / "objects").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    (root / "app.yaml").write_text(APP)
    (root / "roles.yaml").write_text(ROLES)
    (root / "objects" / "customer.yaml").write_text(textwrap.dedent(customer))
    (root / "workflows" / "customer_lifecycle.yaml").write_text(lifecycle)
    return root


def open_runtime(root, db_url):
    return Runtime.open(root, db_url, cache=False)


def insert(runtime, **values):
    now = dt.datetime.now(dt.timezone.utc)
    with runtime.engine.begin() as conn:
        conn.execute(runtime.table("customer").insert().values(created_at=now, updated_at=now, version=1, **values))


def columns(runtime, table="customer"):
    return {c["name"]: c for c in sa.inspect(runtime.engine).get_columns(table)}


def rows(runtime, *names):
    table = sa.table("customer", *[sa.column(n) for n in names])
    with runtime.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*table.c).order_by(table.c[names[0]]))]


@pytest.fixture
def root(tmp_path):
    return write_root(tmp_path / "metadata")


def test_first_sync_creates_everything_and_second_finds_nothing(root, db_url):
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate()
    assert [c.description for c in plan.of(sync.SAFE)][0].startswith("create tables")
    assert {"customer", "loom_user", "loom_department", "loom_history", "loom_counter"} <= set(
        sa.inspect(runtime.engine).get_table_names())
    assert runtime.plan().changes == []
    runtime.close()


def test_added_field_becomes_a_column_and_rows_are_kept(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", state="potential")
    runtime.close()
    write_root(root, CUSTOMER + "  - {name: phone, type: phone}\n  - {name: revenue, type: money}\n")
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate()
    assert "add column customer.phone" in [c.description for c in plan.of(sync.SAFE)]
    assert {"phone", "revenue"} <= set(columns(runtime))
    assert rows(runtime, "name", "phone") == [("Acme", None)]
    assert runtime.plan().changes == []
    runtime.close()


def test_a_new_lookup_gets_its_foreign_key_without_apply(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", state="potential")
    runtime.close()
    write_root(root, CUSTOMER + "  - {name: parent, type: lookup, target: customer, on_delete: set_null}\n")
    runtime = open_runtime(root, db_url)
    assert not runtime.plan().of(sync.APPLY, sync.BLOCKED)   # nothing waits for --apply
    runtime.migrate()
    assert [c.description for c in runtime.plan().changes] == []
    [fk] = [k for k in sa.inspect(runtime.engine).get_foreign_keys("customer") if k["constrained_columns"] == ["parent"]]
    assert fk["referred_table"] == "customer"
    [(acme,)] = rows(runtime, "id")
    insert(runtime, name="Acme Shanghai", parent=acme)
    with runtime.engine.begin() as conn:   # the database keeps the reference honest too
        conn.execute(sa.delete(runtime.table("customer")).where(runtime.table("customer").c.id == acme))
    assert rows(runtime, "name", "parent") == [("Acme Shanghai", None)]
    runtime.close()


def test_removed_field_keeps_its_column_and_data(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", notes="keep me")
    runtime.close()
    write_root(root, CUSTOMER.replace("  - {name: notes, type: text}\n", ""))
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate()
    assert [c.description for c in plan.of(sync.KEPT)] == [
        "column customer.notes is no longer in the metadata; its data is kept"]
    assert rows(runtime, "name", "notes") == [("Acme", "keep me")]
    runtime.close()


def test_type_change_waits_for_apply_then_converts(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", employees="120")
    runtime.close()
    write_root(root, CUSTOMER.replace("{name: employees, type: text}", "{name: employees, type: integer}"))
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate()  # safe only
    pending = [c.description for c in plan.pending]
    assert len(pending) == 1 and pending[0].startswith("change type of customer.employees")
    assert rows(runtime, "name", "employees") == [("Acme", "120")]  # untouched
    runtime.migrate(include_unsafe=True)
    assert rows(runtime, "name", "employees") == [("Acme", 120)]
    assert runtime.plan().changes == []
    runtime.close()


def test_type_change_that_would_mangle_data_is_blocked(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", employees="about 50")
    insert(runtime, name="Beta", employees="7")
    runtime.close()
    write_root(root, CUSTOMER.replace("{name: employees, type: text}", "{name: employees, type: integer}"))
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate(include_unsafe=True)
    blocked = [c.description for c in plan.of(sync.BLOCKED)]
    assert blocked == ["cannot change type of customer.employees from VARCHAR(255) to INTEGER: "
                       "1 row(s) hold values that do not convert, e.g. 'about 50'"]
    assert rows(runtime, "name", "employees") == [("Acme", "about 50"), ("Beta", "7")]
    runtime.close()


def test_renamed_from_keeps_the_data(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", notes="remember")
    runtime.close()
    write_root(root, CUSTOMER.replace("{name: notes, type: text}", "{name: remarks, type: text, renamed_from: notes}"))
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate()
    assert "rename column customer.notes to remarks (renamed_from keeps the data)" in [
        c.description for c in plan.of(sync.SAFE)]
    assert "notes" not in columns(runtime)
    assert rows(runtime, "name", "remarks") == [("Acme", "remember")]
    assert runtime.plan().changes == []
    runtime.close()


def test_new_unique_index_over_duplicates_is_blocked(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme")
    insert(runtime, name="Acme")
    runtime.close()
    write_root(root, CUSTOMER.replace("{name: name, type: text, required: true}",
                                      "{name: name, type: text, required: true, unique: true}"))
    runtime = open_runtime(root, db_url)
    plan = runtime.migrate()
    assert [c.description for c in plan.of(sync.BLOCKED)] == [
        "cannot make customer(name) unique: 1 value(s) are held by several records, e.g. ('Acme',)"]
    runtime.close()


def test_records_in_a_removed_state_are_reported(root, db_url):
    runtime = open_runtime(root, db_url)
    runtime.migrate()
    insert(runtime, name="Acme", state="trading")
    insert(runtime, name="Beta", state="trading")
    runtime.close()
    write_root(root, lifecycle=LIFECYCLE.replace("  - {name: trading}\n", "").replace(
        "  - {name: trade, from: potential, to: trading}\n", "  - {name: lose, from: potential, to: lost}\n"))
    runtime = open_runtime(root, db_url)
    notes = [c.description for c in runtime.plan().of(sync.NOTE)]
    assert notes == ["2 record(s) hold state of customer 'trading', which the metadata no longer defines; "
                     "move them (or keep the value as inactive) before relying on it"]
    runtime.close()


def test_cli_plan_changes_nothing_and_apply_applies(root, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(main, ["migrate", "--metadata", str(root), "--database", url, "--plan"])
    assert result.exit_code == 0 and "[safe] create tables" in result.output
    assert sa.inspect(sa.create_engine(url)).get_table_names() == []
    result = runner.invoke(main, ["migrate", "--metadata", str(root), "--database", url])
    assert result.exit_code == 0 and "applied: create tables" in result.output
    result = runner.invoke(main, ["migrate", "--metadata", str(root), "--database", url, "--plan"])
    assert result.output.strip() == "the database is up to date"
    write_root(root, CUSTOMER.replace("{name: employees, type: text}", "{name: employees, type: integer}"))
    result = runner.invoke(main, ["migrate", "--metadata", str(root), "--database", url])
    assert "1 change(s) need confirmation" in result.output and "loom migrate --apply" in result.output
    result = runner.invoke(main, ["migrate", "--metadata", str(root), "--database", url, "--apply"])
    assert result.exit_code == 0 and "applied: change type of customer.employees" in result.output


def test_invalid_metadata_never_touches_the_database(root, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    write_root(root, CUSTOMER + "  - {name: broken, type: txt}\n")
    result = CliRunner().invoke(main, ["migrate", "--metadata", str(root), "--database", url])
    assert result.exit_code == 1
    assert "'txt' is not a field type; did you mean 'text'?" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cli.db").exists() or sa.inspect(sa.create_engine(url)).get_table_names() == []
