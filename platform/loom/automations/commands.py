"""`loom automations list` and `loom automations run [--once]`.

    loom automations run --once          # cron: run what is due now, then exit (1 when something failed)
    loom automations run                 # a clock process: run what is due every --interval seconds
    loom automations list                # every automation, and when the scheduled ones last ran

Registered on the `loom` group by cli.py (`register(main)`).
"""
from __future__ import annotations

import datetime as dt
import sys
import time

import click


def _cli():
    from .. import cli
    return cli


def _options(f):
    cli = _cli()
    return cli._metadata_option(cli._database_option(f))


@click.group("automations")
def automations():
    """Event and scheduled automations."""


@automations.command("list")
@_options
def list_command(metadata_root, database_url):
    """Every automation; for scheduled ones, the last period finished."""
    from .schedule import last_runs
    runtime = _cli()._open(metadata_root, database_url)
    try:
        runs = last_runs(runtime)
        for name, a in runtime.spec.automations.items():
            on = f"{a.on} every {a.every}" if a.on == "schedule" else a.on
            line = f"{name:<32} {a.object:<20} {on:<28}"
            if not a.active:
                line += " (inactive)"
            run = runs.get(name)
            if run and run.get("finished_at"):
                line += (f" last: {run['period']} ({run.get('acted') or 0} acted on, "
                         f"{run.get('failed') or 0} failed)")
            click.echo(line.rstrip())
    finally:
        runtime.close()


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date and time such as 2025-01-31T08:00, not {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


@automations.command("run")
@_options
@click.option("--once", is_flag=True, help="Run what is due now and exit (for cron).")
@click.option("--interval", type=click.FloatRange(1, 86400), default=60.0, show_default=True,
              help="Seconds between runs, without --once.")
@click.option("--only", multiple=True, metavar="NAME", help="Only this automation (repeat for several).")
@click.option("--at", "at", metavar="TIME", help="As if it were TIME (ISO 8601; UTC unless it gives an offset).")
def run_command(metadata_root, database_url, once, interval, only, at):
    """Run the scheduled automations that are due: each acts once per period on the
    records matching its `when` (safe to run from several places at once)."""
    from .schedule import run_due
    now = _parse_time(at)
    runtime = _cli()._open(metadata_root, database_url)
    unknown = [n for n in only if n not in runtime.spec.automations]
    if unknown:
        from ..metadata.problems import suggest
        click.echo(f"no automation '{unknown[0]}'" + suggest(unknown[0], runtime.spec.automations), err=True)
        sys.exit(1)
    if not runtime.automations.scheduled:
        click.echo("no scheduled automations")
        if once:
            return
    try:
        while True:
            reports = run_due(runtime, now, only=set(only) or None)
            failed = False
            for report in reports:
                if report.ran or once:
                    click.echo(report.line())
                for error in report.errors:
                    click.echo(f"  {error}", err=True)
                failed = failed or bool(report.errors)
            if once:
                sys.exit(1 if failed else 0)
            time.sleep(interval)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        runtime.close()


def register(group) -> None:
    group.add_command(automations)
