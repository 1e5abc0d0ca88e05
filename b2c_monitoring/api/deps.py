"""FastAPI dependencies as ``Annotated`` aliases: settings, stores, the caller."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.errors import Unauthenticated
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.tokens import TokenStore

_bearer = HTTPBearer(auto_error=False, description="An admin API token (`b2c admin tokens create`)")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_jobs(request: Request) -> JobStore:
    store: JobStore = request.app.state.jobs
    return store


def get_tokens(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.tokens
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
TokensDep = Annotated[TokenStore, Depends(get_tokens)]


def get_principal(
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("send an admin API token as 'Authorization: Bearer <token>'")
    return tokens.authenticate(credentials.credentials, datetime.now(UTC))


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def _role(role: Role) -> object:
    def check(principal: CurrentPrincipal) -> Principal:
        principal.require(role)
        return principal

    return Depends(check)


Viewer = Annotated[Principal, _role(Role.VIEWER)]
Operator = Annotated[Principal, _role(Role.OPERATOR)]
Admin = Annotated[Principal, _role(Role.ADMIN)]
