"""/api/admin/maintenance-windows: while one lasts, no alert fires for its service or
job type. Operators plan and end them; their start and end are pushed on the hub."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.exceptions import RequestValidationError

from b2c_monitoring.api.alert_models import WindowIn, WindowList, WindowOut
from b2c_monitoring.api.deps import AlertConfigDep, Now, Operator, Viewer, target_tenant
from b2c_monitoring.api.problems import responses
from b2c_monitoring.storage.alert_config import WindowRecord

router = APIRouter(prefix="/api/admin/maintenance-windows", tags=["alerts"])


@router.get(
    "",
    response_model=WindowList,
    response_model_by_alias=True,
    summary="Maintenance windows of your tenants, latest start first",
    responses=responses(401, 403, 422),
)
def list_windows(
    principal: Viewer,
    config: AlertConfigDep,
    now: Now,
    current: Annotated[bool, Query(description="only windows not yet over")] = False,
    tenant: Annotated[list[str] | None, Query(description="repeatable, within your scope")] = None,
) -> WindowList:
    windows = config.windows(principal.scope(tenant), ending_after=now if current else None)
    return WindowList(items=[WindowOut.of(w, now) for w in windows])


@router.post(
    "",
    status_code=201,
    response_model=WindowOut,
    response_model_by_alias=True,
    summary="Plan a maintenance window for a service or a job type",
    responses=responses(401, 403, 404, 422),
)
def create_window(
    body: WindowIn, principal: Operator, config: AlertConfigDep, now: Now
) -> WindowOut:
    starts_at = body.starts_at or now
    if body.ends_at <= max(starts_at, now):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "endsAt"),
                    "msg": "endsAt must be after startsAt and in the future",
                    "input": str(body.ends_at),
                }
            ]
        )
    window = WindowRecord(
        id=str(uuid.uuid4()),
        tenant_id=target_tenant(principal, body.tenant_id),
        service_name=body.service_name,
        job_type=body.job_type,
        starts_at=starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        created_by=principal.name,
        created_at=now,
    )
    return WindowOut.of(config.create_window(window, principal, now), now)


@router.post(
    "/{window_id}/end",
    response_model=WindowOut,
    response_model_by_alias=True,
    summary="End a window now (one not begun yet is cancelled)",
    responses=responses(401, 403, 404, 422),
)
def end_window(
    window_id: Annotated[str, Path(max_length=64)],
    principal: Operator,
    config: AlertConfigDep,
    now: Now,
) -> WindowOut:
    return WindowOut.of(config.end_window(window_id, principal, now), now)
