"""Communication errors without a stack: the probes' record, hooks and the search bodies.

The probes run with the SDK's in-memory log exporter; the hooks' unit tests use
httpx's ``MockTransport`` as the far edge (tests/test_service_errors.py does the same
against a real failing server, through the real collector).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AnyValue

from b2c_monitoring import contract as c
from b2c_monitoring.api.routes.service_errors import _csv_cell
from b2c_monitoring.api.service_views import safe_name as _safe
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.probes._communication import (
    MAX_BODY_CHARS,
    clean_url,
    communication_error_record,
)
from b2c_monitoring.storage.communication_errors import (
    ErrorQuery,
    errors_search,
    patterns_search,
    trend_interval,
    trend_of,
)


@pytest.fixture
def logs() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]


@pytest.fixture
def probes(logs: InMemoryLogRecordExporter) -> Iterator[Probes]:
    settings = ProbeSettings(service_name="pim-connector", service_instance_id="pim-1")
    with Probes(settings, span_exporter=InMemorySpanExporter(), log_exporter=logs) as p:
        yield p


def exported(probes: Probes, logs: InMemoryLogRecordExporter) -> list[ReadableLogRecord]:
    assert probes.force_flush(5.0)
    return list(logs.get_finished_logs())


def attrs(record: ReadableLogRecord) -> Mapping[str, AnyValue]:
    assert record.log_record.attributes is not None
    return record.log_record.attributes


# the record


def test_credentials_leave_the_url_and_secrets_in_it_are_masked() -> None:
    assert clean_url("https://sync:hunter2@pim.example:8443/v1?token=abc&page=2") == (
        "https://pim.example:8443/v1?token=***&page=2"
    )
    assert clean_url("https://pim.example/v1/items/7") == "https://pim.example/v1/items/7"


def test_a_record_carries_the_contract_attributes_with_bounded_redacted_bodies() -> None:
    body, attributes = communication_error_record(
        "pim-system",
        method="post",
        url="https://u:p@pim.example/api/items",
        status=502,
        duration=1.5,
        request_body=b'{"password": "Tr0ub4dor", "sku": 7}',
        response_body="<html>" + "x" * 10_000,
    )
    assert attributes[c.EVENT_NAME] == c.COMMUNICATION_ERROR_EVENT
    assert attributes[c.CONNECTED_SERVICE_NAME] == "pim-system"
    assert attributes["http.request.method"] == "POST"
    assert attributes[c.URL_FULL] == "https://pim.example/api/items"
    assert attributes[c.SERVER_ADDRESS] == "pim.example"
    assert attributes["http.response.status_code"] == 502
    assert attributes[c.ERROR_TYPE] == "502"
    assert attributes[c.EXCEPTION_MESSAGE] == "answered 502"
    assert attributes[c.COMMUNICATION_DURATION] == 1.5
    request = attributes["communication.request.body"]
    assert isinstance(request, str)
    assert "Tr0ub4dor" not in request
    assert '"sku": 7' in request
    response = attributes["communication.response.body"]
    assert isinstance(response, str)
    assert len(response) == MAX_BODY_CHARS
    assert body == "pim-system: POST https://pim.example/api/items failed: answered 502"


def test_an_exception_gives_its_class_as_error_type_and_its_text_as_message() -> None:
    _, attributes = communication_error_record(
        "erp", url="http://erp/x", error=httpx.ConnectError("connection refused")
    )
    assert attributes[c.ERROR_TYPE] == "httpx.ConnectError"
    assert attributes[c.EXCEPTION_MESSAGE] == "connection refused"
    assert "http.response.status_code" not in attributes
    _, attributes = communication_error_record("erp", error=TimeoutError())
    assert attributes[c.ERROR_TYPE] == "TimeoutError"
    assert attributes[c.EXCEPTION_MESSAGE] == "TimeoutError"


def test_a_record_inside_a_job_run_carries_the_job_and_its_tenant(
    probes: Probes, logs: InMemoryLogRecordExporter
) -> None:
    with probes.job_run("PIM_IMPORT", tenant_id="acme") as job:
        probes.record_communication_error("pim-system", error="refused", status=503)
    probes.record_communication_error("pim-system", error="refused again")
    inside, outside = exported(probes, logs)
    assert attrs(inside)[c.JOB_ID] == job.job_id
    assert attrs(inside)[c.TENANT_ID] == "acme"
    assert inside.log_record.severity_text == "ERROR"
    assert c.JOB_ID not in attrs(outside)
    assert inside.log_record.event_name == c.COMMUNICATION_ERROR_EVENT


def test_recording_never_raises_into_the_host(probes: Probes) -> None:
    probes.record_communication_error("pim-system", status="not a number")  # type: ignore[arg-type]
    probes.shutdown()
    probes.record_communication_error("pim-system", error="after shutdown")


# the hooks


def _failing(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/down":
        raise httpx.ConnectError("refused", request=request)
    if request.url.path == "/bad":
        return httpx.Response(404, text="no such item")
    return httpx.Response(503, text="maintenance", headers={"content-length": "11"})


def test_the_httpx_hook_records_exceptions_and_server_errors_and_changes_nothing(
    probes: Probes, logs: InMemoryLogRecordExporter
) -> None:
    client = httpx.Client(transport=httpx.MockTransport(_failing), base_url="http://pim")
    probes.instrument_httpx(client, "pim-system")
    probes.instrument_httpx(client, "pim-system")  # twice: still one record per call
    with pytest.raises(httpx.ConnectError):
        client.get("/down")
    response = client.post("/up", content=b"payload")
    assert response.status_code == 503
    assert response.text == "maintenance"  # the body is still the caller's to read
    assert client.get("/bad").status_code == 404  # below min_status: not recorded
    down, up = (attrs(r) for r in exported(probes, logs))
    assert down[c.ERROR_TYPE] == "httpx.ConnectError"
    assert down[c.URL_FULL] == "http://pim/down"
    assert up["http.response.status_code"] == 503
    assert up["communication.response.body"] == "maintenance"
    assert up["communication.request.body"] == "payload"
    duration = up[c.COMMUNICATION_DURATION]
    assert isinstance(duration, float)
    assert duration >= 0


def test_the_async_httpx_hook_honours_min_status(
    probes: Probes, logs: InMemoryLogRecordExporter
) -> None:
    async def calls() -> None:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(_failing), base_url="http://pim"
        ) as client:
            probes.instrument_httpx(client, "pim-system", min_status=400)
            assert (await client.get("/bad")).status_code == 404

    asyncio.run(calls())
    [bad] = exported(probes, logs)
    assert attrs(bad)["http.response.status_code"] == 404


# the search bodies


def _filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = body["query"]["bool"]["filter"]
    return filters


def test_every_search_is_scoped_to_the_tenant_and_the_service() -> None:
    query = ErrorQuery(tenant_id="acme", service_name="pim-system")
    now = datetime(2026, 11, 28, tzinfo=UTC)
    for body in (
        errors_search(query, default_tenant="default"),
        patterns_search(
            query, default_tenant="default", since=now - timedelta(hours=1), until=now, limit=5
        ),
    ):
        text = repr(_filters(body))
        assert "'Attributes.tenant.id': 'acme'" in text
        assert "'Attributes.connected_service.name': 'pim-system'" in text


def test_the_trend_compares_the_halves_of_the_range() -> None:
    assert trend_of([0, 0, 3, 4]) == "new"
    assert trend_of([2, 2, 3, 4]) == "rising"
    assert trend_of([5, 5, 1, 2]) == "falling"
    assert trend_of([3, 3, 3, 3]) == "steady"
    assert trend_of([]) == "steady"


def test_the_trend_interval_keeps_the_histogram_short() -> None:
    start = datetime(2026, 11, 28, tzinfo=UTC)
    assert trend_interval(start, start + timedelta(minutes=30))[0] == "1m"
    assert trend_interval(start, start + timedelta(hours=24))[0] == "1h"
    assert trend_interval(start, start + timedelta(days=30))[0] == "1d"


# the export


def test_csv_cells_that_a_spreadsheet_would_run_are_text() -> None:
    assert _csv_cell('=HYPERLINK("http://evil")') == '\'=HYPERLINK("http://evil")'
    assert _csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_cell("timeout after 3 s") == "timeout after 3 s"
    assert _csv_cell(503) == 503


def test_file_names_are_ascii_without_paths() -> None:
    assert _safe("pim/../système 1") == "pim_.._syst_me_1"
