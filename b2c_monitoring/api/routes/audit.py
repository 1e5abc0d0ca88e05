"""/api/admin/audit: the log of operator actions (admins only), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from b2c_monitoring.api import cursors
from b2c_monitoring.api.command_models import AuditEntry, AuditPage
from b2c_monitoring.api.deps import Admin, AuditDep
from b2c_monitoring.api.params import TenantFilter, Timestamp
from b2c_monitoring.api.problems import responses
from b2c_monitoring.storage.audit import AuditQuery

router = APIRouter(prefix="/api/admin/audit", tags=["audit"])


@router.get(
    "",
    response_model=AuditPage,
    response_model_by_alias=True,
    summary="Who did what and when, newest first, a page at a time",
    responses=responses(401, 403, 422),
)
def list_audit(
    principal: Admin,
    audit: AuditDep,
    tenant: TenantFilter = None,
    action: Annotated[
        list[str] | None, Query(description="repeatable, e.g. job.cancel", max_length=64)
    ] = None,
    since: Annotated[
        Timestamp | None, Query(description="at or after (ISO 8601 with offset)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=32, description="nextCursor of the previous page")
    ] = None,
) -> AuditPage:
    page = audit.list(
        AuditQuery(
            # entries of tenants outside the token's scope stay hidden, as its jobs do
            tenants=principal.scope(tenant),
            actions=action or (),
            since=since,
            before_seq=cursors.sequence(cursor) if cursor is not None else None,
            limit=limit,
        )
    )
    return AuditPage(
        items=[AuditEntry.of(r) for r in page.entries],
        next_cursor=str(page.next_before) if page.next_before is not None else None,
    )
