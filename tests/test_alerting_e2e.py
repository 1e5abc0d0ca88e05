"""Alerting end to end: telemetry through the real collector, the processor's evaluator and
notifier threads, the admin API of this module's own and the CLI, a webhook receiver on
loopback. Fifty ERP_SYNC jobs failing during an ERP outage are one alert, not fifty."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import psycopg_pool
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.alerting.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from b2c_monitoring.auth import Role
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.tokens import TokenStore
from tests.alert_receivers import HttpReceiver
from tests.api_process import cli
from tests.otlp_builders import job_span, kvs, trace_request
from tests.otlp_metric_builders import gauge, metrics_request, point
from tests.polling import eventually
from tests.tokens import probe_auth

pytestmark = pytest.mark.integration

T = TypeVar("T")
SECRET = "e2e-hmac-secret-0123456789"
ERP = "enventa-erp"
JOBS = 50


def _post(stack: LocalStack, signal: str, body: bytes) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{stack.layout.ports.otlp_http}/v1/{signal}",
        content=body,
        headers={"Content-Type": "application/x-protobuf", **probe_auth(stack)},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def check(stack: LocalStack, tenant: str, up: bool, at_ns: int) -> None:
    attrs = {"connected_service.name": ERP, "connected_service.type": "ERP"}
    request = metrics_request(
        [
            gauge("connected_service.up", point(1 if up else 0, attrs, at_ns=at_ns)),
            gauge("connected_service.check.duration", point(0.05, attrs, at_ns=at_ns), unit="s"),
        ],
        {"service.name": "erp-connector", "tenant.id": tenant},
    )
    _post(stack, "metrics", request.SerializeToString())


def fail_jobs(stack: LocalStack, tenant: str, job_ids: list[str]) -> None:
    resource = {"service.name": "erp-connector", "tenant.id": tenant}
    spans = [
        job_span(
            {
                "scheduler.job.id": j,
                "scheduler.job.type": "ERP_SYNC",
                "scheduler.job.state": "failed",
            },
            error="ERP did not answer",
        )
        for j in job_ids
    ]
    _post(stack, "traces", trace_request(spans, resource).SerializeToString())
    now = time.time_ns()
    records = [
        LogRecord(
            time_unix_nano=now,
            observed_time_unix_nano=now,
            severity_number=17,  # type: ignore[arg-type]
            severity_text="ERROR",
            body=AnyValue(string_value=f"POST {ERP} failed: timeout"),
            attributes=kvs(
                {
                    "event.name": "connected_service.communication_error",
                    "connected_service.name": ERP,
                    "scheduler.job.id": j,
                    "error.type": "timeout",
                    "http.request.method": "POST",
                }
            ),
        )
        for j in job_ids
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kvs(resource)),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )
    _post(stack, "logs", request.SerializeToString())


def test_fifty_erp_jobs_failing_in_an_erp_outage_are_one_alert(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, api_url: str, tenant: str
) -> None:
    _, secret = TokenStore(pool).create("alerts-e2e", Role.ADMIN, [tenant], datetime.now(UTC))
    headers = {"Authorization": f"Bearer {secret}"}
    hook = HttpReceiver()
    api = httpx.Client(base_url=api_url, headers=headers, timeout=10)
    try:
        response = api.post(
            "/api/admin/notification-channels",
            json={"name": "ops-hook", "kind": "webhook", "url": hook.url, "secret": SECRET},
        )
        assert response.status_code == 201, response.text
        assert "secret" not in response.json()
        made = cli(
            api_url,
            secret,
            "alerts",
            "rules",
            "create",
            "--name",
            "erp down",
            "--kind",
            "service_down",
            "-p",
            "checks=3",
            "-p",
            f"service={ERP}",
            "--severity",
            "critical",
            "--json",
        )
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["condition"] == {
            "kind": "service_down",
            "service": ERP,
            "checks": 3,
        }
        response = api.post(
            "/api/admin/alert-rules",
            json={
                "name": "erp sync failed",
                "severity": "warning",
                "condition": {"kind": "job_failed", "jobType": "ERP_SYNC"},
            },
        )
        assert response.status_code == 201, response.text
        # the ERP goes down: four failed checks; then fifty jobs fail calling it
        start = time.time_ns() - 10 * 10**9
        for i in range(4):
            check(stack, tenant, False, start + i * 10**9)
        job_ids = [f"erp-{uuid.uuid4()}" for _ in range(JOBS)]
        fail_jobs(stack, tenant, job_ids)

        def outage() -> dict[str, Any] | None:
            items: list[dict[str, Any]] = api.get("/api/admin/alerts").json()["items"]
            down = [a for a in items if a["kind"] == "service_down"]
            if down and down[0]["details"].get("affectedJobCount") == JOBS:
                return down[0]
            return None

        alert = eventually(outage, timeout=120, what="the outage alert gathering fifty jobs")
        time.sleep(3)  # no job pages on its own meanwhile (test_alerting_store: many rounds)
        listed = cli(api_url, secret, "alerts", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        body = json.loads(listed.stdout)
        assert body == api.get("/api/admin/alerts").json()  # --json is the API's body
        assert [(a["kind"], a["state"]) for a in body["items"]] == [("service_down", "firing")]
        jobs = alert["details"]["affectedJobs"]
        assert sorted(j["jobId"] for j in jobs) == sorted(job_ids)
        assert jobs[0]["calledServices"][0]["name"] == ERP
        assert jobs[0]["calledServices"][0]["statusNow"] == "down"
        eventually(lambda: hook.received or None, timeout=30, what="the page")
        with pool.connection() as conn:  # pushed on the hub in the transaction that fired it
            pushed = conn.execute(
                "SELECT arguments->0->>'state' FROM hub_events WHERE tenant_id = %s "
                "AND target = 'AlertTriggered' AND arguments->0->>'id' = %s ORDER BY id",
                (tenant, alert["id"]),
            ).fetchall()
        assert pushed[0][0] == "firing"
        fired = [r for r in hook.received if r.json()["event"] == "fired"]
        assert len(fired) == 1
        stamp = fired[0].headers[TIMESTAMP_HEADER]
        assert fired[0].headers[SIGNATURE_HEADER] == sign(SECRET, stamp, fired[0].body)

        acked = cli(api_url, secret, "alerts", "ack", alert["id"])
        assert acked.returncode == 0, acked.stderr
        shown = api.get(f"/api/admin/alerts/{alert['id']}").json()
        assert shown["alert"]["state"] == "acknowledged"
        assert [n["state"] for n in shown["notifications"]] == ["sent"]
        table = cli(api_url, secret, "alerts", "show", alert["id"])
        assert table.returncode == 0, table.stderr
        assert f"affected jobs ({JOBS})" in table.stdout
        assert f"{ERP} (" in table.stdout

        # the ERP is back: the outage resolves and the receiver is told
        for i in range(3):
            check(stack, tenant, True, time.time_ns() + i * 10**6)

        def resolved() -> list[Any] | None:
            bodies = hook.bodies()
            return bodies if any(b["event"] == "resolved" for b in bodies) else None

        bodies = eventually(resolved, timeout=120, what="the resolution")
        assert [b["event"] for b in bodies] == ["fired", "resolved"]
        items = api.get("/api/admin/alerts").json()["items"]
        assert [(a["id"], a["state"]) for a in items] == [(alert["id"], "resolved")]
        # a silence holds for the condition's next firing too
        muted = cli(api_url, secret, "alerts", "silence", alert["id"], "--for", "1m", "--json")
        assert muted.returncode == 0, muted.stderr
        assert json.loads(muted.stdout)["silencedUntil"] is not None
        wrong = cli(api_url, secret, "alerts", "silence", alert["id"], "--for", "soon")
        assert wrong.returncode == 1
        assert "90s, 30m" in wrong.stderr
    finally:
        api.close()
        hook.stop()


def test_alerts_of_another_tenant_answer_404(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, api_url: str, tenant: str
) -> None:
    _, mine = TokenStore(pool).create("mine", Role.OPERATOR, [tenant], datetime.now(UTC))
    response = httpx.post(
        f"{api_url}/api/admin/alerts/{uuid.uuid4()}/acknowledge",
        headers={"Authorization": f"Bearer {mine}"},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    bad = httpx.post(
        f"{api_url}/api/admin/alert-rules",
        headers={"Authorization": f"Bearer {mine}"},
        json={"name": "x", "condition": {"kind": "cpu_too_hot"}},
        timeout=10,
    )
    assert bad.status_code == 422
    assert "service_down" in bad.json()["detail"]


def test_config_endpoints_keep_secrets_validate_and_audit(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, api_url: str, tenant: str
) -> None:
    _, admin = TokenStore(pool).create("cfg-admin", Role.ADMIN, [tenant], datetime.now(UTC))
    _, viewer = TokenStore(pool).create("cfg-viewer", Role.VIEWER, [tenant], datetime.now(UTC))
    _, other = TokenStore(pool).create("cfg-other", Role.ADMIN, [f"{tenant}-x"], datetime.now(UTC))
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=10
    ) as api:
        made = api.post(
            "/api/admin/notification-channels",
            json={
                "name": "mail",
                "kind": "email",
                "smtpHost": "127.0.0.1",
                "smtpPort": 2525,
                "smtpUsername": "b2c",
                "secret": "smtp-password-123456",
                "mailFrom": "b2c@example.org",
                "mailTo": ["ops@example.org"],
            },
        )
        assert made.status_code == 201, made.text
        listed = api.get("/api/admin/notification-channels")
        assert "smtp-password" not in listed.text
        assert listed.json()["items"][0]["hasSecret"] is True
        incomplete = api.post(
            "/api/admin/notification-channels", json={"name": "w", "kind": "webhook"}
        )
        assert incomplete.status_code == 422
        # a viewer reads but does not manage; another tenant's admin sees nothing
        as_viewer = httpx.get(
            f"{api_url}/api/admin/notification-channels",
            headers={"Authorization": f"Bearer {viewer}"},
            timeout=10,
        )
        assert as_viewer.status_code == 403
        theirs = httpx.delete(
            f"{api_url}/api/admin/notification-channels/{made.json()['id']}",
            headers={"Authorization": f"Bearer {other}"},
            timeout=10,
        )
        assert theirs.status_code == 404

        window = api.post(
            "/api/admin/maintenance-windows",
            json={"serviceName": ERP, "endsAt": "2199-01-01T00:00:00+00:00", "reason": "upgrade"},
        )
        assert window.status_code == 201, window.text
        assert window.json()["active"] is True
        both = api.post(
            "/api/admin/maintenance-windows",
            json={"serviceName": ERP, "jobType": "ERP_SYNC", "endsAt": "2199-01-01T00:00:00+00:00"},
        )
        assert both.status_code == 422
        ended = api.post(f"/api/admin/maintenance-windows/{window.json()['id']}/end")
        assert ended.json()["active"] is False

        bad_cron = api.put("/api/admin/job-schedules/ERP_SYNC", json={"cron": "61 * * * *"})
        assert bad_cron.status_code == 422
        assert "cron" in bad_cron.json()["detail"]
        bad_zone = api.put(
            "/api/admin/job-schedules/ERP_SYNC",
            json={"cron": "0 2 * * *", "timezone": "Mars/Olympus"},
        )
        assert bad_zone.status_code == 422
        put = cli(
            api_url,
            admin,
            "alerts",
            "schedules",
            "set",
            "ERP_SYNC",
            "--cron",
            "0 2 * * *",
            "--timezone",
            "Europe/Berlin",
            "--grace",
            "30m",
            "--json",
        )
        assert put.returncode == 0, put.stderr
        schedule = json.loads(put.stdout)
        assert (schedule["cron"], schedule["graceS"]) == ("0 2 * * *", 1800)
        assert schedule["nextExpectedAt"].endswith(("+01:00", "+02:00"))
        assert api.delete("/api/admin/job-schedules/ERP_SYNC").status_code == 204

        audit = api.get("/api/admin/audit", params={"tenant": tenant}).json()["items"]
        assert {e["action"] for e in audit} >= {
            "notification_channel.create",
            "maintenance_window.create",
            "maintenance_window.end",
            "job_schedule.put",
            "job_schedule.delete",
        }
        assert "smtp-password" not in json.dumps(audit)


def test_an_error_rate_above_its_threshold_fires_from_the_logs_and_resolves(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, api_url: str, tenant: str
) -> None:
    _, secret = TokenStore(pool).create("rate", Role.ADMIN, [tenant], datetime.now(UTC))
    hook = HttpReceiver()
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10
    ) as api:
        made = api.post(
            "/api/admin/notification-channels",
            json={"name": "hook", "kind": "webhook", "url": hook.url, "secret": SECRET},
        )
        assert made.status_code == 201, made.text
        made = api.post(
            "/api/admin/alert-rules",
            json={
                "name": "pim errors",
                "cooldownS": 0,
                "condition": {
                    "kind": "error_rate_above",
                    "service": "pim",
                    "thresholdPerMinute": 3,
                    "windowS": 60,
                },
            },
        )
        assert made.status_code == 201, made.text
        now = time.time_ns()
        records = [
            LogRecord(
                time_unix_nano=now - i * 10**9,
                severity_number=17,  # type: ignore[arg-type]
                body=AnyValue(string_value="PIM refused"),
                attributes=kvs(
                    {
                        "event.name": "connected_service.communication_error",
                        "connected_service.name": "pim",
                    }
                ),
            )
            for i in range(5)
        ]
        request = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=Resource(
                        attributes=kvs({"service.name": "pim-connector", "tenant.id": tenant})
                    ),
                    scope_logs=[ScopeLogs(log_records=records)],
                )
            ]
        )
        _post(stack, "logs", request.SerializeToString())

        def alert_in(state: str) -> Callable[[], dict[str, Any] | None]:
            def probe() -> dict[str, Any] | None:
                items: list[dict[str, Any]] = api.get("/api/admin/alerts").json()["items"]
                return items[0] if items and items[0]["state"] == state else None

            return probe

        try:
            alert = eventually(alert_in("firing"), timeout=120, what="the error-rate alert")
            assert (alert["kind"], alert["serviceName"], alert["details"]["errors"]) == (
                "error_rate_above",
                "pim",
                5,
            )
            # the errors age out of the window: the rate falls and the alert resolves
            eventually(alert_in("resolved"), timeout=150, what="the resolution")
            eventually(lambda: len(hook.received) == 2 or None, timeout=30, what="two pages")
        finally:
            hook.stop()
    assert [b["event"] for b in hook.bodies()] == ["fired", "resolved"]


def test_the_openapi_document_describes_the_alerting_endpoints(api_url: str) -> None:
    doc = httpx.get(f"{api_url}/openapi.json", timeout=10).json()
    paths = doc["paths"]
    assert set(paths["/api/admin/alerts/{alert_id}/acknowledge"]["post"]["responses"]) >= {
        "200",
        "401",
        "403",
        "404",
        "409",
        "422",
    }
    for path in (
        "/api/admin/alert-rules",
        "/api/admin/notification-channels",
        "/api/admin/maintenance-windows",
    ):
        assert set(paths[path]) == {"get", "post"}
    assert "secret" in doc["components"]["schemas"]["ChannelIn"]["properties"]
    assert "secret" not in doc["components"]["schemas"]["ChannelOut"]["properties"]
    kinds = doc["components"]["schemas"]["AlertRuleIn"]["properties"]["condition"]
    assert len(kinds["oneOf"]) == 7
