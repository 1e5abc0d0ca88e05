"""One client's hub connection after its handshake: what it receives, and its methods.

Events reach the client through a bounded queue that one sender task drains, so
the backplane's offer never waits. A client too slow to keep up fills its queue and
is closed with ``reload: ...`` and ``allowReconnect``: it reconnects and catches up
with ``Resume`` (or reloads), instead of holding back everyone else.

Hub methods (client to server; with ``invoke`` the client awaits a completion):

- ``SubscribeJob(jobId)``, ``SubscribeService(serviceId)``, ``SubscribeJobType(jobType)``
  and their ``Unsubscribe*``: narrow what the connection receives (``subscriptions``);
- ``Resume(lastEventId)``: replay the events after that id which the connection
  would have received; answers ``{"replayed": n}``, or ``{"reload": true}`` when they
  are no longer all kept (the client should reload its state instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from pydantic import JsonValue
from starlette.websockets import WebSocket, WebSocketDisconnect

from b2c_monitoring.auth import TokenState, token_state
from b2c_monitoring.errors import MethodRefused
from b2c_monitoring.hub import protocol
from b2c_monitoring.hub.backplane import frame
from b2c_monitoring.hub.subscriptions import METHODS, Subscriptions
from b2c_monitoring.storage.hub_events import StoredEvent

_log = logging.getLogger(__name__)

QUEUE_FRAMES: Final = 1000
PING_INTERVAL_S: Final = 15.0  # the JS client's default keep-alive interval
CLIENT_TIMEOUT_S: Final = 30.0  # the JS client's default serverTimeout, both ways
MAX_REPLAY: Final = 10_000
REAUTHENTICATE_S: Final = 60.0  # default of B2C_HUB_REAUTHENTICATE_S
_CLOSE_S: Final = 2.0

# (tenants, after id, up to id) -> the events, or None when some are no longer kept
Replay = Callable[[frozenset[str] | None, int, int], Awaitable[list[StoredEvent] | None]]


def next_check_in(now: datetime, expires_at: datetime | None, reauthenticate_s: float) -> float:
    """Seconds until the token must be looked at again: the re-check interval, or
    sooner when the token expires before it, so that an expired token's connection
    ends at its expiry and not up to an interval later (pure)."""
    if expires_at is None:
        return reauthenticate_s
    return max(0.0, min(reauthenticate_s, (expires_at - now).total_seconds()))


class HubConnection:
    def __init__(
        self,
        socket: WebSocket,
        subscriptions: Subscriptions,
        live_from: int,
        reauthenticate_s: float = REAUTHENTICATE_S,
        expires_at: datetime | None = None,
    ) -> None:
        self._socket = socket
        self._reauthenticate_s = reauthenticate_s  # a revoked token's connection ends within this
        self._expires_at = expires_at  # the token's: the connection ends then
        self._subscriptions = subscriptions
        self._live_from = live_from  # events after this id are offered live
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_FRAMES)
        self._ended = asyncio.Event()
        self._close_frame: str | None = None

    @property
    def tenants(self) -> frozenset[str] | None:
        return self._subscriptions.tenants

    def offer(self, event: StoredEvent, encoded: str) -> None:
        if event.id > self._live_from and self._subscriptions.wants(event.event):
            self._send(encoded)

    def _send(self, encoded: str) -> None:
        if self._ended.is_set():
            return
        try:
            self._queue.put_nowait(encoded)
        except asyncio.QueueFull:
            self.end(
                "reload: the connection fell too far behind; reconnect and Resume",
                allow_reconnect=True,
            )

    def end(self, error: str | None, *, allow_reconnect: bool = False) -> None:
        """Close the connection (idempotent), telling the client why."""
        if not self._ended.is_set():
            self._close_frame = protocol.close(error, allow_reconnect=allow_reconnect)
            self._ended.set()

    async def run(self, replay: Replay, authorized: Callable[[], Awaitable[bool]]) -> None:
        """Serve the connection until either side ends it, or its token is revoked or
        expires."""
        tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._receive_loop(replay)),
            asyncio.create_task(self._ping_loop()),
            asyncio.create_task(self._authorization_loop(authorized)),
        ]
        try:
            await self._ended.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # a dead or stalled peer must not hold the closing task for long
        if self._close_frame is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._socket.send_text(self._close_frame), _CLOSE_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._socket.close(), _CLOSE_S)

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._socket.send_text(await self._queue.get())
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.end(None)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            self._send(protocol.PING_FRAME)

    async def _authorization_loop(self, authorized: Callable[[], Awaitable[bool]]) -> None:
        while True:
            await asyncio.sleep(
                next_check_in(datetime.now(UTC), self._expires_at, self._reauthenticate_s)
            )
            # woken a hair before the expiry (asyncio's clock is not the wall clock), the
            # token is still good and the next round comes at once
            if not self._expired() and await authorized():
                continue
            # the store's check may run just after the expiry: it then refuses a token
            # that expired, which was not revoked
            self.end("the token expired" if self._expired() else "the token was revoked")
            return

    def _expired(self) -> bool:
        return token_state(None, self._expires_at, datetime.now(UTC)) is TokenState.EXPIRED

    async def _receive_loop(self, replay: Replay) -> None:
        try:
            while True:
                data = await asyncio.wait_for(self._socket.receive_text(), CLIENT_TIMEOUT_S)
                for message in protocol.split(data):
                    if not await self._handle(protocol.parse(message), replay):
                        return
        except TimeoutError:
            self.end("the client sent nothing (not even a ping) for too long")
        except protocol.ProtocolError as exc:
            self.end(f"protocol error: {exc}")
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.end(None)

    async def _handle(self, message: protocol.Message, replay: Replay) -> bool:
        """Act on one message; False when the client closed."""
        match message:
            case protocol.Ping():
                pass
            case protocol.Close():
                self.end(None)
                return False
            case protocol.Unsupported(kind=kind, invocation_id=invocation_id):
                if invocation_id is not None:
                    self._send(
                        protocol.completion(
                            invocation_id, error=f"message type {kind} is not served"
                        )
                    )
            case protocol.Invocation(target=target, arguments=arguments, invocation_id=iid):
                try:
                    result = await self._invoke(target, arguments, replay)
                except MethodRefused as exc:
                    # the client's completion carries the text
                    if iid is not None:
                        self._send(protocol.completion(iid, error=exc.message))
                else:
                    if iid is not None:
                        self._send(protocol.completion(iid, result))
        return True

    async def _invoke(
        self, target: str, arguments: tuple[JsonValue, ...], replay: Replay
    ) -> JsonValue:
        if target in METHODS:
            key, subscribe = METHODS[target]
            if len(arguments) != 1 or not isinstance(arguments[0], str) or not arguments[0]:
                raise MethodRefused(f"{target} takes one non-empty string")
            self._subscriptions.change(key, arguments[0], subscribe)
            return None
        if target == "Resume":
            if len(arguments) != 1 or not isinstance(arguments[0], int) or arguments[0] < 0:
                raise MethodRefused("Resume takes the id of the last event received (an integer)")
            return await self._resume(arguments[0], replay)
        raise MethodRefused(f"Unknown hub method '{target}'")

    async def _resume(self, after: int, replay: Replay) -> JsonValue:
        if after >= self._live_from:
            return {"replayed": 0}
        events = await replay(self.tenants, after, self._live_from)
        if events is None or len(events) > MAX_REPLAY:
            return {"reload": True}
        wanted = [e for e in events if self._subscriptions.wants(e.event)]
        for event in wanted:
            self._send(frame(event))
        return {"replayed": len(wanted)}
