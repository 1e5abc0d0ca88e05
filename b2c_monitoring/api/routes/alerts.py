"""/api/admin/alerts: the alerts of the caller's tenants; acknowledge and silence them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from b2c_monitoring.alerting.lifecycle import AlertStatus
from b2c_monitoring.alerting.records import AlertRecord
from b2c_monitoring.alerting.rules import AlertKind, Severity
from b2c_monitoring.api import cursors
from b2c_monitoring.api.alert_models import (
    AlertDetail,
    AlertHistoryEntry,
    AlertList,
    NotificationStatus,
    SilenceRequest,
)
from b2c_monitoring.api.deps import AlertsDep, NotificationsDep, Now, Operator, Viewer
from b2c_monitoring.api.problems import responses
from b2c_monitoring.storage.alerts import AlertFilter

router = APIRouter(prefix="/api/admin/alerts", tags=["alerts"])

AlertIdPath = Annotated[str, Path(max_length=64, description="the alert's id")]


@router.get(
    "",
    response_model=AlertList,
    response_model_by_alias=True,
    summary="Alerts of your tenants, newest first, a page at a time",
    responses=responses(401, 403, 422),
)
def list_alerts(
    principal: Viewer,
    alerts: AlertsDep,
    now: Now,
    state: Annotated[list[AlertStatus] | None, Query(description="repeatable")] = None,
    severity: Annotated[list[Severity] | None, Query(description="repeatable")] = None,
    kind: Annotated[list[AlertKind] | None, Query(description="repeatable: the rule kind")] = None,
    service: Annotated[str | None, Query(max_length=128, description="serviceName")] = None,
    tenant: Annotated[list[str] | None, Query(description="repeatable, within your scope")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertList:
    before = cursors.alert_key(cursor) if cursor is not None else None
    items, last = alerts.page(
        AlertFilter(
            tenants=principal.scope(tenant),
            states=[s.value for s in state or []],
            severities=[s.value for s in severity or []],
            kinds=[k.value for k in kind or []],
            service=service,
            before=before,
            limit=limit,
        ),
        now,
    )
    return AlertList(items=items, next_cursor=cursors.alert_cursor(last) if last else None)


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    response_model_by_alias=True,
    summary="One alert with its history and the delivery of its notifications",
    responses=responses(401, 403, 404, 422),
)
def get_alert(
    alert_id: AlertIdPath,
    principal: Viewer,
    alerts: AlertsDep,
    notifications: NotificationsDep,
    now: Now,
) -> AlertDetail:
    alert, events = alerts.get(alert_id, principal.scope(), now)
    return AlertDetail(
        alert=alert,
        history=[AlertHistoryEntry.of(e) for e in events],
        notifications=[NotificationStatus.of(n) for n in notifications.for_alert(alert.id)],
    )


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertRecord,
    response_model_by_alias=True,
    summary="Take a firing alert on (again: no change); it still resolves by itself",
    responses=responses(401, 403, 404, 409, 422),
)
def acknowledge_alert(
    alert_id: AlertIdPath, principal: Operator, alerts: AlertsDep, now: Now
) -> AlertRecord:
    return alerts.acknowledge(alert_id, principal, now)


@router.post(
    "/{alert_id}/silence",
    response_model=AlertRecord,
    response_model_by_alias=True,
    summary="Mute the notifications of this alert's condition for a time",
    description="The alert still fires, updates and resolves; nobody is paged until "
    "silencedUntil, also if the same condition fires again meanwhile.",
    responses=responses(401, 403, 404, 422),
)
def silence_alert(
    alert_id: AlertIdPath, body: SilenceRequest, principal: Operator, alerts: AlertsDep, now: Now
) -> AlertRecord:
    return alerts.silence(alert_id, principal, timedelta(seconds=body.duration_s), body.reason, now)
