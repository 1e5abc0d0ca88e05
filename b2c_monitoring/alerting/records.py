"""The alert record as the API, the hub and the notifications show it (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from b2c_monitoring.alerting.lifecycle import AlertState, AlertStatus
from b2c_monitoring.alerting.rules import AlertKind, Severity


class AlertRecord(BaseModel):
    """One alert. ``details`` depends on ``kind``: an outage lists ``affectedJobs``, each
    with the state of every service it called when it failed (``calledServices``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    id: str
    tenant_id: str
    rule_id: str | None = Field(description="None for a missed run (a job schedule's alert)")
    kind: AlertKind
    dedup_key: str = Field(description="the condition and its subject: one open alert per key")
    state: AlertStatus
    severity: Severity
    title: str
    service_name: str | None
    service_id: str | None
    job_type: str | None
    details: dict[str, Any]
    started_at: datetime
    last_fired_at: datetime
    fire_count: int = Field(description="1, plus each reopening within the rule's cool-down")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    silenced_until: datetime | None = Field(description="notifications muted until then")

    @classmethod
    def of(cls, alert: AlertState) -> AlertRecord:
        return cls(
            id=alert.id,
            tenant_id=alert.tenant_id,
            rule_id=alert.rule_id,
            kind=alert.kind,
            dedup_key=alert.dedup_key,
            state=alert.status,
            severity=alert.severity,
            title=alert.title,
            service_name=alert.service_name,
            service_id=alert.service_id,
            job_type=alert.job_type,
            details=dict(alert.details),
            started_at=alert.started_at,
            last_fired_at=alert.last_fired_at,
            fire_count=alert.fire_count,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by,
            resolved_at=alert.resolved_at,
            silenced_until=alert.silenced_until,
        )

    def json_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.model_dump(by_alias=True, mode="json")
        return body
