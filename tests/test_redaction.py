"""Secrets never reach storage: the processor's redaction and the collector's, on the same samples."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.errors import ConfigError, StackError
from b2c_monitoring.receivers import metrics, spans
from b2c_monitoring.redaction import MASK, compile_patterns, redact
from b2c_monitoring.stack.collector import Collector, render_redaction_config
from b2c_monitoring.stack.local import LocalStack
from tests.otlp_builders import job_span, kvs, trace_request
from tests.otlp_metric_builders import gauge, metrics_request, point
from tests.polling import eventually
from tests.tokens import probe_auth

# (text with a secret, the secret, what must survive)
SAMPLES = [
    ("GET https://sync:hunter2@erp.example/api failed", "hunter2", "erp.example/api"),
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        "eyJhbGciOiJIUzI1NiJ9",
        "Authorization",
    ),
    ("retrying with bearer abcdefghijklmnop", "abcdefghijklmnop", "retrying"),
    ("login failed: password=Tr0ub4dor&user=erp", "Tr0ub4dor", "user=erp"),
    ('{"api_key": "k-123456", "sku": 42}', "k-123456", '"sku": 42'),
    ("POST /token?client_secret=s3cr3t&grant=client", "s3cr3t", "grant=client"),
    ("Cookie: session_id=abcdef123456; theme=dark", "abcdef123456", "theme=dark"),
    ("GET https://erp.example/v1?token=tok-8812&page=2", "tok-8812", "page=2"),
    ("GET https://erp.example/v1?page=3&api_key=key-5521&lang=de", "key-5521", "lang=de"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SAMPLES)
def test_the_processor_masks_secrets_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert MASK in redacted
    assert kept in redacted


def test_text_without_secrets_is_unchanged() -> None:
    text = "ERP answered 503 after 30 s for order 4711 at https://erp.example/orders?page=2"
    assert redact(text) == text


@pytest.mark.integration
def test_the_collector_masks_the_same_secrets_before_elasticsearch(
    stack: LocalStack, tenant: str
) -> None:
    marker = uuid.uuid4().hex
    records = []
    for i, (text, _, _) in enumerate(SAMPLES):
        records.append(
            LogRecord(
                time_unix_nano=time.time_ns(),
                severity_text="ERROR",
                severity_number=SeverityNumber.SEVERITY_NUMBER_ERROR,
                body=AnyValue(string_value=f"{marker} sample {i}: {text}"),
                attributes=kvs(
                    {
                        "url.full": "https://erp:hunter2@erp.example/v1/orders",
                        "communication.request.body": text,
                        "http.request.header.authorization": "Basic c3luYzpodW50ZXIy",
                        "sample": i,
                    }
                ),
            )
        )
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=kvs({"service.name": "erp-connector", "tenant.id": tenant})
                ),
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
    assert response.status_code == 200

    def stored() -> list[dict[str, Any]] | None:
        found = httpx.post(
            f"{stack.elasticsearch.admin_url}/b2c-logs*/_search",
            json={"size": 50, "query": {"match": {"Body": marker}}},
            timeout=10,
        ).json()
        hits = [h["_source"] for h in found.get("hits", {}).get("hits", [])]
        return hits if len(hits) == len(SAMPLES) else None

    documents = eventually(stored, what="the log records in Elasticsearch")
    for document in documents:
        i = document["Attributes.sample"]
        text, secret, kept = SAMPLES[i]
        assert secret not in document["Body"]
        assert kept in document["Body"]
        assert secret not in document["Attributes.communication.request.body"]
        assert "hunter2" not in document["Attributes.url.full"]
        assert "erp.example/v1/orders" in document["Attributes.url.full"]
        assert "Attributes.http.request.header.authorization" not in document


# --------------------------------------------------------------------------------------
# every kind of secret, and the operator's own patterns, through the real collector

CUSTOM_PATTERNS = (r"ORD-SECRET-\d{6}", r"\bIBAN [A-Z]{2}\d{2}(?: ?\d{1,4})+")


def test_custom_patterns_mask_their_matches_after_the_built_in_rules() -> None:
    custom = compile_patterns(CUSTOM_PATTERNS)
    text = "refund ORD-SECRET-654321 to IBAN DE44 5001 0517 5407 3249 31, password=pw1"
    assert redact(text, custom) == "refund **** to ****, password=***"
    assert (
        redact(text) == "refund ORD-SECRET-654321 to IBAN DE44 5001 0517 5407 3249 31, password=***"
    )
    with pytest.raises(ConfigError, match="unclosed"):
        compile_patterns(["(unclosed"])


def test_the_processor_masks_custom_patterns_in_what_it_stores_in_postgres() -> None:
    custom = compile_patterns(CUSTOM_PATTERNS)
    secret = "ORD-SECRET-123456"
    failed = job_span(
        {
            "scheduler.job.id": "j1",
            "scheduler.job.type": "ERP_SYNC",
            "scheduler.job.state": "failed",
            "scheduler.job.metadata.order": f"order {secret}",
        },
        error=f"ERP refused {secret}",
    )
    [report] = spans.decode_request(trace_request([failed]), "default", custom).reports
    assert (report.error_message, report.metadata["order"]) == ("ERP refused ****", "order ****")

    checks = metrics_request(
        [
            gauge(
                "connected_service.up",
                point(0, {"connected_service.name": "erp", "error.type": f"refused {secret}"}),
            ),
            gauge(
                "component.health.status",
                point(
                    0,
                    {"component.name": "db", "component.health.description": f"locked {secret}"},
                ),
            ),
        ]
    )
    decoded = metrics.decode_request(checks, "default", datetime.now(UTC), custom)
    assert (decoded.checks[0].error, decoded.health[0].description) == (
        "refused ****",
        "locked ****",
    )


def test_custom_patterns_are_written_for_the_collector_with_dollars_doubled() -> None:
    rendered = render_redaction_config([r"^acct-\d+$", r"x{2}"])
    assert json.loads(rendered.split("\n", 1)[1]) == {
        "processors": {"redaction/custom": {"blocked_values": [r"^acct-\d+$$", r"x{2}"]}}
    }
    with pytest.raises(StackError, match="not a regular expression"):
        render_redaction_config(["(unclosed"])


@pytest.fixture
def custom_redaction(stack: LocalStack) -> Iterator[None]:
    """The stack's collector restarted with CUSTOM_PATTERNS (B2C_LOG_REDACT_PATTERNS of
    a real stack), and back to the stack's own configuration afterwards."""
    custom = Collector(
        stack.layout,
        stack.processor_token,
        stack.logs_index,
        ingest_auth_dsn=stack.postgres.ingest_auth_dsn,
        redact_patterns=CUSTOM_PATTERNS,
        es_credentials=stack.elasticsearch.collector_credentials,
    )
    stack.supervisor.stop(stack.collector, lambda _line: None)
    stack.supervisor.start(custom, lambda _line: None)
    try:
        yield
    finally:
        stack.supervisor.stop(custom, lambda _line: None)
        stack.supervisor.start(stack.collector, lambda _line: None)


