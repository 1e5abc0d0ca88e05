"""/api/admin/me: who the caller's token is, so a client (the console) can show its
role's actions, its tenants and when it ends without guessing from refusals."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from b2c_monitoring.api.deps import Viewer
from b2c_monitoring.api.models import ApiModel
from b2c_monitoring.api.problems import responses
from b2c_monitoring.auth import Role

router = APIRouter(prefix="/api/admin/me", tags=["tokens"])


class Caller(ApiModel):
    token_id: str
    name: str
    role: Role
    tenants: list[str] | None = Field(description="the tenants the token sees; null: every tenant")
    expires_at: datetime | None = Field(default=None, description="null: never expires")


@router.get(
    "",
    response_model=Caller,
    response_model_by_alias=True,
    summary="The calling token: its name, role, tenant scope and expiry",
    responses=responses(401, 403),
)
def me(principal: Viewer) -> Caller:
    return Caller(
        token_id=principal.token_id,
        name=principal.name,
        role=principal.role,
        tenants=None if principal.tenants is None else list(principal.tenants),
        expires_at=principal.expires_at,
    )
