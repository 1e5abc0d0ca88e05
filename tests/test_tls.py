"""TLS end to end: the probes, the CLI, the job runner and the hub talk to a collector and
an admin API serving the stack's own certificate, and refuse one they do not trust.

The collector and the API are the stack's own parts (``stack/collector.py``,
``stack/apps.py``) with TLS on, run by the real Supervisor on ports and in a home of
this module's own, beside the shared test stack (which stays plaintext for the other
tests): the collector exports to the test stack's processor and Elasticsearch, the API
reads its Postgres. The certificate is made by ``stack/certificates.py`` as
``b2c stack up`` makes it with ``B2C_TLS=self-signed``.
"""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest
from cryptography.hazmat.primitives import serialization
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from b2c_monitoring.auth import Role
from b2c_monitoring.cli.client import ApiClient
from b2c_monitoring.errors import ApiUntrusted
from b2c_monitoring.probes import JobRun, Probes, ProbeSettings
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.stack import certificates as certs
from b2c_monitoring.stack.apps import Api
from b2c_monitoring.stack.base import Ports, StackLayout
from b2c_monitoring.stack.certificates import TlsFiles, ensure_self_signed, self_signed_files
from b2c_monitoring.stack.collector import Collector
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.supervisor import Supervisor
from b2c_monitoring.tls import client_context, untrusted_certificate
from tests.api_process import cli_env
from tests.free_ports import free_ports
from tests.hub_clients import HubClient
from tests.polling import eventually
from tests.tokens import bearer, probe_auth, token

pytestmark = pytest.mark.integration


def _say(line: str) -> None:
    print(f"[tls stack] {line}", flush=True)


class TlsCollector(Collector):
    """The stack's collector part with TLS, exporting to the test stack's processor and
    Elasticsearch instead of its own layout's."""

    def __init__(self, layout: StackLayout, stack: LocalStack, tls: TlsFiles) -> None:
        super().__init__(
            layout,
            stack.processor_token,
            stack.logs_index,
            ingest_auth_dsn=stack.postgres.ingest_auth_dsn,
            tls=tls,
            es_credentials=stack.elasticsearch.collector_credentials,
        )
        self._upstream = stack.layout.ports

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "B2C_PROCESSOR_ENDPOINT": f"127.0.0.1:{self._upstream.processor_grpc}",
            "B2C_ES_ENDPOINT": f"http://127.0.0.1:{self._upstream.elasticsearch}",
        }


class TlsApi(Api):
    """The stack's API part with TLS, on the test stack's stores."""

    def __init__(self, layout: StackLayout, stack: LocalStack, tls: TlsFiles) -> None:
        super().__init__(layout, stack.postgres.url, stack.processor_token, tls=tls)
        self._stack_env = stack.api.base_env()

    def base_env(self) -> dict[str, str]:
        return {**self._stack_env, "B2C_API_URL": self.api_url, **self.tls_env()}


def _free_ports() -> Ports:
    return free_ports(
        range(33000, 52000, 1000),
        "otlp_grpc",
        "otlp_http",
        "collector_health",
        "collector_telemetry",
        "collector_prometheus_exporter",
        "api",
    )


@dataclass(frozen=True)
class TlsStack:
    stack: LocalStack
    files: TlsFiles
    collector: TlsCollector
    api: TlsApi

    @property
    def ca(self) -> Path:
        assert self.files.ca_file is not None
        return self.files.ca_file

    @property
    def grpc(self) -> str:
        return self.collector.endpoints()["otlp_grpc"]

    @property
    def http(self) -> str:
        return self.collector.endpoints()["otlp_http"]

    @property
    def api_url(self) -> str:
        return self.api.api_url


