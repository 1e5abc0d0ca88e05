"""Job-state spans from OTLP, decoded and validated into ``JobReport``s.

A span is a job-state report when it carries both ``scheduler.job.id`` and
``scheduler.job.state`` (contract); other spans are ordinary traces and ignored.
A report that breaks the contract is rejected on its own with a reason; the rest of
its batch goes on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from b2c_monitoring import contract as c
from b2c_monitoring.contract import (
    MAX_JOB_TYPE_CHARS,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_TENANT_CHARS,
    MAX_TEXT_CHARS,
    JobState,
)
from b2c_monitoring.errors import InvalidReport
from b2c_monitoring.processors.jobs import JobReport, Scalar
from b2c_monitoring.redaction import Patterns, redact
from b2c_monitoring.unix_time import from_unix_nanos

_STATES: Final = {s.value: s for s in JobState}
_RELEVANT_PREFIXES: Final = ("scheduler.", c.TENANT_ID, c.ERROR_TYPE)


@dataclass
class DecodedBatch:
    reports: list[JobReport] = field(default_factory=list)
    rejected: list[InvalidReport] = field(default_factory=list)
    ignored: int = 0  # ordinary trace spans


def scalar(value: AnyValue) -> Any:
    """The Python value of an OTLP AnyValue (arrays and maps as lists and dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [scalar(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: scalar(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, AnyValue]:
    return {kv.key: kv.value for kv in kvs}


def _clean(text: str, limit: int, custom: Patterns) -> str:
    # Postgres text cannot hold NUL; secrets never reach storage
    text = redact(text.replace("\x00", ""), custom)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _string(
    attrs: Mapping[str, AnyValue], key: str, *, limit: int, required: bool = False
) -> str | None:
    value = attrs.get(key)
    kind = None if value is None else value.WhichOneof("value")
    if value is None or kind is None:
        if required:
            raise InvalidReport(f"{key} is missing", reason="missing_attribute")
        return None
    if kind != "string_value":
        raise InvalidReport(f"{key} must be a string", reason="wrong_type")
    text = value.string_value
    if not text or text.isspace():
        raise InvalidReport(f"{key} is empty", reason="missing_attribute")
    if len(text) > limit:
        raise InvalidReport(
            f"{key} has {len(text)} characters, at most {limit} allowed",
            reason="oversized_attribute",
        )
    if "\x00" in text:
        raise InvalidReport(f"{key} contains a NUL character", reason="wrong_type")
    return text


def _int(attrs: Mapping[str, AnyValue], key: str, low: int, high: int) -> int | None:
    value = attrs.get(key)
    if value is None or value.WhichOneof("value") is None:
        return None
    if value.WhichOneof("value") != "int_value":
        raise InvalidReport(f"{key} must be an integer", reason="wrong_type")
    number = value.int_value
    if not low <= number <= high:
        raise InvalidReport(
            f"{key} is {number}, must be within {low}..{high}", reason="out_of_range"
        )
    return number


def _metadata(attrs: Mapping[str, AnyValue], custom: Patterns) -> dict[str, Scalar]:
    metadata: dict[str, Scalar] = {}
    for key, value in attrs.items():
        if not key.startswith(c.JOB_METADATA_PREFIX):
            continue
        name = key[len(c.JOB_METADATA_PREFIX) :]
        if not name or len(name) > MAX_METADATA_KEY_CHARS:
            raise InvalidReport(
                f"metadata key {name[:40]!r} is empty or too long", reason="oversized_attribute"
            )
        if "\x00" in name:
            raise InvalidReport(
                f"metadata key {name[:40]!r} contains a NUL character", reason="wrong_type"
            )
        kind = value.WhichOneof("value")
        if kind not in ("string_value", "bool_value", "int_value", "double_value"):
            raise InvalidReport(f"{key} must be a scalar", reason="wrong_type")
        v = getattr(value, kind)
        # JSON (and so Postgres' jsonb) has no NaN or infinity: one such value would make
        # the store refuse the whole batch
        if isinstance(v, float) and not math.isfinite(v):
            raise InvalidReport(f"{key} is {v}, not a finite number", reason="out_of_range")
        metadata[name] = _clean(v, MAX_METADATA_VALUE_CHARS, custom) if isinstance(v, str) else v
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidReport(
            f"{len(metadata)} metadata keys, at most {MAX_METADATA_KEYS}",
            reason="oversized_attribute",
        )
    return metadata


def _error_message(span: Span, attrs: Mapping[str, AnyValue], custom: Patterns) -> str | None:
    if span.status.code == Status.STATUS_CODE_ERROR and span.status.message:
        return _clean(span.status.message, MAX_TEXT_CHARS, custom)
    for event in span.events:
        if event.name == c.EXCEPTION_EVENT:
            message = attributes(event.attributes).get(c.EXCEPTION_MESSAGE)
            if message is not None and message.WhichOneof("value") == "string_value":
                return _clean(message.string_value, MAX_TEXT_CHARS, custom)
            break
    error_type = attrs.get(c.ERROR_TYPE)
    if error_type is not None and error_type.WhichOneof("value") == "string_value":
        return _clean(error_type.string_value, MAX_TEXT_CHARS, custom)
    return None


class ResourceFields:
    """What a job report takes from its span's resource, decoded once per resource
    (an export request carries many spans of one resource), errors included: a
    broken resource attribute rejects each job span that needs it, as if decoded
    with the span."""

    __slots__ = ("_service_name", "_tenant")

    def __init__(self, attrs: Mapping[str, AnyValue]) -> None:
        self._tenant = self._decode(attrs, c.TENANT_ID, MAX_TENANT_CHARS)
        self._service_name = self._decode(attrs, c.SERVICE_NAME, MAX_TEXT_CHARS)

    @staticmethod
    def _decode(attrs: Mapping[str, AnyValue], key: str, limit: int) -> str | InvalidReport | None:
        try:
            return _string(attrs, key, limit=limit)
        except InvalidReport as exc:
            return exc

    @staticmethod
    def _value(decoded: str | InvalidReport | None) -> str | None:
        if isinstance(decoded, InvalidReport):
            raise InvalidReport(decoded.message, reason=decoded.reason)
        return decoded

    def tenant(self) -> str | None:
        return self._value(self._tenant)

    def service_name(self) -> str | None:
        return self._value(self._service_name)


def decode_span(
    span: Span, resource: ResourceFields, default_tenant: str, custom: Patterns = ()
) -> JobReport | None:
    """The report a span carries, ``None`` for an ordinary span; InvalidReport if broken.
    ``custom``: the deployment's own redaction patterns (``B2C_LOG_REDACT_PATTERNS``)."""
    # one pass, keeping only what a job report can use: ordinary spans carry many
    # attributes, and this runs for every span the collector sends
    attrs: dict[str, AnyValue] = {}
    for kv in span.attributes:
        key = kv.key  # each access to a field builds a new Python object
        if key.startswith(_RELEVANT_PREFIXES):
            attrs[key] = kv.value
    if c.JOB_ID not in attrs or c.JOB_STATE not in attrs:
        return None
    job_id = _string(attrs, c.JOB_ID, limit=c.JOB_ID_MAX_CHARS, required=True)
    raw_state = _string(attrs, c.JOB_STATE, limit=32, required=True)
    state = _STATES.get(raw_state or "")
    if state is None:
        raise InvalidReport(
            f"unknown {c.JOB_STATE} {raw_state!r}; expected one of {', '.join(_STATES)}",
            reason="unknown_state",
        )
    tenant = _string(attrs, c.TENANT_ID, limit=MAX_TENANT_CHARS) or resource.tenant()
    end = span.end_time_unix_nano
    if not end:
        raise InvalidReport("span has no end time", reason="missing_end_time")
    assert job_id is not None
    return JobReport(
        tenant_id=tenant or default_tenant,
        job_id=job_id,
        state=state,
        at=from_unix_nanos(end),
        job_type=_string(attrs, c.JOB_TYPE, limit=MAX_JOB_TYPE_CHARS, required=True),
        progress=_int(attrs, c.JOB_PROGRESS, 0, 100),
        attempt=_int(attrs, c.JOB_ATTEMPT, 1, 1_000_000),
        retry_of=_string(attrs, c.JOB_RETRY_OF, limit=c.JOB_ID_MAX_CHARS),
        error_message=_error_message(span, attrs, custom) if state.terminal else None,
        service_name=resource.service_name(),
        metadata=_metadata(attrs, custom),
    )


def iter_spans(request: ExportTraceServiceRequest) -> Iterator[tuple[Span, ResourceFields]]:
    for resource_spans in request.resource_spans:
        resource = ResourceFields(attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield span, resource


def decode_request(
    request: ExportTraceServiceRequest, default_tenant: str, custom: Patterns = ()
) -> DecodedBatch:
    batch = DecodedBatch()
    for span, resource in iter_spans(request):
        try:
            report = decode_span(span, resource, default_tenant, custom)
        except InvalidReport as exc:
            batch.rejected.append(exc)
            continue
        if report is None:
            batch.ignored += 1
        else:
            batch.reports.append(report)
    return batch
