"""The lifecycle of one alert: firing -> acknowledged -> resolved (pure).

``derive(current, desired, ctx)`` reconciles the stored alert of one dedup key with
whether its condition holds now (``desired``), and answers the new state and the
changes, each a row of the alert's history; a change with ``notify`` goes to the
tenant's notification channels.

- A condition that holds and has no open alert fires one; in a maintenance window of
  its service or job type it does not fire at all (it may once the window ends).
- One that held within its rule's cool-down after the alert resolved *reopens* that
  alert (``refired``), which pages only if the alert never paged.
- While the alert is open, the condition holding again is deduplicated: new details
  are kept, and an ``updated`` change is recorded only when the title changes (an
  outage gathering one more failed job).
- An alert whose condition no longer holds resolves; receivers told of the firing are
  told of the resolution.
- A silenced condition (``ctx.silenced``) fires and resolves without paging.
- Acknowledging is an operator's act (``acknowledge``); it stops nothing but the
  paging of nobody, and the alert still resolves by itself.

No clock, database or network here: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from b2c_monitoring.alerting.rules import AlertKind, DesiredAlert, Severity
from b2c_monitoring.errors import Conflict


class AlertStatus(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"

    @property
    def open(self) -> bool:
        return self is not AlertStatus.RESOLVED


class ChangeKind(StrEnum):
    FIRED = "fired"
    REFIRED = "refired"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    SILENCED = "silenced"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertState:
    id: str
    tenant_id: str
    rule_id: str | None
    kind: AlertKind
    dedup_key: str
    status: AlertStatus
    severity: Severity
    title: str
    started_at: datetime
    last_fired_at: datetime
    service_name: str | None = None
    service_id: str | None = None
    job_type: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    fire_count: int = 1
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    notified: bool = False  # some receiver was told it fired
    silenced_until: datetime | None = None  # read from the silences, not stored here


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    notify: bool = False
    actor: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    now: datetime
    tenant_id: str
    new_id: str  # the id of an alert fired now
    silenced: bool = False
    in_maintenance: bool = False


def _fire(desired: DesiredAlert, ctx: Context) -> AlertState:
    return AlertState(
        id=ctx.new_id,
        tenant_id=ctx.tenant_id,
        rule_id=desired.rule_id,
        kind=desired.kind,
        dedup_key=desired.dedup_key,
        status=AlertStatus.FIRING,
        severity=desired.severity,
        title=desired.title,
        started_at=ctx.now,
        last_fired_at=ctx.now,
        service_name=desired.service_name,
        service_id=desired.service_id,
        job_type=desired.job_type,
        details=dict(desired.details),
        notified=not ctx.silenced,
    )


def derive(
    current: AlertState | None, desired: DesiredAlert | None, ctx: Context
) -> tuple[AlertState | None, list[Change]]:
    """``current`` is the open alert of the key, else its latest resolved one, else None."""
    is_open = current is not None and current.status.open
    if desired is None:
        if current is None or not is_open:
            return current, []
        resolved = replace(current, status=AlertStatus.RESOLVED, resolved_at=ctx.now)
        return resolved, [Change(ChangeKind.RESOLVED, notify=current.notified and not ctx.silenced)]
    if current is not None and is_open:
        updated = replace(current, details=dict(desired.details), severity=desired.severity)
        if desired.title != current.title:
            return replace(updated, title=desired.title), [
                Change(ChangeKind.UPDATED, details={"previousTitle": current.title})
            ]
        return updated, []
    if ctx.in_maintenance:
        return current, []
    if (
        current is not None
        and current.resolved_at is not None
        and ctx.now - current.resolved_at < desired.cooldown
    ):
        notify = not current.notified and not ctx.silenced
        reopened = replace(
            current,
            status=AlertStatus.FIRING,
            resolved_at=None,
            acknowledged_at=None,
            acknowledged_by=None,
            last_fired_at=ctx.now,
            fire_count=current.fire_count + 1,
            title=desired.title,
            details=dict(desired.details),
            notified=current.notified or notify,
        )
        return reopened, [Change(ChangeKind.REFIRED, notify=notify)]
    fired = _fire(desired, ctx)
    return fired, [Change(ChangeKind.FIRED, notify=fired.notified)]


def acknowledge(current: AlertState, actor: str, now: datetime) -> tuple[AlertState, list[Change]]:
    """An operator takes the alert on; acknowledging twice is the first acknowledgement."""
    if current.status is AlertStatus.RESOLVED:
        raise Conflict(f"alert {current.id} is resolved; nothing to acknowledge")
    if current.status is AlertStatus.ACKNOWLEDGED:
        return current, []
    acked = replace(
        current, status=AlertStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor
    )
    return acked, [Change(ChangeKind.ACKNOWLEDGED, actor=actor)]


@dataclass(frozen=True)
class Window:
    """A maintenance window: while it lasts no alert fires for its service or job type."""

    id: str
    service_name: str | None
    job_type: str | None
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, alert: DesiredAlert) -> bool:
        if self.service_name is not None:
            return self.service_name == alert.service_name or (
                self.service_name in alert.related_services
            )
        return self.job_type is not None and self.job_type == alert.job_type


def in_maintenance(alert: DesiredAlert, windows: list[Window], now: datetime) -> bool:
    return any(w.active(now) and w.covers(alert) for w in windows)
