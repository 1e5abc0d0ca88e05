"""Secrets never reach storage: the processor's redaction and the collector's, on the same samples."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.redaction import MASK, redact
from b2c_monitoring.stack.local import LocalStack
from tests.otlp_builders import kvs
from tests.test_pipeline import eventually

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
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 200

    def stored() -> list[dict[str, Any]] | None:
        found = httpx.post(
            f"{stack.elasticsearch.url}/b2c-logs*/_search",
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
