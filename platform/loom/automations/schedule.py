"""Scheduled automations (`on: schedule`, `every: 1d`): find the records whose `when`
holds, and act on each once per period.

    reports = run_due(runtime)               # what the scheduler and `loom automations run` call
    reports = run_due(runtime, now=...)      # as if it were then (tests, catching up)

Periods: `every` cuts time into periods aligned to local midnight in the application's
time zone (1d: each day; 6h: 00:00, 06:00, 12:00, 18:00; 30m: each half hour). An
automation is due when the last period it finished is not the current one; calling
run_due more often than `every` does nothing more.

Each run scans the object with `when` compiled to SQL, in batches of ids (keyset paging,
so a large table is never loaded at once), and acts on each record in a transaction of
its own that first claims the record for the period in loom_automation_done (unique on
automation, period, record). So:
- a crash mid-run loses nothing and repeats nothing: the records acted on are claimed in
  the same transaction as the actions, the next run of the same period skips them and
  goes on with the rest;
- two schedulers at once (several web processes, or cron next to them) cannot act twice
  on a record, and a lease in loom_automation_run keeps the second one from even
  scanning while the first is alive (a lease not renewed for LEASE expires, so a
  crashed runner's period is taken over);
- a record whose action fails (a ValidationError) is logged, counted as failed and left
  unclaimed; the other records go on.
When a period is finished its claims of older periods are deleted: the table holds one
period's rows per automation.

Each record is re-read and `when` checked again in Python right before acting (it may
have changed since the scan). The actions run as the system (Actor.system()): created
records have no owner unless the values give one, `$current_user` is empty.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..security.actor import Actor

log = logging.getLogger("loom.automations")
UTC = dt.timezone.utc
BATCH = 500
LEASE = dt.timedelta(minutes=5)
_EPOCH = dt.datetime(1970, 1, 1)
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class _Skip(Exception):
    """The record no longer matches: roll back its claim."""


@dataclass
class RunReport:
    automation: str
    period: str
    ran: bool = False
    reason: str = ""            # why it did not run: done (this period), busy (another runner), error
    matched: int = 0
    acted: int = 0
    failed: int = 0
    errors: list = field(default_factory=list)

    def line(self) -> str:
        if not self.ran:
            return f"{self.automation}: period {self.period} {self.reason}"
        return (f"{self.automation}: period {self.period}, {self.matched} matched, {self.acted} acted on, "
                f"{self.failed} failed")


def interval(every: str) -> dt.timedelta:
    """'30m', '6h', '1d' as a timedelta."""
    return dt.timedelta(seconds=int(every[:-1]) * _UNITS[every[-1]])


def period_of(now: dt.datetime, every: str, tz) -> str:
    """The start of the period `now` is in (local time, ISO, to the minute)."""
    local = now.astimezone(tz).replace(tzinfo=None)
    step = interval(every).total_seconds()
    start = _EPOCH + dt.timedelta(seconds=math.floor((local - _EPOCH).total_seconds() / step) * step)
    return start.isoformat(timespec="minutes")


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _claim_run(runtime, name: str, period: str) -> str | None:
    """Take the run of this period; None when it is done or another runner holds it."""
    runs = runtime.schema.system["automation_run"]
    wall = _now()
    try:
        with runtime.records.transaction() as conn:
            q = sa.select(runs).where(runs.c.automation == name)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).mappings().first()
            if row is None:
                conn.execute(runs.insert().values(automation=name, running_period=period, started_at=wall,
                                                  lease_until=wall + LEASE))
                return "new"
            if row["period"] == period:
                return None
            lease = row["lease_until"]
            if lease is not None and lease > wall and row["running_period"] == period:
                return "busy"
            values = {"running_period": period, "lease_until": wall + LEASE, "error": None}
            if row["running_period"] != period:
                values["started_at"] = wall
            conn.execute(runs.update().where(runs.c.automation == name).values(**values))
            return "resumed" if row["running_period"] == period else "new"
    except IntegrityError:  # another runner inserted the row first
        return "busy"


def _renew(runtime, name: str) -> None:
    runs = runtime.schema.system["automation_run"]
    with runtime.records.transaction() as conn:
        conn.execute(runs.update().where(runs.c.automation == name).values(lease_until=_now() + LEASE))


def _release(runtime, name: str, **values) -> None:
    runs = runtime.schema.system["automation_run"]
    with runtime.records.transaction() as conn:
        conn.execute(runs.update().where(runs.c.automation == name).values(lease_until=None, **values))


def run_automation(runtime, automation, now: dt.datetime | None = None, *, batch_size: int = BATCH) -> RunReport:
    """Run one scheduled automation for the current period, if it is due."""
    now = now or _now()
    engine = runtime.automations
    period = period_of(now, automation.every or "1d", engine.timezone)
    report = RunReport(automation.name, period)
    claim = _claim_run(runtime, automation.name, period)
    if claim is None:
        report.reason = "already done"
        return report
    if claim == "busy":
        report.reason = "running elsewhere"
        return report
    report.ran = True
    svc = runtime.records
    obj = runtime.spec.objects[automation.object]
    table = runtime.table(obj)
    done = runtime.schema.system["automation_done"]
    system = Actor.system()
    finished = released = False
    try:
        last_id = 0
        while True:
            with svc.reading() as conn:
                ctx = replace(svc.context(system, conn), now=now)
                q = sa.select(table.c.id).where(table.c.deleted_at.is_(None), table.c.id > last_id)
                if automation.when is not None:
                    q = q.where(runtime.conditions.sql(obj, automation.when, ctx))
                claimed = sa.select(done.c.id).where(done.c.automation == automation.name, done.c.period == period,
                                                     done.c.record_id == table.c.id)
                q = q.where(~claimed.exists()).order_by(table.c.id).limit(batch_size)
                ids = list(conn.execute(q).scalars())
            if not ids:
                break
            report.matched += len(ids)
            for id_ in ids:
                _one(runtime, automation, obj, id_, period, now, system, report)
            last_id = ids[-1]
            _renew(runtime, automation.name)
        finished = True
    except Exception as e:  # noqa: BLE001 - the run stops; the period stays open for the next run
        log.exception("scheduled automation %s failed (period %s)", automation.name, period)
        report.errors.append(str(e))
        released = True
        _release(runtime, automation.name, error=str(e)[:2000], matched=report.matched, acted=report.acted,
                 failed=report.failed)
        return report
    finally:
        if not finished and not released:  # interrupted (KeyboardInterrupt, SystemExit): let another resume
            try:
                _release(runtime, automation.name)
            except Exception:  # noqa: BLE001
                log.exception("could not release the run of %s", automation.name)
    runs = runtime.schema.system["automation_run"]
    with svc.transaction() as conn:
        conn.execute(runs.update().where(runs.c.automation == automation.name).values(
            period=period, running_period=None, lease_until=None, finished_at=_now(), matched=report.matched,
            acted=report.acted, failed=report.failed, error=None))
        conn.execute(done.delete().where(done.c.automation == automation.name, done.c.period != period))
    return report


def _one(runtime, automation, obj, id_, period, now, system, report) -> None:
    """Act on one record in a transaction of its own that claims it for the period."""
    svc = runtime.records
    done = runtime.schema.system["automation_done"]
    claimed = False
    try:
        with svc.transaction() as conn:
            conn.execute(done.insert().values(automation=automation.name, period=period, record_id=id_, at=_now()))
            claimed = True
            record = svc._row(conn, obj, id_, lock=True)
            if record is None or record.get("deleted_at") is not None:
                raise _Skip
            if automation.when is not None:
                ctx = replace(svc.context(system, conn), now=now)
                if not runtime.conditions.matches(obj, automation.when, record, ctx):
                    raise _Skip
            runtime.automations.run(automation, conn, obj, record, system, event="schedule")
    except _Skip:
        report.matched -= 1
    except IntegrityError as e:
        if claimed:
            _failed(automation, obj, id_, e, report)
        else:  # claimed by another runner meanwhile
            report.matched -= 1
    except Exception as e:  # noqa: BLE001 - one record's failure does not stop the others
        _failed(automation, obj, id_, e, report)
    else:
        report.acted += 1


def _failed(automation, obj, id_, e, report) -> None:
    from ..records.errors import RecordError
    report.failed += 1
    message = str(e) if isinstance(e, RecordError) else f"{type(e).__name__}: {e}"
    report.errors.append(f"{obj.name} #{id_}: {message}")
    if isinstance(e, RecordError):
        log.error("scheduled automation %s failed on %s #%s: %s", automation.name, obj.name, id_, message)
    else:
        log.error("scheduled automation %s failed on %s #%s", automation.name, obj.name, id_, exc_info=e)


def run_due(runtime, now: dt.datetime | None = None, *, only=None, batch_size: int = BATCH) -> list[RunReport]:
    """Run every scheduled automation that is due (or those named in `only`)."""
    now = now or _now()
    reports = []
    for automation in runtime.automations.scheduled:
        if only and automation.name not in only:
            continue
        reports.append(run_automation(runtime, automation, now, batch_size=batch_size))
    return reports


def last_runs(runtime) -> dict:
    """{automation: its loom_automation_run row} for `loom automations list`."""
    runs = runtime.schema.system["automation_run"]
    with runtime.records.reading() as conn:
        return {r["automation"]: dict(r) for r in conn.execute(sa.select(runs)).mappings()}


# ---- running from a queue ------------------------------------------------------------------

_runtime = None


def run_due_from_environment() -> list[str]:
    """A queue worker's entry point (RQ): open the runtime from LOOM_METADATA and
    LOOM_DATABASE_URL once per worker process, then run what is due."""
    global _runtime
    if _runtime is None:
        from ..runtime import Runtime
        _runtime = Runtime.open()
    return [r.line() for r in run_due(_runtime)]
