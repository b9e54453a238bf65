"""The command line: `loom ...` (or `python cli.py ...` from a checkout).

Commands are thin: they parse options, call the engine, and print. Every error a user
can cause is printed as a message with exit status 1, never as a traceback.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .metadata import MetadataError, load_spec
from .metadata.schema import KINDS, bundled_schema


def _metadata_option(f):
    return click.option("--metadata", "metadata_root", type=click.Path(file_okay=False),
                        default=lambda: os.environ.get("LOOM_METADATA", "metadata"), show_default="./metadata",
                        help="The metadata root (or LOOM_METADATA).")(f)


def _load(metadata_root):
    """The AppSpec, or exit 1 after printing every problem."""
    try:
        return load_spec(metadata_root, cache_dir=os.environ.get("LOOM_CACHE_DIR") or None)
    except MetadataError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        n = len(e.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        sys.exit(1)


class _Group(click.Group):
    """Errors a user can cause are reported by each command; anything else still ends in
    one clear line instead of a traceback (LOOM_DEBUG=1 shows the traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - the last resort of a command line
            if os.environ.get("LOOM_DEBUG"):
                raise
            click.echo(f"loom: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", err=True)
            click.echo("(set LOOM_DEBUG=1 to see where it happened)", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Loom: a metadata-driven business platform."""


@main.command()
@_metadata_option
def check(metadata_root):
    """Validate the metadata and report every problem."""
    spec = _load(metadata_root)
    objects = [o for o in spec.objects.values() if not o.system]
    click.echo(f"ok: {spec.name} — {len(objects)} objects, {len(spec.dictionaries)} dictionaries, "
               f"{len(spec.workflows)} workflows, {len(spec.roles)} roles"
               + (f", packs: {', '.join(spec.packs)}" if spec.packs else ""))


def _database_option(f):
    return click.option("--database", "database_url", metavar="URL",
                        help="Database URL (or LOOM_DATABASE_URL; default a SQLite file under ./instance).")(f)


def _runtime(metadata_root, database_url):
    from .runtime import Runtime
    _load(metadata_root)  # prints every problem and exits 1 when the metadata is invalid
    return Runtime.open(metadata_root, database_url)


@main.command()
@_metadata_option
@_database_option
@click.option("--plan", "show_plan", is_flag=True, help="Only show what would change.")
@click.option("--apply", "apply_all", is_flag=True, help="Also apply changes that need confirmation (type changes, NOT NULL).")
def migrate(metadata_root, database_url, show_plan, apply_all):
    """Bring the database in step with the metadata.

    Safe changes (new tables, columns, indexes, renames) are applied; changes that could
    lose data are listed and applied only with --apply."""
    from .storage import sync
    runtime = _runtime(metadata_root, database_url)
    try:
        if show_plan:
            plan = runtime.plan()
            if not plan.changes:
                click.echo("the database is up to date")
            for change in plan.changes:
                click.echo(str(change))
            return
        plan = runtime.migrate(include_unsafe=apply_all)
    except Exception as e:  # a database refusing a change: report, nothing was applied
        click.echo(f"migration failed, nothing was changed: {e}", err=True)
        sys.exit(1)
    finally:
        runtime.close()
    done = plan.of(sync.SAFE, sync.APPLY) if apply_all else plan.of(sync.SAFE)
    for change in done:
        click.echo(f"applied: {change.description}")
    for change in plan.of(sync.KEPT, sync.NOTE, sync.BLOCKED):
        click.echo(str(change))
    if not apply_all and plan.pending:
        click.echo(f"{len(plan.pending)} change(s) need confirmation:")
        for change in plan.pending:
            click.echo(f"  {change.description}")
        click.echo("run `loom migrate --apply` to apply them")
    if not done and not plan.changes:
        click.echo("the database is up to date")
    if plan.of(sync.BLOCKED):
        sys.exit(1)


@main.command()
@_metadata_option
@click.argument("object_name", metavar="OBJECT")
def describe(metadata_root, object_name):
    """Show an object: fields, types, table, indexes, workflow, permissions."""
    from .compiler.tables import compile_schema
    from .describe import describe as describe_object
    spec = _load(metadata_root)
    try:
        text = describe_object(spec, compile_schema(spec), object_name)
    except KeyError as e:
        click.echo(str(e).strip("'\""), err=True)
        sys.exit(1)
    click.echo(text)


def _open(metadata_root, database_url):
    """A runtime with the database migrated (safe changes) and seeds in place."""
    runtime = _runtime(metadata_root, database_url)
    runtime.setup()
    return runtime


def _fail(error) -> None:
    """Print a record-service error as JSON on stderr and exit 1."""
    from .records.errors import ValidationError
    body = {"error": type(error).__name__, "message": error.text("en") if hasattr(error, "text") else str(error)}
    if isinstance(error, ValidationError):
        body.update(error.as_dict("en"))
    click.echo(json.dumps(body, ensure_ascii=False), err=True)
    sys.exit(1)


def _dump(value) -> str:
    from .records.history import jsonable
    def default(v):
        return jsonable(v)
    return json.dumps(value, ensure_ascii=False, default=default, indent=2)


@main.group()
def user():
    """Users: create, list, set passwords."""


@user.command("create")
@_metadata_option
@_database_option
@click.argument("username")
@click.option("--name", help="Display name (default: the username).")
@click.option("--password", help="Password (prompted when omitted).")
@click.option("--role", "roles", multiple=True, help="A role from roles.yaml; repeat for several.")
@click.option("--department", help="Department code.")
@click.option("--email")
def user_create(metadata_root, database_url, username, name, password, roles, department, email):
    """Create a user who can sign in."""
    from .records.errors import RecordError
    from .security.organization import create_user
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    runtime = _open(metadata_root, database_url)
    unknown = [r for r in roles if r not in runtime.spec.roles]
    if unknown:
        click.echo(f"unknown role '{unknown[0]}'; roles: {', '.join(runtime.spec.roles)}", err=True)
        sys.exit(1)
    try:
        created = create_user(runtime, username, name=name, password=password, roles=roles,
                              department=department, email=email)
    except RecordError as e:
        _fail(e)
    click.echo(f"created user {created['username']} (#{created['id']})")


@user.command("passwd")
@_metadata_option
@_database_option
@click.argument("username")
@click.option("--password", help="New password (prompted when omitted).")
def user_passwd(metadata_root, database_url, username, password):
    """Set a user's password."""
    from .records.errors import RecordError
    from .security.organization import find_user, set_password
    runtime = _open(metadata_root, database_url)
    found = find_user(runtime, username)
    if found is None:
        click.echo(f"no user '{username}'", err=True)
        sys.exit(1)
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        set_password(runtime, found["id"], password)
    except RecordError as e:
        _fail(e)
    click.echo(f"password of {username} changed")


@user.command("set")
@_metadata_option
@_database_option
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="Replace the user's roles (repeat for several).")
@click.option("--department", help="Department code.")
@click.option("--active/--disabled", default=None, help="Enable or disable the user.")
def user_set(metadata_root, database_url, username, roles, department, active):
    """Change a user's roles, department or status (disabled users cannot sign in)."""
    from .records.errors import RecordError
    from .security.actor import Actor
    from .security.organization import department_id, find_user
    runtime = _open(metadata_root, database_url)
    found = find_user(runtime, username)
    if found is None:
        click.echo(f"no user '{username}'", err=True)
        sys.exit(1)
    values = {}
    if roles:
        values["roles"] = list(roles)
    if department:
        values["department"] = department_id(runtime, department)
    if active is not None:
        values["active"] = active
    try:
        runtime.records.update("user", found["id"], values, Actor.system(), version=found["version"])
    except RecordError as e:
        _fail(e)
    click.echo(f"updated user {username}")


@user.command("transfer")
@_metadata_option
@_database_option
@click.argument("from_user", metavar="FROM")
@click.argument("to_user", metavar="TO")
def user_transfer(metadata_root, database_url, from_user, to_user):
    """Hand every record FROM owns to TO (for a leaving user)."""
    from .security.actor import Actor
    from .security.organization import find_user
    from .security.sharing import transfer
    runtime = _open(metadata_root, database_url)
    users = [find_user(runtime, u) for u in (from_user, to_user)]
    if None in users:
        click.echo(f"no user '{(from_user, to_user)[users.index(None)]}'", err=True)
        sys.exit(1)
    moved = transfer(runtime, users[0]["id"], users[1]["id"], Actor.system())
    click.echo(", ".join(f"{k}: {v}" for k, v in moved.items()) or "nothing to move")


@user.command("list")
@_metadata_option
@_database_option
def user_list(metadata_root, database_url):
    """List users."""
    from .security.actor import Actor
    runtime = _open(metadata_root, database_url)
    page = runtime.records.query("user", Actor.system(), sort=["username"], limit=1000)
    for u in page.rows:
        state = "" if u.get("active", True) else " (disabled)"
        click.echo(f"{u['username']:<20} {u.get('name') or '':<20} {','.join(u.get('roles') or [])}{state}")


@main.group()
def department():
    """Departments: the organization tree."""


@department.command("list")
@_metadata_option
@_database_option
def department_list(metadata_root, database_url):
    """Show the department tree with managers."""
    from .security.actor import Actor
    runtime = _open(metadata_root, database_url)
    rows = runtime.records.query("department", Actor.system(), sort=["code"], limit=1000).rows
    managers = runtime.records.titles("user", {r.get("manager") for r in rows})
    children: dict = {}
    for r in rows:
        children.setdefault(r.get("parent"), []).append(r)

    def show(parent, depth):
        for r in children.get(parent, []):
            click.echo(f"{'  ' * depth}{r['code']:<16} {r['name']}"
                       + (f"  (manager: {managers.get(r['manager'])})" if r.get("manager") else ""))
            show(r["id"], depth + 1)
    show(None, 0)


@department.command("set")
@_metadata_option
@_database_option
@click.argument("code")
@click.option("--manager", help="Username of the manager.")
@click.option("--parent", help="Code of the parent department.")
@click.option("--name")
def department_set(metadata_root, database_url, code, manager, parent, name):
    """Change a department's manager, parent or name."""
    from .records.errors import RecordError
    from .security.actor import Actor
    from .security.organization import department_id, find_user
    runtime = _open(metadata_root, database_url)
    try:
        record_id = department_id(runtime, code)
        values = {}
        if manager:
            user = find_user(runtime, manager)
            if user is None:
                click.echo(f"no user '{manager}'", err=True)
                sys.exit(1)
            values["manager"] = user["id"]
        if parent:
            values["parent"] = department_id(runtime, parent)
        if name:
            values["name"] = name
        current = runtime.records.get("department", record_id, Actor.system())
        runtime.records.update("department", record_id, values, Actor.system(), version=current["version"])
    except RecordError as e:
        _fail(e)
    click.echo(f"updated department {code}")


@department.command("create")
@_metadata_option
@_database_option
@click.argument("code")
@click.option("--name", required=True)
@click.option("--parent", help="Code of the parent department.")
def department_create(metadata_root, database_url, code, name, parent):
    """Create a department."""
    from .records.errors import RecordError
    from .security.actor import Actor
    from .security.organization import department_id
    runtime = _open(metadata_root, database_url)
    try:
        created = runtime.records.create("department", {"code": code, "name": name,
                                                        "parent": department_id(runtime, parent)}, Actor.system())
    except RecordError as e:
        _fail(e)
    click.echo(f"created department {created['code']} (#{created['id']})")


@main.group()
def record():
    """Records as JSON, for scripts: create, get, update, delete, restore, purge, list, history."""


def _as_option(f):
    return click.option("--as", "as_user", metavar="USERNAME",
                        help="Act as this user (with their rights); default: the system.")(f)


def _actor(runtime, as_user):
    from .security.actor import Actor
    from .security.organization import actor_for, find_user
    if not as_user:
        return Actor.system()
    found = find_user(runtime, as_user)
    if found is None:
        click.echo(f"no user '{as_user}'", err=True)
        sys.exit(1)
    return actor_for(runtime, found)


def _json_arg(text, what="--data"):
    if text == "-":
        text = sys.stdin.read()
    try:
        value = json.loads(text)
    except ValueError as e:
        click.echo(json.dumps({"error": "BadRequest", "message": f"{what} is not valid JSON: {e}"}), err=True)
        sys.exit(1)
    return value


def _record_command(name, help_text):
    def wrap(fn):
        return record.command(name, help=help_text)(
            _metadata_option(_database_option(_as_option(click.argument("object_name", metavar="OBJECT")(fn)))))
    return wrap


@_record_command("create", "Create a record from JSON (--data '{...}' or - for stdin).")
@click.option("--data", required=True)
def record_create(metadata_root, database_url, as_user, object_name, data):
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        click.echo(_dump(runtime.records.create(object_name, _json_arg(data), _actor(runtime, as_user))))
    except RecordError as e:
        _fail(e)


@_record_command("get", "Print a record as JSON.")
@click.argument("record_id", type=int)
def record_get(metadata_root, database_url, as_user, object_name, record_id):
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        click.echo(_dump(runtime.records.get(object_name, record_id, _actor(runtime, as_user))))
    except RecordError as e:
        _fail(e)


@_record_command("update", "Change a record: --version is the one you read.")
@click.argument("record_id", type=int)
@click.option("--data", required=True)
@click.option("--version", type=int, required=True)
def record_update(metadata_root, database_url, as_user, object_name, record_id, data, version):
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        click.echo(_dump(runtime.records.update(object_name, record_id, _json_arg(data),
                                                _actor(runtime, as_user), version=version)))
    except RecordError as e:
        _fail(e)


def _simple(verb):
    @_record_command(verb, f"{verb.capitalize()} a record.")
    @click.argument("record_id", type=int)
    def command(metadata_root, database_url, as_user, object_name, record_id):
        from .records.errors import RecordError
        runtime = _open(metadata_root, database_url)
        try:
            getattr(runtime.records, verb)(object_name, record_id, _actor(runtime, as_user))
        except RecordError as e:
            _fail(e)
        click.echo(json.dumps({"ok": True, verb: record_id}))
    return command


record_delete, record_restore, record_purge = (_simple(v) for v in ("delete", "restore", "purge"))


@_record_command("list", "List records as JSON.")
@click.option("--where", help="A condition as JSON, e.g. '{\"field\": \"state\", \"op\": \"eq\", \"value\": \"open\"}'.")
@click.option("--search", help="Quick-search term.")
@click.option("--sort", help="Comma-separated fields, - for descending.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--deleted", is_flag=True, help="List the recycle bin.")
def record_list(metadata_root, database_url, as_user, object_name, where, search, sort, limit, deleted):
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        condition = _condition(runtime, object_name, where) if where else None
        page = runtime.records.query(object_name, _actor(runtime, as_user), where=condition, search=search,
                                     sort=sort.split(",") if sort else None, limit=limit, deleted=deleted)
    except RecordError as e:
        _fail(e)
    click.echo(_dump({"rows": page.rows, "has_more": page.has_more, "next": page.next_cursor}))


def _condition(runtime, object_name, text):
    """A condition given as JSON, validated like one written in YAML."""
    from .records.conditions_input import parse_condition
    return parse_condition(runtime.spec, object_name, _json_arg(text, "--where"))


@_record_command("history", "Print a record's history as JSON.")
@click.argument("record_id", type=int)
def record_history(metadata_root, database_url, as_user, object_name, record_id):
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        click.echo(_dump(runtime.records.history(object_name, record_id, _actor(runtime, as_user))))
    except RecordError as e:
        _fail(e)


@main.command()
@_metadata_option
@_database_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(metadata_root, database_url, host, port):
    """Serve the application for development: metadata changes apply on save, and
    invalid metadata shows its errors as a page instead of stopping the server."""
    os.environ["LOOM_METADATA"] = metadata_root
    if database_url:
        os.environ["LOOM_DATABASE_URL"] = database_url
    from .web import create_app
    app = create_app({"LOOM_DEV": True})
    click.echo(f"Loom on http://{host}:{port}/  (Ctrl+C to stop)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@_metadata_option
@click.option("--database", "database_url", metavar="URL", help="Default: a SQLite file instance/demo.db.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--reset", is_flag=True, help="Start again from an empty database.")
@click.option("--no-serve", is_flag=True, help="Only create the data.")
def demo(metadata_root, database_url, host, port, reset, no_serve):
    """Create a demo database with users and records, then serve it."""
    from .demo import populate
    from .runtime import instance_path
    if not database_url:
        path = instance_path().resolve() / "demo.db"
        if reset:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{path}"
    runtime = _open(metadata_root, database_url)
    try:
        report = populate(runtime, echo=click.echo)
    finally:
        runtime.close()
    if report.get("users"):
        click.echo("\nSign in as (password for all: %s):" % report["password"])
        for username, name, roles in report["users"]:
            click.echo(f"  {username:<12} {name:<8} {', '.join(roles)}")
    if no_serve:
        return
    os.environ["LOOM_METADATA"] = metadata_root
    os.environ["LOOM_DATABASE_URL"] = database_url
    from .web import create_app
    app = create_app()
    click.echo(f"\nLoom demo on http://{host}:{port}/  (Ctrl+C to stop)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@record.command("transition")
@_metadata_option
@_database_option
@_as_option
@click.argument("object_name", metavar="OBJECT")
@click.argument("record_id", type=int)
@click.argument("transition")
@click.option("--comment")
def record_transition(metadata_root, database_url, as_user, object_name, record_id, transition, comment):
    """Take a lifecycle transition (approval flows start as configured)."""
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        click.echo(_dump(runtime.workflows.transition(object_name, record_id, transition,
                                                      _actor(runtime, as_user), comment=comment)))
    except RecordError as e:
        _fail(e)


@record.command("convert")
@_metadata_option
@_database_option
@_as_option
@click.argument("object_name", metavar="OBJECT")
@click.argument("record_id", type=int)
@click.argument("conversion")
@click.option("--skip", multiple=True, help="An optional record not to create (its `as` name).")
def record_convert(metadata_root, database_url, as_user, object_name, record_id, conversion, skip):
    """Run a conversion: create records from this one (e.g. a lead's customer and contact)."""
    from .records.conversions import convert
    from .records.errors import RecordError
    runtime = _open(metadata_root, database_url)
    try:
        created = convert(runtime, object_name, record_id, conversion, _actor(runtime, as_user), skip=skip)
    except RecordError as e:
        _fail(e)
    click.echo(_dump({name: {"id": r["id"]} for name, r in created.items()}))


@main.command("duplicates")
@_metadata_option
@_database_option
@_as_option
@click.argument("object_name", metavar="OBJECT")
@click.option("--rule", help="A duplicate rule of the object (default: the first).")
def duplicates_command(metadata_root, database_url, as_user, object_name, rule):
    """List groups of likely duplicates (撞单分析)."""
    from .records import duplicates
    runtime = _open(metadata_root, database_url)
    obj = runtime.spec.objects.get(object_name)
    if obj is None or not obj.duplicates:
        click.echo(f"{object_name} has no duplicate rules", err=True)
        sys.exit(1)
    chosen = next((r for r in obj.duplicates if r.name == rule), None) if rule else obj.duplicates[0]
    if chosen is None:
        click.echo(f"no rule '{rule}'; rules: {', '.join(r.name for r in obj.duplicates)}", err=True)
        sys.exit(1)
    actor = _actor(runtime, as_user)
    with runtime.engine.connect() as conn:
        groups = duplicates.groups(conn, runtime, obj, actor, chosen)
    titles = runtime.records.titles(obj, {m["id"] for grp in groups for m in grp})
    for grp in groups:
        click.echo(" | ".join(f"#{m['id']} {titles.get(m['id'], '')}" for m in grp))
    click.echo(f"{len(groups)} group(s)")


@main.group()
def pool():
    """The pool (公海) of records without an owner."""


@pool.command("expire")
@_metadata_option
@_database_option
def pool_expire(metadata_root, database_url):
    """Return records without activity for `return_after_days` to their pools."""
    from .records.pool import expire
    runtime = _open(metadata_root, database_url)
    done = expire(runtime)
    click.echo(", ".join(f"{k}: {v}" for k, v in done.items()) or "nothing to return")


@main.group()
def workflow():
    """Lifecycles and approval flows."""


@workflow.command("list")
@_metadata_option
def workflow_list(metadata_root):
    """List workflows with their object and kind."""
    spec = _load(metadata_root)
    for name, wf in spec.workflows.items():
        click.echo(f"{name:<32} {wf.kind:<10} {wf.object:<20} {wf.label.text('zh')}")


@workflow.command("show")
@_metadata_option
@click.argument("name")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False), help="Write the diagram as SVG to this file.")
@click.option("--lang", default="zh", show_default=True)
def workflow_show(metadata_root, name, svg_file, lang):
    """Describe a workflow; with --svg, draw it."""
    from .workflow.diagram import svg
    spec = _load(metadata_root)
    if name not in spec.workflows:
        from .metadata.problems import suggest
        click.echo(f"no workflow '{name}'" + suggest(name, spec.workflows), err=True)
        sys.exit(1)
    wf = spec.workflows[name]
    if svg_file:
        Path(svg_file).write_text(svg(spec, name, lang), encoding="utf-8")
        click.echo(f"wrote {svg_file}")
        return
    click.echo(f"{name}: {wf.kind} of {wf.object} — {wf.label.text(lang)}")
    if wf.kind == "lifecycle":
        for s in wf.states.values():
            click.echo(f"  state {s.name}{' (initial)' if s.initial else ''}{' (final)' if s.final else ''}"
                       f"{' (locked)' if s.locked else ''}")
        for t in wf.transitions.values():
            click.echo(f"  {t.name}: {' | '.join(t.sources)} -> {t.to}" + (f" [approval {t.approval}]" if t.approval else ""))
    else:
        for i, s in enumerate(wf.steps, 1):
            click.echo(f"  {i}. {s.name}: {s.approvers.kind} {s.approvers.value} ({s.policy})"
                       + (" when ..." if s.when is not None else ""))
        click.echo(f"  approved -> {wf.on_approved.to or '-'}; rejected -> {wf.on_rejected.to or '-'}")


@main.group()
def schema():
    """JSON Schemas for editors."""


@schema.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
def schema_export(directory):
    """Write the JSON Schema of every document kind to DIRECTORY."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        (out / f"{kind}.json").write_text(json.dumps(bundled_schema(kind), ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    click.echo(f"wrote {len(KINDS)} schemas to {out}; point a file at one with:\n"
               f"  # yaml-language-server: $schema={out / 'object.json'}")



from .transfer.commands import register as _register_transfer  # noqa: E402 - loom import/export/dump/load
_register_transfer(main)

from .automations.commands import register as _register_automations  # noqa: E402 - loom automations
_register_automations(main)


if __name__ == "__main__":  # pragma: no cover
    main()
