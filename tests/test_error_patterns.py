"""Error patterns: the Python reference and the collector's transform, on the same samples."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest

from b2c_monitoring import contract as c
from b2c_monitoring.error_patterns import (
    FINGERPRINT_ATTR,
    PATTERN_ATTR,
    RULES,
    fingerprint,
    pattern_attributes,
    pattern_of,
)
from b2c_monitoring.stack.base import repo_root
from b2c_monitoring.stack.local import LocalStack
from tests.polling import eventually
from tests.test_job_logs import record, send_logs

# (message, its pattern)
SAMPLES = [
    ("Order 4711 rejected by ERP", "Order <n> rejected by ERP"),
    ("GET https://erp.example/api/v2/orders/4711?page=2 returned 503", "GET <url> returned <n>"),
    (
        "timeout after 30.5 s talking to 10.0.0.12:8443",
        "timeout after <n> s talking to <n>.<n>:<n>",
    ),
    (
        "job 3f2b8c9e-1d4a-4e6b-9c0f-7a8b9c0d1e2f failed at 2026-11-28T10:00:01.123Z",
        "job <uuid> failed at <ts>",
    ),
    ("batch 2026-11-28 14:03:22 rejected at 09:15:00", "batch <ts> rejected at <time>"),
    (
        "session deadbeef12345678 expired, mail sent to ops@acme.example",
        "session <hex> expired, mail sent to <email>",
    ),
    (
        "pointer 0x7ffe3a2b invalid in SKU12345 and ORD-99",
        "pointer <hex> invalid in SKU<n> and ORD-<n>",
    ),
    ("connect to https://sync:hunter2@erp.example/v1 refused", "connect to <url> refused"),
    ("Ünïcode ✓ message ²³ stays", "Ünïcode ✓ message ²³ stays"),
    (
        'PIM said {"error": "sku 77 unknown", "at": "2026-01-02"}',
        'PIM said {"error": "sku <n> unknown", "at": "<ts>"}',
    ),
]


@pytest.mark.parametrize(("message", "expected"), SAMPLES)
def test_ids_numbers_times_and_urls_are_masked(message: str, expected: str) -> None:
    assert pattern_of(message) == expected


def test_occurrences_of_one_error_share_a_fingerprint_and_others_do_not() -> None:
    one = [
        f"Order {n} of {day} failed at https://erp/x?id={n * 7}: {uuid.uuid4()}"
        for n, day in ((1, "2026-11-28"), (4711, "2026-01-02"), (99999, "2025-12-31T23:59:59Z"))
    ]
    assert len({fingerprint(pattern_of(m)) for m in one}) == 1
    assert fingerprint(pattern_of("Order 1 cancelled")) != fingerprint(pattern_of(one[0]))


def test_only_communication_errors_and_error_records_get_a_pattern() -> None:
    event = {c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT}
    assert pattern_attributes("Order 1 failed", 13, event)[PATTERN_ATTR] == "Order <n> failed"
    assert pattern_attributes("Order 1 failed", 17, {})[PATTERN_ATTR] == "Order <n> failed"
    assert pattern_attributes("Order 1 failed", 9, {}) == {}
    # exception.message wins over the body, unless it is empty
    found = pattern_attributes("body 1", 17, {c.EXCEPTION_MESSAGE: "refused 2"})
    assert found == {PATTERN_ATTR: "refused <n>", FINGERPRINT_ATTR: fingerprint("refused <n>")}
    assert pattern_attributes("body 1", 17, {c.EXCEPTION_MESSAGE: ""})[PATTERN_ATTR] == "body <n>"


def _ottl_literal(expression: str) -> str:
    return '"' + expression.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_the_collector_applies_the_same_rules_in_the_same_order() -> None:
    config = (repo_root() / "collector-config/collector.yaml").read_text()
    prefix = f'replace_pattern(log.attributes["{PATTERN_ATTR}"], '
    replaces = [
        line.strip().removeprefix("- ")
        for line in config.splitlines()
        if line.strip().startswith("- " + prefix)
    ]
    expected = [f'{prefix}{_ottl_literal(rx)}, "{repl}")' for rx, repl in RULES]
    assert replaces == expected
    [pipeline] = [
        line
        for line in config.splitlines()
        if "transform/redact_logs," in line and "processors:" in line
    ]
    # after redaction: a pattern never holds a secret the redaction would have masked
    assert pipeline.index("transform/error_patterns") > pipeline.index("transform/redact_logs")


def test_the_rules_stay_in_the_subset_re2_shares_with_python() -> None:
    for expression, _ in RULES:
        assert not re.search(r"\(\?[=!<]|\\s|\\[pPX]", expression), expression


@pytest.mark.integration
def test_the_collector_computes_the_same_patterns_before_elasticsearch(
    stack: LocalStack, tenant: str
) -> None:
    marker = uuid.uuid4().hex
    now = time.time_ns()
    records = []
    for i, (message, _) in enumerate(SAMPLES):
        # half as the body of an error record, half as a communication error's message
        attributes: dict[str, Any] = {"sample": i, "marker": marker}
        if i % 2:
            attributes |= {
                c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT,
                c.EXCEPTION_MESSAGE: message,
                # a sender's own values are replaced, never trusted
                PATTERN_ATTR: "forged",
                FINGERPRINT_ATTR: "f" * 64,
            }
            records.append(record(now + i, 13, f"call failed {i}", attributes))
        else:
            records.append(record(now + i, 17, message, attributes))
    records.append(record(now, 9, "an info line 42", {"sample": -1, "marker": marker}))
    send_logs(stack, records, {"service.name": "erp-connector", "tenant.id": tenant})

    def stored() -> list[dict[str, Any]] | None:
        found = httpx.post(
            f"{stack.elasticsearch.admin_url}/b2c-logs*/_search",
            json={"size": 50, "query": {"term": {"Attributes.marker": marker}}},
            timeout=10,
        ).json()
        hits = [h["_source"] for h in found.get("hits", {}).get("hits", [])]
        return hits if len(hits) == len(records) else None

    for document in eventually(stored, what="the log records in Elasticsearch"):
        i = document["Attributes.sample"]
        if i < 0:
            assert f"Attributes.{PATTERN_ATTR}" not in document
            assert f"Attributes.{FINGERPRINT_ATTR}" not in document
            continue
        message, expected = SAMPLES[i]
        # the URL sample's secret is redacted first; the pattern masks the URL either way
        assert document[f"Attributes.{PATTERN_ATTR}"] == expected == pattern_of(message)
        assert document[f"Attributes.{FINGERPRINT_ATTR}"] == fingerprint(expected)
