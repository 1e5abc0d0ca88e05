"""/api/admin/tokens and `b2c admin tokens`, on an API process of this module's own.

The stack's database is shared, so every test works with tokens scoped to tenants of
its own; an admin of every tenant is used only where a test needs one.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from b2c_monitoring.storage.tokens import TokenStore
from tests.api_process import cli
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration


def create(
    api: httpx.Client, admin: str, role: str, tenants: list[str] | None, name: str = "made"
) -> httpx.Response:
    return api.post(
        "/api/admin/tokens",
        json={"name": name, "role": role, "tenants": tenants},
        headers=bearer(admin),
    )


def listed(api: httpx.Client, admin: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/admin/tokens", params=params, headers=bearer(admin))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_an_admin_creates_lists_and_revokes_a_token_whose_secret_is_shown_once(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant], name="seed-admin")
    created = create(api, admin, "viewer", [tenant], name="ci-reader")
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("b2c_")
    assert (body["name"], body["role"], body["tenants"], body["revokedAt"]) == (
        "ci-reader",
        "viewer",
        [tenant],
        None,
    )
    assert api.get("/api/admin/jobs", headers=bearer(secret)).status_code == 200

    listing = api.get("/api/admin/tokens", headers=bearer(admin))
    assert listing.status_code == 200
    mine = [t for t in listing.json()["items"] if t["id"] == body["id"]]
    assert len(mine) == 1
    assert set(mine[0]) == {
        "id",
        "name",
        "role",
        "tenants",
        "createdAt",
        "revokedAt",
        "lastUsedAt",
        "expiresAt",
        "services",
        "state",
    }
    assert mine[0]["lastUsedAt"] is not None
    assert secret not in listing.text
    assert "hash" not in listing.text.lower()

    revoked = api.delete(f"/api/admin/tokens/{body['id']}", headers=bearer(admin))
    assert revoked.status_code == 200
    assert revoked.json()["revokedAt"] is not None
    assert "secret" not in revoked.json()
    refused = api.get("/api/admin/jobs", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"

    assert body["id"] not in [t["id"] for t in listed(api, admin)]
    assert body["id"] in [t["id"] for t in listed(api, admin, includeRevoked="true")]
    # revoking again changes nothing
    again = api.delete(f"/api/admin/tokens/{body['id']}", headers=bearer(admin))
    assert again.json()["revokedAt"] == revoked.json()["revokedAt"]

    # who made and who revoked it is in the audit log, never its secret
    audit = api.get(
        "/api/admin/audit",
        params={"action": ["token.create", "token.revoke"], "tenant": tenant},
        headers=bearer(admin),
    )
    assert audit.status_code == 200, audit.text
    entries = [e for e in audit.json()["items"] if e["target"] == body["id"]]
    assert [e["action"] for e in entries] == ["token.revoke", "token.revoke", "token.create"]
    assert {e["actorName"] for e in entries} == {"seed-admin"}
    assert entries[-1]["details"] == {"name": "ci-reader", "role": "viewer", "tenants": tenant}
    assert secret not in audit.text


def test_a_scoped_admin_cannot_create_a_token_wider_than_itself(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    other = tenant + "-b"
    admin = token(pool, Role.ADMIN, [tenant])
    for tenants in ([tenant, other], [other], None):
        response = create(api, admin, "viewer", tenants)
        assert response.status_code == 403, tenants
        assert response.headers["content-type"] == "application/problem+json"
    assert f"cannot create a token for {other}" in create(api, admin, "admin", [other]).text
    # within its own tenants it may create any role, admin included
    assert create(api, admin, "admin", [tenant]).status_code == 201
    wide = token(pool, Role.ADMIN, [tenant, other])
    assert create(api, wide, "operator", [other]).status_code == 201
    assert create(api, wide, "operator", [other, tenant, tenant]).json()["tenants"] == sorted(
        [tenant, other]
    )


def test_a_scoped_admin_sees_and_revokes_only_tokens_within_its_tenants(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    a, b = tenant, tenant + "-b"
    store = TokenStore(pool)
    now = datetime.now(UTC)
    only_a, _ = store.create("only-a", Role.VIEWER, [a], now)
    only_b, b_secret = store.create("only-b", Role.VIEWER, [b], now)
    both, _ = store.create("a-and-b", Role.VIEWER, [a, b], now)
    everyone, _ = store.create("every-tenant", Role.VIEWER, None, now)

    admin_a = token(pool, Role.ADMIN, [a])
    seen_by_a = {t["id"] for t in listed(api, admin_a)}
    assert only_a.id in seen_by_a
    assert not {only_b.id, both.id, everyone.id} & seen_by_a

    admin_ab = token(pool, Role.ADMIN, [a, b])
    seen_by_ab = {t["id"] for t in listed(api, admin_ab)}
    assert {only_a.id, only_b.id, both.id} <= seen_by_ab
    assert everyone.id not in seen_by_ab

    admin_all = token(pool, Role.ADMIN, None)
    assert {only_a.id, only_b.id, both.id, everyone.id} <= {t["id"] for t in listed(api, admin_all)}

    outside = api.delete(f"/api/admin/tokens/{only_b.id}", headers=bearer(admin_a))
    absent = api.delete(f"/api/admin/tokens/{uuid.uuid4()}", headers=bearer(admin_a))
    assert outside.status_code == absent.status_code == 404
    assert outside.json()["type"] == absent.json()["type"]
    assert api.get("/api/admin/jobs", headers=bearer(b_secret)).status_code == 200
    assert api.delete("/api/admin/tokens/not-a-uuid", headers=bearer(admin_a)).status_code == 404


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_non_admins_get_403_on_every_token_endpoint(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, role: Role
) -> None:
    secret = token(pool, role, [tenant])
    victim, _ = TokenStore(pool).create("victim", Role.VIEWER, [tenant], datetime.now(UTC))
    responses = [
        create(api, secret, "viewer", [tenant]),
        api.get("/api/admin/tokens", headers=bearer(secret)),
        api.delete(f"/api/admin/tokens/{victim.id}", headers=bearer(secret)),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403]
    assert all(r.headers["content-type"] == "application/problem+json" for r in responses)


def test_without_a_valid_token_every_token_endpoint_answers_401(api: httpx.Client) -> None:
    for headers in ({}, bearer("b2c_not-a-token")):
        responses = [
            api.post(
                "/api/admin/tokens",
                json={"name": "x", "role": "viewer", "tenants": ["t"]},
                headers=headers,
            ),
            api.get("/api/admin/tokens", headers=headers),
            api.delete(f"/api/admin/tokens/{uuid.uuid4()}", headers=headers),
        ]
        assert [r.status_code for r in responses] == [401, 401, 401]


def test_a_token_request_that_does_not_say_what_it_wants_is_a_422(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])
    for body in (
        {"name": "x", "role": "viewer"},  # every tenant must be asked for, with null
        {"name": "x", "role": "viewer", "tenants": []},
        {"name": "x", "role": "root", "tenants": [tenant]},
        {"name": "", "role": "viewer", "tenants": [tenant]},
        {"name": "x", "role": "viewer", "tenants": [""]},
    ):
        response = api.post("/api/admin/tokens", json=body, headers=bearer(admin))
        assert response.status_code == 422, body


def test_the_openapi_document_describes_the_token_endpoints(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    assert set(doc["paths"]["/api/admin/tokens"]) == {"get", "post"}
    assert set(doc["paths"]["/api/admin/tokens"]["post"]["responses"]) >= {"201", "403", "422"}
    assert "delete" in doc["paths"]["/api/admin/tokens/{token_id}"]
    assert "secret" in doc["components"]["schemas"]["TokenCreated"]["properties"]
    assert "secret" not in doc["components"]["schemas"]["TokenInfo"]["properties"]


# --------------------------------------------------------------------------------------
# the CLI


def test_b2c_admin_tokens_create_list_and_revoke(
    api: httpx.Client, api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])

    made = cli(
        api_url, admin, "admin", "tokens", "create", "--name", "cli-made", "--role", "operator",
        "--tenant", tenant, "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert (created["role"], created["tenants"]) == ("operator", [tenant])
    assert api.get("/api/admin/jobs", headers=bearer(created["secret"])).status_code == 200

    shown = cli(
        api_url, admin, "admin", "tokens", "create", "--name", "cli-shown", "--role", "viewer",
        "--tenant", tenant,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    secret = shown.stdout.strip().splitlines()[-1]
    assert secret.startswith("b2c_")
    assert "shown once" in shown.stderr
    assert api.get("/api/admin/jobs", headers=bearer(secret)).status_code == 200

    as_json = cli(api_url, admin, "admin", "tokens", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    ids = {t["id"] for t in json.loads(as_json.stdout)["items"]}
    assert created["id"] in ids
    assert created["secret"] not in as_json.stdout
    table = cli(api_url, admin, "admin", "tokens", "list")
    assert table.returncode == 0, table.stderr
    assert "cli-made" in table.stdout
    assert "cli-shown" in table.stdout

    revoked = cli(api_url, admin, "admin", "tokens", "revoke", created["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked token {created['id']}" in revoked.stdout
    assert api.get("/api/admin/jobs", headers=bearer(created["secret"])).status_code == 401

    unknown = cli(api_url, admin, "admin", "tokens", "revoke", str(uuid.uuid4()))
    assert unknown.returncode == 1
    assert "no token" in unknown.stderr


def test_b2c_admin_tokens_says_what_went_wrong(
    api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    viewer = token(pool, Role.VIEWER, [tenant])
    denied = cli(api_url, viewer, "admin", "tokens", "list")
    assert denied.returncode == 1
    assert "admin role" in denied.stderr

    admin = token(pool, Role.ADMIN, [tenant])
    wider = cli(
        api_url, admin, "admin", "tokens", "create", "--name", "x", "--role", "viewer",
        "--tenant", tenant + "-other",
    )  # fmt: skip
    assert wider.returncode == 1
    assert f"cannot create a token for {tenant}-other" in wider.stderr

    every = cli(api_url, admin, "admin", "tokens", "create", "--name", "x", "--role", "viewer")
    assert every.returncode == 1
    assert "every tenant" in every.stderr
