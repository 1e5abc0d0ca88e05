"""The Elasticsearch and Prometheus parts of the local stack, against the real binaries.

The integration tests use the test stack's servers (started by the supervisor as the
product starts them); the others check generated configuration without servers.
"""

from __future__ import annotations

import json
import os
import pwd
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from b2c_monitoring.stack.base import Ports
from b2c_monitoring.stack.elasticsearch import (
    Elasticsearch,
    log_template,
    put_log_templates,
    render_elasticsearch_yml,
    render_jvm_options,
    split_credentials,
)
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.prometheus import render_config


def _http(method: str, url: str, body: object | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    bare, authorization = split_credentials(url)
    req = urllib.request.Request(bare, data=data, method=method)  # noqa: S310 (loopback)
    req.add_header("Content-Type", "application/json")
    if authorization is not None:
        req.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


# --------------------------------------------------------------------------------------
# configuration, without servers


def test_elasticsearch_yml_names_only_core_settings(tmp_path: Path) -> None:
    text = render_elasticsearch_yml(
        data=tmp_path / "d", logs=tmp_path / "l", http_port=9201, transport_port=9301
    )
    assert 'network.host: "127.0.0.1"' in text
    assert "http.port: 9201" in text
    assert "transport.port: 9301" in text
    assert 'discovery.type: "single-node"' in text
    assert "xpack.security.enabled: true" in text
    assert "xpack.security.http.ssl.enabled: false" in text  # loopback HTTP, passwords
    assert f'path.data: "{tmp_path / "d"}"' in text
    assert "xpack.ml" not in text  # the zip has no ml plugin: its settings stop the node


def test_jvm_options_keep_files_in_the_log_folder() -> None:
    dist = (
        "-XX:+HeapDumpOnOutOfMemoryError\n-XX:ErrorFile=hs_err_pid%p.log\n-Xlog:gc*:file=gc.log\n"
    )
    out = render_jvm_options(dist, Path("/x/logs"))
    assert "-XX:ErrorFile=/x/logs/hs_err_pid%p.log" in out
    assert "file=/x/logs/gc.log" in out
    assert "-XX:-HeapDumpOnOutOfMemoryError" in out


def test_log_template_maps_filter_fields_as_keyword() -> None:
    template = log_template()
    assert template["index_patterns"] == ["b2c-logs*"]
    settings = template["template"]["settings"]["index"]
    assert settings["number_of_shards"] == 1
    assert settings["number_of_replicas"] == 0
    props = template["template"]["mappings"]["properties"]
    for field in ("tenant.id", "scheduler.job.id", "connected_service.name", "event.name"):
        assert props["Attributes"]["properties"][field]["type"] == "keyword"
    assert props["Resource"]["properties"]["service.name"]["type"] == "keyword"
    assert props["Body"]["type"] == "text"


def test_prometheus_config_scrapes_every_part() -> None:
    ports = Ports(offset=7)
    text = render_config(ports)
    assert "scrape_interval: 5s" in text
    for job, port in (
        ("otel-collector-exporter", ports.collector_prometheus_exporter),
        ("otel-collector", ports.collector_telemetry),
        ("b2c-processor", ports.processor_metrics),
        ("b2c-api", ports.api),
    ):
        assert f'job_name: "{job}"' in text
        assert f'"127.0.0.1:{port}"' in text


# --------------------------------------------------------------------------------------
# the real servers


@pytest.fixture
def elasticsearch_and_pid(stack: LocalStack) -> tuple[Elasticsearch, int]:
    pid = stack.supervisor.pid(stack.elasticsearch)
    assert pid is not None
    return stack.elasticsearch, pid


@pytest.fixture
def elasticsearch(stack: LocalStack) -> Elasticsearch:
    return stack.elasticsearch


# the stack outlives a run: each run writes an index of its own
INDEX = f"b2c-logs-parts-test-{uuid.uuid4().hex[:8]}"

LOG_DOC = {
    "@timestamp": "2026-01-15T10:30:00.123456789Z",
    "Body": "Payment provider answered 503 Service Unavailable",
    "SeverityText": "ERROR",
    "SeverityNumber": 17,
    "TraceId": "0102030405060708090a0b0c0d0e0f10",
    "SpanId": "0102030405060708",
    "TraceFlags": 1,
    "Attributes.tenant.id": "tenant-a",
    "Attributes.scheduler.job.id": "job-42",
    "Attributes.event.name": "connected_service.communication_error",
    "Attributes.connected_service.name": "billing-api",
    "Attributes.http.response.body": '{"error": "unavailable"}',
    "Attributes.http.response.body.size": 24,
    "Attributes.retry.count": 2,
    "Attributes.some.label": "free text label",
    "Resource.service.name": "scheduler",
    "Scope.name": "b2c.scheduler",
    "Scope.version": "1.0.0",
}


@pytest.mark.integration
def test_elasticsearch_runs_unprivileged_and_maps_log_fields(
    elasticsearch_and_pid: tuple[Elasticsearch, int],
) -> None:
    elasticsearch, pid = elasticsearch_and_pid
    if os.geteuid() == 0:
        assert elasticsearch.user is not None
        assert _uid_of(pid) == pwd.getpwnam(elasticsearch.user).pw_uid
    assert _uid_of(pid) != 0
    base = elasticsearch.admin_url
    put_log_templates(base)
    put_log_templates(base)  # idempotent

    status, _ = _http("PUT", f"{base}/{INDEX}/_doc/1?refresh=true", LOG_DOC)
    assert status == 201

    fields = ",".join(
        [
            "Attributes.tenant.id",
            "Attributes.scheduler.job.id",
            "Attributes.event.name",
            "Attributes.connected_service.name",
            "Attributes.http.response.body",
            "Attributes.http.response.body.size",
            "Attributes.some.label",
            "Resource.service.name",
            "Body",
            "@timestamp",
            "SeverityNumber",
        ]
    )
    status, found = _http("GET", f"{base}/{INDEX}/_mapping/field/{fields}")
    assert status == 200
    mapped = {
        name: next(iter(entry["mapping"].values()))
        for name, entry in found[INDEX]["mappings"].items()
    }
    for keyword in (
        "Attributes.tenant.id",
        "Attributes.scheduler.job.id",
        "Attributes.event.name",
        "Attributes.connected_service.name",
        "Attributes.some.label",
        "Resource.service.name",
    ):
        assert mapped[keyword]["type"] == "keyword", keyword
    assert mapped["Body"]["type"] == "text"
    assert mapped["@timestamp"]["type"] == "date_nanos"
    assert mapped["SeverityNumber"]["type"] == "short"
    assert mapped["Attributes.http.response.body"]["index"] is False
    assert mapped["Attributes.http.response.body.size"]["type"] == "long"

    query = {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"Attributes.tenant.id": "tenant-a"}},
                    {"term": {"Attributes.scheduler.job.id": "job-42"}},
                    {"term": {"Attributes.event.name": "connected_service.communication_error"}},
                    {"term": {"Resource.service.name": "scheduler"}},
                ],
                "must": [{"match": {"Body": "unavailable"}}],
            }
        }
    }
    status, result = _http("POST", f"{base}/{INDEX}/_search", query)
    assert status == 200
    assert [hit["_id"] for hit in result["hits"]["hits"]] == ["1"]
    source = result["hits"]["hits"][0]["_source"]
    assert source["Attributes.http.response.body"] == '{"error": "unavailable"}'

    status, result = _http(
        "POST",
        f"{base}/{INDEX}/_search",
        {"query": {"term": {"Attributes.tenant.id": "x"}}},
    )
    assert result["hits"]["total"]["value"] == 0


