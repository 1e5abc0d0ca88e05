"""Tokens that end and probe tokens bound to services: the API, the probe endpoints,
the hub and `b2c admin tokens`, on an API process of this module's own."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg_pool
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.tokens import TokenStore
from tests.api_process import cli
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

RS = "\x1e"
PAST = timedelta(minutes=-1)


def _create(api: httpx.Client, admin: str, **body: Any) -> httpx.Response:
    return api.post("/api/admin/tokens", json=body, headers=bearer(admin))


def test_an_expired_token_is_refused_with_a_401_that_says_so_and_an_unexpired_one_works(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])
    soon = datetime.now(UTC) + timedelta(days=30)
    made = _create(
        api, admin, name="contractor", role="viewer", tenants=[tenant], expiresAt=soon.isoformat()
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["state"], body["services"]) == ("active", None)
    assert datetime.fromisoformat(body["expiresAt"]) == soon
    assert api.get("/api/admin/jobs", headers=bearer(body["secret"])).status_code == 200
    me = api.get("/api/admin/me", headers=bearer(body["secret"])).json()
    assert datetime.fromisoformat(me["expiresAt"]) == soon

    expired = token(pool, Role.ADMIN, [tenant], name="lapsed", expires_in=PAST)
    for method, path in (
        ("GET", "/api/admin/jobs"),
        ("GET", "/api/admin/me"),
        ("GET", "/api/admin/tokens"),
        ("POST", "/hubs/job-status/negotiate"),
    ):
        refused = api.request(method, path, headers=bearer(expired))
        assert refused.status_code == 401, path
        assert refused.headers["content-type"] == "application/problem+json"
        assert "'lapsed' expired at" in refused.json()["detail"]
    # a revoked token is refused in the same words as an unknown one, expired or not
    store = TokenStore(pool)
    [record] = [t for t in store.list([tenant]) if t.name == "lapsed"]
    store.revoke(record.id, datetime.now(UTC))
    revoked = api.get("/api/admin/jobs", headers=bearer(expired))
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == "the token is unknown or revoked"


def test_the_list_shows_each_tokens_state_expiry_and_services(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant], name="lister")
    token(pool, Role.VIEWER, [tenant], name="lapsed", expires_in=PAST)
    token(pool, Role.PROBE, [tenant], name="erp-probe", services=["erp"])
    revoked = _create(api, admin, name="gone", role="viewer", tenants=[tenant]).json()
    api.delete(f"/api/admin/tokens/{revoked['id']}", headers=bearer(admin))

    listed = api.get(
        "/api/admin/tokens", params={"includeRevoked": "true"}, headers=bearer(admin)
    ).json()["items"]
    by_name = {t["name"]: t for t in listed}
    assert {n: t["state"] for n, t in by_name.items()} == {
        "lister": "active",
        "lapsed": "expired",
        "erp-probe": "active",
        "gone": "revoked",
    }
    assert by_name["lapsed"]["expiresAt"] is not None
    assert by_name["erp-probe"]["services"] == ["erp"]
    assert by_name["lister"]["expiresAt"] is None
    assert by_name["lister"]["services"] is None
    # an expired token stays listed (until revoked), so an admin sees what lapsed
    default = api.get("/api/admin/tokens", headers=bearer(admin)).json()["items"]
    assert {t["name"] for t in default} == {"lister", "lapsed", "erp-probe"}


def test_a_token_request_with_a_past_expiry_or_services_off_a_probe_is_a_422(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    for body, words in (
        ({"role": "viewer", "expiresAt": past}, "not in the future"),
        ({"role": "viewer", "expiresAt": "2030-01-01T00:00:00"}, "timezone"),
        ({"role": "operator", "services": ["erp"]}, "cannot have them"),
        ({"role": "probe", "services": []}, "at least 1"),
        ({"role": "probe", "services": [""]}, "at least 1"),
    ):
        response = _create(api, admin, name="x", tenants=[tenant], **body)
        assert response.status_code == 422, body
        assert words in response.text, response.text
    # the audit log says when a token ends and what it is bound to
    made = _create(
        api,
        admin,
        name="bound",
        role="probe",
        tenants=[tenant],
        services=["pim", "erp", "erp"],
        expiresAt="2199-01-01T00:00:00+00:00",
    ).json()
    assert made["services"] == ["erp", "pim"]
    entries = api.get(
        "/api/admin/audit",
        params={"action": "token.create", "tenant": tenant},
        headers=bearer(admin),
    ).json()["items"]
    [entry] = [e for e in entries if e["target"] == made["id"]]
    assert entry["details"]["services"] == "erp,pim"
    assert entry["details"]["expiresAt"].startswith("2199-01-01")


# --------------------------------------------------------------------------------------
# the probe endpoints


def _command_for(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, service: str
) -> None:
    """A cancel command for a running job of ``service``, asked by an operator."""
    job_id = f"j-{uuid.uuid4()}"
    now = datetime.now(UTC)
    JobStore(pool).apply(
        [
            JobReport(
                tenant, job_id, JobState.RUNNING, now, job_type="ERP_SYNC", service_name=service
            )
        ],
        now,
    )
    operator = token(pool, Role.OPERATOR, [tenant])
    asked = api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator))
    assert asked.status_code == 202, asked.text


def _claim(api: httpx.Client, secret: str, service: str) -> httpx.Response:
    return api.get("/api/probes/commands", params={"service": service}, headers=bearer(secret))


def test_a_probe_token_bound_to_a_service_polls_and_answers_for_that_service_only(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    erp, pim = f"erp-{uuid.uuid4().hex[:6]}", f"pim-{uuid.uuid4().hex[:6]}"
    _command_for(api, pool, tenant, erp)
    _command_for(api, pool, tenant, pim)
    bound = token(pool, Role.PROBE, [tenant], name="erp-runner", services=[erp])
    unbound = token(pool, Role.PROBE, [tenant])

    refused = _claim(api, bound, pim)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert f"not for '{pim}'" in refused.json()["detail"]
    [mine] = _claim(api, bound, erp).json()["items"]
    assert mine["serviceName"] == erp

    # a command of another service, claimed by a token of any service
    [theirs] = _claim(api, unbound, pim).json()["items"]
    for action, body in (("done", {"ok": True}), ("decline", {"reason": "not mine"})):
        answer = api.post(
            f"/api/probes/commands/{theirs['id']}/{action}", json=body, headers=bearer(bound)
        )
        assert answer.status_code == 403, (action, answer.text)
        assert f"for the service '{pim}'" in answer.json()["detail"]
    done = api.post(
        f"/api/probes/commands/{mine['id']}/done", json={"ok": True}, headers=bearer(bound)
    )
    assert (done.status_code, done.json()["state"]) == (200, "done")
    # the refusals changed nothing: the other service's runner still holds its claim
    assert (
        api.post(
            f"/api/probes/commands/{theirs['id']}/done", json={"ok": True}, headers=bearer(unbound)
        ).json()["state"]
        == "done"
    )


def test_an_expired_probe_token_cannot_poll_or_answer(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    service = f"erp-{uuid.uuid4().hex[:6]}"
    _command_for(api, pool, tenant, service)
    [claimed] = _claim(api, token(pool, Role.PROBE, [tenant]), service).json()["items"]
    expired = token(pool, Role.PROBE, [tenant], name="old-runner", expires_in=PAST)
    answers = [
        _claim(api, expired, service),
        api.post(
            f"/api/probes/commands/{claimed['id']}/done", json={"ok": True}, headers=bearer(expired)
        ),
        api.post(
            f"/api/probes/commands/{claimed['id']}/decline",
            json={"reason": "x"},
            headers=bearer(expired),
        ),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert all("'old-runner' expired at" in a.json()["detail"] for a in answers)


# --------------------------------------------------------------------------------------
# the hub


@contextmanager
def _hub(api_url: str, secret: str) -> Iterator[ClientConnection]:
    """A bare WebSocket client speaking the JSON hub protocol (no negotiate)."""
    with connect(
        f"{api_url.replace('http', 'ws', 1)}/hubs/job-status?access_token={secret}",
        compression=None,
    ) as socket:
        socket.send(json.dumps({"protocol": "json", "version": 1}) + RS)
        assert socket.recv(timeout=10) == "{}" + RS
        yield socket


def _close_message(socket: ClientConnection, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = str(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        except ConnectionClosed:
            pytest.fail("closed without a close message")
        for message in data.split(RS)[:-1]:
            parsed: dict[str, Any] = json.loads(message)
            if parsed["type"] == 7:
                return parsed


def test_the_hub_refuses_an_expired_token_and_closes_a_connection_when_its_token_expires(
    api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    expired = token(pool, Role.VIEWER, [tenant], expires_in=PAST)
    with pytest.raises(InvalidStatus) as refused, _hub(api_url, expired):
        pass
    assert refused.value.response.status_code == 403

    lifetime = timedelta(seconds=3)
    ending = token(pool, Role.VIEWER, [tenant], expires_in=lifetime)
    ends_at = time.monotonic() + lifetime.total_seconds()
    lasting = token(pool, Role.VIEWER, [tenant])
    # this API re-checks tokens every 60 s (the default): only the expiry can end it now
    with _hub(api_url, ending) as doomed, _hub(api_url, lasting) as kept:
        close = _close_message(doomed, timeout=15)
        late = time.monotonic() - ends_at
        assert close == {"type": 7, "error": "the token expired"}
        assert -0.5 < late < 2, late
        print(f"closed {late:.3f} s after the token's expiry")
        with pytest.raises(ConnectionClosed):
            doomed.recv(timeout=5)
        kept.send(json.dumps({"type": 6}) + RS)
        kept.ping().wait(5)


# --------------------------------------------------------------------------------------
# the CLI


def test_b2c_admin_tokens_create_with_an_expiry_and_services_and_list_them(
    api: httpx.Client, api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant], name="cli-admin")
    before = datetime.now(UTC)
    made = cli(
        api_url, admin, "admin", "tokens", "create", "--name", "erp-runner", "--role", "probe",
        "--tenant", tenant, "--service", "erp", "--service", "pim", "--expires-in", "30d", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["services"] == ["erp", "pim"]
    expires = datetime.fromisoformat(created["expiresAt"])
    assert before + timedelta(days=30) <= expires <= datetime.now(UTC) + timedelta(days=30)

    at = cli(
        api_url, admin, "admin", "tokens", "create", "--name", "until-2199", "--role", "viewer",
        "--tenant", tenant, "--expires-at", "2199-01-31T12:00:00",
    )  # fmt: skip
    assert at.returncode == 0, at.stderr
    assert "expires  2199-01-31T12:00:00Z" in at.stdout
    token(pool, Role.VIEWER, [tenant], name="lapsed", expires_in=PAST)

    as_json = cli(api_url, admin, "admin", "tokens", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    # --json prints exactly what the API answered
    assert json.loads(as_json.stdout) == api.get("/api/admin/tokens", headers=bearer(admin)).json()
    table = cli(api_url, admin, "admin", "tokens", "list")
    assert table.returncode == 0, table.stderr

    def row(name: str) -> str:
        return next(line for line in table.stdout.splitlines() if f" {name} " in line)

    assert "erp, pim" in row("erp-runner")
    assert " active " in row("erp-runner")
    assert " expired " in row("lapsed")
    assert "2199-01-31T12:00:00" in row("until-2199")
    assert " never " in row("cli-admin")


def test_b2c_admin_tokens_create_refuses_services_off_a_probe_and_a_bad_expiry(
    api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])
    base = ("admin", "tokens", "create", "--name", "x", "--tenant", tenant)
    for args, words in (
        (("--role", "viewer", "--service", "erp"), "--service binds a probe token"),
        (("--role", "viewer", "--expires-in", "soon"), "not a duration"),
        (("--role", "viewer", "--expires-at", "tomorrow"), "not an ISO 8601 time"),
        (("--role", "viewer", "--expires-in", "1d", "--expires-at", "2999-01-01"), "not both"),
        (("--role", "viewer", "--expires-at", "2001-01-01"), "not in the future"),
    ):
        result = cli(api_url, admin, *base, *args)
        assert result.returncode != 0, args
        assert words in result.stderr, (args, result.stderr)
    assert "x" not in {t.name for t in TokenStore(pool).list([tenant])}
