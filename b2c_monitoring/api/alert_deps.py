"""Dependencies of the alerting routers: their stores, and the tenant a new object goes to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from b2c_monitoring.auth import Principal
from b2c_monitoring.errors import NotFound
from b2c_monitoring.storage.alert_config import AlertConfigStore
from b2c_monitoring.storage.alerts import AlertStore
from b2c_monitoring.storage.notifications import NotificationStore


def get_alerts(request: Request) -> AlertStore:
    store: AlertStore = request.app.state.alerts
    return store


def get_alert_config(request: Request) -> AlertConfigStore:
    store: AlertConfigStore = request.app.state.alert_config
    return store


def get_notifications(request: Request) -> NotificationStore:
    store: NotificationStore = request.app.state.notifications
    return store


AlertsDep = Annotated[AlertStore, Depends(get_alerts)]
AlertConfigDep = Annotated[AlertConfigStore, Depends(get_alert_config)]
NotificationsDep = Annotated[NotificationStore, Depends(get_notifications)]


def target_tenant(principal: Principal, requested: str | None) -> str:
    """The tenant a new object belongs to: the one asked for, within the token's scope,
    or the token's only tenant."""
    if requested is not None:
        if not principal.sees(requested):
            raise NotFound(f"no tenant {requested!r} in your tenants")
        return requested
    if principal.tenants is not None and len(principal.tenants) == 1:
        return principal.tenants[0]
    raise RequestValidationError(
        [
            {
                "type": "missing",
                "loc": ("body", "tenantId"),
                "msg": "your token sees several tenants: give tenantId",
                "input": None,
            }
        ]
    )
