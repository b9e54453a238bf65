"""Tables the engine keeps for itself, next to the compiled object tables.

- loom_counter: numbering counters, one row per (field, rendered prefix).
- loom_history: every change to every record (the audit trail).
- loom_credential: password hashes, apart from the user record so no record path can read them.
- loom_saved_search: personal search schemes, saved list views.
- loom_approval, loom_approval_task: approval flows and each approver's decision.
- loom_share: records shared with users or departments; loom_login: the sign-in log.
- loom_api_token: personal API tokens (only a hash is kept).
- loom_job: background work (imports): progress and the final report.
- loom_automation_run, loom_automation_done: when each scheduled automation last ran, and
  the records it acted on in the current period (so a re-run never acts twice).
- loom_notification: in-app notifications (the bell), one row per recipient.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Column, ForeignKey, Index, MetaData, Table

from .types import UTCDateTime


def define(metadata: MetaData, *, user_table: str) -> dict:
    tables = {}
    tables["counter"] = Table(
        "loom_counter", metadata,
        Column("key", sa.String(400), primary_key=True),   # object.field|rendered prefix
        Column("value", sa.BigInteger, nullable=False),
    )
    tables["history"] = Table(
        "loom_history", metadata,
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("object", sa.String(63), nullable=False),
        Column("record_id", sa.Integer, nullable=False),
        Column("action", sa.String(32), nullable=False),    # create update delete restore transition ...
        Column("at", UTCDateTime(), nullable=False),
        Column("user_id", sa.Integer, nullable=True),        # no foreign key: history outlives users
        Column("changes", sa.JSON, nullable=True),           # {field: [old, new]}
        Column("comment", sa.Text, nullable=True),
        Column("version", sa.Integer, nullable=True),        # the record's version after the change
        Index(None, "object", "record_id", "id"),
        Index(None, "user_id", "at"),
        Index(None, "at"),
    )
    tables["credential"] = Table(
        "loom_credential", metadata,
        Column("user_id", sa.Integer, ForeignKey(f"{user_table}.id", ondelete="CASCADE", use_alter=True),
               primary_key=True),
        Column("password_hash", sa.String(255), nullable=False),
        Column("changed_at", UTCDateTime(), nullable=False),
    )
    tables["saved_search"] = Table(
        "loom_saved_search", metadata,                     # personal search schemes (个人检索方案)
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("user_id", sa.Integer, ForeignKey(f"{user_table}.id", ondelete="CASCADE", use_alter=True), nullable=False),
        Column("object", sa.String(63), nullable=False),
        Column("name", sa.String(100), nullable=False),
        Column("query", sa.Text, nullable=False),            # the list view's query string
        Index(None, "user_id", "object"),
    )
    tables["share"] = Table(
        "loom_share", metadata,                            # 共享: a record shared with a user or a department
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("object", sa.String(63), nullable=False),
        Column("record_id", sa.Integer, nullable=False),
        Column("user_id", sa.Integer, ForeignKey(f"{user_table}.id", ondelete="CASCADE", use_alter=True), nullable=True),
        Column("department_id", sa.Integer, nullable=True),
        Column("access", sa.String(8), nullable=False),      # read | edit
        Column("created_by", sa.Integer, nullable=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Index(None, "object", "user_id", "record_id"),
        Index(None, "object", "department_id", "record_id"),
        Index(None, "object", "record_id"),
    )
    tables["login"] = Table(
        "loom_login", metadata,                            # every sign-in attempt
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("at", UTCDateTime(), nullable=False),
        Column("username", sa.String(100), nullable=False),
        Column("user_id", sa.Integer, nullable=True),
        Column("address", sa.String(64), nullable=True),
        Column("success", sa.Boolean(create_constraint=False), nullable=False),
        Column("reason", sa.String(32), nullable=True),      # password, unknown, disabled, locked
        Index(None, "username", "at"),
        Index(None, "address", "at"),
        Index(None, "at"),
    )
    tables["api_token"] = Table(
        "loom_api_token", metadata,                        # personal API tokens, stored hashed
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("user_id", sa.Integer, ForeignKey(f"{user_table}.id", ondelete="CASCADE", use_alter=True), nullable=False),
        Column("name", sa.String(100), nullable=False),
        Column("prefix", sa.String(16), nullable=False),     # shown to tell tokens apart
        Column("token_hash", sa.String(64), nullable=False, unique=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("last_used_at", UTCDateTime(), nullable=True),
        Column("revoked_at", UTCDateTime(), nullable=True),
        Index(None, "user_id"),
    )
    tables["approval"] = Table(
        "loom_approval", metadata,                         # one approval flow in flight or finished
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("object", sa.String(63), nullable=False),
        Column("record_id", sa.Integer, nullable=False),
        Column("flow", sa.String(63), nullable=False),
        Column("transition", sa.String(63), nullable=False),
        Column("from_state", sa.String(64), nullable=True),  # where a recall returns the record
        Column("submitter_id", sa.Integer, nullable=True),
        Column("status", sa.String(16), nullable=False),     # pending approved rejected recalled
        Column("step", sa.Integer, nullable=False),          # index of the current step
        Column("definition", sa.JSON, nullable=False),       # the steps and outcomes it started with
        Column("comment", sa.Text, nullable=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("finished_at", UTCDateTime(), nullable=True),
        Column("version", sa.Integer, nullable=False),
        Index(None, "object", "record_id"),
        Index(None, "submitter_id", "status"),
    )
    tables["approval_task"] = Table(
        "loom_approval_task", metadata,                    # one approver's part in one step
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("approval_id", sa.Integer, ForeignKey("loom_approval.id", ondelete="CASCADE"), nullable=False),
        Column("step", sa.Integer, nullable=False),
        Column("user_id", sa.Integer, nullable=True),        # None for a skipped step's marker
        Column("decision", sa.String(16), nullable=False),   # pending approved rejected skipped cancelled
        Column("comment", sa.Text, nullable=True),
        Column("decided_at", UTCDateTime(), nullable=True),
        Index(None, "user_id", "decision"),
        Index(None, "approval_id", "step"),
    )
    tables["job"] = Table(
        "loom_job", metadata,                              # background work and its progress
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("user_id", sa.Integer, nullable=True),        # who started it (no foreign key: kept as a log)
        Column("kind", sa.String(32), nullable=False),       # import, import-check, ...
        Column("status", sa.String(16), nullable=False),     # queued running done failed
        Column("done", sa.Integer, nullable=False),
        Column("total", sa.Integer, nullable=True),
        Column("result", sa.JSON, nullable=True),            # the arguments, then the report
        Column("created_at", UTCDateTime(), nullable=False),
        Column("finished_at", UTCDateTime(), nullable=True),
        Index(None, "user_id", "created_at"),
    )
    tables["automation_run"] = Table(
        "loom_automation_run", metadata,                   # one row per scheduled automation
        Column("automation", sa.String(63), primary_key=True),
        Column("period", sa.String(32), nullable=True),      # the last period finished (local start, ISO)
        Column("running_period", sa.String(32), nullable=True),
        Column("lease_until", UTCDateTime(), nullable=True),  # a runner holds the run until then
        Column("started_at", UTCDateTime(), nullable=True),
        Column("finished_at", UTCDateTime(), nullable=True),
        Column("matched", sa.Integer, nullable=True),
        Column("acted", sa.Integer, nullable=True),
        Column("failed", sa.Integer, nullable=True),
        Column("error", sa.Text, nullable=True),
    )
    tables["automation_done"] = Table(
        "loom_automation_done", metadata,                  # a record acted on in a period
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("automation", sa.String(63), nullable=False),
        Column("period", sa.String(32), nullable=False),
        Column("record_id", sa.Integer, nullable=False),
        Column("at", UTCDateTime(), nullable=False),
        Index(None, "automation", "period", "record_id", unique=True),
    )
    tables["notification"] = Table(
        "loom_notification", metadata,                     # in-app notifications (通知)
        Column("id", sa.Integer, primary_key=True, autoincrement=True),
        Column("user_id", sa.Integer, ForeignKey(f"{user_table}.id", ondelete="CASCADE", use_alter=True), nullable=False),
        Column("object", sa.String(63), nullable=True),
        Column("record_id", sa.Integer, nullable=True),
        Column("message", sa.Text, nullable=False),          # in the recipient's language
        Column("texts", sa.JSON, nullable=True),             # {lang: text}, shown in the reader's language
        Column("source", sa.String(100), nullable=True),     # automation:NAME, approval, ...
        Column("created_at", UTCDateTime(), nullable=False),
        Column("read_at", UTCDateTime(), nullable=True),
        Index(None, "user_id", "read_at", "id"),
        Index(None, "user_id", "id"),
    )
    return tables
