"""What the hub pushes: one event for one tenant, with the keys a client can narrow by.

The five targets are the ADR's client methods:

- ``JobStatusChanged(jobId, status, progress)``
- ``HealthStatusChanged(component, status)``
- ``AlertTriggered(alert)``
- ``ResourceMetricsUpdated(serviceId, metrics)``
- ``ResourceAlertTriggered(serviceId, alert)``

and two of this product's own: ``ServiceStatusChanged(serviceId, name, status)`` and
``JobCommandExpired(jobId, commandId, kind, reason)`` (a retry or cancel that no job
runner took within the expiry).

``arguments`` are those parameters in order, already JSON (camelCase records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Final, Literal

from pydantic import JsonValue
from pydantic.alias_generators import to_camel

from b2c_monitoring.processors.health import HealthChange, HealthStatus, overall
from b2c_monitoring.processors.jobs import JobChange
from b2c_monitoring.processors.resources import ResourceMetrics
from b2c_monitoring.processors.services import StatusChange as ServiceStatusChange

HubTarget = Literal[
    "JobStatusChanged",
    "HealthStatusChanged",
    "AlertTriggered",
    "ResourceMetricsUpdated",
    "ResourceAlertTriggered",
    "ServiceStatusChanged",
    "JobCommandExpired",
]


@dataclass(frozen=True, slots=True)
class HubEvent:
    tenant_id: str
    target: HubTarget
    arguments: tuple[JsonValue, ...]
    job_id: str | None = None
    job_type: str | None = None
    service_id: str | None = None


def job_status_changed(
    changes: Sequence[JobChange], job_types: Mapping[tuple[str, str], str | None]
) -> list[HubEvent]:
    """``JobStatusChanged`` for each job that changed: its last change of the batch only,
    since the earlier ones were already stale when stored (the timeline keeps them)."""
    last: dict[tuple[str, str], JobChange] = {}
    for change in changes:
        last[(change.tenant_id, change.job_id)] = change
    return [
        HubEvent(
            tenant_id=c.tenant_id,
            target="JobStatusChanged",
            arguments=(c.job_id, c.status.value, c.progress_percent),
            job_id=c.job_id,
            job_type=job_types.get(key),
        )
        for key, c in last.items()
    ]


@dataclass(frozen=True, slots=True)
class ExpiredCommand:
    tenant_id: str
    job_id: str
    command_id: str
    kind: str
    reason: str | None


def job_command_expired(expired: Sequence[ExpiredCommand]) -> list[HubEvent]:
    """``JobCommandExpired(jobId, commandId, kind, reason)`` for each command that just
    expired: a page about the job (subscribed to it) stops waiting for its runner."""
    return [
        HubEvent(
            tenant_id=c.tenant_id,
            target="JobCommandExpired",
            arguments=(c.job_id, c.command_id, c.kind, c.reason),
            job_id=c.job_id,
        )
        for c in expired
    ]


OVERALL: Final = "overall"


def health_status_changed(
    changes: Sequence[HealthChange],
    statuses: Mapping[str, Mapping[str, HealthStatus]] | None = None,
) -> list[HubEvent]:
    """``HealthStatusChanged`` for each component that changed (its last change only),
    and ``HealthStatusChanged("overall", status)`` for each tenant whose overall status
    (``processors.health.overall``) changed with them; ``statuses`` are every
    component's status per tenant after the changes."""
    last: dict[tuple[str, str], HealthChange] = {}
    before: dict[str, dict[str, HealthStatus]] = {}
    for change in changes:
        last[(change.tenant_id, change.component)] = change
        before.setdefault(change.tenant_id, {}).setdefault(change.component, change.previous)
    events = [
        HubEvent(
            tenant_id=c.tenant_id,
            target="HealthStatusChanged",
            arguments=(c.component, c.status.value),
        )
        for c in last.values()
    ]
    for tenant, after in (statuses or {}).items():
        now = overall(after.values())
        if now is not overall({**after, **before.get(tenant, {})}.values()):
            events.append(HubEvent(tenant, "HealthStatusChanged", (OVERALL, now.value)))
    return events


def service_status_changed(
    changes: Sequence[ServiceStatusChange], ids: Mapping[tuple[str, str], str]
) -> list[HubEvent]:
    """``ServiceStatusChanged(serviceId, name, status)`` for each service whose damped status
    changed: its last change of the batch (the status history keeps every one)."""
    last: dict[tuple[str, str], ServiceStatusChange] = {}
    for change in changes:
        last[(change.tenant_id, change.service_name)] = change
    return [
        HubEvent(
            tenant_id=c.tenant_id,
            target="ServiceStatusChanged",
            arguments=(ids[key], c.service_name, c.status.value),
            service_id=ids[key],
        )
        for key, c in last.items()
    ]


def resource_metrics_updated(
    updated: Sequence[tuple[str, str, ResourceMetrics]],
) -> list[HubEvent]:
    """``ResourceMetricsUpdated(serviceId, metrics)`` per (tenant, service id, metrics):
    the ADR's ``ResourceMetrics`` in camelCase, as ``GET .../resources`` answers it."""
    return [
        HubEvent(
            tenant_id=tenant_id,
            target="ResourceMetricsUpdated",
            arguments=(service_id, _metrics_json(metrics)),
            service_id=service_id,
        )
        for tenant_id, service_id, metrics in updated
    ]


def _metrics_json(m: ResourceMetrics) -> dict[str, JsonValue]:
    body: dict[str, JsonValue] = {}
    for name in (f.name for f in fields(m)):
        value = getattr(m, name)
        if name == "window":
            body["windowSeconds"] = int(value.total_seconds())
        elif isinstance(value, datetime):
            body[to_camel(name)] = value.isoformat().replace("+00:00", "Z")
        else:
            body[to_camel(name)] = value
    return body
