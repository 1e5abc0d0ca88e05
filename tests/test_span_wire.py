"""The probes' own OTLP span encoding (probes/_span_wire.py) says exactly what the
SDK's encoder says: the bytes parse to the message ``encode_spans`` builds, for plain
spans and for the ones it leaves to the SDK (events, links, sequences), over
several resources and scopes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from b2c_monitoring.contract import JobState
from b2c_monitoring.probes import _span_wire
from b2c_monitoring.probes._job_reports import JobReport
from b2c_monitoring.probes._jobs import JobIdentity
from b2c_monitoring.probes._span_wire import SpanWire

_RESOURCES = [
    Resource.create({"service.name": "erp-sync", "b2c.tenant.id": "acme"}),
    Resource({"service.name": "pim", "list": ("a", "b"), "n": 3}, schema_url="https://x/1.2"),
]
_SCOPES = [
    InstrumentationScope("b2c_monitoring.probes", "1.0"),
    InstrumentationScope("other", None, "https://schema/1", {"k": "v"}),
    None,
]

_PROBES_SCOPE = InstrumentationScope("b2c_monitoring.probes", "1.0")
_texts = st.text(max_size=80)
_scalars = st.one_of(
    _texts,
    st.booleans(),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(allow_nan=False),
)
_values = st.one_of(_scalars, st.lists(st.integers(-5, 5), max_size=3).map(tuple))
_ids = st.integers(min_value=1, max_value=(1 << 64) - 1)


@st.composite
def _spans(draw: st.DrawFn) -> ReadableSpan:
    context = SpanContext(
        draw(st.integers(min_value=1, max_value=(1 << 128) - 1)),
        draw(_ids),
        False,
        TraceFlags(1),
        trace_state=draw(
            st.sampled_from([TraceState(), TraceState([("vendor", "v1"), ("other", "x")])])
        ),
    )
    parent = draw(
        st.one_of(
            st.none(),
            st.builds(lambda s, r: SpanContext(1, s, r, TraceFlags(1)), _ids, st.booleans()),
        )
    )
    code = draw(st.sampled_from(list(StatusCode)))
    description = draw(st.one_of(st.none(), _texts)) if code is StatusCode.ERROR else None
    start = draw(st.integers(min_value=0, max_value=(1 << 64) - 1))
    plain = draw(st.booleans())
    attributes = draw(st.dictionaries(_texts, _scalars if plain else _values, max_size=8))
    return ReadableSpan(
        name=draw(_texts),
        context=context,
        parent=parent,
        resource=draw(st.sampled_from(_RESOURCES)),
        attributes=attributes,
        events=() if plain or draw(st.booleans()) else (Event("e", {"a": 1}, 5),),
        links=() if plain or draw(st.booleans()) else (Link(parent or context, {"l": True}),),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=Status(code, description),
        start_time=start,
        end_time=draw(st.integers(min_value=start, max_value=(1 << 64) - 1)),
        instrumentation_scope=draw(st.sampled_from(_SCOPES)),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(_spans(), max_size=12))
def test_the_bytes_are_the_sdks_message(spans: list[ReadableSpan]) -> None:
    wire = SpanWire()
    expected = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(wire.encode(spans)) == expected
    # a second batch is written from the caches: still the same message
    assert ExportTraceServiceRequest.FromString(wire.encode(spans)) == expected


def test_true_and_one_stay_apart_in_the_cache() -> None:
    def span(value: object) -> ReadableSpan:
        return ReadableSpan(
            name="n",
            context=SpanContext(1, 2, False, TraceFlags(1)),
            attributes={"k": value},  # type: ignore[dict-item]
            resource=_RESOURCES[0],
            start_time=1,
            end_time=2,
        )

    wire = SpanWire()
    spans = [span(True), span(1), span(1.0), span(math.inf), span(False), span(0)]
    assert ExportTraceServiceRequest.FromString(wire.encode(spans)) == encode_spans(spans)


def test_unique_values_do_not_grow_the_caches(monkeypatch: object) -> None:
    wire = SpanWire()
    limit = _span_wire._MAX_CACHED
    for batch in range(3):
        spans = [
            ReadableSpan(
                name="job",
                context=SpanContext(1, 2 + i, False, TraceFlags(1)),
                attributes={
                    "scheduler.job.id": f"job-{batch}-{i}",
                    "scheduler.job.state": "running",
                },
                resource=Resource.create({"n": i % 7}),  # new objects each time
                start_time=1,
                end_time=2,
            )
            for i in range(limit)
        ]
        assert ExportTraceServiceRequest.FromString(wire.encode(spans)) == encode_spans(spans)
    assert len(wire._attributes) <= limit
    assert len(wire._heads) <= limit


_job_reports = st.builds(
    lambda job, state, time, resource, metadata, progress, error: JobReport(
        job, state, time, resource, _PROBES_SCOPE, metadata, progress, error
    ),
    st.builds(
        JobIdentity,
        _texts.filter(bool),
        _texts.filter(bool),
        st.one_of(st.none(), _texts),
        st.integers(min_value=1, max_value=1000),
        st.one_of(st.none(), _texts),
    ),
    st.sampled_from(list(JobState)),
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.sampled_from(_RESOURCES),
    st.one_of(st.none(), st.dictionaries(_texts, _scalars, max_size=4)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
    st.one_of(st.none(), _texts),
)


def _without_ids(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                assert len(span.trace_id) == 16
                assert any(span.trace_id)
                assert len(span.span_id) == 8
                assert any(span.span_id)
                span.trace_id = span.span_id = b""
    return request


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_job_reports, _spans()), max_size=12))
def test_a_job_reports_bytes_are_those_of_its_readable_span(
    items: list[ReadableSpan | JobReport],
) -> None:
    """The export thread writes a JobReport's bytes from its fields; any other exporter
    gets ``readable()``. Both say the same, but for the ids each makes anew."""
    wire = SpanWire()
    readable = [i.readable() if isinstance(i, JobReport) else i for i in items]
    expected = _without_ids(encode_spans(readable))
    for _ in range(2):  # the second batch from the caches
        assert _without_ids(ExportTraceServiceRequest.FromString(wire.encode(items))) == expected