@pytest.fixture(scope="module")
def tls_stack(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    layout = StackLayout(home=tmp_path_factory.mktemp("tls-stack"), ports=_free_ports())
    folder = layout.data("tls")
    ensure_self_signed(folder, [], datetime.now(UTC), _say)
    files = self_signed_files(folder)
    collector = TlsCollector(layout, stack, files)
    api = TlsApi(layout, stack, files)
    supervisor = Supervisor(layout, [collector, api])
    try:
        supervisor.start(collector, _say)
        supervisor.start(api, _say)  # healthy: /healthz answered over https with the CA
        yield TlsStack(stack, files, collector, api)
    finally:
        supervisor.down(_say)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA of another stack: valid, but not the one that issued our certificate."""
    folder = tmp_path_factory.mktemp("other") / "tls"
    ensure_self_signed(folder, [], datetime.now(UTC), _say)
    ca = self_signed_files(folder).ca_file
    assert ca is not None
    return ca


@pytest.fixture(scope="module")
def admin(tls_stack: TlsStack) -> str:
    return tls_stack.stack.credentials()["token"]


def reporting_probes(
    endpoint: str,
    *,
    ca_file: Path | None,
    tenant: str,
    token: str,
    service: str = "erp-connector",
) -> Probes:
    """The one place the tests' senders are built (ingestion credentials go here)."""
    return Probes(
        ProbeSettings(
            endpoint=endpoint,
            token=token,
            ca_file=str(ca_file) if ca_file else None,
            service_name=service,
            tenant_id=tenant,
            export_timeout=2.0,
            shutdown_timeout=5.0,
        )
    )


def b2c(api_url: str, secret: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2c_monitoring", *args],
        env={**cli_env(api_url, secret), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def listed_jobs(tls: TlsStack, secret: str, tenant: str, **env: str) -> list[dict[str, Any]]:
    done = b2c(tls.api_url, secret, "jobs", "list", "--tenant", tenant, "--json", **env)
    assert done.returncode == 0, done.stderr
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


# the probes and the CLI over TLS


def test_the_probes_report_a_job_over_tls_and_the_cli_lists_it_over_https(
    tls_stack: TlsStack, admin: str, tenant: str
) -> None:
    assert tls_stack.grpc.startswith("https://")
    with reporting_probes(
        tls_stack.grpc, ca_file=tls_stack.ca, tenant=tenant, token=tls_stack.stack.probe_token
    ) as probes:
        with probes.job_run("ERP_SYNC") as job:
            job.logger.info("fetched 12 orders over tls")
            job.progress(50)
        assert probes.force_flush(10)
    stats = probes.stats
    assert (stats.spans.failed, stats.logs.failed) == (0, 0)
    assert stats.spans.exported >= 3
    assert stats.logs.exported >= 1

    # stored: the CLI sees it through the https API, verified with --ca-cert
    def stored() -> dict[str, Any] | None:
        done = b2c(
            tls_stack.api_url,
            admin,
            "--ca-cert",
            str(tls_stack.ca),
            "jobs",
            "list",
            "--tenant",
            tenant,
            "--json",
        )
        assert done.returncode == 0, done.stderr
        found = [j for j in json.loads(done.stdout)["items"] if j["id"] == job.job_id]
        return found[0] if found and found[0]["status"] == "succeeded" else None

    listed = eventually(stored, timeout=60, what="the job stored and listed over https")
    assert listed["tenantId"] == tenant
    # B2C_CA_CERT does the same as --ca-cert
    assert [
        j["id"] for j in listed_jobs(tls_stack, admin, tenant, B2C_CA_CERT=str(tls_stack.ca))
    ] == [job.job_id]

    # its log line went through the TLS collector to Elasticsearch
    def logged() -> list[str] | None:
        done = b2c(
            tls_stack.api_url,
            admin,
            "--ca-cert",
            str(tls_stack.ca),
            "jobs",
            "logs",
            job.job_id,
            "--tenant",
            tenant,
            "--json",
        )
        assert done.returncode == 0, done.stderr
        lines = [item["body"] for item in json.loads(done.stdout)["items"]]
        return lines or None

    assert "fetched 12 orders over tls" in eventually(logged, timeout=60, what="the job's log")


@pytest.mark.parametrize("trusting", ["another CA", "the system's CAs", "plaintext"])
def test_a_probe_that_does_not_trust_the_certificate_reports_nothing(
    tls_stack: TlsStack, other_ca: Path, tenant: str, trusting: str
) -> None:
    endpoint, ca = {
        "another CA": (tls_stack.grpc, other_ca),
        "the system's CAs": (tls_stack.grpc, None),
        "plaintext": (tls_stack.grpc.replace("https://", "http://"), None),
    }[trusting]
    probes = reporting_probes(
        endpoint, ca_file=ca, tenant=tenant, token=tls_stack.stack.probe_token
    )
    with probes.job_run("ERP_SYNC") as job:
        job.logger.info("never arrives")
    # the SDK's exporter gives up after its timeout; the host is never blocked for long
    started = time.monotonic()
    probes.shutdown(8.0)
    assert time.monotonic() - started < 10
    stats = probes.stats
    assert (stats.spans.exported, stats.logs.exported) == (0, 0)
    assert stats.spans.failed + stats.spans.dropped >= 2
    assert stats.logs.failed + stats.logs.dropped >= 1


def test_the_otlp_http_receiver_serves_tls_too(tls_stack: TlsStack, other_ca: Path) -> None:
    body = ExportLogsServiceRequest().SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", **probe_auth(tls_stack.stack)}
    url = f"{tls_stack.http}/v1/logs"
    trusted = httpx.post(
        url, content=body, headers=headers, verify=client_context(tls_stack.ca, setting="ca")
    )
    assert trusted.status_code == 200

    with pytest.raises(httpx.ConnectError) as refused:
        httpx.post(
            url, content=body, headers=headers, verify=client_context(other_ca, setting="ca")
        )
    assert untrusted_certificate(refused.value) is not None

    # plaintext is not served on the TLS port
    plain = httpx.post(url.replace("https://", "http://"), content=body, headers=headers)
    assert plain.status_code == 400
    assert "HTTPS" in plain.text


@pytest.mark.parametrize("trusting", ["another CA", "the system's CAs"])
def test_the_cli_refuses_an_untrusted_certificate_and_says_what_to_do(
    tls_stack: TlsStack, other_ca: Path, admin: str, trusting: str
) -> None:
    args = ["--ca-cert", str(other_ca)] if trusting == "another CA" else []
    done = b2c(tls_stack.api_url, admin, *args, "jobs", "list")
    assert done.returncode == 3
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    message = " ".join(done.stderr.split())  # rich wraps long lines
    assert f"the admin API at {tls_stack.api_url} presented a certificate that" in message
    assert "cannot verify" in message
    assert (str(other_ca) if trusting == "another CA" else "the system's CAs") in message
    assert "--ca-cert FILE or B2C_CA_CERT=FILE" in message
    assert "ca.pem" in message  # where the local stack's own CA is


def test_a_ca_file_that_cannot_be_read_is_a_clear_cli_error(
    tls_stack: TlsStack, admin: str, tmp_path: Path
) -> None:
    done = b2c(tls_stack.api_url, admin, "--ca-cert", str(tmp_path / "none.pem"), "jobs", "list")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "cannot be read" in " ".join(done.stderr.split())


# the job runner's control URL and the hub


def test_the_job_runner_takes_a_cancel_over_https_verified_with_the_same_ca(
    tls_stack: TlsStack, admin: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    service = f"erp-connector-{uuid.uuid4().hex[:8]}"
    probe_token = token(pool, Role.PROBE, [tenant])
    started = threading.Event()

    def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
        started.set()
        for _ in range(1500):  # 30 s at most
            job.check_cancelled()
            time.sleep(0.02)

    probes = reporting_probes(
        tls_stack.grpc,
        ca_file=tls_stack.ca,
        tenant=tenant,
        token=tls_stack.stack.probe_token,
        service=service,
    )
    runner = probes.job_runner(control_url=tls_stack.api_url, token=probe_token, poll_wait_s=2)
    runner.handler("ERP_SYNC")(sync)
    verify = client_context(tls_stack.ca, setting="ca")
    try:
        pending = runner.submit("ERP_SYNC", tenant_id=tenant)
        assert started.wait(10)
        with httpx.Client(base_url=tls_stack.api_url, verify=verify, timeout=15) as api:

            def running() -> bool | None:
                job = api.get(f"/api/admin/jobs/{pending.job_id}", headers=bearer(admin))
                return (
                    True if job.status_code == 200 and job.json()["status"] == "running" else None
                )

            eventually(running, timeout=30, what="the job stored running")
            asked = api.post(f"/api/admin/jobs/{pending.job_id}/cancel", headers=bearer(admin))
            assert asked.status_code == 202, asked.text

            def cancelled() -> bool | None:
                job = api.get(f"/api/admin/jobs/{pending.job_id}", headers=bearer(admin))
                return True if job.json()["status"] == "cancelled" else None

            eventually(cancelled, timeout=30, what="the runner to carry out the cancel")
    finally:
        runner.stop(5.0, cancel_running=True)
        probes.shutdown()


def test_the_hub_works_over_wss_with_the_ca(
    tls_stack: TlsStack, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    viewer = token(pool, Role.VIEWER, [tenant])
    job_id = f"tls-{uuid.uuid4().hex[:10]}"
    node_env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(tls_stack.ca)}
    client = HubClient(tls_stack.api_url, viewer, "--job", job_id, env=node_env)
    try:
        client.wait_for("ready")
        probes = reporting_probes(
            tls_stack.grpc, ca_file=tls_stack.ca, tenant=tenant, token=tls_stack.stack.probe_token
        )
        with probes, probes.job_run("ERP_SYNC", job_id=job_id):
            pass
        client.event("JobStatusChanged", args=[job_id, "succeeded", 100])
    finally:
        client.close()

    # without the CA the client refuses the certificate at negotiate
    refused = HubClient(tls_stack.api_url, viewer, env={**os.environ})
    try:
        error = refused.wait_for("error")["error"]
    finally:
        refused.close()
    assert "certificate" in error.lower() or "fetch failed" in error.lower(), error


def test_a_certificate_for_other_names_says_to_connect_by_one_it_holds(tmp_path: Path) -> None:
    """The CA is right, the address is not in the certificate (a plain Python TLS server
    stands in for an API whose operator certificate names only its public host)."""
    now = datetime.now(UTC)
    ca_key = certs.new_key()
    ca = certs.make_ca(ca_key, now)
    key = certs.new_key()
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(
        certs.make_server_cert(key, ca_key, ca, ["monitor.example"], now).public_bytes(
            serialization.Encoding.PEM
        )
    )
    (tmp_path / "server-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_port}"
        with (
            ApiClient(url, "secret", ca_file=tmp_path / "ca.pem") as client,
            pytest.raises(ApiUntrusted) as refused,
        ):
            client.request("GET", "/api/admin/jobs")
    finally:
        server.shutdown()
        server.server_close()
    assert "presented a certificate for other names (IP address mismatch" in refused.value.message
    assert refused.value.hint is not None
    assert "B2C_TLS_EXTRA_NAMES" in refused.value.hint
