"""GET /api/admin/jobs, the job-type windows and `b2c jobs list`, on a running API process.

Real HTTP, real tokens, the stack's real Postgres. The API process is this module's
own, started from the checkout against the stack's database: a stack kept running
between sessions (B2C_TEST_KEEP_STACK=1) may serve an API of older code. The
database is shared, so every test works in tenants (and job types) of its own and
never lists all tenants without a tenant filter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport, Scalar
from b2c_monitoring.storage.jobs import JobStore
from tests.api_process import cli
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
DAY_AGO = NOW - timedelta(days=1)


@pytest.fixture
def job_type(pool: psycopg_pool.ConnectionPool, tenant: str) -> Iterator[str]:
    """A job type of this test's own: windows are global, per type."""
    name = f"T_{tenant}".upper()
    yield name
    with pool.connection() as conn:
        conn.execute("DELETE FROM job_type_windows WHERE job_type = %s", (name,))


def report(
    tenant: str,
    job_id: str,
    state: JobState,
    at: datetime,
    *,
    job_type: str = "ERP_SYNC",
    error: str | None = None,
    metadata: dict[str, Scalar] | None = None,
) -> JobReport:
    return JobReport(
        tenant,
        job_id,
        state,
        at,
        job_type=job_type,
        error_message=error,
        metadata=metadata or {},
    )


def store(pool: psycopg_pool.ConnectionPool, *reports: JobReport) -> None:
    JobStore(pool).apply(list(reports), datetime.now(UTC))


def ids(body: dict[str, Any]) -> list[str]:
    return [job["id"] for job in body["items"]]


