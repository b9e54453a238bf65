"""Helpers for web tests: an app on the shipped CRM, users of each role, signed-in clients."""
from __future__ import annotations

import re

from loom.security.organization import actor_for, create_user, find_user
from loom.web import create_app

PASSWORD = "secret123"
USERS = {  # username: (roles, department)
    "admin": (["admin"], None),
    "rep1": (["sales_rep"], "sales_east"),
    "rep2": (["sales_rep"], "sales_north"),
    "mgr": (["sales_manager"], "sales"),
    "agent": (["service_agent"], "service"),
    "fin": (["finance"], "finance"),
}


def make_app(metadata, tmp_path, **config):
    app = create_app({"TESTING": True, "LOOM_METADATA": str(metadata), "LOOM_INSTANCE": str(tmp_path),
                      "LOOM_DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}", "SECRET_KEY": "test", **config})
    runtime = app.extensions["loom"].runtime
    for username, (roles, department) in USERS.items():
        create_user(runtime, username, name=username.capitalize(), password=PASSWORD, roles=roles,
                    department=department)
    return app


def runtime_of(app):
    return app.extensions["loom"].runtime


def actor(app, username):
    runtime = runtime_of(app)
    return actor_for(runtime, find_user(runtime, username))


def csrf(client, url="/login") -> str:
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, username, password=PASSWORD):
    token = csrf(client)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return csrf(client, "/")  # signing in starts a new session, with a new token


def signed_in(app, username, lang="en"):
    """A client signed in as `username`, reading pages in `lang`."""
    client = app.test_client()
    client.token = login(client, username)
    client.post(f"/lang/{lang}", data={"csrf_token": client.token})
    return client


def post(client, url, data=None, **kwargs):
    data = dict(data or {})
    data.setdefault("csrf_token", client.token)
    return client.post(url, data=data, **kwargs)


def create(app, username, obj, **values):
    """A record made as `username`; possible duplicates are confirmed (tests of duplicate
    rules call the service themselves)."""
    return runtime_of(app).records.create(obj, values, actor(app, username), allow_duplicates=True)
