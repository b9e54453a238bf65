"""The compiled application: what the record service, pages, API and CLI share.

    runtime = Runtime.open()            # metadata and database from the environment
    runtime.migrate()                   # safe schema changes

Configuration comes from arguments or the environment: LOOM_METADATA (default
./metadata), LOOM_OVERLAY, LOOM_DATABASE_URL (default a SQLite file under
LOOM_INSTANCE, ./instance), LOOM_CACHE_DIR (default the instance folder).
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from .compiler.conditions import ConditionCompiler
from .compiler.tables import Schema, compile_schema
from .metadata import AppSpec, load_spec
from .storage import sync
from .storage.database import create_engine, default_url


def instance_path() -> Path:
    return Path(os.environ.get("LOOM_INSTANCE") or "instance")


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("LOOM_DATABASE_URL") or default_url(instance_path())


class Runtime:
    def __init__(self, spec: AppSpec, engine):
        self.spec = spec
        self.engine = engine
        self.schema: Schema = compile_schema(spec)
        self.conditions = ConditionCompiler(spec, self.schema, engine.dialect.name)

    @classmethod
    def open(cls, metadata=None, database: str | None = None, *, overlay=None, cache: bool = True,
             migrate: bool = False) -> "Runtime":
        """Load (or read from the cache) the metadata and connect to the database.
        Raises MetadataError when the metadata is invalid."""
        cache_dir = (os.environ.get("LOOM_CACHE_DIR") or instance_path() / "cache") if cache else None
        spec = load_spec(metadata, overlay=overlay, cache_dir=cache_dir)
        runtime = cls(spec, create_engine(database_url(database)))
        if migrate:
            runtime.migrate()
        return runtime

    def plan(self) -> sync.Plan:
        with self.engine.connect() as conn:
            return sync.plan(conn, self.spec, self.schema)

    def migrate(self, include_unsafe: bool = False) -> sync.Plan:
        return sync.apply(self.engine, self.spec, self.schema, include_unsafe=include_unsafe)

    @cached_property
    def records(self):
        """The record service: the one way records change."""
        from .records.service import RecordService
        service = RecordService(self)
        self.automations.attach(service)  # automations act inside the writes that trigger them
        return service

    @cached_property
    def workflows(self):
        """Lifecycles and approval flows."""
        from .workflow.engine import Workflows
        return Workflows(self)

    @cached_property
    def automations(self):
        """Event and scheduled automations (listening to the record service)."""
        from .automations.engine import Automations
        return Automations(self)

    def setup(self, include_unsafe: bool = False) -> sync.Plan:
        """Migrate, then create the departments roles.yaml seeds."""
        from .security.organization import seed_departments
        plan = self.migrate(include_unsafe=include_unsafe)
        seed_departments(self)
        return plan

    def table(self, obj):
        return self.schema.table(obj)

    def close(self):
        self.engine.dispose()

    @cached_property
    def dialect(self) -> str:
        return self.engine.dialect.name
