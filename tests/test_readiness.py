"""Readiness tells the truth: with Postgres stopped the processor and the API are live but
not ready, say why, and ``b2c stack status`` shows it; the processor counts the batches it
refused and the collector's retries of them, by reason.

A stack of this module's own (its own Postgres, processor and API, in a home and on ports
of its own; Elasticsearch is the test stack's), so that stopping its Postgres disturbs no
other test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest

from b2c_monitoring.stack.base import StackLayout
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.migrations import migrate
from tests.free_ports import free_ports
from tests.otlp_builders import job_span, trace_request
from tests.polling import eventually

pytestmark = pytest.mark.integration


def _say(line: str) -> None:
    print(f"[own stack] {line}", flush=True)


@pytest.fixture(scope="module")
def own(stack: LocalStack) -> Iterator[LocalStack]:
    ports = free_ports(
        range(44000, 56000, 1000), "postgres", "processor_grpc", "processor_metrics", "api"
    )
    # beside the test stack's home: the postgres user cannot reach pytest's tmp folders
    home = stack.layout.home / "beside" / f"readiness-{uuid.uuid4().hex[:8]}"
    layout = StackLayout(home=home, ports=ports)
    local = LocalStack(layout, fast_unsafe=True)
    local.processor.elasticsearch_url = stack.elasticsearch.processor_url
    local.api.elasticsearch_url = stack.elasticsearch.api_url
    sup = local.supervisor
    sup.start(local.postgres, _say)
    try:
        local.postgres.ensure_setup(_say)
        migrate(local.postgres.url)
        local.ensure_admin_token(_say)
        sup.start(local.processor, _say, timeout=180)
        sup.start(local.api, _say, timeout=180)
        yield local
    finally:
        for part in (local.api, local.processor, local.postgres):
            sup.stop(part, _say)
        shutil.rmtree(home, ignore_errors=True)


def _metrics(local: LocalStack) -> str:
    port = local.layout.ports.processor_metrics
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def _count(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return 0.0


def _send(local: LocalStack, request: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{local.layout.ports.processor_grpc}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            export(
                request,
                timeout=30,
                metadata=(("authorization", f"Bearer {local.processor_token}"),),
            )
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    return grpc.StatusCode.OK


def _status(local: LocalStack) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "B2C_PORT_OFFSET": str(local.layout.ports.offset),
        "NO_COLOR": "1",
        "COLUMNS": "250",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "b2c_monitoring",
            "stack",
            "status",
            "--home",
            str(local.layout.home),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _part(status: dict[str, object], name: str) -> dict[str, object]:
    parts = status["parts"]
    assert isinstance(parts, list)
    [part] = [p for p in parts if p["name"] == name]
    assert isinstance(part, dict)
    return part


def test_with_its_postgres_stopped_the_processor_and_api_are_live_but_not_ready(
    own: LocalStack,
) -> None:
    ports = own.layout.ports
    ready = httpx.get(f"http://127.0.0.1:{ports.processor_metrics}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    api_ready = httpx.get(f"{own.api.api_url}/readyz", timeout=10)
    assert api_ready.status_code == 200, api_ready.text
    status = json.loads(_status(own).stdout)
    assert _part(status, "processor")["ready"] is True
    assert _part(status, "api")["ready"] is True
    # parts not started in this stack are down, with their log's last lines
    collector = _part(status, "collector")
    assert collector["running"] is False
    assert collector["ready"] is False
    assert "not running; last lines of" in str(collector["reason"])

    request = trace_request(
        [
            job_span(
                {
                    "scheduler.job.id": f"ready-{uuid.uuid4()}",
                    "scheduler.job.type": "ERP_SYNC",
                    "scheduler.job.state": "succeeded",
                }
            )
        ]
    ).SerializeToString()
    before = _metrics(own)
    own.supervisor.stop(own.postgres, _say)
    try:
        # the collector's exporter would send the same request again: twice refused
        assert _send(own, request) == grpc.StatusCode.UNAVAILABLE
        assert _send(own, request) == grpc.StatusCode.UNAVAILABLE

        # live, not ready, and why
        live = httpx.get(f"http://127.0.0.1:{ports.processor_metrics}/healthz", timeout=10)
        assert live.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{ports.processor_metrics}/readyz", timeout=10)
        assert ready.status_code == 503
        reason = ready.json()["reason"]
        assert "Postgres cannot be reached" in reason
        assert "refusing every batch" in reason
        api_live = httpx.get(f"{own.api.api_url}/healthz", timeout=10)
        assert api_live.status_code == 200
        api_ready = httpx.get(f"{own.api.api_url}/readyz", timeout=10)
        assert api_ready.status_code == 503
        assert "Postgres cannot be reached" in api_ready.json()["reason"]
        checks = {c["name"]: c for c in api_ready.json()["checks"]}
        assert checks["elasticsearch"]["ok"] is True  # reported, not required

        status = json.loads(_status(own).stdout)
        processor = _part(status, "processor")
        assert processor["running"] is True
        assert processor["ready"] is False
        assert "Postgres cannot be reached" in str(processor["reason"])
        assert "Postgres cannot be reached" in str(_part(status, "api")["reason"])
        postgres = _part(status, "postgres")
        assert postgres["running"] is False
        assert "last lines of" in str(postgres["reason"])
        table = subprocess.run(
            [
                sys.executable,
                "-m",
                "b2c_monitoring",
                "stack",
                "status",
                "--home",
                str(own.layout.home),
            ],
            env={**os.environ, "B2C_PORT_OFFSET": str(ports.offset), "COLUMNS": "250"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "not ready" in table.stdout
        assert "postgres is down" in table.stderr

        during = _metrics(own)
        refused = "b2c_processor_refused_batches_total"
        labels = {"signal": "spans", "code": "UNAVAILABLE", "reason": "store_unavailable"}
        assert _count(during, refused, **labels) == _count(before, refused, **labels) + 2
        retried = "b2c_processor_retried_batches_total"
        assert (
            _count(during, retried, signal="spans", outcome="refused")
            == _count(before, retried, signal="spans", outcome="refused") + 1
        )
    finally:
        own.supervisor.start(own.postgres, _say)

    # the retry that finds Postgres back is stored, counted, and readiness returns
    eventually(
        lambda: True if _send(own, request) == grpc.StatusCode.OK else None,
        timeout=60,
        every=1,
        what="the batch stored once Postgres is back",
    )
    after = _metrics(own)
    assert (
        _count(after, "b2c_processor_retried_batches_total", signal="spans", outcome="stored")
        == _count(before, "b2c_processor_retried_batches_total", signal="spans", outcome="stored")
        + 1
    )
    ready = httpx.get(f"http://127.0.0.1:{ports.processor_metrics}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    eventually(
        lambda: (
            True if httpx.get(f"{own.api.api_url}/readyz", timeout=10).status_code == 200 else None
        ),
        timeout=30,
        what="the API ready again",
    )
