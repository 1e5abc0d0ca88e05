"""The log pipeline through the real collector into Elasticsearch: daily indices by the
record's own time, bounds on bad input with nothing else of the batch lost, and
retention that deletes whole old indices.

"Lost" is checked twice: every record sent is found in Elasticsearch, and the
collector's own counter of documents Elasticsearch refused
(``otelcol_elasticsearch_docs_processed{outcome!="success"}``) does not move.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg_pool
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.logs import (
    LogIndices,
    daily_index,
    expired_indices,
    index_day,
    make_client,
    tenant_filter,
)
from b2c_monitoring.storage.maintenance import MaintenanceThread
from b2c_monitoring.storage.metrics import MetricsPolicy
from tests.otlp_builders import kvs
from tests.polling import eventually
from tests.tokens import probe_auth

DAY_NS = 86_400 * 10**9
BODY_LIMIT, ATTRIBUTE_LIMIT, ATTRIBUTES_PER_RECORD = 65_536, 16_384, 128


# --------------------------------------------------------------------------------------
# pure: the names of daily indices and what retention deletes


def test_a_daily_index_is_named_by_its_utc_day_and_read_back() -> None:
    name = daily_index("b2c-logs", datetime(2026, 3, 7, tzinfo=UTC).date())
    assert name == "b2c-logs-2026.03.07"
    assert index_day("b2c-logs", name) == datetime(2026, 3, 7).date()
    for other in (
        "b2c-logs",
        "b2c-logs-bench-error-patterns",
        "b2c-logs-2026.13.01",
        "x-2026.03.07",
    ):
        assert index_day("b2c-logs", other) is None


def test_retention_takes_only_days_that_ended_before_the_cutoff() -> None:
    now = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    names = [daily_index("b2c-logs", (now - timedelta(days=d)).date()) for d in range(0, 12)]
    names += ["b2c-logs", "b2c-logs-bench-error-patterns", "b2c-logs-2027.01.01"]
    expired = expired_indices(names, "b2c-logs", timedelta(days=7), now)
    # cutoff 2026-11-21T17:00: the 21st still holds younger records, the 20th does not
    assert expired == [f"b2c-logs-2026.11.{d:02d}" for d in range(17, 21)]
    # at the very end of a day that day is whole past the cutoff
    midnight = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert "b2c-logs-2026.11.20" in expired_indices(names, "b2c-logs", timedelta(days=7), midnight)
    assert "b2c-logs-2026.11.21" not in expired_indices(
        names, "b2c-logs", timedelta(days=7), midnight
    )
    # today's index never goes, whatever the retention
    assert expired_indices(names, "b2c-logs", timedelta(days=1), now)[-1] == "b2c-logs-2026.11.26"


# --------------------------------------------------------------------------------------
# helpers of the integration tests


def nested(depth: int, leaf: str) -> AnyValue:
    value = AnyValue(string_value=leaf)
    for level in range(depth):
        value = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=f"l{level}", value=value)]))
    return value


def log_request(records: list[LogRecord], resource: dict[str, Any]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kvs(resource)),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )


def post(stack: LocalStack, content: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{stack.layout.ports.otlp_http}/v1/logs",
        content=content,
        headers={"Content-Type": content_type, **probe_auth(stack)},
        timeout=30,
    )


def stored(stack: LocalStack, marker: str, count: int) -> dict[str, dict[str, Any]]:
    """The documents whose body holds ``marker``, by the word after it, once all
    ``count`` are searchable (each with its ``_index`` added)."""

    def probe() -> dict[str, dict[str, Any]] | None:
        found = httpx.post(
            f"{stack.elasticsearch.admin_url}/b2c-logs*/_search",
            json={"size": 100, "query": {"match": {"Body": marker}}},
            timeout=10,
        ).json()
        hits = found.get("hits", {}).get("hits", [])
        if len(hits) < count:
            return None
        documents = {}
        for hit in hits:
            words = re.findall(r"[\w-]+", hit["_source"]["Body"])
            documents[words[words.index(marker) + 1]] = {**hit["_source"], "_index": hit["_index"]}
        return documents

    return eventually(probe, what=f"{count} log records with {marker} in Elasticsearch")


def refused_documents(stack: LocalStack) -> float:
    """Documents Elasticsearch refused, by the collector's own exporter metrics."""
    text = httpx.get(
        f"http://127.0.0.1:{stack.layout.ports.collector_telemetry}/metrics", timeout=10
    ).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_elasticsearch_docs_processed{") and (
            'outcome="success"' not in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def attribute_keys(document: dict[str, Any]) -> list[str]:
    """The record's attributes as stored (the collector's routing attribute aside)."""
    routing = "Attributes.elasticsearch.index"
    return [key for key in document if key.startswith("Attributes.") and key != routing]


# --------------------------------------------------------------------------------------
# through the real collector


@pytest.mark.integration
def test_records_go_to_the_daily_index_of_their_own_time(stack: LocalStack) -> None:
    marker = uuid.uuid4().hex
    now = time.time_ns()
    records = [
        LogRecord(time_unix_nano=now, body=AnyValue(string_value=f"{marker} today")),
        LogRecord(time_unix_nano=now - 3 * DAY_NS, body=AnyValue(string_value=f"{marker} past")),
        # only an observed time: the exporter's @timestamp and the index both use it
        LogRecord(
            observed_time_unix_nano=now - 2 * DAY_NS,
            body=AnyValue(string_value=f"{marker} observed"),
        ),
        # no time at all: observed now, not 1970
        LogRecord(body=AnyValue(string_value=f"{marker} timeless")),
        # a far-future clock: today's index, so retention can still delete it one day
        LogRecord(
            time_unix_nano=now + 400 * DAY_NS, body=AnyValue(string_value=f"{marker} future")
        ),
        # a sender cannot route a record into an index of its choosing
        LogRecord(
            time_unix_nano=now,
            body=AnyValue(string_value=f"{marker} routed"),
            attributes=kvs({"elasticsearch.index": f"elsewhere-{marker}"}),
        ),
    ]
    request = log_request(records, {"service.name": "erp-connector", "elasticsearch.index": "x"})
    assert post(stack, request.SerializeToString(), "application/x-protobuf").status_code == 200

    documents = stored(stack, marker, len(records))
    today = datetime.now(UTC).date()
    days = {word: index_day("b2c-logs", doc["_index"]) for word, doc in documents.items()}
    assert days == {
        "today": today,
        "past": today - timedelta(days=3),
        "observed": today - timedelta(days=2),
        "timeless": today,
        "future": today,
        "routed": today,
    }
    assert documents["future"]["@timestamp"].startswith(
        str(datetime.fromtimestamp((now + 400 * DAY_NS) / 1e9, UTC).date())
    )
    assert documents["timeless"]["@timestamp"].startswith(str(today))
    # the routing attribute is always the collector's, never the sender's
    assert all(doc["Attributes.elasticsearch.index"] == doc["_index"] for doc in documents.values())
    assert httpx.head(f"{stack.elasticsearch.admin_url}/elsewhere-{marker}").status_code == 404


@pytest.mark.integration
def test_bad_records_are_stored_within_bounds_and_their_batch_is_kept(stack: LocalStack) -> None:
    refused_before = refused_documents(stack)
    marker = uuid.uuid4().hex
    now = time.time_ns()
    many = {f"extra.{i}": i for i in range(3000)}
    records = [
        LogRecord(
            time_unix_nano=now,
            body=AnyValue(string_value=f"{marker} huge " + "x" * 5_000_000),
            attributes=kvs({"communication.response.body": "é" * 1_000_000}),
        ),
        LogRecord(
            time_unix_nano=now,
            body=AnyValue(string_value=f"{marker} deep"),
            attributes=[KeyValue(key="deep", value=nested(30, "leaf"))],
        ),
        LogRecord(
            time_unix_nano=now,
            body=AnyValue(string_value=f"{marker} wide"),
            attributes=kvs({**many, "scheduler.job.id": f"job-{marker}"}),
        ),
        LogRecord(
            time_unix_nano=now,
            body=AnyValue(
                kvlist_value=KeyValueList(
                    values=kvs({"message": f"{marker} structured", "order": 4711})
                )
            ),
        ),
        LogRecord(time_unix_nano=now, body=AnyValue(string_value=f"{marker} plain")),
    ]
    # no service.name and no tenant.id anywhere
    request = log_request(records, {})
    assert post(stack, request.SerializeToString(), "application/x-protobuf").status_code == 200

    documents = stored(stack, marker, len(records))
    huge = documents["huge"]
    assert len(huge["Body"].encode()) == BODY_LIMIT
    assert huge["Attributes.b2c.body.truncated"] is True
    response_body = huge["Attributes.communication.response.body"]
    # cut on a character boundary: 16,384 bytes hold 8,192 two-byte characters
    assert response_body == "é" * (ATTRIBUTE_LIMIT // 2)

    deep = documents["deep"]
    key = "Attributes.deep." + ".".join(f"l{level}" for level in reversed(range(30)))
    assert deep[key] == "leaf"

    wide = documents["wide"]
    assert len(attribute_keys(wide)) <= ATTRIBUTES_PER_RECORD
    assert wide["Attributes.scheduler.job.id"] == f"job-{marker}"  # the contract's keys stay

    assert json.loads(documents["structured"]["Body"]) == {
        "message": f"{marker} structured",
        "order": 4711,
    }
    for document in documents.values():
        assert document["Resource.service.name"] == "unknown_service"
        assert not any(k.endswith("tenant.id") for k in document)

    # a record without a tenant is the default tenant's, by the readers' rule
    def_filter = tenant_filter("default", "default")
    query = {"bool": {"filter": [def_filter, {"match": {"Body": marker}}]}}
    found = httpx.post(
        f"{stack.elasticsearch.admin_url}/b2c-logs*/_count", json={"query": query}, timeout=10
    ).json()
    assert found["count"] == len(records)
    assert refused_documents(stack) == refused_before


@pytest.mark.integration
def test_invalid_utf8_is_stored_with_replacement_characters_beside_its_neighbours(
    stack: LocalStack,
) -> None:
    refused_before = refused_documents(stack)
    marker = uuid.uuid4().hex
    now = time.time_ns()
    request = log_request(
        [
            LogRecord(time_unix_nano=now, body=AnyValue(string_value=f"{marker} proto QQBADQQ")),
            LogRecord(time_unix_nano=now, body=AnyValue(string_value=f"{marker} proto-neighbour")),
        ],
        {"service.name": "legacy", "note": "QQBADQQ"},
    )
    # protobuf strings must be UTF-8; a sender that does not care writes raw bytes
    raw = request.SerializeToString().replace(b"QQBADQQ", b"QQ\xff\xfeQQQ")
    assert post(stack, raw, "application/x-protobuf").status_code == 200

    as_json = {
        "resourceLogs": [
            {
                "resource": {"attributes": []},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"timeUnixNano": str(now), "body": {"stringValue": body}}
                            for body in (f"{marker} json QQBADQQ", f"{marker} json-neighbour")
                        ]
                    }
                ],
            }
        ]
    }
    raw_json = json.dumps(as_json).encode().replace(b"QQBADQQ", b"QQ\xc3\x28QQQ")
    assert post(stack, raw_json, "application/json").status_code == 200

    documents = stored(stack, marker, 4)
    assert set(documents) == {"proto", "proto-neighbour", "json", "json-neighbour"}
    for word in ("proto", "json"):
        assert "\ufffd" in documents[word]["Body"]
        assert documents[word]["Body"].endswith("QQQ")
    assert refused_documents(stack) == refused_before


