"""Component health: reported status, staleness, and the overall status (pure functions).

A component reports ``component.health.status`` (2 healthy, 1 degraded, 0 unhealthy),
in the style of ASP.NET Core health checks. Its status is the latest report's,
unless it has not reported within its staleness window: then it is ``unknown``.

The overall status is the worst component's, in the order
healthy < degraded < unhealthy. An ``unknown`` component counts as ``degraded``:
a part of the system has gone out of sight, which is not healthy, but it is not
known to be failing either, so it must not page like ``unhealthy`` does. With no
component, or every component unknown, the overall status is ``unknown``.

Each change of a component's status, staleness included, is a ``HealthChange``
row: ``derive`` applies a report, ``expire`` (run periodically by the processor's
maintenance) records the turn to ``unknown`` of a component that went silent.
Readers also apply the staleness rule with their own ``now`` (``effective_status``),
so a reader between two maintenance runs sees the same status.

No clock, database or network here: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


# component.health.status values (contract)
REPORTED_VALUES: Final = {
    2: HealthStatus.HEALTHY,
    1: HealthStatus.DEGRADED,
    0: HealthStatus.UNHEALTHY,
}

_SEVERITY: Final = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.UNKNOWN: 1,  # counts as degraded, see module doc
    HealthStatus.DEGRADED: 1,
    HealthStatus.UNHEALTHY: 2,
}


@dataclass(frozen=True)
class HealthReport:
    """One ``component.health.status`` data point, decoded and validated."""

    tenant_id: str
    component: str
    status: HealthStatus  # never UNKNOWN: that is derived, not reported
    at: datetime
    description: str | None = None
    service_name: str | None = None


@dataclass(frozen=True)
class Component:
    """The stored component. ``status`` is the last status recorded as a change
    (staleness included); ``reported_status`` the latest report's."""

    tenant_id: str
    name: str
    status: HealthStatus
    reported_status: HealthStatus
    description: str | None
    last_report_at: datetime
    first_seen: datetime
    service_name: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class HealthChange:
    tenant_id: str
    component: str
    previous: HealthStatus
    status: HealthStatus
    at: datetime
    description: str | None = None


def effective_status(component: Component, stale_after: timedelta, now: datetime) -> HealthStatus:
    """The component's status at ``now``: unknown once silent for longer than ``stale_after``."""
    if now - component.last_report_at > stale_after:
        return HealthStatus.UNKNOWN
    return component.reported_status


def derive(
    component: Component | None, report: HealthReport, stale_after: timedelta, now: datetime
) -> tuple[Component, list[HealthChange]]:
    """Apply one report; a report not newer than the latest applied changes nothing."""
    if component is not None and report.at <= component.last_report_at:
        return component, []
    previous = component.status if component is not None else HealthStatus.UNKNOWN
    new = Component(
        tenant_id=report.tenant_id,
        name=report.component,
        status=report.status,
        reported_status=report.status,
        description=report.description,
        last_report_at=report.at,
        first_seen=component.first_seen if component is not None else report.at,
        service_name=report.service_name
        or (component.service_name if component is not None else None),
        updated_at=now,
    )
    changes = []
    if report.status is not previous:
        changes.append(
            HealthChange(
                new.tenant_id, new.name, previous, report.status, report.at, report.description
            )
        )
    # a report that arrives already older than the window: reported, then silent
    new, gone = expire(new, stale_after, now)
    return new, changes + gone


def derive_all(
    component: Component | None,
    reports: Sequence[HealthReport],
    stale_after: timedelta,
    now: datetime,
) -> tuple[Component | None, list[HealthChange]]:
    """Fold the reports of one component in time order.

    A gap longer than the window between two reports of the same batch is a silence
    too: it is recorded as a turn to unknown and back.
    """
    changes: list[HealthChange] = []
    for report in sorted(reports, key=lambda r: r.at):
        if component is not None and report.at > component.last_report_at:
            component, gone = expire(component, stale_after, report.at)
            changes.extend(gone)
        component, more = derive(component, report, stale_after, now)
        changes.extend(more)
    return component, changes


def expire(
    component: Component, stale_after: timedelta, now: datetime
) -> tuple[Component, list[HealthChange]]:
    """Record the turn to unknown of a component silent for longer than its window."""
    if (
        component.status is HealthStatus.UNKNOWN
        or effective_status(component, stale_after, now) is not HealthStatus.UNKNOWN
    ):
        return component, []
    change = HealthChange(
        component.tenant_id,
        component.name,
        component.status,
        HealthStatus.UNKNOWN,
        component.last_report_at + stale_after,
        f"no report for more than {stale_after.total_seconds():.0f}s",
    )
    return replace(component, status=HealthStatus.UNKNOWN, updated_at=now), [change]


def overall(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The worst of the components' statuses (see module doc for ``unknown``)."""
    seen = list(statuses)
    known = [s for s in seen if s is not HealthStatus.UNKNOWN]
    if not known:
        return HealthStatus.UNKNOWN
    worst = max(seen, key=lambda s: _SEVERITY[s])
    return HealthStatus.DEGRADED if worst is HealthStatus.UNKNOWN else worst
