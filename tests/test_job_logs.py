"""A job's execution log: GET /api/admin/jobs/{id}/logs and `b2c jobs logs [--follow]`.

Everything is real: log records go in through the stack's collector (the probes
library, or OTLP/HTTP built by hand where a test needs exact times and tenants),
reach Elasticsearch through the collector's exporter, and come back through an API
process of this module's own and the CLI as a subprocess.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.api.routes.jobs import recent_logs
from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.logs import LogStore, make_client
from tests.api_process import api_process, cli, cli_env
from tests.otlp_builders import kvs
from tests.polling import eventually
from tests.tokens import bearer, probe_auth, token

pytestmark = pytest.mark.integration

WARN, INFO, ERROR, DEBUG = 13, 9, 17, 5
_TEXT = {DEBUG: "DEBUG", INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}


def seed_job(pool: psycopg_pool.ConnectionPool, tenant: str, job_id: str) -> None:
    JobStore(pool).apply(
        [JobReport(tenant, job_id, JobState.RUNNING, datetime.now(UTC), job_type="ERP_SYNC")],
        datetime.now(UTC),
    )


def record(
    at_ns: int, severity: int, body: str, attributes: dict[str, Any], *, text: str | None = None
) -> LogRecord:
    return LogRecord(
        time_unix_nano=at_ns,
        observed_time_unix_nano=at_ns,
        severity_number=severity,  # type: ignore[arg-type]
        severity_text=_TEXT[severity] if text is None else text,
        body=AnyValue(string_value=body),
        attributes=kvs(attributes),
    )


def send_logs(stack: LocalStack, records: list[LogRecord], resource: dict[str, Any]) -> None:
    """OTLP/HTTP protobuf to the collector, as any SDK that follows the contract."""
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kvs(resource)),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )
    response = httpx.post(
        f"http://127.0.0.1:{stack.layout.ports.otlp_http}/v1/logs",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **probe_auth(stack)},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def get_logs(api: httpx.Client, secret: str, job_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/api/admin/jobs/{job_id}/logs", params=params, headers=bearer(secret))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bodies(page: dict[str, Any]) -> list[str]:
    return [line["body"] for line in page["items"]]


def wait_for_lines(
    api: httpx.Client, secret: str, job_id: str, count: int, **params: Any
) -> dict[str, Any]:
    """The pipeline is asynchronous: wait until ``count`` lines are searchable."""

    def probe() -> dict[str, Any] | None:
        page = get_logs(api, secret, job_id, limit=1000, **params)
        return page if len(page["items"]) >= count else None

    return eventually(probe, what=f"{count} log lines of job {job_id}")


def probes_for(stack: LocalStack, tenant: str) -> Probes:
    return Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="erp-connector",
            tenant_id=tenant,
        )
    )


def job_in_api(api: httpx.Client, secret: str, job_id: str, state: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/api/admin/jobs/{job_id}", headers=bearer(secret))
        if response.status_code == 200 and response.json()["status"] == state:
            body: dict[str, Any] = response.json()
            return body
        return None

    return eventually(probe, what=f"job {job_id} {state} in the API")


# --------------------------------------------------------------------------------------
# the API


def test_a_probes_job_log_comes_back_in_order_with_its_fields(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    probes = probes_for(stack, tenant)
    try:
        with probes.job_run("ERP_SYNC", tenant_id=tenant) as job:
            job.logger.info("fetching orders from enventa")
            job.logger.warning("enventa slow to answer", extra={"erp.latency_ms": 5300})
            job.logger.error("order 4711 rejected")
            job.logger.info("done")
    finally:
        probes.shutdown()
    secret = token(pool, Role.VIEWER, [tenant])
    job_in_api(api, secret, job.job_id, "succeeded")

    page = wait_for_lines(api, secret, job.job_id, 4)
    assert bodies(page) == [
        "fetching orders from enventa",
        "enventa slow to answer",
        "order 4711 rejected",
        "done",
    ]
    assert [line["severityText"] for line in page["items"]] == ["INFO", "WARN", "ERROR", "INFO"]
    times = [datetime.fromisoformat(line["time"]) for line in page["items"]]
    assert times == sorted(times)
    warning = page["items"][1]
    assert warning["severityNumber"] == WARN
    assert warning["serviceName"] == "erp-connector"
    assert len(warning["traceId"]) == 32
    assert len(warning["spanId"]) == 16
    assert warning["attributes"]["erp.latency_ms"] == 5300
    # the job's own identity is the URL's, not repeated on every line
    assert not {"tenant.id", "scheduler.job.id"} & set(warning["attributes"])

    assert bodies(get_logs(api, secret, job.job_id, level="warn")) == [
        "enventa slow to answer",
        "order 4711 rejected",
    ]
    assert bodies(get_logs(api, secret, job.job_id, level="error")) == ["order 4711 rejected"]
    assert bodies(get_logs(api, secret, job.job_id, severity=["warn", "INFO"])) == [
        "fetching orders from enventa",
        "enventa slow to answer",
        "done",
    ]
    assert bodies(get_logs(api, secret, job.job_id, q="enventa slow")) == ["enventa slow to answer"]
    newest_first = get_logs(api, secret, job.job_id, order="desc", limit=2)
    assert bodies(newest_first) == ["done", "order 4711 rejected"]


def test_pages_follow_each_other_without_gaps_or_duplicates(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    job_id = f"paged-{uuid.uuid4()}"
    seed_job(pool, tenant, job_id)
    base = time.time_ns() - 60 * 10**9
    # triples of lines at one same nanosecond: the tiebreaker keeps them apart
    records = [
        record(base + (i // 3) * 10**6, INFO, f"line {i:02d}", {"scheduler.job.id": job_id})
        for i in range(25)
    ]
    send_logs(stack, records, {"service.name": "pim-connector", "tenant.id": tenant})
    secret = token(pool, Role.VIEWER, [tenant])
    everything = bodies(wait_for_lines(api, secret, job_id, 25))
    assert sorted(everything) == [f"line {i:02d}" for i in range(25)]

    for order, expected in (("asc", everything), ("desc", everything[::-1])):
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 4, "order": order}
            if cursor is not None:
                params["cursor"] = cursor
            page = get_logs(api, secret, job_id, **params)
            pages += 1
            seen += bodies(page)
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == expected
        assert pages == 8  # 7 pages of lines (4 x 6 + 1), then the empty one


def test_a_running_jobs_log_is_continued_from_the_last_cursor(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    job_id = f"growing-{uuid.uuid4()}"
    seed_job(pool, tenant, job_id)
    secret = token(pool, Role.VIEWER, [tenant])
    resource = {"service.name": "erp-connector", "tenant.id": tenant}
    now = time.time_ns()
    send_logs(stack, [record(now, INFO, "first", {"scheduler.job.id": job_id})], resource)
    cursor = wait_for_lines(api, secret, job_id, 1)["nextCursor"]
    assert get_logs(api, secret, job_id, cursor=cursor) == {"items": [], "nextCursor": None}

    send_logs(stack, [record(now + 10**6, WARN, "second", {"scheduler.job.id": job_id})], resource)

    def after_cursor() -> dict[str, Any] | None:
        page = get_logs(api, secret, job_id, cursor=cursor)
        return page if page["items"] else None

    assert bodies(eventually(after_cursor, what="the line after the cursor")) == ["second"]


def test_lines_of_the_same_job_id_in_another_tenant_never_show(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    other = tenant + "-b"
    job_id = f"shared-{uuid.uuid4()}"
    seed_job(pool, tenant, job_id)
    seed_job(pool, other, job_id)
    now = time.time_ns() - 10 * 10**9
    attrs = {"scheduler.job.id": job_id}
    send_logs(
        stack,
        [record(now, INFO, "a: resource tenant", attrs)],
        {"service.name": "erp-connector", "tenant.id": tenant},
    )
    send_logs(
        stack,
        [
            record(now + 1, INFO, "b: resource tenant", attrs),
            # the record's own tenant.id wins over its resource's (the contract)
            record(now + 2, INFO, "a: record tenant", {**attrs, "tenant.id": tenant}),
        ],
        {"service.name": "erp-connector", "tenant.id": other},
    )
    send_logs(
        stack,
        [record(now + 3, INFO, "b: record tenant", {**attrs, "tenant.id": other})],
        {"service.name": "erp-connector", "tenant.id": tenant},
    )
    mine, theirs = token(pool, Role.VIEWER, [tenant]), token(pool, Role.VIEWER, [other])
    assert bodies(wait_for_lines(api, mine, job_id, 2)) == [
        "a: resource tenant",
        "a: record tenant",
    ]
    assert bodies(wait_for_lines(api, theirs, job_id, 2)) == [
        "b: resource tenant",
        "b: record tenant",
    ]

    both = token(pool, Role.VIEWER, [tenant, other])
    ambiguous = api.get(f"/api/admin/jobs/{job_id}/logs", headers=bearer(both))
    assert ambiguous.status_code == 409
    assert bodies(get_logs(api, both, job_id, tenant=other)) == [
        "b: resource tenant",
        "b: record tenant",
    ]


def test_lines_without_any_tenant_belong_to_the_default_tenant(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    job_id = f"untenanted-{uuid.uuid4()}"
    seed_job(pool, "default", job_id)
    seed_job(pool, tenant, job_id)
    send_logs(
        stack,
        [record(time.time_ns(), INFO, "nobody's line", {"scheduler.job.id": job_id})],
        {"service.name": "legacy-service"},
    )
    default_viewer = token(pool, Role.VIEWER, ["default"])
    assert bodies(wait_for_lines(api, default_viewer, job_id, 1)) == ["nobody's line"]
    assert get_logs(api, token(pool, Role.VIEWER, [tenant]), job_id)["items"] == []


def test_another_tenants_job_answers_404_exactly_like_an_absent_one(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    seed_job(pool, tenant, "secret-job")
    outsider = token(pool, Role.ADMIN, [tenant + "-other"])
    hidden = api.get("/api/admin/jobs/secret-job/logs", headers=bearer(outsider))
    absent = api.get("/api/admin/jobs/never-existed/logs", headers=bearer(outsider))
    assert hidden.status_code == absent.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["type"] == absent.json()["type"]
    assert hidden.json()["detail"] == "no job 'secret-job' in your tenants"


def test_bad_parameters_and_missing_tokens_are_problems(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    seed_job(pool, tenant, "j")
    secret = token(pool, Role.VIEWER, [tenant])
    assert api.get("/api/admin/jobs/j/logs").status_code == 401
    for params in (
        {"limit": 1001},
        {"limit": 0},
        {"level": "loud"},
        {"cursor": "not-a-cursor"},
        {"since": "yesterday"},
    ):
        response = api.get("/api/admin/jobs/j/logs", params=params, headers=bearer(secret))
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
    assert (
        api.get(
            "/api/admin/jobs/j/logs", params={"limit": 1000}, headers=bearer(secret)
        ).status_code
        == 200
    )


def test_a_cursor_of_one_order_is_refused_in_the_other(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    job_id = f"ordered-{uuid.uuid4()}"
    seed_job(pool, tenant, job_id)
    send_logs(
        stack,
        [record(time.time_ns(), INFO, f"l{i}", {"scheduler.job.id": job_id}) for i in range(2)],
        {"service.name": "s", "tenant.id": tenant},
    )
    secret = token(pool, Role.VIEWER, [tenant])
    wait_for_lines(api, secret, job_id, 2)
    cursor = get_logs(api, secret, job_id, limit=1)["nextCursor"]
    response = api.get(
        f"/api/admin/jobs/{job_id}/logs",
        params={"cursor": cursor, "order": "desc"},
        headers=bearer(secret),
    )
    assert response.status_code == 422


def test_an_unreachable_log_store_is_a_503_problem(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, tenant: str, tmp_path: Path
) -> None:
    seed_job(pool, tenant, "j")
    secret = token(pool, Role.VIEWER, [tenant])
    with api_process(
        stack, tmp_path / "api.log", B2C_ELASTICSEARCH_URL="http://127.0.0.1:1"
    ) as url:
        response = httpx.get(f"{url}/api/admin/jobs/j/logs", headers=bearer(secret), timeout=30)
        # the job itself is still served: its detail comes from Postgres
        detail = httpx.get(f"{url}/api/admin/jobs/j", headers=bearer(secret), timeout=30)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(":unavailable")
    assert detail.status_code == 200


def test_recent_logs_are_the_last_lines_oldest_first_or_none_without_the_store(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    job_id = f"recent-{uuid.uuid4()}"
    seed_job(pool, tenant, job_id)
    base = time.time_ns() - 10**9
    send_logs(
        stack,
        [record(base + i, INFO, f"r{i:02d}", {"scheduler.job.id": job_id}) for i in range(25)],
        {"service.name": "s", "tenant.id": tenant},
    )
    wait_for_lines(api, token(pool, Role.VIEWER, [tenant]), job_id, 25)
    [job] = JobStore(pool).get(job_id, [tenant])
    with (
        make_client(stack.elasticsearch.admin_url) as es,
        make_client("http://127.0.0.1:1") as gone,
    ):
        store = LogStore(es, "b2c-logs*", default_tenant="default")
        lines = recent_logs(store, job)
        assert lines is not None
        assert [line.body for line in lines] == [f"r{i:02d}" for i in range(5, 25)]
        assert [line.body for line in recent_logs(store, job, 3) or []] == ["r22", "r23", "r24"]
        dead = LogStore(gone, "b2c-logs*", default_tenant="default")
        assert recent_logs(dead, job) is None


# --------------------------------------------------------------------------------------
# the CLI


def test_b2c_jobs_logs_json_is_the_apis_page_and_the_text_is_one_line_each(
    stack: LocalStack,
    api: httpx.Client,
    api_url: str,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
) -> None:
    job_id = f"cli-{uuid.uuid4()}"
    seed_job(pool, tenant, job_id)
    # an hour ago at .123456789 s: recent, so that log retention never drops its index
    second = int(time.time()) - 3600
    at = second * 10**9 + 123_456_789
    shown = [
        datetime.fromtimestamp(second + n, UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z") for n in (0, 1)
    ]
    send_logs(
        stack,
        [
            record(at, WARN, "enventa slow", {"scheduler.job.id": job_id}),
            record(at + 10**9, ERROR, "order [4711] rejected", {"scheduler.job.id": job_id}),
        ],
        {"service.name": "erp-connector", "tenant.id": tenant},
    )
    secret = token(pool, Role.VIEWER, [tenant])
    wait_for_lines(api, secret, job_id, 2)

    as_json = cli(api_url, secret, "jobs", "logs", job_id, "--json", "--level", "warn")
    assert as_json.returncode == 0, as_json.stderr
    expected = api.get(
        f"/api/admin/jobs/{job_id}/logs", params={"level": "warn"}, headers=bearer(secret)
    )
    assert as_json.stdout.strip() == expected.text.strip()

    text = cli(api_url, secret, "jobs", "logs", job_id)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        f"{shown[0]} WARN  erp-connector  enventa slow",
        f"{shown[1]} ERROR erp-connector  order [4711] rejected",
    ]

    paged = cli(api_url, secret, "jobs", "logs", job_id, "--limit", "1")
    assert "next page: --cursor" in paged.stdout

    missing = cli(api_url, secret, "jobs", "logs", "no-such-job")
    assert missing.returncode == 1
    assert "no job 'no-such-job'" in missing.stderr


def _read_lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _next_line(lines: queue.Queue[str], containing: str, timeout: float = 60) -> list[str]:
    """The lines read until one containing ``containing`` (that one included)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line with {containing!r} within {timeout}s; got {seen}")
        seen.append(line)
        if containing in line:
            return seen


