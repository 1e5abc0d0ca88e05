"""Connected services: status with flap damping, latency, uptime (pure functions).

One check of a service (a ``connected_service.up`` data point, with the
``connected_service.check.duration`` of the same instant, or a central connection
test) is *observed* as:

- ``down`` when the service did not answer (``up`` = 0);
- ``degraded`` when it answered slower than the service's threshold
  (``degraded_after_s`` of its declared check, else the policy's default);
- ``up`` otherwise.

The stored status follows the observations with flap damping (``DampingPolicy``):

- the first check of a service sets its status at once (there is nothing to damp);
- ``up``/``degraded`` -> ``down`` after ``down_after`` consecutive failed checks;
- ``down`` -> answering after ``up_after`` consecutive answering checks (up or
  degraded); the new status is what the last of them observed;
- ``up`` <-> ``degraded`` after ``latency_after`` consecutive checks observing the
  other one, so one slow answer does not flip a service.

Checks are applied in time order; a check not newer than the last one applied
(a duplicate, or a late arrival) changes nothing: the history of a service is not
rewritten after the fact. Each status change is a ``StatusChange`` row.

Uptime (``uptime_percent``) is exact and time-weighted over those rows: the share
of the window in which the service was ``up`` or ``degraded`` (answering), out of
the time its status was known (before its first check, or while ``unknown``, does
not count either way).

No clock, database or network here: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class ServiceStatus(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"  # declared, never checked yet

    @property
    def answering(self) -> bool:
        return self in _ANSWERING


# a set, not a tuple: uptime asks this for every change of every listed service
_ANSWERING: Final = frozenset({ServiceStatus.UP, ServiceStatus.DEGRADED})


class ServiceType(StrEnum):
    """``connected_service.type``, spelled as in the contract."""

    ERP = "ERP"
    PIM = "PIM"
    CRM = "CRM"
    DATABASE = "Database"
    OTHER = "Other"


class CheckSource(StrEnum):
    PROBE = "probe"  # reported through OTLP
    TEST = "test"  # a central connection test (POST /services/{id}/test)


@dataclass(frozen=True)
class DampingPolicy:
    down_after: int = 3
    up_after: int = 2
    latency_after: int = 2
    degraded_after_s: float = 2.0  # default threshold for services without their own
    latency_window: int = 20  # checks behind averageLatencyMs

    def __post_init__(self) -> None:
        if min(self.down_after, self.up_after, self.latency_after, self.latency_window) < 1:
            raise ValueError("damping counts and the latency window must be at least 1")


@dataclass(frozen=True)
class CheckReport:
    """One check of a connected service, decoded and validated (``receivers/metrics.py``).

    ``up`` is None for a latency reported without an up/down data point of the same
    instant: it feeds the latency figures, not the status.
    """

    tenant_id: str
    service_name: str
    at: datetime
    up: bool | None
    latency_s: float | None = None
    service_type: ServiceType | None = None
    address: str | None = None
    error: str | None = None
    source: CheckSource = CheckSource.PROBE


@dataclass(frozen=True)
class DeclaredCheck:
    """A service's declared central check; mirrors ``checks.CheckSpec`` without importing I/O."""

    kind: str
    target: str
    timeout_s: float = 5.0
    expect_status: int | None = None
    degraded_after_s: float | None = None


@dataclass(frozen=True)
class Service:
    """The stored service: the ADR's ``ConnectedService`` without its read-time figures."""

    tenant_id: str
    name: str
    service_type: ServiceType
    endpoint: str | None
    status: ServiceStatus
    first_seen: datetime
    last_checked: datetime | None
    last_successful: datetime | None
    last_latency_s: float | None
    last_error: str | None
    # damping: what the latest check observed, and how many checks in a row did;
    # and how many checks in a row answered (up or degraded)
    last_observed: ServiceStatus | None
    streak: int
    answering_streak: int
    recent_latencies: tuple[float, ...]
    declared: bool = False
    check: DeclaredCheck | None = None
    id: str | None = None  # assigned by the store
    updated_at: datetime | None = field(default=None, compare=False)

    @property
    def average_latency_s(self) -> float | None:
        if not self.recent_latencies:
            return None
        return sum(self.recent_latencies) / len(self.recent_latencies)

    def threshold(self, policy: DampingPolicy) -> float:
        own = self.check.degraded_after_s if self.check is not None else None
        return own if own is not None else policy.degraded_after_s


@dataclass(frozen=True)
class StatusChange:
    """A change of a service's status: one row of its history, and an outbox entry."""

    tenant_id: str
    service_name: str
    previous: ServiceStatus
    status: ServiceStatus
    at: datetime
    reason: str | None = None


def observe(report: CheckReport, threshold_s: float) -> ServiceStatus | None:
    """What one check says about the service, before damping (None: no up/down)."""
    if report.up is None:
        return None
    if not report.up:
        return ServiceStatus.DOWN
    if report.latency_s is not None and report.latency_s > threshold_s:
        return ServiceStatus.DEGRADED
    return ServiceStatus.UP


