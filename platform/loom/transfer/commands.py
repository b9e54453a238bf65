"""Command-line transfers: `loom import`, `loom export`, `loom dump`, `loom load`.

    loom import customer customers.csv --dry-run
    loom import customer customers.xlsx --upsert code --as alice --mapping 公司=name
    loom export customer --format xlsx --output customers.xlsx --where '{"field": "state", "op": "eq", "value": "trading"}'
    loom dump backup.jsonl.gz
    loom load backup.jsonl.gz --database postgresql://postgres@127.0.0.1:5432/crm

Registered on the `loom` group by cli.py (`register(main)`).
"""
from __future__ import annotations

import sys

import click


def _cli():
    from .. import cli
    return cli


def _options(f):
    cli = _cli()
    return cli._metadata_option(cli._database_option(f))


def _lang_option(f):
    return click.option("--lang", default="en", show_default=True, help="Language of labels and messages (zh, en).")(f)


@click.command("import")
@click.argument("object_name", metavar="OBJECT")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report the problems; write nothing.")
@click.option("--upsert", "upsert", metavar="FIELD", help="Update the record whose FIELD (unique) matches a row; "
                                                         "create the others.")
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user (with their rights); default: the system.")
@click.option("--mapping", "mapping", multiple=True, metavar="COLUMN=FIELD",
              help="Read COLUMN into FIELD (COLUMN= skips a column); repeat for several.")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option("--allow-duplicates", is_flag=True, help="Also import rows that a duplicate rule (warn) finds like "
                                                       "a record that exists.")
@_lang_option
def import_command(metadata_root, database_url, object_name, file, dry_run, upsert, as_user, mapping, batch_size,
                   allow_duplicates, lang):
    """Import a CSV or XLSX file into OBJECT through the record service.

    Exit status 1 when any row has a problem (listed as row, column, message); the other
    rows are imported (none with --dry-run)."""
    from ..records.errors import RecordError
    from .imports import import_file
    cli = _cli()
    pairs = {}
    for item in mapping:
        if "=" not in item:
            click.echo(f"--mapping takes COLUMN=FIELD, not '{item}'", err=True)
            sys.exit(1)
        column, _sep, name = item.partition("=")
        pairs[column.strip()] = name.strip()
    runtime = cli._open(metadata_root, database_url)
    try:
        actor = cli._actor(runtime, as_user)
        with click.progressbar(length=1, label="checking" if dry_run else "importing", file=sys.stderr,
                               show_pos=True) as bar:
            def progress(done, total):
                bar.length = max(total, 1)
                bar.update(done - bar.pos)
            report = import_file(runtime, actor, object_name, file, mapping=pairs, upsert=upsert, dry_run=dry_run,
                                 batch_size=batch_size, progress=progress, allow_duplicates=allow_duplicates)
    except RecordError as e:
        cli._fail(e)
    finally:
        runtime.close()
    verb = "would be " if dry_run else ""
    if report.encoding:
        click.echo(f"read {report.rows} row(s) from {report.format.upper()} ({report.encoding})")
    else:
        click.echo(f"read {report.rows} row(s) from {report.format.upper()}")
    if report.unknown:
        click.echo(f"columns ignored (no such field): {', '.join(report.unknown)}")
    for header, reason in report.ignored:
        click.echo(f"column ignored: {header}: {reason.text(lang)}")
    click.echo(f"{verb}created: {report.created}, {verb}updated: {report.updated}, skipped: {report.skipped}, "
               f"rows with problems: {report.error_rows}")
    if report.problems:
        for p in report.problems:
            where = f"row {p.row}" if p.row is not None else "file"
            column = f", {p.column_text(lang)}" if p.column else ""
            value = f" [{p.value}]" if p.value is not None else ""
            click.echo(f"{where}{column}: {p.text(lang)}{value}", err=True)
        if report.duplicates:
            click.echo(f"{report.duplicates} row(s) only look like records that exist: --allow-duplicates imports "
                       f"them", err=True)
        sys.exit(1)


import_command = _options(import_command)


@click.command("export")
@click.argument("object_name", metavar="OBJECT")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Default: standard output.")
@click.option("--where", help="A condition as JSON, e.g. '{\"field\": \"state\", \"op\": \"eq\", \"value\": \"open\"}'.")
@click.option("--search", help="Quick-search term.")
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user (with their rights); default: the system.")
@_lang_option
def export_command(metadata_root, database_url, object_name, fmt, output, where, search, as_user, lang):
    """Export OBJECT's records the user may read: CSV, XLSX or JSON (typed, with lines)."""
    from ..records.errors import RecordError
    from .exports import export
    cli = _cli()
    if fmt == "xlsx" and not output and sys.stdout.isatty():
        click.echo("an XLSX file is binary: give --output FILE (or redirect standard output)", err=True)
        sys.exit(1)
    runtime = cli._open(metadata_root, database_url)
    try:
        actor = cli._actor(runtime, as_user)
        condition = cli._condition(runtime, object_name, where) if where else None
        chunks = export(runtime, actor, object_name, fmt, where=condition, search=search, lang=lang)
        if not output:
            sys.stdout.flush()
        out = open(output, "wb") if output else sys.stdout.buffer
        try:
            for chunk in chunks:
                out.write(chunk)
        finally:
            if output:
                out.close()
            else:
                out.flush()
    except KeyError as e:
        click.echo(str(e).strip("'\""), err=True)
        sys.exit(1)
    except RecordError as e:
        cli._fail(e)
    finally:
        runtime.close()
    if output:
        click.echo(f"wrote {output}", err=True)


export_command = _options(export_command)


@click.command("dump")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def dump_command(metadata_root, database_url, file):
    """Write every table Loom owns to FILE as JSON lines (FILE.gz: compressed; -: stdout)."""
    from .dump import DumpError, dump
    cli = _cli()
    runtime = cli._runtime(metadata_root, database_url)
    try:
        counts = dump(runtime, file, echo=(lambda text: click.echo(text, err=True)) if file != "-" else None)
    except DumpError as e:
        click.echo(f"dump failed: {e}", err=True)
        sys.exit(1)
    finally:
        runtime.close()
    click.echo(f"dumped {sum(counts.values())} row(s) of {len(counts)} table(s) to {file}", err=True)


dump_command = _options(dump_command)


@click.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def load_command(metadata_root, database_url, file):
    """Fill a new, empty database from a dump made by `loom dump` (all or nothing)."""
    from .dump import DumpError, load
    cli = _cli()
    if file != "-":
        import os
        if not os.path.isfile(file):
            click.echo(f"no file {file}", err=True)
            sys.exit(1)
    runtime = cli._runtime(metadata_root, database_url)
    try:
        runtime.migrate()       # tables only: seeding departments would make it non-empty
        counts = load(runtime, file, echo=lambda text: click.echo(text, err=True))
    except DumpError as e:
        click.echo(f"load failed, nothing was changed: {e}", err=True)
        sys.exit(1)
    finally:
        runtime.close()
    click.echo(f"loaded {sum(counts.values())} row(s) into {len(counts)} table(s)")


load_command = _options(load_command)


def register(group) -> None:
    for command in (import_command, export_command, dump_command, load_command):
        group.add_command(command)
