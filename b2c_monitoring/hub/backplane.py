"""New hub events from Postgres to every connection of this API process.

Every API instance runs one ``Backplane``: a task with a connection of its own that
LISTENs on the outbox's channel and, when woken (or every few seconds, in case a
notification was lost), reads the rows after the last one it delivered, in id order
(``ordering.Sequencer``). So each instance sees every committed event, whichever
process wrote it, without a server beyond Postgres. Each event is encoded once and
offered to the connections of its tenant; an offer never waits (``HubConnection``'s
queue is bounded), so a slow or dead client cannot delay the others.

While Postgres is unreachable the task reconnects with backoff and then reads on
from its watermark, so nothing committed meanwhile is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from b2c_monitoring.hub import protocol
from b2c_monitoring.hub.ordering import Sequencer
from b2c_monitoring.storage.hub_events import (
    CHANNEL,
    StoredEvent,
    latest_id,
    read_after,
    read_ids_after,
)
from b2c_monitoring.storage.listening import keep_following, listening

_log = logging.getLogger(__name__)

_BATCH: Final = 1000
_IDLE_CHECK_S: Final = 5.0  # a read now and then even without a notification
_GAP_POLL_S: Final = 0.02  # while a gap may still fill (its writer has not ended)


class Subscriber(Protocol):
    @property
    def tenants(self) -> frozenset[str] | None: ...

    def offer(self, event: StoredEvent, frame: str) -> None: ...


def frame(event: StoredEvent) -> str:
    """The invocation a client receives: the ADR's arguments, then the event's id."""
    return protocol.invocation(event.event.target, [*event.event.arguments, event.id])


class Backplane:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._by_tenant: dict[str, set[Subscriber]] = {}
        self._every_tenant: set[Subscriber] = set()
        self._sequencer: Sequencer | None = None
        self._started = asyncio.Event()
        self._following = False
        self._task: asyncio.Task[None] | None = None

    @property
    def watermark(self) -> int | None:
        """Every event up to this id has been offered (None until the first read)."""
        return None if self._sequencer is None else self._sequencer.watermark

    async def ready(self) -> int:
        await self._started.wait()
        assert self._sequencer is not None
        return self._sequencer.watermark

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="b2c-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def add(self, subscriber: Subscriber) -> None:
        if subscriber.tenants is None:
            self._every_tenant.add(subscriber)
        else:
            for tenant in subscriber.tenants:
                self._by_tenant.setdefault(tenant, set()).add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        self._every_tenant.discard(subscriber)
        for tenant in subscriber.tenants or ():
            subscribers = self._by_tenant.get(tenant)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._by_tenant[tenant]

    def dispatch(self, events: Iterable[StoredEvent]) -> None:
        for event in events:
            # copies: an offer may end a connection, which removes it from these sets
            subscribers = [*self._by_tenant.get(event.event.tenant_id, ()), *self._every_tenant]
            if not subscribers:
                continue  # most events of a busy pipeline: encoding them is the cost
            encoded = frame(event)
            for subscriber in subscribers:
                subscriber.offer(event, encoded)

    async def _run(self) -> None:
        def lost(_: bool) -> None:
            self._following = False

        await keep_following(self._follow, what="hub backplane", log=_log, on_lost=lost)

    async def _follow(self, held: Callable[[], None]) -> None:
        async with listening(self._conninfo, CHANNEL, "b2c-api-hub") as conn:
            if self._sequencer is None:
                self._sequencer = Sequencer(await latest_id(conn))
                self._started.set()
            sequencer = self._sequencer
            self._following = True
            held()
            while True:
                given_up = sequencer.given_up
                if self._by_tenant or self._every_tenant:
                    rows, snapshot = await read_after(conn, sequencer.watermark, _BATCH)
                    self.dispatch(sequencer.advance(rows, snapshot, time.monotonic()))
                    read = len(rows)
                else:
                    # nobody to deliver to: follow the ids only
                    ids, snapshot = await read_ids_after(conn, sequencer.watermark, _BATCH)
                    if self._by_tenant or self._every_tenant:
                        # one joined during the read, at the watermark not yet
                        # advanced: read again, with the events it is owed
                        continue
                    sequencer.advance(ids, snapshot, time.monotonic())
                    read = len(ids)
                if sequencer.given_up != given_up:
                    _log.warning("hub: gave up waiting for an event id (a stuck writer)")
                if read == _BATCH:
                    continue
                timeout = _GAP_POLL_S if sequencer.waiting else _IDLE_CHECK_S
                # one notification is enough to read again; the read takes them all
                async for _ in conn.notifies(timeout=timeout, stop_after=1):
                    pass
