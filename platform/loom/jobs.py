"""One interface for background work: `submit(fn, *args)` and a clock that calls a
function every so often.

    from loom import jobs
    jobs.submit(send_report, report_id)          # later, somewhere else
    scheduler = jobs.Scheduler(tick, interval=60).start()

Where the work runs is configuration, not code (LOOM_QUEUE):

- unset, or "thread" (the embedded default): in a daemon thread of this process. Nothing
  to install or run beside the web process; work still running when the process stops
  is lost (scheduled automations resume where they stopped, see automations/schedule.py).
- "inline": at once, in the caller (tests, the command line).
- "redis://host:6379/0": on an RQ queue (`pip install rq`; the queue is named by
  LOOM_QUEUE_NAME, default "loom"), run by `rq worker loom --url redis://...` processes
  that scale apart from the web processes. RQ imports the function by its dotted name
  in the worker and unpickles the arguments, so submit module-level functions with
  plain arguments (ids, names; never a Runtime or a connection): the worker opens its
  own runtime from the same environment (LOOM_METADATA, LOOM_DATABASE_URL), as
  `loom.automations.schedule.run_due_from_environment` does.

A Celery backend would be another class with `submit` (`app.send_task` by the
function's dotted name); nothing else changes.

The Scheduler is the embedded clock: a daemon thread calling `tick()` every `interval`
seconds (the first call after `delay`), logging and surviving a failing tick. In a
deployment, run the clock once instead of in each web process: cron calling `loom
automations run --once`, or one `loom automations run` process (it loops), with
LOOM_SCHEDULER=off for the web processes. Scheduled automations are safe to run from
several clocks at once (leases and per-record claims), only wasteful.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("loom.jobs")


def _guarded(fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a background failure is logged, never lost silently
        log.exception("background job %s failed", getattr(fn, "__qualname__", fn))
        return None


class ThreadBackend:
    """The embedded default: each job in a daemon thread of this process."""

    name = "thread"

    def submit(self, fn, *args, **kwargs):
        thread = threading.Thread(target=_guarded, args=(fn, args, kwargs), daemon=True,
                                  name=f"loom-job-{getattr(fn, '__name__', 'fn')}")
        thread.start()
        return thread


class InlineBackend:
    """Run the job now, in the caller (tests, the command line)."""

    name = "inline"

    def submit(self, fn, *args, **kwargs):
        return _guarded(fn, args, kwargs)


class RQBackend:
    """Jobs on an RQ queue in Redis, run by `rq worker` processes (an optional dependency)."""

    name = "rq"

    def __init__(self, url: str, queue: str = "loom"):
        try:
            from redis import Redis
            from rq import Queue
        except ImportError as e:  # pragma: no cover - depends on the installation
            raise RuntimeError("LOOM_QUEUE names a Redis queue, but RQ is not installed (pip install rq)") from e
        self.url = url
        self.queue = Queue(queue, connection=Redis.from_url(url))

    def submit(self, fn, *args, **kwargs):
        if getattr(fn, "__name__", "<lambda>") == "<lambda>" or "<locals>" in getattr(fn, "__qualname__", ""):
            raise ValueError("a queued job must be a module-level function (the worker imports it by name)")
        return self.queue.enqueue(fn, *args, **kwargs)


_backends: dict = {}
_lock = threading.Lock()


def backend(spec: str | None = None):
    """The backend LOOM_QUEUE (or `spec`) names; one per name per process."""
    spec = (spec if spec is not None else os.environ.get("LOOM_QUEUE", "")).strip() or "thread"
    queue = os.environ.get("LOOM_QUEUE_NAME") or "loom"
    with _lock:
        key = (spec, queue)
        if key not in _backends:
            if spec == "thread":
                _backends[key] = ThreadBackend()
            elif spec == "inline":
                _backends[key] = InlineBackend()
            elif spec.startswith(("redis://", "rediss://", "unix://")):
                _backends[key] = RQBackend(spec, queue)
            else:
                raise ValueError(f"LOOM_QUEUE: expected thread, inline or a redis:// URL, not {spec!r}")
        return _backends[key]


def submit(fn, *args, **kwargs):
    """Run fn(*args, **kwargs) in the background, wherever LOOM_QUEUE says."""
    return backend().submit(fn, *args, **kwargs)


def queued() -> bool:
    """Whether jobs leave this process (a real queue is configured)."""
    return backend().name not in ("thread", "inline")


class Scheduler:
    """Calls tick() every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, tick, *, interval: float = 60.0, delay: float = 5.0, name: str = "loom-scheduler"):
        self.tick = tick
        self.interval = interval
        self.delay = delay
        self.name = name
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> "Scheduler":
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, daemon=True, name=self.name)
            self.thread.start()
        return self

    def _run(self):
        wait = self.delay
        while not self._stop.wait(wait):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the clock keeps going
                log.exception("%s: a tick failed", self.name)
            self.ticks += 1
            wait = self.interval

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