@pytest.mark.integration
def test_a_300_level_nested_json_attribute_is_flattened_and_stored(stack: LocalStack) -> None:
    refused_before = refused_documents(stack)
    marker = uuid.uuid4().hex
    value = '{"stringValue": "bottom"}'
    for level in range(300):  # text built by hand: json.dumps recurses too deep
        value = f'{{"kvlistValue": {{"values": [{{"key": "j{level}", "value": {value}}}]}}}}'
    records = [
        f'{{"timeUnixNano": "{time.time_ns()}", "body": {{"stringValue": "{marker} {word}"}}'
        + (f', "attributes": [{{"key": "deep", "value": {value}}}]' if word == "deep" else "")
        + "}"
        for word in ("deep", "beside")
    ]
    body = (
        '{"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": ['
        + ", ".join(records)
        + "]}]}]}"
    )
    assert post(stack, body.encode(), "application/json").status_code == 200

    documents = stored(stack, marker, 2)
    [key] = [k for k in attribute_keys(documents["deep"]) if k.startswith("Attributes.deep.")]
    assert key.count(".") == 301
    assert documents["deep"][key] == "bottom"
    assert refused_documents(stack) == refused_before


# --------------------------------------------------------------------------------------
# retention in the maintenance round


@pytest.mark.integration
def test_the_maintenance_round_deletes_whole_indices_past_retention_and_keeps_newer(
    stack: LocalStack,
) -> None:
    now = datetime.now(UTC)
    es = stack.elasticsearch.admin_url
    marker = uuid.uuid4().hex
    # 1990: far enough back that no other test's records share these indices
    old_days = [datetime(1990, 1, d, tzinfo=UTC) for d in (1, 2)]
    indices = {day: daily_index("b2c-logs", day.date()) for day in old_days}
    recent = now - timedelta(days=5)
    indices[recent] = daily_index("b2c-logs", recent.date())
    for day, index in indices.items():
        document = {"@timestamp": day.isoformat(), "Body": f"{marker} kept-or-not"}
        response = httpx.post(f"{es}/{index}/_doc?refresh=true", json=document, timeout=30)
        assert response.status_code == 201, response.text
    undated = f"b2c-logs-bench-{marker}"
    assert httpx.put(f"{es}/{undated}", timeout=30).status_code == 200

    pool: psycopg_pool.ConnectionPool = make_pool(stack.postgres.url, max_size=2, name="ret-test")
    pool.open(wait=True)
    try:
        with make_client(es) as client:
            round_ = MaintenanceThread(
                pool,
                MetricsPolicy(),
                timedelta(minutes=1),
                clock=lambda: now,
                log_indices=LogIndices(client, "b2c-logs", timedelta(days=7)),
            )
            round_.run_once()
    finally:
        pool.close()

    def exists(index: str) -> bool:
        return httpx.head(f"{es}/{index}", timeout=10).status_code == 200

    try:
        assert not any(exists(indices[day]) for day in old_days)
        assert exists(indices[recent])
        assert exists(undated)
        # and the days ahead are ready before their first record
        assert exists(daily_index("b2c-logs", now.date()))
        assert exists(daily_index("b2c-logs", (now + timedelta(days=1)).date()))
        count = httpx.post(
            f"{es}/b2c-logs*/_count", json={"query": {"match": {"Body": marker}}}, timeout=10
        ).json()["count"]
        assert count == 1
    finally:
        httpx.delete(f"{es}/{undated}", timeout=30)
