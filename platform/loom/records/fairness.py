"""Writers take turns on SQLite.

SQLite has one write lock per database, and a writer that finds it taken sleeps and polls
(the busy handler: up to 100 ms between tries). A loop of short write transactions, such
as an import committing batch after batch, takes the lock back within microseconds of
releasing it, so a waiting writer can sleep through every gap and wait for the whole
import. Within one process the service therefore queues its write transactions on a
first-come, first-served lock: the import's next batch waits behind a single create that
arrived during the previous batch. (PostgreSQL queues row locks itself.)
"""
from __future__ import annotations

import collections
import contextlib
import threading
import time

_LOCKS: dict = {}
_GUARD = threading.Lock()


class FairLock:
    """A re-entrant lock granted in arrival order (threading.Lock lets the thread that
    releases it take it straight back)."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque = collections.deque()
        self._owner = None
        self._depth = 0

    @contextlib.contextmanager
    def turn(self, timeout: float = 30.0):
        """Wait for our turn. After `timeout` (SQLite's busy timeout) go ahead anyway and
        leave it to SQLite: a writer stuck behind a lost turn fails as it did without the
        queue ("database is locked") instead of waiting for ever."""
        owned = self._acquire(timeout)
        try:
            yield
        finally:
            if owned:
                self._release()

    def _acquire(self, timeout: float) -> bool:
        me = threading.get_ident()
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._owner == me:   # a nested write of the same thread
                self._depth += 1
                return True
            ticket = object()
            self._queue.append(ticket)
            while self._owner is not None or self._queue[0] is not ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._queue.remove(ticket)
                    self._cond.notify_all()   # the head of the queue may have changed
                    return False
                self._cond.wait(left)
            self._queue.popleft()
            self._owner, self._depth = me, 1
            return True

    def _release(self):
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


def writer_lock(engine) -> FairLock | None:
    """The queue for write transactions on this SQLite database (None elsewhere)."""
    if engine.dialect.name != "sqlite":
        return None
    key = str(engine.url)
    with _GUARD:
        if key not in _LOCKS:
            _LOCKS[key] = FairLock()
        return _LOCKS[key]
