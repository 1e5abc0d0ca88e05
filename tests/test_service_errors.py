"""A service's errors end to end: communication errors from the probes (the one-line
helper, the httpx and requests hooks against a real failing HTTP server) and from
plain OTLP, through the real collector (which computes the patterns) into
Elasticsearch, read back through an API process of this module's own and the CLI.

Every test has tenants of its own; a second tenant with a service of the same name
and errors of its own is in every data set, and never in any answer.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest
import requests

from b2c_monitoring import contract as c
from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.error_patterns import fingerprint, pattern_of
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.processors.services import CheckReport
from b2c_monitoring.settings import load_settings
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.metrics import policy_from
from b2c_monitoring.storage.services import ServiceStore
from b2c_monitoring.storage.tokens import TokenStore
from tests.api_process import cli
from tests.http_stub import StubServer, closed_port
from tests.polling import eventually
from tests.test_job_logs import record, send_logs

pytestmark = pytest.mark.integration

SERVICE = "pim-system"
# an error of the service's own process, not a communication error
PLAIN_ERROR = "disk full on /var/pim at 93%"
PLAIN_PATTERN = "disk full on /var/pim at <n>%"


def token(pool: psycopg_pool.ConnectionPool, tenants: list[str]) -> str:
    _, secret = TokenStore(pool).create("test-viewer", Role.VIEWER, tenants, datetime.now(UTC))
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def seed_service(pool: psycopg_pool.ConnectionPool, tenant: str, name: str = SERVICE) -> None:
    policy = policy_from(load_settings())
    now = datetime.now(UTC)
    ServiceStore(pool, policy.damping, policy.retention).record(
        [CheckReport(tenant_id=tenant, service_name=name, at=now, up=False, error="refused")], now
    )


def get(api: httpx.Client, secret: str, path: str, **params: Any) -> dict[str, Any]:
    response = api.get(
        f"/api/admin/services/{SERVICE}/{path}", params=params, headers=bearer(secret)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def probes_for(stack: LocalStack, tenant: str) -> Probes:
    return Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="catalog-sync",
            tenant_id=tenant,
        )
    )


# --------------------------------------------------------------------------------------
# the probes: helper and hooks


def test_failed_calls_recorded_by_the_probes_reach_the_communication_errors(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    other = f"{tenant}-other"
    for t in (tenant, other):
        seed_service(pool, t)
    probes = probes_for(stack, tenant)
    stranger = probes_for(stack, other)
    try:
        with StubServer() as failing:
            failing.status = 503
            secret_url = failing.url.replace("http://", "http://sync:hunter2@") + "?api_key=k-42"
            with probes.job_run("PIM_IMPORT", tenant_id=tenant) as job:
                client = httpx.Client(timeout=5)
                probes.instrument_httpx(client, SERVICE)
                assert client.get(secret_url).status_code == 503  # the answer is unchanged
                session = requests.Session()
                probes.instrument_requests(session, SERVICE)
                with pytest.raises(requests.ConnectionError):  # the exception propagates
                    session.get(f"http://127.0.0.1:{closed_port()}/products", timeout=5)
            probes.record_communication_error(
                SERVICE,
                method="post",
                url="https://pim.example/api/products/4711",
                status=422,
                error="product 4711 rejected: sku missing",
                duration=0.25,
                request_body='{"sku": null, "password": "Tr0ub4dor"}',
                response_body="x" * 10_000,
            )

            async def async_call() -> int:
                async with httpx.AsyncClient(timeout=5) as async_client:
                    probes.instrument_httpx(async_client, SERVICE, min_status=400)
                    return (await async_client.get(failing.url)).status_code

            assert asyncio.run(async_call()) == 503
            stranger.record_communication_error(SERVICE, error="not yours", status=500)
    finally:
        probes.shutdown()
        stranger.shutdown()

    secret = token(pool, [tenant])

    def four() -> dict[str, Any] | None:
        page = get(api, secret, "communication-errors", limit=100)
        return page if len(page["items"]) >= 4 else None

    items = eventually(four, what="four communication errors")["items"]
    assert len(items) == 4
    by_kind = {(e["method"], e["statusCode"], e["errorType"]): e for e in items}
    httpx_503 = [e for e in items if e["statusCode"] == 503]
    assert len(httpx_503) == 2  # the sync and the async client
    for e in httpx_503:
        assert e["method"] == "GET"
        assert e["url"].startswith(f"http://127.0.0.1:{failing.port}/health")
        assert "hunter2" not in e["url"]
        assert "sync" not in e["url"]
        assert "k-42" not in e["url"]
        assert e["serverAddress"] == "127.0.0.1"
        assert e["errorType"] == "503"
        assert e["responseExcerpt"] == "ok"
        assert e["durationMs"] > 0
    assert {e["jobId"] for e in httpx_503} == {job.job_id, None}  # only the first ran in the job

    [refused] = [e for e in items if e["errorType"] == "requests.exceptions.ConnectionError"]
    assert refused["jobId"] == job.job_id
    assert refused["statusCode"] is None
    assert refused["method"] == "GET"
    assert refused["url"].endswith("/products")

    rejected = by_kind[("POST", 422, "422")]
    assert rejected["message"] == "product 4711 rejected: sku missing"
    assert rejected["durationMs"] == 250.0
    assert "Tr0ub4dor" not in rejected["requestExcerpt"]
    assert '"sku": null' in rejected["requestExcerpt"]
    assert len(rejected["responseExcerpt"]) == 2048
    assert rejected["pattern"] == "product <n> rejected: sku missing"
    assert rejected["fingerprint"] == fingerprint("product <n> rejected: sku missing")

    # the same records in the service's error log, with a text filter
    errors = get(api, secret, "errors", q="rejected")["items"]
    assert [e["body"] for e in errors] == [rejected_body(rejected)]
    assert all(e["communicationError"] for e in get(api, secret, "errors")["items"])
    # another tenant's token: the service does not exist for it
    outsider = token(pool, [f"{tenant}-nobody"])
    for path in ("errors", "communication-errors", "error-patterns", "errors/export"):
        response = api.get(f"/api/admin/services/{SERVICE}/{path}", headers=bearer(outsider))
        assert response.status_code == 404, path


def rejected_body(error: dict[str, Any]) -> str:
    return f"{SERVICE}: POST https://pim.example/api/products/4711 failed: {error['message']}"


# --------------------------------------------------------------------------------------
# 1,000 errors into their patterns; export and bundle


@dataclass(frozen=True)
class Seeded:
    tenant: str
    other: str
    jobs: list[str]
    expected: dict[str, int]  # pattern -> count
    since: datetime
    until: datetime


def _message(kind: int, i: int, rnd: random.Random, at: datetime) -> tuple[str, dict[str, Any]]:
    order = rnd.randint(1, 10 ** rnd.randint(1, 9))
    if kind == 0:
        return f"product {order} not found", {"http.response.status_code": 404}
    if kind == 1:
        return (
            f"GET https://pim-{rnd.randint(1, 9)}.example/api/v2/items/{order}?page={i} "
            f"timed out after {rnd.uniform(1, 60):.1f} s",
            {"error.type": "httpx.ReadTimeout"},
        )
    if kind == 2:
        return (
            f"import {uuid.uuid4()} failed at {at.isoformat()}: lock held by session "
            f"{rnd.getrandbits(64) | 0xA << 60:016x}",
            {"error.type": "LockError"},
        )
    if kind == 3:
        return (
            f"mail to buyer{order}@shop{rnd.randint(1, 99)}.example bounced "
            f"(queue id 0x{rnd.getrandbits(32):x})",
            {},
        )
    return f"PIM answered 503 for batch {i} of {order} items", {"http.response.status_code": 503}


@pytest.fixture(scope="module")
def seeded(stack: LocalStack, pool: psycopg_pool.ConnectionPool) -> Seeded:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    other = f"{tenant}-other"
    for t in (tenant, other):
        seed_service(pool, t)
    rnd = random.Random(20261128)
    now = datetime.now(UTC)
    jobs = [f"job-{uuid.uuid4().hex[:8]}" for _ in range(7)]
    # the jobs in Postgres, and a job of the other tenant with the same id as one of ours
    store = JobStore(pool)
    store.apply(
        [
            JobReport(tenant, j, JobState.FAILED, now, job_type="PIM_IMPORT", error_message="boom")
            for j in jobs
        ]
        + [JobReport(other, jobs[0], JobState.SUCCEEDED, now, job_type="OTHER_TYPE")],
        now,
    )
    expected: dict[str, int] = {}
    records = []
    for i in range(1000):
        kind = i % 5 if i < 900 else 4  # a skew, so the order by count is known
        at = now - timedelta(minutes=50) + timedelta(seconds=3 * i)
        message, extra = _message(kind, i, rnd, at)
        expected[pattern_of(message)] = expected.get(pattern_of(message), 0) + 1
        attributes: dict[str, Any] = {
            c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT,
            c.CONNECTED_SERVICE_NAME: SERVICE,
            c.EXCEPTION_MESSAGE: message,
            c.JOB_ID: jobs[i % len(jobs)] if kind != 3 else jobs[0],
            **extra,
        }
        records.append(record(int(at.timestamp() * 1e9), 17, f"call failed #{i}", attributes))
    # noise: an info line, another service's error, the other tenant's errors
    records.append(record(time.time_ns(), 9, "info 1", {c.CONNECTED_SERVICE_NAME: SERVICE}))
    records.append(
        record(
            time.time_ns(),
            17,
            "crm down",
            {c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT, c.CONNECTED_SERVICE_NAME: "crm"},
        )
    )
    for start in range(0, len(records), 250):
        send_logs(
            stack,
            records[start : start + 250],
            {"service.name": "pim-connector", "tenant.id": tenant},
        )
    send_logs(
        stack,
        [
            record(
                time.time_ns(),
                17,
                f"foreign error {n}",
                {
                    c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT,
                    c.CONNECTED_SERVICE_NAME: SERVICE,
                    c.EXCEPTION_MESSAGE: f"foreign error {n}",
                    c.JOB_ID: jobs[0],
                },
            )
            for n in range(20)
        ],
        {"service.name": "pim-connector", "tenant.id": other},
    )
    send_logs(
        stack,
        [record(time.time_ns(), 17, PLAIN_ERROR, {}), record(time.time_ns(), 13, "disk 80%", {})],
        {"service.name": SERVICE, "tenant.id": tenant},
    )
    return Seeded(
        tenant, other, jobs, expected, now - timedelta(hours=1), now + timedelta(minutes=5)
    )


def _all_in(api: httpx.Client, secret: str, seeded: Seeded) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        report = get(
            api,
            secret,
            "error-patterns",
            since=seeded.since.isoformat(),
            until=seeded.until.isoformat(),
        )
        if report["total"] < 1000:
            return None
        return report if get(api, secret, "errors", q="disk")["items"] else None

    return eventually(probe, timeout=120, what="1,000 communication errors and one other")


def test_a_thousand_errors_with_varying_ids_fall_into_five_patterns(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, seeded: Seeded
) -> None:
    secret = token(pool, [seeded.tenant])
    report = _all_in(api, secret, seeded)
    assert report["total"] == 1000
    assert report["withoutPattern"] == 0
    assert report["patternCount"] == len(seeded.expected) == 5
    got = {p["pattern"]: p["count"] for p in report["items"]}
    assert got == seeded.expected
    counts = [p["count"] for p in report["items"]]
    assert counts == sorted(counts, reverse=True)
    top = report["items"][0]
    assert top["pattern"] == "PIM answered <n> for batch <n> of <n> items"
    assert top["count"] == 280  # every fifth of the first 900, and the last 100
    assert top["trend"] == "rising"
    assert sum(b["count"] for b in top["histogram"]) == top["count"]
    assert top["example"]["statusCode"] == 503
    assert top["example"]["message"].startswith("PIM answered 503 for batch 999")
    assert set(top["jobs"]) <= set(seeded.jobs)
    assert top["jobsAffected"] == len(top["jobs"])
    mail = next(p for p in report["items"] if p["pattern"].startswith("mail to"))
    assert mail["pattern"] == "mail to <email> bounced (queue id <hex>)"
    assert mail["jobs"] == [seeded.jobs[0]]
    assert mail["jobsAffected"] == 1
    assert datetime.fromisoformat(mail["firstSeen"]) < datetime.fromisoformat(mail["lastSeen"])
    # without the jobs (cheaper): the same groups
    lean = get(
        api,
        secret,
        "error-patterns",
        since=seeded.since.isoformat(),
        until=seeded.until.isoformat(),
        jobs="false",
    )
    assert {p["pattern"]: p["count"] for p in lean["items"]} == seeded.expected
    assert all(p["jobs"] == [] and p["jobsAffected"] is None for p in lean["items"])
    # a pattern's errors: ?fingerprint= on the lists
    page = get(api, secret, "communication-errors", fingerprint=mail["fingerprint"], limit=1000)
    assert len(page["items"]) == mail["count"]
    # the service's own error is in its error log, not in its communication errors
    [plain] = get(api, secret, "errors", q="disk")["items"]
    assert plain["body"] == PLAIN_ERROR
    assert plain["communicationError"] is False
    assert plain["pattern"] == PLAIN_PATTERN
    assert plain["serviceName"] == SERVICE
    assert not get(api, secret, "communication-errors", q="disk")["items"]
    assert len(get(api, secret, "errors", q="disk", level="warn")["items"]) == 2
    # the other tenant sees only its own twenty
    theirs = get(api, token(pool, [seeded.other]), "error-patterns")
    assert theirs["total"] == 20
    assert [p["pattern"] for p in theirs["items"]] == ["foreign error <n>"]


def test_the_export_holds_every_error_of_the_range_and_nothing_of_another_tenant(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, seeded: Seeded
) -> None:
    secret = token(pool, [seeded.tenant, seeded.other])
    _all_in(api, token(pool, [seeded.tenant]), seeded)
    params = {
        "since": seeded.since.isoformat(),
        "until": seeded.until.isoformat(),
        "tenant": seeded.tenant,
    }
    response = api.get(
        f"/api/admin/services/{SERVICE}/errors/export", params=params, headers=bearer(secret)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    exported = response.json()
    assert exported["tenantId"] == seeded.tenant
    assert exported["service"] == SERVICE
    items = exported["items"]
    assert len(items) == 1001
    assert not any("foreign" in (i["message"] or "") for i in items)
    assert [i["time"] for i in items] == sorted(i["time"] for i in items)
    assert {pattern_of(i["message"]) for i in items} == {*seeded.expected, PLAIN_PATTERN}

    response = api.get(
        f"/api/admin/services/{SERVICE}/errors/export",
        params={**params, "format": "csv"},
        headers=bearer(secret),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1001
    assert [r["message"] for r in rows] == [i["message"] for i in items]
    assert {r["jobId"] for r in rows} == {*seeded.jobs, ""}

    # a token of both tenants must say which one
    ambiguous = api.get(f"/api/admin/services/{SERVICE}/errors/export", headers=bearer(secret))
    assert ambiguous.status_code == 409


def test_the_support_bundle_holds_what_its_manifest_says_of_one_tenant_only(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, seeded: Seeded
) -> None:
    secret = token(pool, [seeded.tenant])
    _all_in(api, secret, seeded)
    response = api.get(
        f"/api/admin/services/{SERVICE}/support-bundle",
        params={"since": seeded.since.isoformat(), "until": seeded.until.isoformat()},
        headers=bearer(secret),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    bundle = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(bundle.namelist())
    manifest = json.loads(bundle.read("manifest.json"))
    assert set(manifest["files"]) == names
    assert {
        "manifest.json",
        "status.json",
        "latency.json",
        "resources.json",
        "error-patterns.json",
        "errors.jsonl",
    } <= names
    assert manifest["tenantId"] == seeded.tenant
    assert manifest["errors"] == 1001
    assert json.loads(bundle.read("status.json"))["tenantId"] == seeded.tenant
    assert json.loads(bundle.read("status.json"))["name"] == SERVICE
    assert "points" in json.loads(bundle.read("latency.json"))
    assert "current" in json.loads(bundle.read("resources.json"))
    patterns = json.loads(bundle.read("error-patterns.json"))
    assert {p["pattern"]: p["count"] for p in patterns["items"]} == seeded.expected
    lines = bundle.read("errors.jsonl").decode().splitlines()
    assert len(lines) == 1001
    assert not any("foreign" in line for line in lines)
    job_files = sorted(n for n in names if n.startswith("jobs/"))
    assert job_files == sorted(f"jobs/{j}.json" for j in seeded.jobs)
    first = json.loads(bundle.read(f"jobs/{seeded.jobs[0]}.json"))
    # our job of that id, not the other tenant's
    assert first["tenantId"] == seeded.tenant
    assert first["jobType"] == "PIM_IMPORT"
    assert first["status"] == "failed"
    assert first["timeline"]
    other = api.get(
        f"/api/admin/services/{SERVICE}/support-bundle", headers=bearer(token(pool, ["nobody"]))
    )
    assert other.status_code == 404


def test_the_cli_shows_patterns_and_writes_the_export_and_the_bundle(
    api: httpx.Client,
    api_url: str,
    pool: psycopg_pool.ConnectionPool,
    seeded: Seeded,
    tmp_path: Path,
) -> None:
    secret = token(pool, [seeded.tenant])
    _all_in(api, secret, seeded)
    shown = cli(api_url, secret, "monitor", "services", "--errors", SERVICE, "--patterns")
    assert shown.returncode == 0, shown.stderr
    assert "PIM answered <n> for batch <n> of <n> items" in shown.stdout
    assert "1000 communication errors in 5 patterns" in shown.stdout

    as_json = cli(api_url, secret, "monitor", "services", "--errors", SERVICE, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)["items"]) == 50

    target = tmp_path / "errors.csv"
    done = cli(
        api_url,
        secret,
        "monitor",
        "services",
        "--errors",
        SERVICE,
        "--export",
        str(target),
        "--since",
        "2h",
    )
    assert done.returncode == 0, done.stderr
    with target.open(newline="") as written:
        assert len(list(csv.DictReader(written))) == 1001
    bundle = tmp_path / "bundle.zip"
    done = cli(api_url, secret, "monitor", "services", "--errors", SERVICE, "--bundle", str(bundle))
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(bundle) as archive:
        assert "manifest.json" in archive.namelist()

    missing = cli(
        api_url,
        secret,
        "monitor",
        "services",
        "--errors",
        "no-such-service",
        "--export",
        str(tmp_path / "x.json"),
    )
    assert missing.returncode == 1
    assert "404" in missing.stderr
    assert not (tmp_path / "x.json").exists()


def test_the_openapi_declares_the_binary_answers(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    bundle = paths["/api/admin/services/{id}/support-bundle"]["get"]["responses"]["200"]
    assert bundle["content"]["application/zip"]["schema"]["format"] == "binary"
    export = paths["/api/admin/services/{id}/errors/export"]["get"]["responses"]["200"]
    assert set(export["content"]) == {"application/json", "text/csv"}
    patterns = paths["/api/admin/services/{id}/error-patterns"]["get"]["responses"]
    assert "application/problem+json" in patterns["404"]["content"]
