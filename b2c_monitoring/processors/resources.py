"""Resource metrics of a connected service: current, average and peak (pure functions).

A ``ResourceSample`` is what one owner (the connected service named by
``connected_service.name``, else the emitting ``service.name``) reported at one
instant: any of CPU ratio, memory used and limit, threads, connection pool and
queue depth.

The state of an owner (``ResourceWindow``) keeps the latest value of each field
(``current``) and 5-minute aggregates of CPU and memory over the last
``HORIZON``, so that the average and the peak over any window up to it (the
ADR's ``CpuAverage``, ``CpuPeak``, ``MemoryPeakBytes``) are read without scanning
samples. Each sample must be applied once: the store feeds only samples it
stored for the first time.

No clock, database or network here: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

# averages and peaks are exact to this granularity: 12 buckets an hour keep the state small
BUCKET: Final = timedelta(minutes=5)
HORIZON: Final = timedelta(hours=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ResourceSample:
    tenant_id: str
    owner: str
    at: datetime
    cpu_ratio: float | None = None  # 0..1 of the owner's CPU capacity
    memory_used: float | None = None  # bytes
    memory_limit: float | None = None  # bytes
    threads: float | None = None
    pool_used: float | None = None
    pool_idle: float | None = None
    pool_max: float | None = None
    queue_depth: float | None = None

    def merged(self, other: ResourceSample) -> ResourceSample:
        """Fields of both samples of one instant (``other`` wins where both have one)."""
        values = {
            f.name: getattr(other, f.name)
            for f in fields(self)
            if f.name in VALUE_FIELDS and getattr(other, f.name) is not None
        }
        return replace(self, **values)

    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in VALUE_FIELDS)


VALUE_FIELDS: Final = (
    "cpu_ratio",
    "memory_used",
    "memory_limit",
    "threads",
    "pool_used",
    "pool_idle",
    "pool_max",
    "queue_depth",
)


class Bucket(NamedTuple):
    """CPU and memory of the samples in one ``BUCKET`` (a tuple: thousands are read per
    list of services, and a tuple is the cheapest to build)."""

    minute: int  # the bucket's start, in minutes since the epoch
    cpu_count: int = 0
    cpu_sum: float = 0.0
    cpu_max: float = 0.0
    memory_count: int = 0
    memory_sum: float = 0.0
    memory_max: float = 0.0

    def add(self, sample: ResourceSample) -> Bucket:
        b = self
        if sample.cpu_ratio is not None:
            b = b._replace(
                cpu_count=b.cpu_count + 1,
                cpu_sum=b.cpu_sum + sample.cpu_ratio,
                cpu_max=max(b.cpu_max, sample.cpu_ratio) if b.cpu_count else sample.cpu_ratio,
            )
        if sample.memory_used is not None:
            b = b._replace(
                memory_count=b.memory_count + 1,
                memory_sum=b.memory_sum + sample.memory_used,
                memory_max=max(b.memory_max, sample.memory_used)
                if b.memory_count
                else sample.memory_used,
            )
        return b


@dataclass(frozen=True)
class ResourceWindow:
    """The stored resource state of one owner."""

    tenant_id: str
    owner: str
    current: dict[str, float] = field(default_factory=dict)  # field -> latest value
    current_at: dict[str, datetime] = field(default_factory=dict)  # field -> its time
    buckets: tuple[Bucket, ...] = ()  # ascending, within HORIZON
    last_sample_at: datetime | None = None


@dataclass(frozen=True)
class ResourceMetrics:
    """The ADR's ``ResourceMetrics``; None where the owner never reported the figure."""

    cpu_percent: float | None
    cpu_average: float | None
    cpu_peak: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    memory_percent: float | None
    memory_peak_bytes: int | None
    connection_pool_active: int | None
    connection_pool_total: int | None
    thread_count: int | None
    queue_depth: int | None
    timestamp: datetime | None
    window: timedelta


_STEP: Final = BUCKET // timedelta(minutes=1)


def _minute(at: datetime) -> int:
    """The start of ``at``'s bucket, in minutes since the epoch."""
    return ((at - _EPOCH) // BUCKET) * _STEP


def derive(window: ResourceWindow | None, sample: ResourceSample, now: datetime) -> ResourceWindow:
    """Apply one sample (applied once; see module doc)."""
    if window is None:
        window = ResourceWindow(sample.tenant_id, sample.owner)
    current, current_at = dict(window.current), dict(window.current_at)
    for name in VALUE_FIELDS:
        value = getattr(sample, name)
        if value is not None and (name not in current_at or sample.at >= current_at[name]):
            current[name], current_at[name] = float(value), sample.at
    oldest = _minute(now - HORIZON)
    buckets = {b.minute: b for b in window.buckets if b.minute >= oldest}
    minute = _minute(sample.at)
    if minute >= oldest and (sample.cpu_ratio is not None or sample.memory_used is not None):
        buckets[minute] = buckets.get(minute, Bucket(minute)).add(sample)
    last = window.last_sample_at
    return ResourceWindow(
        tenant_id=window.tenant_id,
        owner=window.owner,
        current=current,
        current_at=current_at,
        buckets=tuple(buckets[m] for m in sorted(buckets)),
        last_sample_at=sample.at if last is None else max(last, sample.at),
    )


def derive_all(
    window: ResourceWindow | None, samples: Iterable[ResourceSample], now: datetime
) -> ResourceWindow | None:
    for sample in samples:
        window = derive(window, sample, now)
    return window


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def summarize(state: ResourceWindow, now: datetime, span: timedelta = HORIZON) -> ResourceMetrics:
    """Current figures, and average and peak of CPU and memory over ``[now - span, now]``."""
    span = min(span, HORIZON)
    oldest = _minute(now - span)
    inside = [b for b in state.buckets if oldest <= b.minute <= _minute(now)]
    cpu_n = sum(b.cpu_count for b in inside)
    mem_n = sum(b.memory_count for b in inside)
    c = state.current
    used, limit = c.get("memory_used"), c.get("memory_limit")
    pool_total = c.get("pool_max")
    if pool_total is None and ("pool_used" in c or "pool_idle" in c):
        pool_total = c.get("pool_used", 0.0) + c.get("pool_idle", 0.0)
    cpu = c.get("cpu_ratio")
    return ResourceMetrics(
        cpu_percent=None if cpu is None else 100.0 * cpu,
        cpu_average=100.0 * sum(b.cpu_sum for b in inside) / cpu_n if cpu_n else None,
        cpu_peak=100.0 * max(b.cpu_max for b in inside if b.cpu_count) if cpu_n else None,
        memory_used_bytes=_int(used),
        memory_total_bytes=_int(limit),
        memory_percent=100.0 * used / limit if used is not None and limit else None,
        memory_peak_bytes=_int(max(b.memory_max for b in inside if b.memory_count))
        if mem_n
        else None,
        connection_pool_active=_int(c.get("pool_used")),
        connection_pool_total=_int(pool_total),
        thread_count=_int(c.get("threads")),
        queue_depth=_int(c.get("queue_depth")),
        timestamp=state.last_sample_at,
        window=span,
    )
