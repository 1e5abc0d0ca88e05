"""The hub end to end: telemetry through the real collector, events at the real
``@microsoft/signalr`` client, on two API instances, for one tenant only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg_pool
import pytest
from pydantic import JsonValue

from b2c_monitoring.auth import Role
from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.probes import HealthCheckResult, PoolUsage, Probes, ProbeSettings
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.hub_events import publish
from tests.api_process import api_process
from tests.hub_clients import HubClient
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

TARGETS = (
    "JobStatusChanged",
    "HealthStatusChanged",
    "AlertTriggered",
    "ResourceMetricsUpdated",
    "ResourceAlertTriggered",
)


@pytest.fixture(scope="module")
def apis(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    logs = tmp_path_factory.mktemp("hub-apis")
    with (
        api_process(stack, Path(logs / "api-1.log")) as one,
        api_process(stack, Path(logs / "api-2.log")) as two,
    ):
        yield [one, two]


def _probes(stack: LocalStack, tenant: str) -> Probes:
    return Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="erp-connector",
            tenant_id=tenant,
        )
    )


def test_each_event_reaches_the_tenants_clients_on_both_instances_and_no_other(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, apis: list[str], tenant: str
) -> None:
    other = f"{tenant}-other"
    ours, theirs = token(pool, Role.VIEWER, [tenant]), token(pool, Role.VIEWER, [other])
    clients = [HubClient(apis[0], ours), HubClient(apis[1], ours), HubClient(apis[0], theirs)]
    try:
        for client in clients:
            client.wait_for("ready")
        probes = _probes(stack, tenant)
        try:
            probes.watch_service("enventa-erp", "ERP", lambda: True, every_s=1)
            probes.watch_resources(
                "enventa-erp", every_s=1, pool=lambda: PoolUsage(used=3, idle=1, max=10)
            )
            probes.health_check("catalog-db", lambda: HealthCheckResult.degraded("slow"), every_s=1)
            with probes.job_run("ERP_SYNC", tenant_id=tenant) as job:
                job.progress(40)
            deadline = time.monotonic() + 60
            while not clients[0].events("ResourceMetricsUpdated"):
                assert time.monotonic() < deadline, clients[0].received
                probes.force_flush()
                time.sleep(1)
        finally:
            probes.shutdown()
        # the alert evaluator's events, published as it does, in a transaction of its own
        service_id: str = clients[0].event("ResourceMetricsUpdated")["arguments"][0]
        alert: dict[str, JsonValue] = {
            "id": str(uuid.uuid4()),
            "severity": "warning",
            "state": "firing",
        }
        with pool.connection() as conn, conn.transaction():
            publish(
                conn,
                [
                    HubEvent(tenant, "AlertTriggered", (alert,), service_id=service_id),
                    HubEvent(
                        tenant,
                        "ResourceAlertTriggered",
                        (service_id, alert),
                        service_id=service_id,
                    ),
                ],
            )

        for client in clients[:2]:
            client.event("JobStatusChanged", args=[job.job_id, "succeeded", 100])
            client.event("HealthStatusChanged", args=["catalog-db", "degraded"])
            client.event("HealthStatusChanged", args=["overall", "degraded"])
            metrics = client.event("ResourceMetricsUpdated", args=[service_id])["arguments"][1]
            assert metrics["connectionPoolActive"] == 3
            assert metrics["connectionPoolTotal"] == 10
            assert metrics["threadCount"] >= 1
            client.event("AlertTriggered", args=[alert])
            client.event("ResourceAlertTriggered", args=[service_id, alert])
        # every event carries its id last, the same on both instances
        ids = [[e["arguments"][-1] for e in c.events()] for c in clients[:2]]
        assert ids[0] == ids[1]
        assert ids[0] == sorted(ids[0])
        time.sleep(1)
        assert clients[2].events() == []
    finally:
        for client in clients:
            client.close()


def test_a_client_narrowed_to_one_job_receives_only_that_job(
    pool: psycopg_pool.ConnectionPool, apis: list[str], tenant: str
) -> None:
    secret = token(pool, Role.VIEWER, [tenant])
    narrowed = HubClient(apis[1], secret, "--job", "job-b")
    try:
        narrowed.wait_for("ready")
        with pool.connection() as conn, conn.transaction():
            publish(
                conn,
                [
                    HubEvent(tenant, "JobStatusChanged", ("job-a", "running", 5), job_id="job-a"),
                    HubEvent(tenant, "HealthStatusChanged", ("db", "unhealthy")),
                    HubEvent(tenant, "JobStatusChanged", ("job-b", "running", 7), job_id="job-b"),
                ],
            )
        narrowed.event("JobStatusChanged", args=["job-b", "running", 7])
        metrics = httpx.get(f"{apis[1]}/metrics", timeout=10).text
        [gauge] = [line for line in metrics.splitlines() if line.startswith("b2c_hub_connections ")]
        assert float(gauge.split()[1]) >= 1
        time.sleep(0.5)
        assert [e["arguments"][0] for e in narrowed.events()] == ["job-b"]
    finally:
        narrowed.close()


def test_a_reconnecting_client_catches_up_from_the_last_id_it_saw(
    pool: psycopg_pool.ConnectionPool, apis: list[str], tenant: str
) -> None:
    secret = token(pool, Role.VIEWER, [tenant])
    first = HubClient(apis[0], secret)
    try:
        first.wait_for("ready")
        with pool.connection() as conn, conn.transaction():
            publish(conn, [HubEvent(tenant, "HealthStatusChanged", ("queue", "healthy"))])
        seen = first.event("HealthStatusChanged")["arguments"][-1]
    finally:
        first.close()
    # missed while away
    with pool.connection() as conn, conn.transaction():
        publish(conn, [HubEvent(tenant, "HealthStatusChanged", ("queue", "degraded"))])
    time.sleep(0.5)
    again = HubClient(apis[1], secret, "--resume", str(seen))
    try:
        assert again.wait_for("resume")["resume"] == {"replayed": 1}
        missed = again.event("HealthStatusChanged")
        assert missed["arguments"][:2] == ["queue", "degraded"]
        assert missed["arguments"][-1] > seen
    finally:
        again.close()


def test_negotiate_offers_websockets_as_text_to_a_token_and_nothing_without(
    pool: psycopg_pool.ConnectionPool, apis: list[str], tenant: str
) -> None:
    url = f"{apis[0]}/hubs/job-status/negotiate?negotiateVersion=1"
    answer = httpx.post(url, headers=bearer(token(pool, Role.VIEWER, [tenant])), timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["negotiateVersion"] == 1
    assert body["connectionId"] != body["connectionToken"]
    assert body["availableTransports"] == [{"transport": "WebSockets", "transferFormats": ["Text"]}]
    refused = httpx.post(url, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    probe = httpx.post(url, headers=bearer(token(pool, Role.PROBE, [tenant])), timeout=10)
    assert probe.status_code == 403
    doc = httpx.get(f"{apis[0]}/openapi.json", timeout=10).json()
    assert set(doc["paths"]["/hubs/job-status/negotiate"]["post"]["responses"]) >= {
        "200",
        "401",
        "403",
    }


def test_a_wrong_token_is_refused(apis: list[str]) -> None:
    client = HubClient(apis[0], "not-a-token")
    try:
        error = client.wait_for("error")["error"]
        assert "401" in error
    finally:
        client.close()
