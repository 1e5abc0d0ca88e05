"""The demo's Celery worker with beat as a part of the local stack: started on demand
against the stack's Redis, collector and admin API, its tasks show as jobs (with
``update_state`` progress) and its beat entries as job schedules, and stopping the
stack's parts ends it. Run on the test stack with tenants of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from b2c_monitoring.stack.celery_demo import CeleryDemo
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.redis import ping
from tests.polling import eventually
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration


def _say(line: str) -> None:
    print(f"[celery-demo] {line}", flush=True)


@pytest.fixture
def demo(stack: LocalStack) -> Iterator[CeleryDemo]:
    tenants = (f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}")
    part = CeleryDemo(
        stack.layout,
        stack.redis,
        otlp_endpoint=stack.collector.endpoints()["otlp_grpc"],
        api_url=stack.api.api_url,
        probe_token=lambda: stack.probe_token,
        tenants=tenants,
    )
    stack.supervisor.start(part, _say)
    try:
        yield part
    finally:
        stack.supervisor.stop(part, _say)


def test_the_stack_runs_its_own_redis_in_its_home(stack: LocalStack) -> None:
    assert ping(stack.redis.port)
    config = stack.redis.config_file.read_text()
    assert f"port {stack.layout.ports.redis}" in config
    assert f"dir {stack.layout.data('redis')}" in config
    (part,) = [p for p in stack.status()["parts"] if p["name"] == "redis"]
    assert part["ready"]
    assert part["endpoints"]["redis"] == stack.redis.url()
    # the optional demo worker is not listed while it does not run
    assert "celery-demo" not in [p["name"] for p in stack.status()["parts"]]


def test_the_demo_worker_reports_its_tasks_and_beat_schedules_and_stops_with_the_stack(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, demo: CeleryDemo
) -> None:
    first, second = demo.tenants
    viewer = token(pool, Role.VIEWER, [first, second])
    api = httpx.Client(base_url=stack.api.api_url, headers=bearer(viewer), timeout=10)
    (listed,) = [p for p in stack.status()["parts"] if p["name"] == "celery-demo"]
    assert listed["ready"]

    def schedules() -> set[tuple[str, str]] | None:
        found = {
            (s["tenantId"], s["jobType"])
            for tenant in demo.tenants
            for s in api.get("/api/admin/job-schedules", params={"tenant": tenant}).json()["items"]
        }
        wanted = {(first, "ERP_SYNC"), (second, "PIM_IMPORT"), (first, "CRM_EXPORT")}
        return found if wanted <= found else None

    eventually(schedules, timeout=60, what="the beat entries as job schedules")

    def a_sync() -> dict[str, Any] | None:
        items = api.get("/api/admin/jobs", params={"tenant": first, "jobType": "ERP_SYNC"}).json()[
            "items"
        ]
        done = [j for j in items if j["status"] == "succeeded"]
        return done[0] if done else None

    # beat's first interval run is 30 s after its start
    job = eventually(a_sync, timeout=90, what="a beat-sent ERP_SYNC run")
    assert job["serviceName"] == "celery-demo"
    assert job["progressPercent"] == 100
    detail = api.get(f"/api/admin/jobs/{job['id']}", params={"tenant": first}).json()
    progress = [c["progressPercent"] for c in detail["timeline"] if c["status"] == "running"]
    assert any(0 < p < 100 for p in progress), detail["timeline"]

    stack.supervisor.stop(demo, _say)
    assert stack.supervisor.pid(demo) is None
    assert not demo.healthy()
    api.close()
