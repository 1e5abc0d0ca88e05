"""Every state-changing admin action is in the audit log.

The first test walks the routes of the real app: a POST, PUT, PATCH or DELETE route
must be named here, with the audit action it writes or the reason it writes none, so a
new route without an audit row fails until someone decides. The second calls each
audited route once with valid input against an API process and finds its row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg_pool
import pytest
from fastapi.routing import iter_route_contexts

from b2c_monitoring.api.app import create_app
from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.tokens import TokenStore
from tests.firing_alerts import open_service_down
from tests.tokens import bearer

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# (method, route) -> the audit action it writes
AUDITED: dict[tuple[str, str], str] = {
    ("POST", "/api/admin/tokens"): "token.create",
    ("DELETE", "/api/admin/tokens/{token_id}"): "token.revoke",
    ("PUT", "/api/admin/services/{name}"): "service.declare",
    ("POST", "/api/admin/services/{id}/test"): "service.test",
    ("PUT", "/api/admin/job-types/{job_type}/windows"): "job_type.windows",
    ("POST", "/api/admin/jobs/{job_id}/cancel"): "job.cancel",
    ("POST", "/api/admin/jobs/{job_id}/retry"): "job.retry",
    ("POST", "/api/admin/alerts/{alert_id}/acknowledge"): "alert.acknowledge",
    ("POST", "/api/admin/alerts/{alert_id}/silence"): "alert.silence",
    ("POST", "/api/admin/alert-rules"): "alert_rule.create",
    ("DELETE", "/api/admin/alert-rules/{rule_id}"): "alert_rule.delete",
    ("POST", "/api/admin/notification-channels"): "notification_channel.create",
    ("DELETE", "/api/admin/notification-channels/{channel_id}"): "notification_channel.delete",
    ("POST", "/api/admin/maintenance-windows"): "maintenance_window.create",
    ("POST", "/api/admin/maintenance-windows/{window_id}/end"): "maintenance_window.end",
    ("PUT", "/api/admin/job-schedules/{job_type}"): "job_schedule.put",
    ("DELETE", "/api/admin/job-schedules/{job_type}"): "job_schedule.delete",
    # a scheduler's integration registering its schedule, with a probe token
    ("PUT", "/api/probes/job-schedules/{job_type}"): "job_schedule.put",
}

TENANTLESS = {("PUT", "/api/admin/job-types/{job_type}/windows")}

# (method, route) -> why it writes no audit row
NOT_AUDITED: dict[tuple[str, str], str] = {
    ("POST", "/hubs/job-status/negotiate"): "changes nothing: SignalR's handshake",
    ("POST", "/api/probes/commands/{command_id}/done"): "a job runner's answer, not an "
    "admin action; the command row keeps who claimed it, when it was done and the result",
    ("POST", "/api/probes/commands/{command_id}/decline"): "a job runner's answer; the "
    "command row keeps who declined it, when and why",
}


def _state_changing_routes() -> set[tuple[str, str]]:
    app = create_app(Settings())
    return {
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        for method in (getattr(context, "methods", None) or ())
        if method in STATE_CHANGING
    }


def test_every_state_changing_route_is_audited_or_says_why_not() -> None:
    routes = _state_changing_routes()
    unaccounted = sorted(routes - set(AUDITED) - set(NOT_AUDITED))
    assert not unaccounted, (
        f"state-changing routes without an audit row: {unaccounted}; write one in the "
        "action's transaction (storage/audit.py) and name it in AUDITED"
    )
    gone = sorted((set(AUDITED) | set(NOT_AUDITED)) - routes)
    assert not gone, f"no longer routes of the app: {gone}"
    assert not set(AUDITED) & set(NOT_AUDITED)


@pytest.mark.integration
def test_each_audited_route_writes_its_audit_row_with_the_caller_and_tenant(
    api: httpx.Client, api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    record, admin = TokenStore(pool).create("auditor", Role.ADMIN, [tenant], datetime.now(UTC))
    probe_record, probe = TokenStore(pool).create(
        "auditor", Role.PROBE, [tenant], datetime.now(UTC)
    )
    called: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def call(
        method: str, route: str, json: Any = None, *, as_probe: bool = False, **path: str
    ) -> httpx.Response:
        secret, token_id = (probe, probe_record.id) if as_probe else (admin, record.id)
        with pool.connection() as conn:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
        assert row is not None
        response = api.request(method, route.format(**path), json=json, headers=bearer(secret))
        assert response.is_success, (method, route, response.text)
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT action, actor_name, actor_token_id, tenant_id FROM audit_log "
                "WHERE seq > %s AND actor_token_id = %s ORDER BY seq",
                (row[0], token_id),
            ).fetchall()
        called[(method, route)] = [
            {"action": a, "actor": n, "token": t, "tenant": tid} for a, n, t, tid in rows
        ]
        return response

    service, job_type = f"erp-{uuid.uuid4().hex[:6]}", f"AUDIT_{uuid.uuid4().hex[:6].upper()}"

    health = f"{api_url}/healthz"
    check = {"kind": "http", "target": health, "timeoutS": 3}
    call("PUT", "/api/admin/services/{name}", {"type": "ERP", "check": check}, name=service)
    tested = call("POST", "/api/admin/services/{id}/test", id=service)
    assert tested.json()["status"] in ("up", "degraded")
    call(
        "PUT",
        "/api/admin/job-types/{job_type}/windows",
        {"heartbeatWindowSeconds": 7200},
        job_type=job_type,
    )

    made = call("POST", "/api/admin/tokens", {"name": "x", "role": "viewer", "tenants": [tenant]})
    call("DELETE", "/api/admin/tokens/{token_id}", token_id=made.json()["id"])

    running = _job(pool, tenant, service, JobState.RUNNING)
    failed = _job(pool, tenant, service, JobState.FAILED)
    call("POST", "/api/admin/jobs/{job_id}/cancel", job_id=running)
    call("POST", "/api/admin/jobs/{job_id}/retry", job_id=failed)

    alert_id = open_service_down(pool, tenant, service, datetime.now(UTC)).id
    call("POST", "/api/admin/alerts/{alert_id}/acknowledge", alert_id=alert_id)
    call("POST", "/api/admin/alerts/{alert_id}/silence", {"durationS": 60}, alert_id=alert_id)

    rule = call(
        "POST",
        "/api/admin/alert-rules",
        {"name": "r", "condition": {"kind": "job_failed", "jobType": job_type}},
    )
    call("DELETE", "/api/admin/alert-rules/{rule_id}", rule_id=rule.json()["id"])
    channel = call(
        "POST",
        "/api/admin/notification-channels",
        {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
    )
    call("DELETE", "/api/admin/notification-channels/{channel_id}", channel_id=channel.json()["id"])
    window = call(
        "POST",
        "/api/admin/maintenance-windows",
        {"serviceName": service, "endsAt": "2199-01-01T00:00:00+00:00"},
    )
    call("POST", "/api/admin/maintenance-windows/{window_id}/end", window_id=window.json()["id"])
    call("PUT", "/api/admin/job-schedules/{job_type}", {"cron": "0 2 * * *"}, job_type=job_type)
    call("DELETE", "/api/admin/job-schedules/{job_type}", job_type=job_type)
    call(
        "PUT",
        "/api/probes/job-schedules/{job_type}",
        {"cron": "0 3 * * *", "tenantId": tenant},
        as_probe=True,
        job_type=job_type,
    )

    assert set(called) == set(AUDITED), "call every audited route here"
    for key, rows in called.items():
        assert [r["action"] for r in rows] == [AUDITED[key]], key
        assert rows[0]["actor"] == "auditor"
        # a job type's windows hold in every tenant, so their entry is of none
        assert rows[0]["tenant"] == (None if key in TENANTLESS else tenant), key


def _job(pool: psycopg_pool.ConnectionPool, tenant: str, service: str, state: JobState) -> str:
    job_id = f"j-{uuid.uuid4()}"
    now = datetime.now(UTC)
    reports = [
        JobReport(tenant, job_id, JobState.RUNNING, now, job_type="ERP_SYNC", service_name=service)
    ]
    if state is not JobState.RUNNING:
        reports.append(
            JobReport(tenant, job_id, state, now + timedelta(seconds=1), service_name=service)
        )
    JobStore(pool).apply(reports, now)
    return job_id
