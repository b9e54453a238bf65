"""The application factory.

    app = create_app()                      # configuration from the environment
    app = create_app({"LOOM_DATABASE_URL": "sqlite:///x.db"})

Configuration keys (environment variables of the same name win over defaults, explicit
arguments over both): LOOM_METADATA, LOOM_OVERLAY, LOOM_DATABASE_URL, LOOM_INSTANCE,
SECRET_KEY (default: a key generated once into the instance folder), LOOM_DEV (reload
metadata when files change and show its errors as a page), LOOM_SECURE_COOKIES,
LOOM_SCHEDULER ("off": no scheduler thread for scheduled automations; see loom/jobs.py).
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import time
from pathlib import Path

from flask import Flask, g, request
from flask_htmx import HTMX
from flask_wtf.csrf import CSRFProtect

from ..metadata import MetadataError
from ..metadata.sources import fingerprint
from ..runtime import Runtime
from . import admin, api, auth, developer, duplicates_views, errors, records, schemes, shell, workflow_views
from ..transfer import web as transfer_web
from ..reports import web as reports_web
from ..automations import web as automations_web
from .themes import ThemeLoader

csrf = CSRFProtect()
htmx = HTMX()


def _secret_key(instance: Path) -> str:
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


class RuntimeHolder:
    """The app's Runtime; in development, rebuilt when metadata files change. While the
    metadata is invalid, `problems` holds its errors and every page shows them."""

    def __init__(self, app: Flask):
        self.app = app
        self.lock = threading.Lock()
        self.runtime: Runtime | None = None
        self.problems: list = []
        self.key = None
        self.checked = 0.0
        self.load()

    def _fingerprint(self):
        cfg = self.app.config
        return fingerprint(Path(cfg["LOOM_METADATA"]), cfg.get("LOOM_OVERLAY") or None)

    def load(self):
        cfg = self.app.config
        self.key = self._fingerprint()
        try:
            runtime = Runtime.open(cfg["LOOM_METADATA"], cfg["LOOM_DATABASE_URL"], overlay=cfg.get("LOOM_OVERLAY") or None,
                                   cache=not cfg.get("LOOM_DEV"))
        except MetadataError as e:
            self.problems = e.problems
            return
        runtime.setup()
        old, self.runtime, self.problems = self.runtime, runtime, []
        if old is not None:
            old.close()

    def current(self) -> Runtime | None:
        if self.app.config.get("LOOM_DEV") and time.monotonic() - self.checked > 1.0:
            with self.lock:
                self.checked = time.monotonic()
                if self._fingerprint() != self.key:
                    self.load()
        return self.runtime


def create_app(config: dict | None = None) -> Flask:
    root = Path(__file__).resolve().parents[3]  # the checkout: themes/ lives next to platform/
    instance = Path(os.environ.get("LOOM_INSTANCE") or (config or {}).get("LOOM_INSTANCE") or "instance").resolve()
    app = Flask("loom", static_folder=None, instance_path=str(instance))
    app.config.update(
        LOOM_METADATA=os.environ.get("LOOM_METADATA", "metadata"),
        LOOM_OVERLAY=os.environ.get("LOOM_OVERLAY"),
        LOOM_DATABASE_URL=os.environ.get("LOOM_DATABASE_URL") or f"sqlite:///{instance / 'loom.db'}",
        LOOM_DEV=os.environ.get("LOOM_DEV") == "1",
        LOOM_THEMES=os.environ.get("LOOM_THEMES") or str(root / "themes"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("LOOM_SECURE_COOKIES") == "1",
        SESSION_COOKIE_NAME="loom_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=int(os.environ.get("LOOM_SESSION_HOURS", "12"))),
        LOOM_IDLE_MINUTES=int(os.environ.get("LOOM_IDLE_MINUTES", "120")),
        WTF_CSRF_TIME_LIMIT=None,       # a page left open all day still submits
        WTF_CSRF_SSL_STRICT=False,      # same-origin is enforced by SameSite cookies and the token
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
    )
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):  # only now: a configured key must not create files
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or _secret_key(instance)
    app.jinja_loader = ThemeLoader(app)
    csrf.init_app(app)
    htmx.init_app(app)
    app.extensions["loom"] = RuntimeHolder(app)
    shell.init_app(app)
    errors.init_app(app)
    workflow_views.init_app(app)
    duplicates_views.init_app(app)
    automations_web.init_app(app)  # notifications, the bell, the scheduler thread (LOOM_SCHEDULER=off: none)
    csrf.exempt(api.bp)  # token-authenticated, no cookies: nothing to forge
    for blueprint in (auth.bp, records.bp, schemes.bp, admin.bp, api.bp, developer.bp, transfer_web.bp, reports_web.bp):
        app.register_blueprint(blueprint)

    def _runtime():
        holder = app.extensions["loom"]
        g.runtime = holder.current()
        if g.runtime is None and request.endpoint != "shell.static":
            return errors.metadata_problems(holder.problems)
        return None

    # in this order: the application, who is asking, in which language, and may they
    for step in (_runtime, auth.load_actor, shell.set_language, auth.require_login):
        app.before_request(step)

    @app.after_request
    def _headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                    "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
        response.vary.add("HX-Request")
        return response

    return app
