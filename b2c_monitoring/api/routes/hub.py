"""The hub's HTTP surface: ``POST /hubs/job-status/negotiate`` and the WebSocket
``/hubs/job-status``, as the ``@microsoft/signalr`` client expects them.

The client negotiates with ``Authorization: Bearer <token>`` and then opens the
WebSocket with the same token as the ``access_token`` query parameter (browsers
cannot set headers on a WebSocket); either is accepted on both. The token is checked
as the API checks it (a viewer at least), and its tenant scope bounds every event
the connection receives. Negotiation keeps no state, so the WebSocket may reach
another API instance than the negotiate did.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Annotated, Final

import psycopg_pool
from fastapi import APIRouter, Query, WebSocket
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from b2c_monitoring.api.deps import Viewer
from b2c_monitoring.api.problems import responses
from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.errors import B2CError, Unauthenticated
from b2c_monitoring.hub import protocol
from b2c_monitoring.hub.backplane import Backplane
from b2c_monitoring.hub.connection import HubConnection, Replay
from b2c_monitoring.hub.subscriptions import Subscriptions
from b2c_monitoring.storage.db import translate_errors
from b2c_monitoring.storage.hub_events import StoredEvent, oldest_id, read_for_tenants
from b2c_monitoring.storage.tokens import TokenStore
from b2c_monitoring.telemetry_metrics import HUB_CONNECTIONS

PATH: Final = "/hubs/job-status"
HANDSHAKE_TIMEOUT_S: Final = 15.0

router = APIRouter(tags=["hub"])


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Transport(_Model):
    transport: str = Field(examples=["WebSockets"])
    transfer_formats: list[str] = Field(examples=[["Text"]])


class Negotiation(_Model):
    """SignalR's negotiate answer: where and how to connect."""

    negotiate_version: int = Field(description="1 when asked with negotiateVersion=1, else 0")
    connection_id: str
    connection_token: str | None = Field(
        default=None, description="the ``id`` of the WebSocket URL (negotiate version 1)"
    )
    available_transports: list[Transport] = Field(
        description="WebSockets with the text format only (the JSON hub protocol)"
    )


@router.post(
    f"{PATH}/negotiate",
    response_model=Negotiation,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Negotiate a hub connection (SignalR): the WebSocket to open next",
    responses=responses(401, 403, 422),
)
def negotiate(
    principal: Viewer,
    negotiate_version: Annotated[int, Query(alias="negotiateVersion", ge=0)] = 0,
) -> Negotiation:
    connection_id = secrets.token_urlsafe(16)
    version = min(negotiate_version, 1)
    return Negotiation(
        negotiate_version=version,
        connection_id=connection_id,
        connection_token=secrets.token_urlsafe(16) if version >= 1 else None,
        available_transports=[Transport(transport="WebSockets", transfer_formats=["Text"])],
    )


def _secret(socket: WebSocket) -> str | None:
    token = socket.query_params.get("access_token")
    if token:
        return token
    scheme, _, credentials = socket.headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


async def _principal(tokens: TokenStore, secret: str | None) -> Principal | None:
    if secret is None:
        return None
    try:
        principal = await asyncio.to_thread(tokens.authenticate, secret, datetime.now(UTC))
        principal.require(Role.VIEWER)
    except B2CError:
        return None
    return principal


async def _handshake(socket: WebSocket) -> str | None:
    """Read the handshake; None if accepted, else why not. Messages after it in the
    same frame are not expected (the JS client waits for the answer)."""
    try:
        data = await asyncio.wait_for(socket.receive_text(), HANDSHAKE_TIMEOUT_S)
        messages = protocol.split(data)
    except TimeoutError:
        return "no handshake in time"
    except protocol.ProtocolError as exc:
        return str(exc)
    if len(messages) != 1:
        return "the handshake must come alone"
    return protocol.parse_handshake(messages[0])


def _replayer(pool: psycopg_pool.ConnectionPool) -> Replay:
    def read(tenants: frozenset[str] | None, after: int, upto: int) -> list[StoredEvent] | None:
        with translate_errors(), pool.connection() as conn:
            oldest = oldest_id(conn)
            if oldest is None or oldest > after + 1:
                return None
            return read_for_tenants(conn, sorted(tenants) if tenants else None, after, upto)

    async def replay(
        tenants: frozenset[str] | None, after: int, upto: int
    ) -> list[StoredEvent] | None:
        try:
            return await asyncio.to_thread(read, tenants, after, upto)
        except B2CError:
            return None

    return replay


@router.websocket(PATH)
async def hub(socket: WebSocket) -> None:
    state = socket.app.state
    secret = _secret(socket)
    principal = await _principal(state.tokens, secret)
    if principal is None:
        # before accept: the upgrade is answered 403, as the client reports it
        await socket.close(code=1008, reason="an API token of a viewer at least is needed")
        return
    await socket.accept()
    error = await _handshake(socket)
    if error is not None:
        await socket.send_text(protocol.handshake_error(error))
        await socket.close()
        return
    backplane: Backplane = state.hub
    try:
        await asyncio.wait_for(backplane.ready(), HANDSHAKE_TIMEOUT_S)
    except TimeoutError:
        await socket.send_text(protocol.handshake_error("the hub cannot reach its database yet"))
        await socket.close()
        return
    tenants = None if principal.tenants is None else frozenset(principal.tenants)
    # no await between reading the watermark and joining: no event falls in between
    connection = HubConnection(
        socket,
        Subscriptions(tenants),
        backplane.watermark or 0,
        reauthenticate_s=state.settings.hub_reauthenticate_s,
        expires_at=principal.expires_at,
    )
    backplane.add(connection)
    HUB_CONNECTIONS.inc()
    try:
        await socket.send_text(protocol.HANDSHAKE_OK)

        async def authorized() -> bool:
            # a database hiccup is not a revocation: only an unknown token ends it (the
            # connection ends itself at the token's expiry)
            try:
                await asyncio.to_thread(state.tokens.authenticate, secret, datetime.now(UTC))
            except Unauthenticated:
                return False
            except B2CError:
                return True
            return True

        await connection.run(_replayer(state.hub_pool), authorized)
    finally:
        backplane.remove(connection)
        HUB_CONNECTIONS.dec()
