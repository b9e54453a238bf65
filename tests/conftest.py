"""Shared fixtures.

Databases: tests that take `db_url` run once on SQLite and once on PostgreSQL. PostgreSQL
comes from LOOM_TEST_POSTGRES_URL (a server URL such as postgresql://postgres@127.0.0.1:5432/postgres);
each test gets a fresh database created there and dropped afterwards. Without the URL the
PostgreSQL runs are skipped, unless LOOM_REQUIRE_POSTGRES=1 (as in CI), where that is a failure.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
CRM_METADATA = ROOT / "metadata"
POSTGRES_URL = os.environ.get("LOOM_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("LOOM_REQUIRE_POSTGRES") == "1"


def _postgres_admin_url():
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("LOOM_REQUIRE_POSTGRES=1 but LOOM_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set LOOM_TEST_POSTGRES_URL)")
    url = make_url(POSTGRES_URL)
    return url.set(drivername="postgresql+psycopg")


def create_postgres_database() -> tuple[str, callable]:
    """A new empty database on the test server: (url, drop)."""
    admin = _postgres_admin_url()
    name = f"loom_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()

    def drop():
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A URL of an empty database, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url, drop = create_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def crm_metadata() -> Path:
    return CRM_METADATA


@pytest.fixture(scope="session")
def chromium():
    """One headless chromium for the whole run. Playwright's sync API keeps an event loop
    running while it is started, so a second `sync_playwright().start()` in the same process
    fails: every browser module shares this one."""
    from browser_helpers import CHROMIUM, browser_available, launch
    if not browser_available():
        pytest.fail(f"LOOM_REQUIRE_BROWSER=1 but {CHROMIUM} or Playwright for Python is missing")
    from playwright.sync_api import sync_playwright
    playwright = sync_playwright().start()
    browser = launch(playwright)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
