"""GET /api/admin/jobs/{id} on the running API process, with real HTTP and real tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.tokens import TokenStore
from tests.api_process import cli
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

# relative to now: the stack's processor deletes jobs finished B2C_JOB_RETENTION_DAYS ago
T = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="module")
def api_url(stack: LocalStack) -> str:
    """The stack's own API process: this module tests it."""
    return f"http://127.0.0.1:{stack.layout.ports.api}"


def seed(pool: psycopg_pool.ConnectionPool, tenant: str, job_id: str) -> None:
    JobStore(pool).apply(
        [
            JobReport(
                tenant,
                job_id,
                JobState.RUNNING,
                T,
                job_type="PIM_IMPORT",
                progress=20,
                metadata={"rows": 7},
            ),
            JobReport(
                tenant,
                job_id,
                JobState.FAILED,
                T + timedelta(minutes=5),
                job_type="PIM_IMPORT",
                error_message="PIM timeout",
            ),
        ],
        datetime.now(UTC),
    )


def test_a_job_is_served_in_camel_case_like_the_adr_record(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    seed(pool, tenant, "job-1")
    response = api.get("/api/admin/jobs/job-1", headers=bearer(token(pool, Role.VIEWER, [tenant])))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "job-1"
    assert body["tenantId"] == tenant
    assert body["jobType"] == "PIM_IMPORT"
    assert body["status"] == "failed"
    assert body["progressPercent"] == 20
    assert body["errorMessage"] == "PIM timeout"
    assert body["metadata"] == {"rows": 7}
    assert datetime.fromisoformat(body["startedAt"]) == T
    assert datetime.fromisoformat(body["completedAt"]) == T + timedelta(minutes=5)
    assert [e["status"] for e in body["timeline"]] == ["running", "failed"]


def test_no_token_and_a_wrong_token_answer_401_problems(api: httpx.Client) -> None:
    for headers in ({}, bearer("b2c_not-a-token")):
        response = api.get("/api/admin/jobs/anything", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_another_tenants_job_answers_404_as_if_absent(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    seed(pool, tenant, "secret-job")
    outsider = token(pool, Role.ADMIN, [tenant + "-other"])
    hidden = api.get("/api/admin/jobs/secret-job", headers=bearer(outsider))
    absent = api.get("/api/admin/jobs/never-existed", headers=bearer(outsider))
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["type"] == absent.json()["type"]
    assert "secret-job" in hidden.json()["detail"]


def test_a_revoked_token_is_refused(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    seed(pool, tenant, "j")
    store = TokenStore(pool)
    record, secret = store.create("short-lived", Role.VIEWER, [tenant], datetime.now(UTC))
    assert api.get("/api/admin/jobs/j", headers=bearer(secret)).status_code == 200
    store.revoke(record.id, datetime.now(UTC))
    assert api.get("/api/admin/jobs/j", headers=bearer(secret)).status_code == 401


def test_the_openapi_document_describes_the_job_and_its_problems(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    operation = doc["paths"]["/api/admin/jobs/{job_id}"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403", "404", "422"}
    problem = operation["responses"]["404"]["content"]["application/problem+json"]["schema"]
    assert problem["$ref"].endswith("/Problem")
    job = doc["components"]["schemas"]["SchedulerJobDetail"]
    assert {
        "id",
        "jobType",
        "tenantId",
        "status",
        "progressPercent",
        "createdAt",
        "startedAt",
        "completedAt",
        "errorMessage",
        "metadata",
        "timeline",
    } <= set(job["properties"])
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_b2c_jobs_show_prints_a_table_and_json_exactly_as_the_api(
    api_url: str, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    seed(pool, tenant, "cli-job")
    secret = token(pool, Role.VIEWER, [tenant])
    as_json = cli(api_url, secret, "jobs", "show", "cli-job", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert (
        as_json.stdout.strip()
        == api.get("/api/admin/jobs/cli-job", headers=bearer(secret)).text.strip()
    )
    assert json.loads(as_json.stdout)["status"] == "failed"

    table = cli(api_url, secret, "jobs", "show", "cli-job")
    assert table.returncode == 0, table.stderr
    assert "PIM_IMPORT" in table.stdout
    assert "PIM timeout" in table.stdout

    missing = cli(api_url, secret, "jobs", "show", "no-such-job")
    assert missing.returncode == 1
    assert "no job 'no-such-job'" in missing.stderr


def test_the_cli_says_what_to_do_when_the_api_is_unreachable(stack: LocalStack) -> None:
    env = {**os.environ, "B2C_API_URL": "http://127.0.0.1:1", "B2C_TOKEN": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "b2c_monitoring", "jobs", "show", "j"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "b2c stack status" in result.stderr