def _map(values: dict[str, AnyValue]) -> AnyValue:
    return AnyValue(
        kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in values.items()])
    )


def _strings(*items: str) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=i) for i in items]))


@pytest.mark.integration
def test_no_secret_in_a_url_a_header_a_body_or_a_custom_pattern_reaches_elasticsearch(
    stack: LocalStack, tenant: str, custom_redaction: None
) -> None:
    marker = uuid.uuid4().hex
    url = "https://sync:pw-url-0001@erp.example/v1/orders?token=tok-0002&api_key=key-0003&page=2"
    secrets = [
        "pw-url-0001",
        "tok-0002",
        "key-0003",
        "jwt-0004",
        "sess-0005",
        "xak-0006",
        "nested-0007",
        "pw-json-0008",
        "cs-json-0009",
        "pw-map-0010",
        "pw-args-0011",
        "ORD-SECRET-123456",
        "ORD-SECRET-654321",
        "DE44 5001 0517 5407 3249 31",
    ]
    attributes = [
        KeyValue(key="url.full", value=AnyValue(string_value=url)),
        KeyValue(key="http.request.header.authorization", value=_strings("Bearer jwt-0004")),
        KeyValue(key="http.request.header.cookie", value=_strings("session_id=sess-0005")),
        KeyValue(key="http.request.header.x-api-key", value=AnyValue(string_value="xak-0006")),
        # a nested map is flattened before the key rules run
        KeyValue(
            key="http",
            value=_map(
                {
                    "request": _map(
                        {"header": _map({"authorization": AnyValue(string_value="nested-0007")})}
                    )
                }
            ),
        ),
        KeyValue(
            key="communication.request.body",
            value=AnyValue(
                string_value='{"user": "erp", "password": "pw-json-0008", '
                '"client_secret": "cs-json-0009", "sku": 42}'
            ),
        ),
        KeyValue(key="process.command_args", value=_strings("sync", "--password=pw-args-0011")),
        KeyValue(key="note", value=AnyValue(string_value="refund ORD-SECRET-654321 booked")),
    ]
    records = [
        LogRecord(
            time_unix_nano=time.time_ns(),
            body=AnyValue(string_value=f"{marker} text calling {url} for ORD-SECRET-123456"),
            attributes=attributes,
        ),
        LogRecord(
            time_unix_nano=time.time_ns(),
            body=_map(
                {
                    "message": AnyValue(string_value=f"{marker} map"),
                    "password": AnyValue(string_value="pw-map-0010"),
                    "payer": AnyValue(string_value="IBAN DE44 5001 0517 5407 3249 31"),
                }
            ),
        ),
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kvs({"service.name": "erp", "tenant.id": tenant})),
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
    assert response.status_code == 200

    def stored() -> list[dict[str, Any]] | None:
        found = httpx.post(
            f"{stack.elasticsearch.admin_url}/b2c-logs*/_search",
            json={"size": 10, "query": {"match": {"Body": marker}}},
            timeout=10,
        ).json()
        hits = [h["_source"] for h in found.get("hits", {}).get("hits", [])]
        return hits if len(hits) == len(records) else None

    documents = eventually(stored, what="the log records in Elasticsearch")
    everything = json.dumps(documents)
    assert [s for s in secrets if s in everything] == []
    # nor can any of them be found by a search of any field
    for secret in secrets:
        phrase = {"query": f'"{secret}"', "fields": ["*"], "lenient": True}
        query = {"query": {"query_string": phrase}}
        hits = httpx.post(
            f"{stack.elasticsearch.admin_url}/b2c-logs*/_search", json=query, timeout=10
        ).json()
        assert hits["hits"]["total"]["value"] == 0, secret
    # what is not a secret is kept
    [text] = [d for d in documents if "text" in d["Body"]]
    assert "erp.example/v1/orders" in text["Attributes.url.full"]
    assert "page=2" in text["Attributes.url.full"]
    assert '"sku": 42' in text["Attributes.communication.request.body"]
    assert text["Attributes.process.command_args.0"] == "sync"
    assert text["Attributes.note"] == "refund **** booked"
    assert not [k for k in text if "authorization" in k or "cookie" in k or "api-key" in k]