def test_b2c_jobs_logs_follow_prints_lines_as_they_arrive_and_exits_when_the_job_ends(
    stack: LocalStack, api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.VIEWER, [tenant])
    job_id = f"followed-{uuid.uuid4()}"
    first_seen, second_seen = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def run_job() -> None:
        probes = probes_for(stack, tenant)
        try:
            with probes.job_run("ERP_SYNC", tenant_id=tenant, job_id=job_id) as job:
                job.logger.info("first line")
                # the job goes on only once the follower has shown the line: it arrived live
                assert first_seen.wait(90), "the follower never showed the first line"
                job.logger.warning("second line")
                assert second_seen.wait(90), "the follower never showed the second line"
                job.logger.info("last line")
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            probes.shutdown()

    worker = threading.Thread(target=run_job, daemon=True)
    worker.start()
    with httpx.Client(base_url=api_url, timeout=10) as api:
        job_in_api(api, secret, job_id, "running")

    process = subprocess.Popen(
        [sys.executable, "-m", "b2c_monitoring", "jobs", "logs", job_id, "--follow"],
        env=cli_env(api_url, secret),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        printed = _next_line(lines, "first line")
        assert worker.is_alive()
        first_seen.set()
        printed += _next_line(lines, "second line")
        assert worker.is_alive()
        second_seen.set()
        worker.join(timeout=60)
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    finally:
        first_seen.set()
        second_seen.set()
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    while not lines.empty():
        printed.append(lines.get())
    assert not failures, failures
    # the trailing line logged just before the job ended is shown too, then the state
    assert [line.split(None, 1)[1] for line in printed[:-1]] == [
        "INFO  erp-connector  first line",
        "WARN  erp-connector  second line",
        "INFO  erp-connector  last line",
    ], printed
    assert printed[-1] == f"job {job_id} succeeded"


def test_b2c_jobs_logs_follow_json_prints_one_page_per_line(
    stack: LocalStack,
    api: httpx.Client,
    api_url: str,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
) -> None:
    job_id = f"ndjson-{uuid.uuid4()}"
    JobStore(pool).apply(
        [
            JobReport(tenant, job_id, JobState.RUNNING, datetime.now(UTC), job_type="ERP_SYNC"),
            JobReport(tenant, job_id, JobState.FAILED, datetime.now(UTC), error_message="ERP down"),
        ],
        datetime.now(UTC),
    )
    base = time.time_ns()
    send_logs(
        stack,
        [record(base + i, INFO, f"n{i}", {"scheduler.job.id": job_id}) for i in range(5)],
        {"service.name": "s", "tenant.id": tenant},
    )
    secret = token(pool, Role.VIEWER, [tenant])
    wait_for_lines(api, secret, job_id, 5)

    done = cli(api_url, secret, "jobs", "logs", job_id, "--follow", "--json", "--limit", "2")
    assert done.returncode == 0, done.stderr
    pages = [json.loads(line) for line in done.stdout.splitlines()]
    assert [bodies(page) for page in pages] == [["n0", "n1"], ["n2", "n3"], ["n4"]]
    assert f"job {job_id} failed: ERP down" in done.stderr