def list_jobs(api: httpx.Client, secret: str, **params: Any) -> dict[str, Any]:
    response = api.get("/api/admin/jobs", params=params, headers=bearer(secret))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_jobs_are_listed_newest_first_in_camel_case(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    store(
        pool,
        report(tenant, "old", JobState.SUCCEEDED, DAY_AGO - timedelta(hours=2)),
        report(tenant, "new", JobState.FAILED, DAY_AGO, error="ERP down", metadata={"rows": 3}),
    )
    body = list_jobs(api, token(pool, Role.VIEWER, [tenant]))
    assert ids(body) == ["new", "old"]
    assert body["nextCursor"] is None
    job = body["items"][0]
    assert job["tenantId"] == tenant
    assert job["jobType"] == "ERP_SYNC"
    assert job["errorMessage"] == "ERP down"
    assert job["metadata"] == {"rows": 3}
    assert job["flags"] == []
    assert datetime.fromisoformat(job["createdAt"]) == DAY_AGO


def test_filters_by_status_type_and_creation_time_narrow_the_list(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    store(
        pool,
        report(tenant, "f-erp", JobState.FAILED, DAY_AGO - timedelta(hours=1)),
        report(
            tenant, "f-pim", JobState.FAILED, DAY_AGO - timedelta(hours=2), job_type="PIM_IMPORT"
        ),
        report(tenant, "c-erp", JobState.CANCELLED, DAY_AGO - timedelta(hours=3)),
        report(tenant, "s-erp", JobState.SUCCEEDED, DAY_AGO - timedelta(hours=4)),
        report(tenant, "f-old", JobState.FAILED, DAY_AGO - timedelta(days=3)),
    )
    secret = token(pool, Role.VIEWER, [tenant])
    assert ids(list_jobs(api, secret, status="failed")) == ["f-erp", "f-pim", "f-old"]
    assert ids(list_jobs(api, secret, status=["failed", "cancelled"])) == [
        "f-erp",
        "f-pim",
        "c-erp",
        "f-old",
    ]
    assert ids(list_jobs(api, secret, jobType="PIM_IMPORT")) == ["f-pim"]
    since = (DAY_AGO - timedelta(hours=3)).isoformat()
    until = (DAY_AGO - timedelta(hours=1)).isoformat()
    assert ids(list_jobs(api, secret, since=since)) == ["f-erp", "f-pim", "c-erp"]
    assert ids(list_jobs(api, secret, since=since, until=until)) == ["f-pim", "c-erp"]
    assert ids(
        list_jobs(api, secret, status=["failed", "cancelled"], jobType="ERP_SYNC", since=since)
    ) == ["f-erp", "c-erp"]


def test_a_viewer_never_sees_another_tenants_jobs_even_when_asking_for_them(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    other = tenant + "-b"
    store(
        pool,
        report(tenant, "mine", JobState.FAILED, DAY_AGO),
        report(other, "theirs", JobState.FAILED, DAY_AGO),
    )
    viewer = token(pool, Role.VIEWER, [tenant])
    assert ids(list_jobs(api, viewer, tenant=other)) == []
    assert ids(list_jobs(api, viewer, tenant=[tenant, other])) == ["mine"]
    assert ids(list_jobs(api, viewer)) == ["mine"]
    # an all-tenants token filters by tenant, and several tenants merge in one order
    admin = token(pool, Role.ADMIN, None)
    assert ids(list_jobs(api, admin, tenant=other)) == ["theirs"]
    both = list_jobs(api, admin, tenant=[tenant, other])["items"]
    assert [(j["tenantId"], j["id"]) for j in both] == [(other, "theirs"), (tenant, "mine")]


@pytest.mark.parametrize("scope", ["one tenant", "two tenants", "two statuses"])
def test_pages_walk_every_job_exactly_once_while_new_jobs_arrive(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, scope: str
) -> None:
    tenants = [tenant] if scope == "one tenant" else [tenant, tenant + "-b"]
    statuses = [JobState.FAILED, JobState.SUCCEEDED]
    # 3 jobs per instant and tenant: ties on createdAt are ordered by tenant, then id
    reports = [
        report(
            t,
            f"job-{n:03d}",
            statuses[n % 2] if scope == "two statuses" else JobState.FAILED,
            DAY_AGO - timedelta(minutes=n // 3),
        )
        for t in tenants
        for n in range(61)
    ]
    store(pool, *reports)
    expected = sorted(
        ((r.tenant_id, r.job_id, r.at) for r in reports), key=lambda k: (k[2], k[0], k[1])
    )[::-1]
    secret = token(pool, Role.VIEWER, tenants)
    params: dict[str, Any] = {"limit": 7}
    if scope == "two statuses":
        params["status"] = ["failed", "succeeded"]

    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        body = list_jobs(api, secret, **params, **({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= 7
        seen += [(job["tenantId"], job["id"]) for job in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
        # a job arrives between two pages: newer than the page it follows
        store(pool, report(tenant, f"late-{len(seen)}", JobState.FAILED, datetime.now(UTC)))

    assert seen == [(t, j) for t, j, _ in expected]


def test_q_searches_error_messages_and_metadata_case_insensitively(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    store(
        pool,
        report(tenant, "timeout", JobState.FAILED, DAY_AGO, error="ERP Timeout after 30 s"),
        report(tenant, "warehouse", JobState.SUCCEEDED, DAY_AGO, metadata={"site": "Lager-Nord"}),
        report(tenant, "percent", JobState.FAILED, DAY_AGO, error="disk 100% full"),
        report(tenant, "plain", JobState.SUCCEEDED, DAY_AGO, metadata={"site": "Süd"}),
    )
    secret = token(pool, Role.VIEWER, [tenant])
    assert ids(list_jobs(api, secret, q="timeout AFTER")) == ["timeout"]
    assert ids(list_jobs(api, secret, q="lager-nord")) == ["warehouse"]
    assert ids(list_jobs(api, secret, q="süd")) == ["plain"]
    # LIKE's wildcards are literal text
    assert ids(list_jobs(api, secret, q="100%")) == ["percent"]
    assert ids(list_jobs(api, secret, q="_")) == []
    assert ids(list_jobs(api, secret, q="timeout", status="succeeded")) == []


def test_stalled_and_overdue_jobs_are_flagged_filtered_and_follow_their_types_windows(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, job_type: str
) -> None:
    now = datetime.now(UTC)
    store(
        pool,
        report(tenant, "silent", JobState.RUNNING, now - timedelta(hours=1), job_type=job_type),
        report(tenant, "busy", JobState.RUNNING, now - timedelta(minutes=1), job_type=job_type),
        report(tenant, "waiting", JobState.PENDING, now - timedelta(hours=1), job_type=job_type),
        report(tenant, "queued", JobState.PENDING, now - timedelta(minutes=1), job_type=job_type),
        report(tenant, "done", JobState.FAILED, now - timedelta(days=2), job_type=job_type),
    )
    viewer = token(pool, Role.VIEWER, [tenant])
    flags = {job["id"]: job["flags"] for job in list_jobs(api, viewer)["items"]}
    assert flags == {
        "silent": ["stalled"],
        "busy": [],
        "waiting": ["overdue"],
        "queued": [],
        "done": [],
    }
    assert ids(list_jobs(api, viewer, flag="stalled")) == ["silent"]
    assert ids(list_jobs(api, viewer, flag="overdue")) == ["waiting"]
    assert ids(list_jobs(api, viewer, flag="stalled", status="pending")) == []
    detail = api.get("/api/admin/jobs/silent", headers=bearer(viewer)).json()
    assert detail["flags"] == ["stalled"]

    # the type's own heartbeat window: an hour of silence is fine for it
    admin = token(pool, Role.ADMIN, [tenant])
    put = api.put(
        f"/api/admin/job-types/{job_type}/windows",
        json={"heartbeatWindowSeconds": 7200},
        headers=bearer(admin),
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "jobType": job_type,
        "heartbeatWindowSeconds": 7200,
        "startWindowSeconds": None,
    }
    assert ids(list_jobs(api, viewer, flag="stalled")) == []
    assert ids(list_jobs(api, viewer, flag="overdue")) == ["waiting"]
    listed = api.get("/api/admin/job-types", headers=bearer(viewer)).json()
    assert listed["defaults"] == {"heartbeatWindowSeconds": 600, "startWindowSeconds": 900}
    assert {"jobType": job_type, "heartbeatWindowSeconds": 7200, "startWindowSeconds": None} in (
        listed["items"]
    )

    # reporting again clears the flag
    api.put(f"/api/admin/job-types/{job_type}/windows", json={}, headers=bearer(admin))
    assert ids(list_jobs(api, viewer, flag="stalled")) == ["silent"]
    store(pool, report(tenant, "silent", JobState.RUNNING, datetime.now(UTC), job_type=job_type))
    assert ids(list_jobs(api, viewer, flag="stalled")) == []


def test_without_a_token_the_list_answers_401(api: httpx.Client) -> None:
    response = api.get("/api/admin/jobs")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_only_an_admin_may_set_windows(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, job_type: str
) -> None:
    for role in (Role.VIEWER, Role.OPERATOR):
        response = api.put(
            f"/api/admin/job-types/{job_type}/windows",
            json={"startWindowSeconds": 60},
            headers=bearer(token(pool, role, [tenant])),
        )
        assert response.status_code == 403
        assert response.json()["type"].endswith(":forbidden")
    bad = api.put(
        f"/api/admin/job-types/{job_type}/windows",
        json={"startWindowSeconds": 0},
        headers=bearer(token(pool, Role.ADMIN, None)),
    )
    assert bad.status_code == 422

    # a change of windows applies to every tenant: it is audited, for admins of all
    everyone = token(pool, Role.ADMIN, None)
    assert (
        api.put(
            f"/api/admin/job-types/{job_type}/windows",
            json={"startWindowSeconds": 60},
            headers=bearer(everyone),
        ).status_code
        == 200
    )
    audit = api.get(
        "/api/admin/audit", params={"action": "job_type.windows"}, headers=bearer(everyone)
    ).json()["items"]
    [entry] = [e for e in audit if e["target"] == job_type]
    assert entry["details"] == {"heartbeatSeconds": None, "startSeconds": 60.0}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},  # base64 of "[]"
        {"status": "exploded"},
        {"flag": "late"},
        {"since": "2026-11-28T12:00:00"},  # no offset: ambiguous
        {"limit": 501},
        {"limit": 0},
    ],
)
def test_bad_parameters_answer_422_problems(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, params: dict[str, Any]
) -> None:
    response = api.get(
        "/api/admin/jobs", params=params, headers=bearer(token(pool, Role.VIEWER, [tenant]))
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["location"].startswith("query.")


def test_the_openapi_document_describes_the_list(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    operation = doc["paths"]["/api/admin/jobs"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "422"}
    names = {p["name"] for p in operation["parameters"]}
    assert names == {
        "status",
        "jobType",
        "tenant",
        "since",
        "until",
        "flag",
        "q",
        "limit",
        "cursor",
    }
    assert set(doc["components"]["schemas"]["JobList"]["properties"]) == {"items", "nextCursor"}
    assert "flags" in doc["components"]["schemas"]["SchedulerJob"]["properties"]
    assert "put" in doc["paths"]["/api/admin/job-types/{job_type}/windows"]


def test_b2c_jobs_list_prints_a_table_and_json_exactly_as_the_api(
    api_url: str, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    now = datetime.now(UTC)
    store(
        pool,
        report(tenant, "cli-failed", JobState.FAILED, now - timedelta(hours=2), error="PIM 502"),
        report(tenant, "cli-stalled", JobState.RUNNING, now - timedelta(hours=3)),
        report(tenant, "cli-ancient", JobState.FAILED, now - timedelta(days=3)),
    )
    secret = token(pool, Role.VIEWER, [tenant])

    as_json = cli(api_url, secret, "jobs", "list", "--status", "failed", "--since", "24h", "--json")
    assert as_json.returncode == 0, as_json.stderr
    expected = api.get(
        "/api/admin/jobs",
        params={"status": "failed", "since": (now - timedelta(hours=24)).isoformat()},
        headers=bearer(secret),
    )
    assert as_json.stdout.strip() == expected.text.strip()
    assert ids(json.loads(as_json.stdout)) == ["cli-failed"]

    table = cli(api_url, secret, "jobs", "list", "--tenant", tenant)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[1]: line for line in table.stdout.splitlines() if "cli-" in line}
    assert set(rows) == {"cli-failed", "cli-stalled", "cli-ancient"}
    assert "stalled" in rows["cli-stalled"]
    assert "PIM 502" in rows["cli-failed"]

    paged = cli(api_url, secret, "jobs", "list", "--limit", "2")
    assert "next page: --cursor " in paged.stdout
    cursor = paged.stdout.split("--cursor ")[1].split()[0]
    rest = cli(api_url, secret, "jobs", "list", "--limit", "2", "--cursor", cursor, "--json")
    assert ids(json.loads(rest.stdout)) == ["cli-ancient"]

    searched = cli(api_url, secret, "jobs", "list", "--search", "pim 5", "--flag", "stalled")
    assert searched.returncode == 0, searched.stderr
    assert "no jobs match" in searched.stdout


def test_b2c_jobs_list_says_what_went_wrong(api_url: str) -> None:
    refused = cli(api_url, "b2c_not-a-token", "jobs", "list")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    bad = cli(api_url, "b2c_not-a-token", "jobs", "list", "--since", "yesterday")
    assert bad.returncode == 2
    assert "neither a duration" in bad.stderr
