"""/api/admin/notification-channels: where a tenant's alerts are sent (admin only: a
channel carries secrets and sends data out). Secrets are never returned."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from b2c_monitoring.api.alert_models import ChannelIn, ChannelList, ChannelOut
from b2c_monitoring.api.deps import Admin, AlertConfigDep, Now, target_tenant
from b2c_monitoring.api.problems import responses

router = APIRouter(prefix="/api/admin/notification-channels", tags=["alerts"])


@router.get(
    "",
    response_model=ChannelList,
    response_model_by_alias=True,
    summary="Notification channels of your tenants (without secrets)",
    responses=responses(401, 403, 422),
)
def list_channels(
    principal: Admin,
    config: AlertConfigDep,
    tenant: Annotated[list[str] | None, Query(description="repeatable, within your scope")] = None,
) -> ChannelList:
    return ChannelList(items=[ChannelOut.of(c) for c in config.channels(principal.scope(tenant))])


@router.post(
    "",
    status_code=201,
    response_model=ChannelOut,
    response_model_by_alias=True,
    summary="Add a webhook (JSON, HMAC-signed), slack (compatible webhook) or email channel",
    description="webhook: url and secret (the HMAC-SHA256 key; X-B2C-Signature: "
    "sha256=hex(hmac(secret, X-B2C-Timestamp + '.' + body))). slack: url. email: smtpHost, "
    "smtpPort, mailFrom, mailTo, optionally smtpUsername + secret (the password), smtpStarttls.",
    responses=responses(401, 403, 404, 409, 422),
)
def create_channel(
    body: ChannelIn, principal: Admin, config: AlertConfigDep, now: Now
) -> ChannelOut:
    record = config.create_channel(
        target_tenant(principal, body.tenant_id),
        body.name,
        body.kind,
        body.config(),
        body.secret,
        body.min_severity,
        principal,
        now,
    )
    return ChannelOut.of(record)


@router.delete(
    "/{channel_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a channel (its undelivered notifications with it)",
    responses=responses(401, 403, 404, 422),
)
def delete_channel(
    channel_id: Annotated[str, Path(max_length=64)],
    principal: Admin,
    config: AlertConfigDep,
    now: Now,
) -> Response:
    config.delete_channel(channel_id, principal, now)
    return Response(status_code=204)
