"""Background jobs: work that takes longer than a request (a large import) runs apart
from the request that started it, and reports its progress in loom_job.

    job_id = jobs.submit(runtime, actor.id, "import", lambda progress: {...})
    jobs.get(runtime, job_id)   # {"status": "running", "done": 1500, "total": 100000, ...}

The work is a function taking `progress(done, total)` and returning a JSON-able result;
a RecordError it raises becomes the job's error message (in every language of the
application), anything else a generic failure (logged). Progress is written at most
every PROGRESS_EVERY seconds, through the record service's write transactions (so on
SQLite it queues fairly with other writers).

The embedded default runs each job in a daemon thread of the process (`RUNNER`); a
deployment with a queue (RQ, Celery) replaces RUNNER with a function that enqueues the
callable. Since the state is in the database, any web process can show a job started
by another. A job whose process stopped stays "running": restart it by importing again.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import sqlalchemy as sa

from ..i18n import Message, _
from ..records.errors import RecordError

log = logging.getLogger("loom.jobs")
PROGRESS_EVERY = 0.5
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def _thread(fn):
    threading.Thread(target=fn, daemon=True, name="loom-job").start()


RUNNER = _thread


def _table(runtime):
    return runtime.schema.system["job"]


def _now():
    return dt.datetime.now(dt.timezone.utc)


def create(runtime, user_id, kind: str, *, total: int | None = None, result=None) -> int:
    table = _table(runtime)
    with runtime.records.transaction() as conn:
        return conn.execute(table.insert().returning(table.c.id).values(
            user_id=user_id, kind=kind, status=QUEUED, done=0, total=total, result=result,
            created_at=_now())).scalar_one()


def update(runtime, job_id: int, **values) -> None:
    table = _table(runtime)
    with runtime.records.transaction() as conn:
        conn.execute(table.update().where(table.c.id == job_id).values(**values))


def get(runtime, job_id: int) -> dict | None:
    table = _table(runtime)
    with runtime.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == job_id)).mappings().first()
    return dict(row) if row else None


def messages(runtime, message: Message) -> dict:
    """{lang: text} in every language of the application (a job is read later, by anyone)."""
    return {lang: message.text(lang) for lang in runtime.spec.languages}


def submit(runtime, user_id, kind: str, work, *, args: dict | None = None) -> int:
    """Start `work(progress)` in the background; the job's id."""
    job_id = create(runtime, user_id, kind, result={"args": args or {}})

    def run():
        update(runtime, job_id, status=RUNNING)
        last = [0.0]

        def progress(done, total=None):
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                update(runtime, job_id, done=int(done), total=int(total) if total is not None else None)
        try:
            result = work(progress)
        except RecordError as e:
            update(runtime, job_id, status=FAILED, finished_at=_now(),
                   result={"args": args or {}, "error": messages(runtime, e.msg)})
        except Exception:  # noqa: BLE001 - a job must end, whatever happened
            log.exception("job %s (%s) failed", job_id, kind)
            update(runtime, job_id, status=FAILED, finished_at=_now(),
                   result={"args": args or {}, "error": messages(runtime, Message(_("the job failed unexpectedly; "
                                                                                    "the error was logged")))})
        else:
            current = get(runtime, job_id) or {}
            done = current.get("total") or current.get("done") or 0
            update(runtime, job_id, status=DONE, finished_at=_now(), done=done,
                   result={"args": args or {}, **(result or {})})
    RUNNER(run)
    return job_id


def wait(runtime, job_id: int, timeout: float) -> dict | None:
    """The job once finished, or as it is after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = get(runtime, job_id)
        if job is None or job["status"] in (DONE, FAILED) or time.monotonic() >= deadline:
            return job
        time.sleep(0.05)
