"""OTLP wire bytes of finished spans, written directly.

The SDK's encoder (``encode_spans``) builds a protobuf object for every span, key,
value and status before serialising them, ~25-40 us a job report on these machines:
more than the rest of a Celery task's reporting together (bench/celery_probe.py).
Most of our spans are plain (scalar attributes, no events, no links), and for those
the protobuf wire format is a few tags and lengths, so this module writes the
bytes of an ``ExportTraceServiceRequest`` itself, with the encoded keys, repeated
values, resources and scopes kept in small caches. A span that is not plain is
encoded by the SDK's own encoder and spliced in, so every span is still sent; the
result parses to exactly the message ``encode_spans`` builds (tests/test_span_wire.py
checks that over generated spans).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar, cast

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode

from b2c_monitoring import contract as c
from b2c_monitoring.contract import JobState
from b2c_monitoring.probes._job_reports import JobReport

# field tags: (number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
_REQUEST_RESOURCE_SPANS: Final = b"\x0a"
_RESOURCE_SPANS_RESOURCE: Final = b"\x0a"
_RESOURCE_SPANS_SCOPE_SPANS: Final = b"\x12"
_RESOURCE_SPANS_SCHEMA_URL: Final = b"\x1a"
_SCOPE_SPANS_SCOPE: Final = b"\x0a"
_SCOPE_SPANS_SPAN: Final = b"\x12"
_SCOPE_SPANS_SCHEMA_URL: Final = b"\x1a"
_SPAN_TRACE_ID: Final = b"\x0a\x10"  # always 16 bytes
_SPAN_SPAN_ID: Final = b"\x12\x08"  # always 8 bytes
_SPAN_TRACE_STATE: Final = b"\x1a"
_SPAN_PARENT_SPAN_ID: Final = b"\x22\x08"
_SPAN_NAME: Final = b"\x2a"
_SPAN_KIND: Final = b"\x30"
_SPAN_TIMES: Final = b"\x39"  # start (7, fixed64); the end's tag sits inside _TIMES
_SPAN_ATTRIBUTE: Final = b"\x4a"
_SPAN_STATUS: Final = b"\x7a"
_SPAN_FLAGS: Final = b"\x85\x01"  # 16, fixed32
_STATUS_MESSAGE: Final = b"\x12"
_STATUS_CODE: Final = b"\x18"
_KEY_VALUE_KEY: Final = b"\x0a"
_KEY_VALUE_VALUE: Final = b"\x12"
_ANY_STRING: Final = b"\x0a"
_ANY_BOOL: Final = b"\x10"
_ANY_INT: Final = b"\x18"
_ANY_DOUBLE: Final = b"\x21"

_TIMES = struct.Struct("<Q B Q")  # start, the end's tag (8, fixed64), end
_END_TAG: Final = 0x41
_DOUBLE = struct.Struct("<d")
_FLAGS = struct.Struct("<I")
# the SDK's _span_flags: "has is-remote" always, "is remote" for a remote parent
_FLAG_HAS_IS_REMOTE: Final = 0x100
_FLAG_IS_REMOTE: Final = 0x200
_FLAGS_LOCAL: Final = _SPAN_FLAGS + _FLAGS.pack(_FLAG_HAS_IS_REMOTE)
_FLAGS_REMOTE: Final = _SPAN_FLAGS + _FLAGS.pack(_FLAG_HAS_IS_REMOTE | _FLAG_IS_REMOTE)
_KINDS: Final = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_UINT64: Final = 1 << 64

# Keys repeat in every span and many values do too (a job's type, state, tenant): their
# encodings are kept, in bounded caches, so a long-running host's memory stays flat.
_MAX_CACHED: Final = 4096
_CACHEABLE_CHARS: Final = 64
_UNIQUE: Final = frozenset({c.JOB_ID, c.JOB_RETRY_OF})
_K = TypeVar("_K")
_V = TypeVar("_V")


_SMALL: Final = tuple(bytes((n,)) for n in range(0x80))


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


class _NotPlain(Exception):
    """A span this module does not write itself; the SDK's encoder does."""