@pytest.mark.integration
def test_elasticsearch_part_reports_health_and_endpoint(elasticsearch: Elasticsearch) -> None:
    assert elasticsearch.healthy()
    assert elasticsearch.endpoints() == {"elasticsearch": elasticsearch.url}
    status, health = _http("GET", f"{elasticsearch.admin_url}/_cluster/health")
    assert status == 200
    assert health["cluster_name"] == "b2c-monitoring"


@pytest.mark.integration
def test_prometheus_answers_a_query_and_scrapes_every_part(stack: LocalStack) -> None:
    part = stack.prometheus
    assert part.healthy()
    query = urllib.parse.quote('up{job="prometheus"}')
    end = time.monotonic() + 30
    values: list[str] = []
    while time.monotonic() < end:
        status, answer = _http("GET", f"{part.url}/api/v1/query?query={query}")
        assert status == 200
        assert answer["status"] == "success"
        values = [sample["value"][1] for sample in answer["data"]["result"]]
        if values == ["1"]:
            break
        time.sleep(0.5)
    assert values == ["1"]
    status, targets = _http("GET", f"{part.url}/api/v1/targets")
    jobs = {t["labels"]["job"] for t in targets["data"]["activeTargets"]}
    assert {"otel-collector-exporter", "otel-collector", "b2c-processor", "b2c-api"} <= jobs
