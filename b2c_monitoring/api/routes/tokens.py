"""/api/admin/tokens: admin API tokens, managed by admins within their own tenants.

An admin scoped to some tenants creates, sees and revokes only tokens scoped within
those tenants; a token of every tenant is outside any such scope. So no token can
hand out more than it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.exceptions import RequestValidationError

from b2c_monitoring.api.deps import Admin, Now, TokensDep
from b2c_monitoring.api.models import TokenCreate, TokenCreated, TokenInfo, TokenList
from b2c_monitoring.api.problems import responses
from b2c_monitoring.auth import Principal
from b2c_monitoring.errors import Forbidden

router = APIRouter(prefix="/api/admin/tokens", tags=["tokens"])


def check_within_scope(principal: Principal, tenants: Sequence[str] | None) -> None:
    """A new token's tenants must lie within the creator's (pure)."""
    if principal.tenants is None:
        return
    own = ", ".join(principal.tenants)
    if tenants is None:
        raise Forbidden(
            f"the token {principal.name!r} sees only tenants {own}; "
            "it cannot create a token for every tenant"
        )
    outside = sorted(set(tenants) - set(principal.tenants))
    if outside:
        raise Forbidden(
            f"the token {principal.name!r} sees only tenants {own}; "
            f"it cannot create a token for {', '.join(outside)}"
        )


@router.post(
    "",
    status_code=201,
    response_model=TokenCreated,
    response_model_by_alias=True,
    summary="Create a token; its secret is in this answer only",
    responses=responses(401, 403, 422),
)
def create_token(body: TokenCreate, principal: Admin, tokens: TokensDep, now: Now) -> TokenCreated:
    tenants = sorted(set(body.tenants)) if body.tenants is not None else None
    services = sorted(set(body.services)) if body.services is not None else None
    check_within_scope(principal, tenants)
    if body.expires_at is not None and body.expires_at <= now:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "expiresAt"),
                    "msg": f"expiresAt {body.expires_at.isoformat()} is not in the future",
                    "input": body.expires_at.isoformat(),
                }
            ]
        )
    record, secret = tokens.create(
        body.name,
        body.role,
        tenants,
        now,
        actor=principal,
        expires_at=body.expires_at,
        services=services,
    )
    return TokenCreated(**TokenInfo.of(record, now).model_dump(), secret=secret)


@router.get(
    "",
    response_model=TokenList,
    response_model_by_alias=True,
    summary="List the tokens within your tenants (never their secrets)",
    description="Expired tokens are listed (state `expired`) until revoked; revoked ones "
    "only with `includeRevoked`.",
    responses=responses(401, 403, 422),
)
def list_tokens(
    principal: Admin,
    tokens: TokensDep,
    now: Now,
    include_revoked: Annotated[
        bool, Query(alias="includeRevoked", description="also list revoked tokens")
    ] = False,
) -> TokenList:
    records = tokens.list(principal.tenants, include_revoked=include_revoked)
    return TokenList(items=[TokenInfo.of(r, now) for r in records])


@router.delete(
    "/{token_id}",
    response_model=TokenInfo,
    response_model_by_alias=True,
    summary="Revoke a token; it answers 401 from now on",
    description="Revoking a revoked token changes nothing. A token outside your tenants "
    "answers 404, as if absent.",
    responses=responses(401, 403, 404, 422),
)
def revoke_token(
    token_id: Annotated[str, Path(max_length=64, description="the token's id")],
    principal: Admin,
    tokens: TokensDep,
    now: Now,
) -> TokenInfo:
    return TokenInfo.of(tokens.revoke(token_id, now, principal.tenants, actor=principal), now)
