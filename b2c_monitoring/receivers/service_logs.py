"""Services named by log records: what the processor learns from the copy of each log
record with ``connected_service.name`` that the collector routes to it (the records
themselves go to Elasticsearch). Only the identity is kept: tenant, name, type, and an
address to test the connection at (``url.full``'s origin, never its path, query or
credentials; else ``server.address`` with ``server.port``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from b2c_monitoring.errors import StorageError
from b2c_monitoring.processors.services import ServiceType
from b2c_monitoring.receivers.traces import NotStored, storage_reason
from b2c_monitoring.storage.metrics import MetricsStore
from b2c_monitoring.storage.services import Discovered

_NAME_MAX = 128
_TYPES = {t.value: t for t in ServiceType}


@dataclass(frozen=True)
class LogsOutcome:
    received: int = 0
    services: int = 0  # distinct services named in the request
    not_stored: NotStored | None = None
    store_seconds: float | None = None


LogsHandler = Callable[[bytes], LogsOutcome]


def count_logs(data: bytes) -> LogsOutcome:
    """A handler that stores nothing (servers built without workers, in tests)."""
    request = ExportLogsServiceRequest.FromString(data)
    return LogsOutcome(
        received=sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    )


def _strings(attributes: Iterable[KeyValue]) -> dict[str, str]:
    found: dict[str, str] = {}
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        if kind == "string_value":
            found[kv.key] = kv.value.string_value
        elif kind == "int_value":
            found[kv.key] = str(kv.value.int_value)
    return found


def endpoint_of(attrs: dict[str, str]) -> str | None:
    """Where a connection test can reach the service, from what its report said."""
    url = attrs.get("url.full")
    if url:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is not None and parts.scheme in ("http", "https") and parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    address = attrs.get("server.address")
    if address and len(address) <= 255:
        port_text = attrs.get("server.port")
        return f"{address}:{port_text}" if port_text and port_text.isdigit() else address
    return None


def decode_services(request: ExportLogsServiceRequest, default_tenant: str) -> list[Discovered]:
    found = []
    for rl in request.resource_logs:
        resource = _strings(rl.resource.attributes)
        for sl in rl.scope_logs:
            for record in sl.log_records:
                attrs = {**resource, **_strings(record.attributes)}
                name = attrs.get("connected_service.name", "").strip()
                if not name or len(name) > _NAME_MAX:
                    continue
                found.append(
                    Discovered(
                        tenant_id=attrs.get("tenant.id") or default_tenant,
                        name=name,
                        service_type=_TYPES.get(
                            attrs.get("connected_service.type", ""), ServiceType.OTHER
                        ),
                        endpoint=endpoint_of(attrs),
                    )
                )
    return found


def handle_logs_export(store: MetricsStore, default_tenant: str, data: bytes) -> LogsOutcome:
    try:
        request = ExportLogsServiceRequest.FromString(data)
    except DecodeError as exc:
        return LogsOutcome(
            not_stored=NotStored(False, f"not an OTLP logs request: {exc}", "not_otlp")
        )
    received = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    found = decode_services(request, default_tenant)
    started = time.perf_counter()
    try:
        store.discover(found, datetime.now(UTC))
    except StorageError as exc:
        return LogsOutcome(
            received=received,
            not_stored=NotStored(exc.retryable, exc.message, storage_reason(exc)),
            store_seconds=time.perf_counter() - started,
        )
    return LogsOutcome(
        received=received,
        services=len({(d.tenant_id, d.name) for d in found}),
        store_seconds=time.perf_counter() - started,
    )