class SpanWire:
    """Encodes batches of spans. Its caches need no lock: a dict's get and set are
    atomic under the GIL, and a lost entry is only computed again."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, object], bytes] = {}
        self._names: dict[tuple[str, JobState], bytes] = {}  # name and kind fields
        self._heads: dict[
            tuple[int, int], tuple[Resource, InstrumentationScope | None, bytes, bytes]
        ] = {}

    def encode(self, spans: Sequence[ReadableSpan | JobReport]) -> bytes:
        """The serialised ``ExportTraceServiceRequest`` of ``spans``, grouped by
        resource and scope in the order the SDK's encoder groups them."""
        # Equal resources are one group, as in the SDK, but a Resource hashes by
        # dumping its attributes to JSON: each distinct object is hashed once a batch.
        same: dict[object, object] = {}
        canonical: dict[int, object] = {}
        groups: dict[int, dict[int, tuple[ReadableSpan | JobReport, list[bytes]]]] = {}
        for span in spans:
            if isinstance(span, JobReport):
                body = self._report(span)
            else:
                try:
                    body = self._span(span)
                except _NotPlain:
                    body = _sdk_span_bytes(span)
            resource, scope = span.resource, span.instrumentation_scope or None
            if (first_resource := canonical.get(id(resource))) is None:
                first_resource = canonical[id(resource)] = same.setdefault(resource, resource)
            if (first_scope := canonical.get(id(scope))) is None:
                first_scope = canonical[id(scope)] = same.setdefault(("scope", scope), scope)
            scopes = groups.setdefault(id(first_resource), {})
            group = scopes.get(id(first_scope))
            if group is None:
                scopes[id(first_scope)] = (span, [body])
            else:
                group[1].append(body)
        out: list[bytes] = []
        for scopes in groups.values():
            resource_field = b""
            parts: list[bytes] = []
            for sample, bodies in scopes.values():
                resource_field, scope_field = self._head(sample)
                inner = [scope_field, *(_delimited(_SCOPE_SPANS_SPAN, body) for body in bodies)]
                scope = sample.instrumentation_scope
                if scope is not None and scope.schema_url:
                    inner.append(_delimited(_SCOPE_SPANS_SCHEMA_URL, scope.schema_url.encode()))
                parts.append(_delimited(_RESOURCE_SPANS_SCOPE_SPANS, b"".join(inner)))
            out.append(_delimited(_REQUEST_RESOURCE_SPANS, resource_field + b"".join(parts)))
        return b"".join(out)

    def _head(self, sample: ReadableSpan | JobReport) -> tuple[bytes, bytes]:
        """The encoded resource and scope fields (the resource's schema URL included),
        from the SDK's encoder once a pair: they hold arbitrary attribute values."""
        resource, scope = sample.resource, sample.instrumentation_scope
        key = (id(resource), id(scope))
        cached = self._heads.get(key)
        # the cache holds the objects too, so their ids cannot be reused meanwhile
        if cached is not None and cached[0] is resource and cached[1] is scope:
            return cached[2], cached[3]
        readable = sample.readable() if isinstance(sample, JobReport) else sample
        message = encode_spans([readable]).resource_spans[0]
        resource_field = _delimited(_RESOURCE_SPANS_RESOURCE, message.resource.SerializeToString())
        scope_field = b""
        if message.scope_spans[0].HasField("scope"):
            scope_field = _delimited(
                _SCOPE_SPANS_SCOPE, message.scope_spans[0].scope.SerializeToString()
            )
        if resource.schema_url:
            # ResourceSpans' field 3 written before its field 2: a parser takes any order
            resource_field += _delimited(_RESOURCE_SPANS_SCHEMA_URL, resource.schema_url.encode())
        _bounded(self._heads)[key] = (resource, scope, resource_field, scope_field)
        return resource_field, scope_field

    def _span(self, span: ReadableSpan) -> bytes:
        if (
            span.events
            or span.links
            or span.dropped_attributes
            or span.dropped_events
            or span.dropped_links
        ):
            raise _NotPlain
        context = span.context
        if context is None or span.start_time is None or span.end_time is None:
            raise _NotPlain
        parts = [
            _SPAN_TRACE_ID,
            context.trace_id.to_bytes(16, "big"),
            _SPAN_SPAN_ID,
            context.span_id.to_bytes(8, "big"),
        ]
        if context.trace_state:
            state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
            parts.append(_delimited(_SPAN_TRACE_STATE, state.encode()))
        parent = span.parent
        if parent is not None:
            parts.append(_SPAN_PARENT_SPAN_ID)
            parts.append(parent.span_id.to_bytes(8, "big"))
        parts.append(_delimited(_SPAN_NAME, span.name.encode()))
        parts.append(_SPAN_KIND)
        parts.append(bytes((_KINDS[span.kind],)))
        parts.append(_SPAN_TIMES)
        parts.append(_TIMES.pack(span.start_time, _END_TAG, span.end_time))
        self._attributes_field(parts, span.attributes or {})
        parts.append(_status_field(span.status))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)

    def _report(self, report: JobReport) -> bytes:
        """A job report's span: a root of its own trace, with new ids, starting and
        ending at the report's time."""
        bits = random.getrandbits
        name = self._names.get((report.job.job_type, report.state))
        if name is None:
            name = _delimited(_SPAN_NAME, report.name.encode()) + _SPAN_KIND + b"\x01"
            _bounded(self._names)[report.job.job_type, report.state] = name
        parts = [
            _SPAN_TRACE_ID,
            (bits(128) or 1).to_bytes(16, "big"),
            _SPAN_SPAN_ID,
            (bits(64) or 1).to_bytes(8, "big"),
            name,
            _SPAN_TIMES,
            _TIMES.pack(report.time, _END_TAG, report.time),
        ]
        self._attributes_field(parts, report.attributes())
        parts.append(_UNSET_STATUS if report.error is None else _status_field(report.status()))
        parts.append(_FLAGS_LOCAL)
        return b"".join(parts)

    def _attributes_field(self, parts: list[bytes], attributes: Mapping[str, object]) -> None:
        cached = self._attributes
        for key, value in attributes.items():
            # (key, type, value): True and 1 are equal as dict keys, not as attributes
            field = cached.get((key, type(value), value))
            parts.append(field if field is not None else self._attribute(key, value))

    def _attribute(self, key: str, value: object) -> bytes:
        """A span's attribute field: its key and value as a ``KeyValue``."""
        inner = _delimited(_KEY_VALUE_KEY, key.encode()) + _delimited(
            _KEY_VALUE_VALUE, _any_value(value)
        )
        encoded = _delimited(_SPAN_ATTRIBUTE, inner)
        # Not kept: a float (nan != nan: never found again), a long text, a job's id
        # (unique by design: it would only push out the values that repeat).
        if isinstance(value, bool | int) or (
            isinstance(value, str) and len(value) <= _CACHEABLE_CHARS and key not in _UNIQUE
        ):
            _bounded(self._attributes)[key, type(value), value] = encoded
        return encoded


