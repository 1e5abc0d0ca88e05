"""Connected-service checks, component health and resource samples from OTLP metrics.

Per the telemetry contract:

- ``connected_service.up`` (gauge 1/0) and ``connected_service.check.duration``
  (gauge or histogram, seconds) of one service at one instant make one
  ``CheckReport`` (a duration alone is a latency without up/down);
- ``component.health.status`` (gauge 2/1/0) is a ``HealthReport``;
- the resource metrics of one owner at one instant make one ``ResourceSample``.

``tenant.id`` on the data point wins over the resource's; the configured default
tenant otherwise. A data point that breaks the contract (an unknown service type, a
status outside 0..2, a negative latency, a CPU ratio above 1, ...) is rejected on its
own with a reason; the rest of the request goes on. Other metrics are ignored here
(they still reach Prometheus through the collector).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from b2c_monitoring import contract as c
from b2c_monitoring.errors import InvalidReport
from b2c_monitoring.processors.health import REPORTED_VALUES, HealthReport
from b2c_monitoring.processors.resources import ResourceSample
from b2c_monitoring.processors.services import CheckReport, ServiceType
from b2c_monitoring.receivers.spans import attributes
from b2c_monitoring.redaction import Patterns, redact
from b2c_monitoring.unix_time import from_unix_nanos

MAX_NAME_CHARS: Final = 128
MAX_DESCRIPTION_CHARS: Final = 1024
# a data point dated further ahead than this is a broken clock, not a report
MAX_CLOCK_SKEW: Final = timedelta(hours=1)
_TYPES: Final = {t.value: t for t in ServiceType}
ERROR_TYPE: Final = "error.type"

# Resource metrics: metric -> field of ResourceSample, and a rank where two metrics feed
# one field (the owner's own process figure beats the host's).
_RESOURCE_FIELDS: Final = {
    c.PROCESS_CPU_UTILIZATION: ("cpu_ratio", 0),
    c.SYSTEM_CPU_UTILIZATION: ("cpu_ratio", 1),
    c.PROCESS_MEMORY_USAGE: ("memory_used", 0),
    c.SYSTEM_MEMORY_USAGE: ("memory_used", 1),
    c.SYSTEM_MEMORY_LIMIT: ("memory_limit", 0),
    c.PROCESS_THREAD_COUNT: ("threads", 0),
    c.DB_CLIENT_CONNECTION_MAX: ("pool_max", 0),
    c.SCHEDULER_QUEUE_DEPTH: ("queue_depth", 0),
}
_POOL_STATES: Final = {"used": "pool_used", "idle": "pool_idle"}
# CPU utilization split by mode (and logical CPU), as the system-metrics instrumentation
# reports it: the busy modes are summed and averaged over the CPUs
_CPU_MODE_KEYS: Final = ("cpu.mode", "system.cpu.state", "state")
_CPU_NUMBER_KEYS: Final = ("cpu.logical_number", "cpu")
_MEMORY_STATE_KEYS: Final = ("system.memory.state", "state")
_HANDLED: Final = frozenset(
    {
        c.SERVICE_UP,
        c.SERVICE_CHECK_DURATION,
        c.COMPONENT_HEALTH_STATUS,
        c.DB_CLIENT_CONNECTION_COUNT,
        *_RESOURCE_FIELDS,
    }
)


@dataclass
class DecodedMetrics:
    checks: list[CheckReport] = field(default_factory=list)
    health: list[HealthReport] = field(default_factory=list)
    resources: list[ResourceSample] = field(default_factory=list)
    rejected: list[InvalidReport] = field(default_factory=list)
    received: int = 0  # data points
    ignored: int = 0  # data points of other metrics, or parts of no figure (idle CPU)

    @property
    def accepted(self) -> int:
        return self.received - self.ignored - len(self.rejected)


# Values


def _number(point: Any) -> float:
    kind = point.WhichOneof("value")
    if kind is None:
        raise InvalidReport("data point has no value", reason="missing_value")
    value = float(getattr(point, kind))
    if not math.isfinite(value):
        raise InvalidReport(f"value {value} is not a finite number", reason="out_of_range")
    return value


def _in_range(value: float, name: str, low: float, high: float = math.inf) -> float:
    if not low <= value <= high:
        bound = f"{low:g}..{high:g}" if math.isfinite(high) else f">= {low:g}"
        raise InvalidReport(f"{name} is {value:g}, must be {bound}", reason="out_of_range")
    return value


def _mean_of_histogram(point: Any) -> float:
    if not point.count:
        raise InvalidReport("histogram data point has no measurement", reason="missing_value")
    if not point.HasField("sum"):
        raise InvalidReport("histogram data point has no sum", reason="missing_value")
    # delta temporality: the mean of this interval; cumulative: the mean since start
    return float(point.sum) / int(point.count)


def _string(attrs: Mapping[str, AnyValue], key: str, limit: int) -> str | None:
    value = attrs.get(key)
    if value is None or value.WhichOneof("value") is None:
        return None
    if value.WhichOneof("value") != "string_value":
        raise InvalidReport(f"{key} must be a string", reason="wrong_type")
    text = value.string_value.replace("\x00", "").strip()
    if not text:
        return None
    if len(text) > limit:
        raise InvalidReport(
            f"{key} has {len(text)} characters, at most {limit} allowed",
            reason="oversized_attribute",
        )
    return text


def _required(attrs: Mapping[str, AnyValue], key: str, limit: int) -> str:
    text = _string(attrs, key, limit)
    if text is None:
        raise InvalidReport(f"{key} is missing", reason="missing_attribute")
    return text


def _scalar_text(attrs: Mapping[str, AnyValue], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        kind = None if value is None else value.WhichOneof("value")
        if value is not None and kind in ("string_value", "int_value"):
            return str(getattr(value, kind))
    return None


def _time(point: Any, now: datetime) -> tuple[int, datetime]:
    if not point.time_unix_nano:
        raise InvalidReport("data point has no time", reason="missing_time")
    at = from_unix_nanos(point.time_unix_nano)
    if at > now + MAX_CLOCK_SKEW:
        raise InvalidReport(
            f"data point is dated in the future ({at.isoformat()})", reason="future_time"
        )
    return point.time_unix_nano, at


# Decoding


@dataclass(frozen=True)
class _Point:
    metric: str
    kind: str  # gauge, sum, histogram, exponential_histogram, summary
    point: Any
    attrs: dict[str, AnyValue]
    resource: dict[str, AnyValue]


def _points(request: ExportMetricsServiceRequest, batch: DecodedMetrics) -> Iterator[_Point]:
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                points = getattr(metric, kind).data_points
                batch.received += len(points)
                if metric.name not in _HANDLED:
                    batch.ignored += len(points)
                    continue
                for point in points:
                    yield _Point(metric.name, kind, point, attributes(point.attributes), resource)


def _tenant(p: _Point, default_tenant: str) -> str:
    return (
        _string(p.attrs, c.TENANT_ID, c.MAX_TENANT_CHARS)
        or _string(p.resource, c.TENANT_ID, c.MAX_TENANT_CHARS)
        or default_tenant
    )


def _require_kind(p: _Point, *kinds: str) -> None:
    if p.kind not in kinds:
        raise InvalidReport(
            f"{p.metric} must be a {' or '.join(kinds)}, got a {p.kind}", reason="wrong_type"
        )


@dataclass
class _Check:
    at: datetime
    up: bool | None = None
    latency_s: float | None = None
    service_type: ServiceType | None = None
    address: str | None = None
    error: str | None = None


CheckKey = tuple[str, str, int]  # tenant, service, time (ns)


def _check_point(
    p: _Point,
    default_tenant: str,
    now: datetime,
    checks: dict[CheckKey, _Check],
    custom: Patterns,
) -> None:
    name = _required(p.attrs, c.CONNECTED_SERVICE_NAME, MAX_NAME_CHARS)
    raw_type = _string(p.attrs, c.CONNECTED_SERVICE_TYPE, 32)
    service_type = None
    if raw_type is not None:
        service_type = _TYPES.get(raw_type)
        if service_type is None:
            raise InvalidReport(
                f"unknown {c.CONNECTED_SERVICE_TYPE} {raw_type!r}; expected one of "
                f"{', '.join(_TYPES)}",
                reason="unknown_type",
            )
    address = _string(p.attrs, c.SERVER_ADDRESS, 255)
    stamp, at = _time(p.point, now)
    up: bool | None = None
    latency: float | None = None
    if p.metric == c.SERVICE_UP:
        _require_kind(p, "gauge", "sum")
        value = _number(p.point)
        if value not in (0.0, 1.0):
            raise InvalidReport(f"{p.metric} is {value:g}, must be 0 or 1", reason="out_of_range")
        up = value == 1.0
    else:
        _require_kind(p, "gauge", "histogram", "exponential_histogram")
        raw = _number(p.point) if p.kind == "gauge" else _mean_of_histogram(p.point)
        latency = _in_range(raw, p.metric, 0.0)
    error = _string(p.attrs, ERROR_TYPE, MAX_DESCRIPTION_CHARS)
    key = (_tenant(p, default_tenant), name, stamp)
    check = checks.setdefault(key, _Check(at))
    if up is not None:
        check.up = up
    if latency is not None:
        check.latency_s = latency
    check.service_type = service_type or check.service_type
    check.address = address or check.address
    check.error = redact(error, custom) if error else check.error


def _health_point(p: _Point, default_tenant: str, now: datetime, custom: Patterns) -> HealthReport:
    _require_kind(p, "gauge", "sum")
    component = _required(p.attrs, c.COMPONENT_NAME, MAX_NAME_CHARS)
    value = _number(p.point)
    status = REPORTED_VALUES.get(int(value)) if value.is_integer() else None
    if status is None:
        raise InvalidReport(
            f"{p.metric} is {value:g}, must be 2 (healthy), 1 (degraded) or 0 (unhealthy)",
            reason="out_of_range",
        )
    _, at = _time(p.point, now)
    description = _string(p.attrs, c.COMPONENT_HEALTH_DESCRIPTION, MAX_DESCRIPTION_CHARS)
    return HealthReport(
        tenant_id=_tenant(p, default_tenant),
        component=component,
        status=status,
        at=at,
        description=redact(description, custom) if description else None,
        service_name=_string(p.resource, c.SERVICE_NAME, MAX_NAME_CHARS),
    )


@dataclass
class _Resource:
    at: datetime
    values: dict[str, tuple[int, float]] = field(default_factory=dict)  # field -> (rank, value)
    summed: dict[tuple[str, int], float] = field(default_factory=dict)  # (field, rank) -> sum
    cpu_busy: dict[int, float] = field(default_factory=dict)  # rank -> busy ratio summed
    cpu_count: dict[int, set[str]] = field(default_factory=dict)  # rank -> logical CPUs seen

    def set(self, name: str, rank: int, value: float) -> None:
        if name not in self.values or rank < self.values[name][0]:
            self.values[name] = (rank, value)

    def sample(self, tenant: str, owner: str) -> ResourceSample:
        for (name, rank), total in self.summed.items():
            self.set(name, rank, total)
        for rank, busy in self.cpu_busy.items():
            cpus = max(1, len(self.cpu_count.get(rank, ())))
            self.set("cpu_ratio", rank, min(1.0, busy / cpus))
        return ResourceSample(
            tenant_id=tenant,
            owner=owner,
            at=self.at,
            **{name: value for name, (_, value) in self.values.items()},
        )


ResourceKey = tuple[str, str, int]  # tenant, owner, time (ns)


def _resource_point(
    p: _Point, default_tenant: str, now: datetime, resources: dict[ResourceKey, _Resource]
) -> bool:
    """Add one point to its sample; False when the point feeds no figure (idle CPU)."""
    _require_kind(p, "gauge", "sum")
    owner = (
        _string(p.attrs, c.CONNECTED_SERVICE_NAME, MAX_NAME_CHARS)
        or _string(p.resource, c.CONNECTED_SERVICE_NAME, MAX_NAME_CHARS)
        or _string(p.resource, c.SERVICE_NAME, MAX_NAME_CHARS)
    )
    if owner is None:
        raise InvalidReport(
            f"{p.metric} names no owner ({c.CONNECTED_SERVICE_NAME} or {c.SERVICE_NAME})",
            reason="missing_attribute",
        )
    value = _number(p.point)
    stamp, at = _time(p.point, now)

    def sample() -> _Resource:
        key = (_tenant(p, default_tenant), owner, stamp)
        return resources.setdefault(key, _Resource(at))

    if p.metric == c.DB_CLIENT_CONNECTION_COUNT:
        state = _scalar_text(p.attrs, (c.DB_CLIENT_CONNECTION_STATE, "state"))
        target = _POOL_STATES.get(state or "")
        if target is None:
            raise InvalidReport(
                f"{p.metric} needs {c.DB_CLIENT_CONNECTION_STATE} used or idle, got {state!r}",
                reason="missing_attribute",
            )
        _in_range(value, p.metric, 0.0)
        s = sample()
        # several pools of one owner: their connections add up
        s.summed[(target, 0)] = s.summed.get((target, 0), 0.0) + value
        return True
    name, rank = _RESOURCE_FIELDS[p.metric]
    if name == "cpu_ratio":
        _in_range(value, p.metric, 0.0, 1.0)
        mode = _scalar_text(p.attrs, _CPU_MODE_KEYS)
        if mode is not None:
            s = sample()
            s.cpu_count.setdefault(rank, set()).add(_scalar_text(p.attrs, _CPU_NUMBER_KEYS) or "")
            if mode == "idle":
                s.cpu_busy.setdefault(rank, 0.0)
                return False
            s.cpu_busy[rank] = s.cpu_busy.get(rank, 0.0) + value
            return True
    elif p.metric == c.SYSTEM_MEMORY_USAGE:
        state = _scalar_text(p.attrs, _MEMORY_STATE_KEYS)
        if state not in (None, "used"):
            return False  # free, cached, buffers: not what the owner uses
        _in_range(value, p.metric, 0.0)
    elif p.metric == c.DB_CLIENT_CONNECTION_MAX:
        _in_range(value, p.metric, 0.0)
        s = sample()
        s.summed[(name, rank)] = s.summed.get((name, rank), 0.0) + value
        return True
    else:
        _in_range(value, p.metric, 0.0)
    sample().set(name, rank, value)
    return True


def decode_request(
    request: ExportMetricsServiceRequest,
    default_tenant: str,
    now: datetime,
    custom: Patterns = (),
) -> DecodedMetrics:
    """``custom``: the deployment's own redaction patterns (``B2C_LOG_REDACT_PATTERNS``)."""
    batch = DecodedMetrics()
    checks: dict[CheckKey, _Check] = {}
    resources: dict[ResourceKey, _Resource] = {}
    for p in _points(request, batch):
        try:
            if p.metric in (c.SERVICE_UP, c.SERVICE_CHECK_DURATION):
                _check_point(p, default_tenant, now, checks, custom)
            elif p.metric == c.COMPONENT_HEALTH_STATUS:
                batch.health.append(_health_point(p, default_tenant, now, custom))
            elif not _resource_point(p, default_tenant, now, resources):
                batch.ignored += 1
        except InvalidReport as exc:
            batch.rejected.append(exc)
    for (tenant, name, _), check in checks.items():
        batch.checks.append(
            CheckReport(
                tenant_id=tenant,
                service_name=name,
                at=check.at,
                up=check.up,
                latency_s=check.latency_s,
                service_type=check.service_type,
                address=check.address,
                # an error message only explains a failed check
                error=check.error if check.up is False else None,
            )
        )
    for (tenant, owner, _), acc in resources.items():
        resource = acc.sample(tenant, owner)
        if not resource.empty():
            batch.resources.append(resource)
    return batch
