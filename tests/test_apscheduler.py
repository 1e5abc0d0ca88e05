"""APScheduler's BackgroundScheduler in a real process reports its runs as jobs, its
cron and interval triggers become job schedules, retry runs a job again and cancel is
refused with APScheduler's reason: the real collector, processor, Postgres and an admin
API of this checkout (``served`` of tests/test_job_commands.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest

import tests.test_job_commands as job_commands_tests
from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.probes.apscheduler import run_job_id, trigger_cron
from tests.api_process import cli
from tests.polling import eventually
from tests.test_job_commands import Served, command_state, job_state, seed_job
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

served = job_commands_tests.served
pool = job_commands_tests.pool
api = job_commands_tests.api

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scheduler:
    tenant: str
    service: str
    operator: str


@pytest.fixture(scope="module")
def scheduler(
    served: Served, pool: psycopg_pool.ConnectionPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scheduler]:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    service = f"aps-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "B2C_TEST_APS_OTLP": f"http://127.0.0.1:{served.stack.layout.ports.otlp_grpc}",
        "B2C_TEST_APS_INGEST_TOKEN": served.stack.probe_token,
        "B2C_TEST_APS_SERVICE": service,
        "B2C_TEST_APS_TENANT": tenant,
        "B2C_TEST_APS_API": served.url,
        "B2C_TEST_APS_PROBE_TOKEN": token(pool, Role.PROBE, [tenant]),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path_factory.mktemp("aps") / "scheduler.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.apscheduler_app"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield Scheduler(tenant, service, token(pool, Role.OPERATOR, [tenant]))
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def _jobs(api: httpx.Client, s: Scheduler, job_type: str, status: str) -> list[dict[str, Any]]:
    response = api.get(
        "/api/admin/jobs",
        params={"tenant": s.tenant, "jobType": job_type, "status": status},
        headers=bearer(s.operator),
    )
    items: list[dict[str, Any]] = response.json()["items"] if response.status_code == 200 else []
    return items


def test_run_ids_and_triggers_in_cron() -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert run_job_id("erp-sync", at) == "erp-sync@2026-01-02T03:04:00+00:00"
    assert trigger_cron(CronTrigger(hour="2", minute="30")) == ("30 2 * * *", timedelta(0))
    assert trigger_cron(IntervalTrigger(minutes=10)) == ("*/10 * * * *", timedelta(minutes=10))
    assert trigger_cron(CronTrigger(second="*/3")) is None


def test_runs_report_succeeded_and_failed_with_the_exception_message(
    api: httpx.Client, scheduler: Scheduler
) -> None:
    (ok, *_) = eventually(
        lambda: _jobs(api, scheduler, "ERP_SYNC", "succeeded") or None, timeout=30, what="a run"
    )
    assert ok["id"].startswith("erp-sync@")
    assert ok["progressPercent"] == 100
    assert ok["serviceName"] == scheduler.service
    (bad, *_) = eventually(
        lambda: _jobs(api, scheduler, "PIM_IMPORT", "failed") or None, timeout=30, what="a failure"
    )
    assert bad["errorMessage"] == "pim answered 503"


def test_cron_and_interval_triggers_register_as_job_schedules(
    api: httpx.Client, scheduler: Scheduler
) -> None:
    def registered() -> dict[str, dict[str, Any]] | None:
        body = api.get(
            "/api/admin/job-schedules",
            params={"tenant": scheduler.tenant},
            headers=bearer(scheduler.operator),
        ).json()
        found = {item["jobType"]: item for item in body["items"]}
        return found if {"ERP_SYNC", "ERP_NIGHTLY"} <= set(found) else None

    found = eventually(registered, timeout=30, what="the schedules")
    assert found["ERP_NIGHTLY"]["cron"] == "30 2 * * *"
    assert found["ERP_SYNC"]["cron"] == "* * * * *"  # every 2 s: at least one run a minute
    assert "PIM_IMPORT" not in found  # every 3 seconds: no cron form


def test_retry_runs_the_job_now_and_cancel_is_refused_with_the_reason(
    served: Served,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    scheduler: Scheduler,
) -> None:
    (bad, *_) = eventually(
        lambda: _jobs(api, scheduler, "PIM_IMPORT", "failed") or None, timeout=30, what="a failure"
    )
    asked = cli(served.url, scheduler.operator, "jobs", "retry", bad["id"], "--json")
    assert asked.returncode == 0, asked.stderr
    new_job_id = json.loads(asked.stdout)["retry"]["newJobId"]
    retried = eventually(
        job_state(api, scheduler.operator, new_job_id, "failed"), timeout=30, what="the retry"
    )
    assert retried["retryOf"] == bad["id"]
    assert retried["attempt"] == 2
    assert retried["errorMessage"] == "pim answered 503"

    # a run of this scheduler that is running (seeded: the real ones take milliseconds)
    running = seed_job(
        pool,
        scheduler.tenant,
        JobState.RUNNING,
        scheduler.service,
        job_id=f"erp-sync@{uuid.uuid4()}",
    )
    asked = cli(served.url, scheduler.operator, "jobs", "cancel", running)
    assert asked.returncode == 0, asked.stderr
    refused = eventually(
        command_state(api, scheduler.operator, running, {"failed"}), timeout=30, what="refusal"
    )
    assert refused["result"]["error"].startswith("APScheduler cannot stop a job that is running")