def new_service(
    tenant_id: str,
    name: str,
    at: datetime,
    *,
    service_type: ServiceType | None = None,
    endpoint: str | None = None,
    declared: bool = False,
    check: DeclaredCheck | None = None,
) -> Service:
    """A service not checked yet (declared, or about to take its first report)."""
    return Service(
        tenant_id=tenant_id,
        name=name,
        service_type=service_type or ServiceType.OTHER,
        endpoint=endpoint,
        status=ServiceStatus.UNKNOWN,
        first_seen=at,
        last_checked=None,
        last_successful=None,
        last_latency_s=None,
        last_error=None,
        last_observed=None,
        streak=0,
        answering_streak=0,
        recent_latencies=(),
        declared=declared,
        check=check,
    )


def _reason(observed: ServiceStatus, report: CheckReport, threshold: float) -> str:
    if observed is ServiceStatus.DOWN:
        return report.error or "the check failed"
    if observed is ServiceStatus.DEGRADED and report.latency_s is not None:
        return f"answered in {report.latency_s * 1000:.0f} ms, over {threshold * 1000:.0f} ms"
    return "answering"


def _damped(service: Service, observed: ServiceStatus, policy: DampingPolicy) -> ServiceStatus:
    """The status after a check that observed ``observed`` (counters already advanced)."""
    current = service.status
    if current is ServiceStatus.UNKNOWN:
        return observed
    if observed is ServiceStatus.DOWN:
        return ServiceStatus.DOWN if service.streak >= policy.down_after else current
    if current is ServiceStatus.DOWN:
        return observed if service.answering_streak >= policy.up_after else current
    if observed is not current and service.streak >= policy.latency_after:
        return observed
    return current


def derive(
    service: Service | None, report: CheckReport, policy: DampingPolicy, now: datetime
) -> tuple[Service, list[StatusChange]]:
    """Apply one check to the stored service (``None``: known from this report on)."""
    if service is None:
        service = new_service(report.tenant_id, report.service_name, report.at)
    # what a report says about the service itself, whatever its time
    service = replace(
        service,
        service_type=report.service_type or service.service_type,
        endpoint=service.endpoint or report.address,
        first_seen=min(service.first_seen, report.at),
    )
    if service.last_checked is not None and report.at <= service.last_checked:
        return replace(service, updated_at=now), []

    latencies = service.recent_latencies
    if report.latency_s is not None and report.up is not False:
        latencies = (*latencies, report.latency_s)[-policy.latency_window :]
    threshold = service.threshold(policy)
    observed = observe(report, threshold)
    if observed is None:
        return replace(
            service,
            recent_latencies=latencies,
            last_latency_s=report.latency_s,
            updated_at=now,
        ), []

    streak = service.streak + 1 if observed is service.last_observed else 1
    answering = service.answering_streak + 1 if observed.answering else 0
    counted = replace(
        service,
        last_observed=observed,
        streak=streak,
        answering_streak=answering,
        last_checked=report.at,
        last_successful=report.at if observed.answering else service.last_successful,
        last_latency_s=report.latency_s,
        last_error=None if observed.answering else report.error or "the check failed",
        recent_latencies=latencies,
        updated_at=now,
    )
    status = _damped(counted, observed, policy)
    new = replace(counted, status=status)
    if status is service.status:
        return new, []
    change = StatusChange(
        tenant_id=new.tenant_id,
        service_name=new.name,
        previous=service.status,
        status=status,
        at=report.at,
        reason=_reason(observed, report, threshold),
    )
    return new, [change]


def derive_all(
    service: Service | None, reports: Sequence[CheckReport], policy: DampingPolicy, now: datetime
) -> tuple[Service | None, list[StatusChange]]:
    """Fold the reports of one service in time order."""
    changes: list[StatusChange] = []
    for report in sorted(reports, key=lambda r: r.at):
        service, more = derive(service, report, policy, now)
        changes.extend(more)
    return service, changes


# Uptime

UPTIME_WINDOWS: Final = {
    "last24h": timedelta(hours=24),
    "last7d": timedelta(days=7),
    "last30d": timedelta(days=30),
}


def status_at(
    changes: Sequence[StatusChange], current: ServiceStatus, at: datetime
) -> ServiceStatus:
    """The status at ``at``: before the first later change, what that change left."""
    for change in changes:
        if change.at > at:
            return change.previous
    return current


def uptime_percent(
    changes: Sequence[StatusChange], current: ServiceStatus, since: datetime, now: datetime
) -> float | None:
    """Share of ``[since, now]`` the service answered, in percent of the time its status
    was known; None when it was never known in the window.

    ``changes`` are the service's changes in time order, at least all those after
    ``since`` (older ones are skipped); ``current`` is its status now.
    """
    if now <= since:
        return None
    status = status_at(changes, current, since)
    cursor = since
    answering = known = timedelta(0)

    def add(until: datetime) -> None:
        nonlocal answering, known
        span = until - cursor
        if status is not ServiceStatus.UNKNOWN:
            known += span
            if status.answering:
                answering += span

    for change in changes:
        if change.at <= since:
            continue
        if change.at >= now:
            break
        add(change.at)
        cursor, status = change.at, change.status
    add(now)
    if known <= timedelta(0):
        return None
    return 100.0 * (answering / known)


def uptimes(
    changes: Sequence[StatusChange], current: ServiceStatus, now: datetime
) -> dict[str, float | None]:
    """Uptime over each of ``UPTIME_WINDOWS`` (changes: at least the last 30 days')."""
    return {
        name: uptime_percent(changes, current, now - span, now)
        for name, span in UPTIME_WINDOWS.items()
    }
