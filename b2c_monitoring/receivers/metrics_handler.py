"""One metrics export request, from raw bytes to stored services, health and resources.

The counterpart of ``traces.py``: it takes the request's serialized bytes (so the gRPC
front hands it to a worker process unparsed) and returns a plain, picklable outcome.
Nothing here raises for bad data or an unavailable store: both are outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from b2c_monitoring.errors import StorageError
from b2c_monitoring.receivers.metrics import decode_request
from b2c_monitoring.receivers.traces import NotStored, storage_reason
from b2c_monitoring.redaction import Patterns
from b2c_monitoring.storage.metrics import MetricsStore


@dataclass(frozen=True)
class MetricsOutcome:
    received: int = 0  # data points
    stored: int = 0  # data points whose derivation was stored
    ignored: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    service_changes: list[str] = field(default_factory=list)  # new statuses
    health_changes: list[str] = field(default_factory=list)
    not_stored: NotStored | None = None
    store_seconds: float | None = None  # the store transaction, measured in the worker


MetricsHandler = Callable[[bytes], MetricsOutcome]


def count_only(data: bytes) -> MetricsOutcome:
    """A handler that derives nothing (a processor without a metrics store)."""
    try:
        request = ExportMetricsServiceRequest.FromString(data)
    except DecodeError as exc:
        return MetricsOutcome(
            not_stored=NotStored(False, f"not an OTLP metrics request: {exc}", "not_otlp")
        )
    points = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    points += len(getattr(metric, kind).data_points)
    return MetricsOutcome(received=points, ignored=points)


def handle_metrics_export(
    store: MetricsStore, default_tenant: str, data: bytes, custom: Patterns = ()
) -> MetricsOutcome:
    try:
        request = ExportMetricsServiceRequest.FromString(data)
    except DecodeError as exc:
        return MetricsOutcome(
            not_stored=NotStored(False, f"not an OTLP metrics request: {exc}", "not_otlp")
        )
    now = datetime.now(UTC)
    batch = decode_request(request, default_tenant, now, custom)
    rejected = [(r.reason, r.message) for r in batch.rejected]
    started = time.perf_counter()
    try:
        applied = store.apply(batch.checks, batch.health, batch.resources, now)
    except StorageError as exc:
        return MetricsOutcome(
            received=batch.received,
            ignored=batch.ignored,
            rejected=rejected,
            not_stored=NotStored(exc.retryable, exc.message, storage_reason(exc)),
            store_seconds=time.perf_counter() - started,
        )
    return MetricsOutcome(
        received=batch.received,
        stored=batch.accepted,
        ignored=batch.ignored,
        rejected=rejected,
        service_changes=[c.status.value for c in applied.status_changes],
        health_changes=[c.status.value for c in applied.health_changes],
        store_seconds=time.perf_counter() - started,
    )
