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
import time
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
from b2c_monitoring.probes.apscheduler import run_job_id, skipped_as_missed, trigger_cron
from tests.api_process import cli
from tests.firing_alerts import raised_missed_run, registered_schedule
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


def _start_scheduler(
    served: Served,
    probe_token: str,
    tenant: str,
    service: str,
    log: Path,
    **env: str,
) -> subprocess.Popen[bytes]:
    """``python -m tests.apscheduler_app`` reporting as ``service`` of ``tenant``."""
    full_env = {
        **os.environ,
        "B2C_TEST_APS_OTLP": f"http://127.0.0.1:{served.stack.layout.ports.otlp_grpc}",
        "B2C_TEST_APS_INGEST_TOKEN": served.stack.probe_token,
        "B2C_TEST_APS_SERVICE": service,
        "B2C_TEST_APS_TENANT": tenant,
        "B2C_TEST_APS_API": served.url,
        "B2C_TEST_APS_PROBE_TOKEN": probe_token,
        "PYTHONPATH": str(ROOT),
        **env,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.apscheduler_app"],
            env=full_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def scheduler(
    served: Served, pool: psycopg_pool.ConnectionPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scheduler]:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    service = f"aps-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("aps") / "scheduler.log"
    process = _start_scheduler(served, token(pool, Role.PROBE, [tenant]), tenant, service, log)
    yield Scheduler(tenant, service, token(pool, Role.OPERATOR, [tenant]))
    _stop(process)


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


def test_a_run_later_than_its_grace_at_submission_is_one_the_executor_skips() -> None:
    due = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert skipped_as_missed(due, 1, due + timedelta(seconds=3))
    # the executor judged it a moment earlier: within the margin it may have run it
    assert not skipped_as_missed(due, 1, due + timedelta(seconds=1.2))
    assert not skipped_as_missed(due, None, due + timedelta(days=1))  # no grace: runs late
    assert not skipped_as_missed(None, 1, due)


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


def _next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def test_a_cron_run_missed_past_its_grace_is_stored_as_missed_and_fires_a_missed_run_alert(
    served: Served,
    pool: psycopg_pool.ConnectionPool,
    api: httpx.Client,
    tmp_path: Path,
) -> None:
    """A real BackgroundScheduler registers its cron trigger (every minute, 5 s grace) as
    the job schedule of its job type; the process is then blocked (SIGSTOP) across the
    minute its run was due. Woken 3 s late, past the job's ``misfire_grace_time`` (1 s),
    APScheduler skips the run with EVENT_JOB_MISSED: b2c stores that run cancelled with
    ``apscheduler.skipped`` = ``missed``, and the processor's evaluator, which does not
    count a skipped run as a run, raises the missed-run alert with no one declaring
    anything."""
    if _next_minute(datetime.now(UTC)) - datetime.now(UTC) < timedelta(seconds=10):
        # started this close to a minute, the job could run before it is blocked
        time.sleep((_next_minute(datetime.now(UTC)) - datetime.now(UTC)).total_seconds() + 1)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    service = f"aps-missed-{uuid.uuid4().hex[:8]}"
    operator = token(pool, Role.OPERATOR, [tenant])
    process = _start_scheduler(
        served,
        token(pool, Role.PROBE, [tenant]),
        tenant,
        service,
        tmp_path / "scheduler.log",
        B2C_TEST_APS_EVERY_MINUTE="1",
    )
    try:
        schedule = registered_schedule(
            api, tenant, operator, "ERP_SYNC", timeout=30, what="the cron trigger's job schedule"
        )
        process.send_signal(signal.SIGSTOP)
        due = _next_minute(datetime.now(UTC))
        assert schedule["cron"] == "* * * * *"
        assert schedule["graceS"] == 5
        time.sleep((due - datetime.now(UTC)).total_seconds() + 3)
        process.send_signal(signal.SIGCONT)
        skipped = eventually(
            job_state(api, operator, run_job_id("erp-sync", due), "cancelled"),
            timeout=30,
            what="the missed run's report",
        )
    finally:
        # stopped here: the next minute's run would resolve the alert before it is read
        _stop(process)
    assert skipped["jobType"] == "ERP_SYNC"
    assert skipped["serviceName"] == service
    assert skipped["metadata"]["apscheduler.skipped"] == "missed"
    assert skipped["startedAt"] is None  # submitted to the executor, never started

    # the run's grace (5 s) and one or two rounds of the evaluator (15 s)
    alert = raised_missed_run(api, tenant, operator, timeout=60)
    assert alert["state"] == "firing"
    assert alert["jobType"] == "ERP_SYNC"
    assert alert["details"]["expectedAt"].startswith(due.strftime("%Y-%m-%dT%H:%M:00"))
    assert alert["title"].startswith("ERP_SYNC did not start: expected at ")
    jobs = api.get("/api/admin/jobs", params={"tenant": tenant}, headers=bearer(operator)).json()
    assert [j["id"] for j in jobs["items"]] == [skipped["id"]]  # no run that happened
