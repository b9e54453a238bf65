"""The JSON API: every verb and error, tokens, OpenAPI, and schemathesis against the spec."""
from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                                response_schema_conformance, status_code_conformance)

from loom.security import tokens
from loom.web.openapi import build
from web_helpers import actor, create, make_app, runtime_of, signed_in, post


@pytest.fixture(scope="module")
def app(crm_metadata, tmp_path_factory):
    return make_app(crm_metadata, tmp_path_factory.mktemp("api"))


def token_for(app, username):
    return tokens.create(runtime_of(app), actor(app, username).id, f"{username} test")[1]


@pytest.fixture(scope="module")
def rep(app):
    return {"Authorization": f"Bearer {token_for(app, 'rep1')}", "Accept-Language": "en"}


@pytest.fixture(scope="module")
def mgr(app):
    return {"Authorization": f"Bearer {token_for(app, 'mgr')}", "Accept-Language": "en"}


def test_requests_need_a_valid_token(app):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer loom_nope"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/customer", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_and_disabled_user_stop_working(app):
    from loom.security.actor import Actor
    from loom.security.organization import create_user
    user = create_user(runtime_of(app), "apiuser", password="secret123", roles=["sales_rep"])
    token_id, token = tokens.create(runtime_of(app), user["id"], "x")
    client = app.test_client()
    assert client.get("/api/v1/customer", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    tokens.revoke(runtime_of(app), user["id"], token_id)
    assert client.get("/api/v1/customer", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    _id, token = tokens.create(runtime_of(app), user["id"], "y")
    runtime_of(app).records.update("user", user["id"], {"active": False}, Actor.system(), version=user["version"])
    assert client.get("/api/v1/customer", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_tokens_are_stored_hashed_and_shown_once(app):
    import sqlalchemy as sa
    client = signed_in(app, "rep1")
    html = post(client, "/tokens", {"name": "ERP"}).get_data(as_text=True)
    token = html.split('data-token>')[1].split("<")[0]
    assert token.startswith("loom_")
    table = runtime_of(app).schema.system["api_token"]
    with runtime_of(app).engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.select(table.c.token_hash))]
    assert token not in stored and all(len(h) == 64 for h in stored)
    assert token not in client.get("/tokens").get_data(as_text=True)


def test_create_get_update_delete_restore_history(app, rep):
    client = app.test_client()
    response = client.post("/api/v1/customer", headers=rep, json={"name": "API 客户", "category": "consumer"})
    assert response.status_code == 201
    record = response.get_json()
    assert record["code"].startswith("CUS-") and record["mnemonic"] == "apikh"
    assert response.headers["Location"] == f"/api/v1/customer/{record['id']}" and response.headers["ETag"] == '"1"'
    url = f"/api/v1/customer/{record['id']}"
    assert client.get(url, headers=rep).get_json()["name"] == "API 客户"
    response = client.patch(url, headers={**rep, "If-Match": '"1"'}, json={"phone": "021-55556666"})
    assert response.status_code == 200 and response.get_json()["version"] == 2
    response = client.patch(url, headers=rep, json={"phone": "021-1", "_version": 1})
    assert response.status_code == 409 and response.get_json()["changed_fields"] == ["phone"]
    assert client.patch(url, headers=rep, json={"phone": "x"}).status_code == 422        # no version
    history = client.get(f"{url}/history", headers=rep).get_json()["data"]
    assert [h["action"] for h in history] == ["update", "create"]
    assert client.delete(url, headers=rep).status_code == 403        # reps may not delete customers


def test_delete_and_restore_as_manager(app, mgr):
    client = app.test_client()
    record = client.post("/api/v1/customer", headers=mgr, json={"name": "Delete me", "category": "consumer"}).get_json()
    url = f"/api/v1/customer/{record['id']}"
    assert client.delete(url, headers=mgr).status_code == 204
    assert client.get(url, headers=mgr).status_code == 404
    assert client.post(f"{url}/restore", headers=mgr).status_code == 200
    assert client.get(url, headers=mgr).status_code == 200


def test_validation_errors_are_problem_details_per_field(app, rep):
    response = app.test_client().post("/api/v1/customer", headers=rep, json={"name": "", "email": "nope", "bogus": 1})
    body = response.get_json()
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert set(body["errors"]) == {"name", "email", "bogus"}
    zh = app.test_client().post("/api/v1/customer", headers={**rep, "Accept-Language": "zh"}, json={"name": ""})
    assert "不能为空" in json.dumps(zh.get_json(), ensure_ascii=False)


@pytest.mark.parametrize("body, status", [("{bad json", 400), ("[1, 2]", 400), ('"text"', 400)])
def test_malformed_bodies(app, rep, body, status):
    response = app.test_client().post("/api/v1/customer", headers={**rep, "Content-Type": "application/json"}, data=body)
    assert response.status_code == status and response.get_json()["status"] == status


def test_list_filters_sort_paging_fields_and_search(app, rep):
    client = app.test_client()
    for i in range(5):
        client.post("/api/v1/customer", headers=rep, json={"name": f"列表 {i}", "category": "consumer", "employees": i * 10})
    page = client.get("/api/v1/customer?q=列表&sort=name&limit=2&fields=name,employees", headers=rep).get_json()
    assert [r["name"] for r in page["data"]] == ["列表 0", "列表 1"] and page["has_more"]
    assert set(page["data"][0]) == {"id", "version", "name", "employees", "_title"}
    nxt = client.get(f"/api/v1/customer?q=列表&sort=name&limit=2&after={page['next']}", headers=rep).get_json()
    assert [r["name"] for r in nxt["data"]] == ["列表 2", "列表 3"]
    filtered = client.get("/api/v1/customer?q=列表&employees[gte]=30", headers=rep).get_json()
    assert sorted(r["name"] for r in filtered["data"]) == ["列表 3", "列表 4"]
    where = json.dumps({"field": "employees", "op": "in", "value": [0, 40]})
    assert len(client.get(f"/api/v1/customer?q=列表&where={where}", headers=rep).get_json()["data"]) == 2
    for bad in ("employees[nope]=1", "where={x", "limit=0", "fields=nope", "sort=nope", "after=garbage"):
        assert client.get(f"/api/v1/customer?{bad}", headers=rep).status_code in (400, 422), bad


def test_field_security_and_scopes_hold_in_the_api(app, rep, mgr):
    client = app.test_client()
    theirs = create(app, "mgr", "customer", name="Not rep1's", annual_revenue=100, industry="retail",
                    owner=actor(app, "rep2").id)
    assert client.get(f"/api/v1/customer/{theirs['id']}", headers=rep).status_code == 404
    assert client.get(f"/api/v1/customer/{theirs['id']}", headers=mgr).get_json()["annual_revenue"] == "100.00"
    mine = client.post("/api/v1/customer", headers=rep, json={"name": "Mine", "category": "consumer"}).get_json()
    assert "annual_revenue" not in mine
    assert client.patch(f"/api/v1/customer/{mine['id']}", headers=rep,
                        json={"annual_revenue": 5, "_version": 1}).status_code == 422
    assert client.get("/api/v1/customer?sort=annual_revenue", headers=rep).status_code == 422
    assert client.get("/api/v1/customer?annual_revenue=5", headers=rep).status_code == 422


def test_transitions_and_approvals(app):
    import sqlalchemy as sa
    runtime = runtime_of(app)
    departments = runtime.table("department")
    with runtime.engine.begin() as conn:
        conn.execute(departments.update().where(departments.c.code == "sales").values(manager=actor(app, "mgr").id))
    rep = {"Authorization": f"Bearer {token_for(app, 'rep1')}"}
    mgr = {"Authorization": f"Bearer {token_for(app, 'mgr')}"}
    client = app.test_client()
    account = create(app, "rep1", "customer", name="Deal Co")
    deal = create(app, "rep1", "opportunity", name="API deal", customer=account["id"], stage="initial",
                  amount=1000, expected_close_date="2030-01-01", discount=10)
    url = f"/api/v1/opportunity/{deal['id']}/transitions"
    assert client.post(f"{url}/lose", headers=rep, json={}).status_code == 422          # comment required
    assert client.post(f"{url}/nope", headers=rep, json={}).status_code == 404
    response = client.post(f"{url}/request_discount", headers=rep, json={"comment": "please"})
    assert response.status_code == 200 and response.get_json()["state"] == "pending_approval"
    inbox = client.get("/api/v1/approvals", headers=mgr).get_json()["data"]
    assert len(inbox) == 1
    approval_id = inbox[0]["id"]
    assert client.post(f"/api/v1/approvals/{approval_id}/approve", headers=rep, json={}).status_code == 403
    assert client.post(f"/api/v1/approvals/{approval_id}/approve", headers=mgr, json={"comment": "ok"}).status_code == 200
    assert client.post(f"/api/v1/approvals/{approval_id}/approve", headers=mgr, json={}).status_code == 409
    assert client.get(f"/api/v1/opportunity/{deal['id']}", headers=rep).get_json()["discount_approved"] is True


def test_openapi_document(app, rep):
    spec = app.test_client().get("/api/v1/openapi.json", headers=rep).get_json()
    assert spec["openapi"] == "3.1.0"
    customer = spec["components"]["schemas"]["Customer"]
    assert "annual_revenue" not in customer["properties"]          # rep1 may not read it
    category = spec["components"]["schemas"]["CustomerInput"]["properties"]["category"]
    assert "consumer" in category["enum"]
    assert "name" in spec["components"]["schemas"]["CustomerInput"]["required"]
    assert "/api/v1/opportunity/{id}/transitions/{transition}" in spec["paths"]
    assert signed_in(app, "rep1").get("/api/docs").status_code == 200


# ---- schemathesis: no 5xx, and responses match the document ----------------------------------

def _schema(app):
    with app.test_request_context():
        from flask import g
        g.runtime = runtime_of(app)
        raw = build(runtime_of(app), actor(app, "admin"), "en")
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = app
    return schema


@pytest.fixture(scope="module")
def admin_token(app):
    return token_for(app, "admin")


def test_schemathesis(app, admin_token):
    schema = _schema(app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance]
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=checks)
        test = operation.as_strategy()
        from hypothesis import given
        try:
            given(test)(run)()
        except Exception as e:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}\n{e}")
    assert not failures, "\n\n".join(failures)[:6000]
