"""OTLP protobuf messages built by hand, as any SDK following the contract would send them."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def job_span(
    attrs: dict[str, Any],
    *,
    end_ns: int | None = None,
    error: str | None = None,
    trace_id: bytes | None = None,
) -> Span:
    end = end_ns or time.time_ns()
    span = Span(
        trace_id=trace_id or os.urandom(16),
        span_id=os.urandom(8),
        name="job report",
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=end - 1000,
        end_time_unix_nano=end,
        attributes=kvs(attrs),
    )
    if error is not None:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return span


def trace_request(
    spans: list[Span], resource: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=kvs(resource or {"service.name": "erp-connector"})),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