def _status_field(status: Status) -> bytes:
    payload = b""
    if status.description is not None:
        payload = _delimited(_STATUS_MESSAGE, status.description.encode())
    code = status.status_code.value
    if code:
        payload += _STATUS_CODE + bytes((code,))
    return _delimited(_SPAN_STATUS, payload)


_UNSET_STATUS: Final = _status_field(Status(StatusCode.UNSET))


def _any_value(value: object) -> bytes:
    # bool before int: it is one
    if isinstance(value, str):
        return _delimited(_ANY_STRING, value.encode())
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 63):
            raise _NotPlain  # the SDK's encoder decides what happens to it
        return _ANY_INT + _varint(value % _UINT64)
    if isinstance(value, float):
        return _ANY_DOUBLE + _DOUBLE.pack(value)
    raise _NotPlain  # sequences, bytes, mappings


def _bounded(cache: dict[_K, _V]) -> dict[_K, _V]:
    """The cache, emptied first when full: unique values (job ids) fill it and it then
    refills with what repeats now."""
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    return cache


def _sdk_span_bytes(span: ReadableSpan) -> bytes:
    return encode_spans([span]).resource_spans[0].scope_spans[0].spans[0].SerializeToString()


class _BytesTraceStub:
    """The trace service's stub taking the request's bytes as they are: the SDK's
    stub would serialise a message, which ``SpanWire``'s bytes would first have to be
    parsed into (~2 us a span together)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            _EXPORT_METHOD,
            request_serializer=None,  # the request is bytes already
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


_EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class WireSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter (its channel, headers, retries, timeouts),
    sending requests written by ``SpanWire`` as bytes. It depends on the SDK
    exporter's private ``_translate_data``, ``_stub`` and ``_client`` (SDK 1.45)."""

    takes_job_reports: Final = True  # LedgerSpanExporter hands it JobReports as they are

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._wire = SpanWire()
        # a reconnection makes its client from _stub again
        self._stub = _BytesTraceStub
        self._client = _BytesTraceStub(cast(grpc.Channel, self._channel))  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return self._wire.encode(data)
