"""Automations (METADATA.md section 9) and in-app notifications.

- engine.py: event automations, run inside the write that triggers them (`runtime.automations`).
- schedule.py: scheduled automations (`run_due`), once per period, idempotent.
- notifications.py: the notification API (`send`, `unread_count`, ...).
- web.py: the notification pages, the bell's count, the web process's scheduler thread.
- commands.py: `loom automations list|run`.
Background work goes through loom/jobs.py.
"""
from __future__ import annotations

from .schedule import run_due

__all__ = ["run_due"]
