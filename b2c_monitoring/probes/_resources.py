"""Resource metrics of the host process (``Probes.watch_resources``), read with psutil.

Each round samples CPU, memory and threads of this process, and the host's optional
callbacks for a connection pool and a queue depth, and reports them under the
contract's names. ``owner`` puts ``connected_service.name`` on every point: the
resources then belong to that connected service (the contract's rule), else to the
emitting ``service.name``.

CPU is ``process.cpu.utilization`` as the semantic conventions define it: CPU time
since the previous sample over wall time and the CPUs the process may use, so 0..1
whatever the number of cores (psutil's percent is per core and exceeds 100).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import psutil

from b2c_monitoring import contract as c
from b2c_monitoring.probes._metrics import Point
from b2c_monitoring.probes._watch import QuietLog

DEFAULT_RESOURCES_EVERY_S: Final = 15.0

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PoolUsage:
    """A connection pool's state: connections in use, idle, and the most it opens."""

    used: int
    idle: int
    max: int | None = None


@dataclass(frozen=True)
class ResourceSample:
    cpu_utilization: float | None = None  # ratio 0..1
    memory_usage: int | None = None  # bytes, resident
    memory_limit: int | None = None  # bytes
    thread_count: int | None = None
    pool: PoolUsage | None = None
    queue_depth: int | None = None


def _count(value: object) -> int | None:
    """A non-negative whole number, or None: a callback's bad value is left out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def resource_points(sample: ResourceSample, owner: str | None) -> list[Point]:
    base = {c.CONNECTED_SERVICE_NAME: owner} if owner else {}
    points: list[Point] = []
    if sample.cpu_utilization is not None and math.isfinite(sample.cpu_utilization):
        # rounding and scheduling can put a sample a hair outside 0..1
        cpu = min(1.0, max(0.0, sample.cpu_utilization))
        points.append(Point(c.PROCESS_CPU_UTILIZATION, cpu, base))
    for metric, value in (
        (c.PROCESS_MEMORY_USAGE, sample.memory_usage),
        (c.SYSTEM_MEMORY_LIMIT, sample.memory_limit),
        (c.PROCESS_THREAD_COUNT, sample.thread_count),
        (c.SCHEDULER_QUEUE_DEPTH, sample.queue_depth),
    ):
        count = _count(value)
        if count is not None:
            points.append(Point(metric, count, base))
    if sample.pool is not None:
        used, idle = _count(sample.pool.used), _count(sample.pool.idle)
        if used is not None and idle is not None:
            points.append(
                Point(
                    c.DB_CLIENT_CONNECTION_COUNT,
                    used,
                    {**base, c.DB_CLIENT_CONNECTION_STATE: "used"},
                )
            )
            points.append(
                Point(
                    c.DB_CLIENT_CONNECTION_COUNT,
                    idle,
                    {**base, c.DB_CLIENT_CONNECTION_STATE: "idle"},
                )
            )
        most = _count(sample.pool.max)
        if most is not None:
            points.append(Point(c.DB_CLIENT_CONNECTION_MAX, most, base))
    return points


def _usable_cpus(process: psutil.Process) -> int:
    try:
        return max(1, len(process.cpu_affinity() or []))
    except (AttributeError, psutil.Error, OSError):
        # no affinity on this platform (macOS)
        return psutil.cpu_count() or 1


class ResourceProbe:
    """One round of ``watch_resources``: sample, report."""

    def __init__(
        self,
        owner: str | None,
        *,
        process: bool,
        pool: Callable[[], PoolUsage] | None,
        queue_depth: Callable[[], int] | None,
        emit: Callable[[list[Point]], None],
    ) -> None:
        self.owner = owner
        self._process = psutil.Process() if process else None
        self._cpus = _usable_cpus(self._process) if self._process is not None else 1
        if self._process is not None:
            self._process.cpu_percent(None)  # the first reading only sets the baseline
        self._pool = pool
        self._queue_depth = queue_depth
        self._emit = emit
        self._quiet = QuietLog(_log)

    def sample(self) -> ResourceSample:
        cpu = memory = limit = threads = None
        if self._process is not None:
            try:
                with self._process.oneshot():
                    cpu = self._process.cpu_percent(None) / 100.0 / self._cpus
                    memory = self._process.memory_info().rss
                    threads = self._process.num_threads()
                limit = psutil.virtual_memory().total
            except (psutil.Error, OSError) as exc:
                self._quiet.failure(f"resource probe: psutil failed: {exc}")
        return ResourceSample(
            cpu_utilization=cpu,
            memory_usage=memory,
            memory_limit=limit,
            thread_count=threads,
            pool=self._call("pool", self._pool),
            queue_depth=self._call("queue_depth", self._queue_depth),
        )

    def _call(self, what: str, callback: Callable[[], T] | None) -> T | None:
        if callback is None:
            return None
        try:
            return callback()
        except Exception:
            # the host's callback failed: leave its metric out this round
            self._quiet.failure(f"resource probe: the {what} callback raised", exc_info=True)
            return None

    def __call__(self) -> ResourceSample:
        sample = self.sample()
        self._emit(resource_points(sample, self.owner))
        return sample
