"""One trace export request, from raw bytes to stored jobs: the processor's unit of work.

It takes the request's serialized bytes, so that the gRPC front can hand it to a
worker process without parsing it (``workers.py``), and returns a plain, picklable
outcome that the front turns into a gRPC answer and counters. Nothing here raises
for bad data or an unavailable store: both are outcomes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from b2c_monitoring.errors import StorageError, StorageUnavailable
from b2c_monitoring.receivers.spans import decode_request
from b2c_monitoring.redaction import Patterns
from b2c_monitoring.storage.jobs import JobStore


@dataclass(frozen=True)
class NotStored:
    retryable: bool
    message: str
    # a short stable word for the refused-batches counter (pipeline_metrics)
    reason: str = "store_error"


def storage_reason(exc: StorageError) -> str:
    if isinstance(exc, StorageUnavailable):
        return "store_unavailable"
    return "store_error" if exc.retryable else "store_rejected"


@dataclass(frozen=True)
class TraceOutcome:
    received: int = 0
    stored: int = 0
    ignored: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    # changes stored, per status they moved their job to
    changes: dict[str, int] = field(default_factory=dict)
    not_stored: NotStored | None = None
    # the store transaction alone, measured in the worker: its registry is not the front's
    store_seconds: float | None = None


TraceHandler = Callable[[bytes], TraceOutcome]


def handle_trace_export(
    store: JobStore, default_tenant: str, data: bytes, custom: Patterns = ()
) -> TraceOutcome:
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        return TraceOutcome(
            not_stored=NotStored(False, f"not an OTLP trace export request: {exc}", "not_otlp")
        )
    batch = decode_request(request, default_tenant, custom)
    received = len(batch.reports) + len(batch.rejected) + batch.ignored
    rejected = [(r.reason, r.message) for r in batch.rejected]
    started = time.perf_counter()
    try:
        applied = store.apply(batch.reports, datetime.now(UTC))
    except StorageError as exc:
        return TraceOutcome(
            received=received,
            ignored=batch.ignored,
            rejected=rejected,
            not_stored=NotStored(exc.retryable, exc.message, storage_reason(exc)),
            store_seconds=time.perf_counter() - started,
        )
    return TraceOutcome(
        received=received,
        stored=len(batch.reports),
        ignored=batch.ignored,
        rejected=rejected,
        changes=dict(Counter(c.status.value for c in applied.changes)),
        store_seconds=time.perf_counter() - started,
    )
