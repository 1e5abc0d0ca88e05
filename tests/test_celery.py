"""Celery reports its tasks as jobs with no change to task code, and retry and cancel
reach its workers: a real Redis, a real Celery worker (prefork, two children), the real
collector, processor and Postgres of the test stack, and an admin API of this checkout
(``served``, shared with tests/test_job_commands.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest

import tests.test_job_commands as job_commands_tests
from b2c_monitoring.auth import Role
from b2c_monitoring.probes.celery import beat_entry_cron, job_id_of, task_id_of
from tests.api_process import cli
from tests.firing_alerts import raised_missed_run, registered_schedule
from tests.polling import eventually
from tests.redis_server import CELERY_TESTS, RedisDb, redis_db
from tests.test_job_commands import Served, command_state, job_state
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

# the admin API of this checkout, its pool and client: the fixtures of the commands tests
served = job_commands_tests.served
pool = job_commands_tests.pool
api = job_commands_tests.api

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def redis(served: Served) -> RedisDb:
    return redis_db(served.stack, CELERY_TESTS)


@dataclass(frozen=True)
class Worker:
    tenant: str
    service: str
    operator: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def app(self) -> Any:
        """The test app as a producer in this process (reports pending too)."""
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("B2C_TEST_CELERY")})
        import tests.celery_app as module

        return module


def celery_env(
    served: Served, redis: RedisDb, tenant: str, service: str, probe: str
) -> dict[str, str]:
    stack = served.stack
    return {
        **os.environ,
        "B2C_TEST_CELERY_REDIS": redis.url,
        "B2C_TEST_CELERY_OTLP": f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
        "B2C_TEST_CELERY_INGEST_TOKEN": stack.probe_token,
        "B2C_TEST_CELERY_SERVICE": service,
        "B2C_TEST_CELERY_TENANT": tenant,
        "B2C_TEST_CELERY_API": served.url,
        "B2C_TEST_CELERY_PROBE_TOKEN": probe,
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="module")
def worker(
    served: Served,
    redis: RedisDb,
    pool: psycopg_pool.ConnectionPool,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    service = f"celery-{uuid.uuid4().hex[:8]}"
    env = celery_env(served, redis, tenant, service, token(pool, Role.PROBE, [tenant]))
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "-n",
                f"{service}@%h",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    made = Worker(tenant, service, token(pool, Role.OPERATOR, [tenant]), env, process, log)
    app = made.app().app
    eventually(lambda: app.control.ping(timeout=0.5) or None, timeout=60, what="worker ready")
    yield made
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def _job(api: httpx.Client, worker: Worker, job_id: str, state: str) -> dict[str, Any]:
    return eventually(
        job_state(api, worker.operator, job_id, state), timeout=30, what=f"{job_id} {state}"
    )


def _timeline(job: dict[str, Any]) -> list[str]:
    return [change["status"] for change in job.get("timeline", [])]


def test_ids_of_attempts_and_beat_schedules_in_cron() -> None:
    assert job_id_of("abc", 0) == "abc"
    assert job_id_of("abc", 2) == "abc.retry2"
    assert task_id_of("abc.retry2") == "abc"
    assert task_id_of("abc") == "abc"
    from datetime import timedelta

    from celery.schedules import crontab

    assert beat_entry_cron(crontab(minute="30", hour="2")) == ("30 2 * * *", timedelta(0))
    assert beat_entry_cron(timedelta(minutes=5)) == ("*/5 * * * *", timedelta(minutes=5))
    assert beat_entry_cron(timedelta(hours=6)) == ("0 */6 * * *", timedelta(hours=6))
    assert beat_entry_cron(timedelta(minutes=7)) is None


def test_a_task_run_appears_with_every_state_and_its_job_type(
    api: httpx.Client, worker: Worker
) -> None:
    app = worker.app()
    result = app.add.delay(2, 3)
    assert result.get(timeout=20) == 5
    _job(api, worker, result.id, "succeeded")

    def with_pending() -> dict[str, Any] | None:
        # the producer (this process) and the worker child export on their own, so the
        # pending report may arrive last: it still makes createdAt the publish time
        body: dict[str, Any] = api.get(
            f"/api/admin/jobs/{result.id}", headers=bearer(worker.operator)
        ).json()
        return body if body["createdAt"] < body["startedAt"] else None

    job = eventually(with_pending, timeout=30, what="the pending report of the publish")
    assert job["jobType"] == "ERP_SYNC"
    assert job["tenantId"] == worker.tenant
    assert job["progressPercent"] == 100
    assert job["metadata"]["celery.task"] == "tests.celery_app.add"
    assert job["startedAt"] <= job["completedAt"]


def test_a_failing_task_stores_its_exception_message(api: httpx.Client, worker: Worker) -> None:
    app = worker.app()
    result = app.boom.delay("ERP refused order 4711: credit limit")
    job = _job(api, worker, result.id, "failed")
    assert job["errorMessage"] == "ERP refused order 4711: credit limit"
    assert job["jobType"] == "tests.celery_app.boom"


def test_update_state_progress_appears(api: httpx.Client, worker: Worker) -> None:
    app = worker.app()
    result = app.progress_steps.delay(4)

    def halfway() -> dict[str, Any] | None:
        response = api.get(f"/api/admin/jobs/{result.id}", headers=bearer(worker.operator))
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return (
            body
            if body.get("status") == "running" and (body.get("progressPercent") or 0) >= 50
            else None
        )

    seen = eventually(halfway, timeout=30, what="progress while running")
    assert seen["metadata"]["progress.total"] == 4
    assert _job(api, worker, result.id, "succeeded")["progressPercent"] == 100


def test_celerys_own_retry_is_a_new_attempt_that_retries_the_first(
    api: httpx.Client, worker: Worker
) -> None:
    app = worker.app()
    result = app.flaky.delay()
    assert result.get(timeout=20) == "ok"
    first = _job(api, worker, result.id, "failed")
    assert first["errorMessage"].startswith("retrying: ")
    second = _job(api, worker, job_id_of(result.id, 1), "succeeded")
    assert second["retryOf"] == result.id
    assert second["attempt"] == 2


def test_b2c_jobs_cancel_stops_a_running_task_within_2s(
    served: Served, api: httpx.Client, worker: Worker
) -> None:
    app = worker.app()
    result = app.slow.delay(60)
    _job(api, worker, result.id, "running")
    asked = cli(served.url, worker.operator, "jobs", "cancel", result.id)
    assert asked.returncode == 0, asked.stderr
    started = time.monotonic()
    cancelled = _job(api, worker, result.id, "cancelled")
    assert time.monotonic() - started < 2.0 + 1.0  # 2 s to take effect, 1 s of polling
    assert cancelled["metadata"]["celery.revoked"] == "terminated"
    eventually(command_state(api, worker.operator, result.id, {"done"}), timeout=10, what="done")


def test_b2c_jobs_retry_runs_it_again_with_the_same_arguments(
    served: Served, api: httpx.Client, worker: Worker, redis: RedisDb
) -> None:
    app = worker.app()
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    result = app.slow.delay(30, token=secret)
    _job(api, worker, result.id, "running")
    assert (
        api.post(f"/api/admin/jobs/{result.id}/cancel", headers=bearer(worker.operator)).status_code
        == 202
    )
    _job(api, worker, result.id, "cancelled")
    asked = cli(served.url, worker.operator, "jobs", "retry", result.id, "--json")
    assert asked.returncode == 0, asked.stderr
    import json

    new_job_id = json.loads(asked.stdout)["retry"]["newJobId"]
    retried = _job(api, worker, new_job_id, "running")
    assert retried["retryOf"] == result.id
    assert retried["attempt"] == 2
    # the same arguments reached the task: Celery's own record of the new run says so
    inspect = app.app.control.inspect(timeout=2).active() or {}
    running = [t for tasks in inspect.values() for t in tasks if t["id"] == new_job_id]
    assert running, inspect
    assert running[0]["args"] == [30]
    assert running[0]["kwargs"] == {"token": secret}
    # ...and b2c stored none of them
    assert secret not in json.dumps(retried)
    app.app.control.revoke(new_job_id, terminate=True)


def test_an_app_traced_only_with_opentelemetry_instrumentation_celery_shows_its_tasks_as_jobs(
    served: Served,
    redis: RedisDb,
    pool: psycopg_pool.ConnectionPool,
    api: httpx.Client,
    tmp_path: Path,
) -> None:
    """No b2c library in the worker: the collector's transform/celery_jobs turns its
    run/<task> spans into job-state reports."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    service = f"celery-otel-{uuid.uuid4().hex[:8]}"
    env = {
        **celery_env(served, redis, tenant, service, "unused"),
        "B2C_TEST_CELERY_INSTRUMENT": "0",
        "B2C_TEST_CELERY_OTEL": "1",
    }
    with (tmp_path / "worker.log").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                f"{service}@%h",
                "-Q",
                service,
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    operator = token(pool, Role.OPERATOR, [tenant])
    try:
        from celery import Celery

        producer = Celery(broker=redis.url, backend=redis.url)
        ok = producer.send_task("tests.celery_app.add", args=(1, 2), queue=service)
        bad = producer.send_task("tests.celery_app.boom", args=("PIM down",), queue=service)
        assert ok.get(timeout=60) == 3
        done = eventually(
            job_state(api, operator, ok.id, "succeeded"), timeout=30, what="the traced run"
        )
        assert done["jobType"] == "tests.celery_app.add"
        assert done["serviceName"] == service
        failed = eventually(
            job_state(api, operator, bad.id, "failed"), timeout=30, what="the failed run"
        )
        assert "PIM down" in failed["errorMessage"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_beat_entry_whose_run_does_not_happen_fires_a_missed_run_alert(
    served: Served,
    redis: RedisDb,
    pool: psycopg_pool.ConnectionPool,
    api: httpx.Client,
    tmp_path: Path,
) -> None:
    """A real ``celery beat`` registers its crontab entry (every minute, 5 s grace) as the
    job schedule of the entry's job type, then dies before the entry's next run: the
    processor's evaluator raises the missed-run alert with no one declaring anything."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    service = f"celery-beat-{uuid.uuid4().hex[:8]}"
    env = {
        **celery_env(served, redis, tenant, service, token(pool, Role.PROBE, [tenant])),
        "B2C_TEST_CELERY_BEAT_EVERY_MINUTE": "1",
        "B2C_TEST_CELERY_GRACE_S": "5",
    }
    operator = token(pool, Role.OPERATOR, [tenant])
    with (tmp_path / "beat.log").open("wb") as out:
        beat = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery_app",
                "beat",
                "--schedule",
                str(tmp_path / "celerybeat-schedule"),
                "--loglevel",
                "INFO",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        schedule = registered_schedule(
            api, tenant, operator, "ERP_SYNC", timeout=60, what="the beat entry's job schedule"
        )
    finally:
        # beat dies before the entry's next minute: its run never happens
        beat.send_signal(signal.SIGKILL)
        beat.wait(10)
    assert schedule["cron"] == "* * * * *"
    assert schedule["graceS"] == 5

    # the next minute, its grace, and one or two rounds of the evaluator (15 s)
    alert = raised_missed_run(api, tenant, operator, timeout=120)
    assert alert["state"] == "firing"
    assert alert["jobType"] == "ERP_SYNC"
    assert alert["title"].startswith("ERP_SYNC did not start: expected at ")
    jobs = api.get("/api/admin/jobs", params={"tenant": tenant}, headers=bearer(operator)).json()[
        "items"
    ]
    assert jobs == []  # no run of that entry ever reached b2c
