"""Long polls of job runners, woken by Postgres NOTIFY.

One task of the API keeps a LISTEN connection (``storage.job_commands.listen``) and
wakes the polls waiting for the notified service. A poll registers before it first
looks, so a command committed after that look wakes it, and one committed before is
found by the look: nothing falls in between. While the LISTEN connection is down,
polls look every second instead; when it is back, every poll looks once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from b2c_monitoring.storage.job_commands import listen
from b2c_monitoring.storage.listening import keep_following

_log = logging.getLogger(__name__)
T = TypeVar("T")

_FALLBACK_POLL_S: Final = 1.0


class CommandWaiters:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._listening

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="b2c-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait(
        self,
        service: str,
        look: Callable[[], Awaitable[list[T]]],
        wait_s: float,
        gone: Callable[[], Awaitable[bool]],
    ) -> list[T]:
        """``look()`` now, and again each time ``service`` is notified, until it finds
        something or ``wait_s`` is over; stops early (with nothing) when the caller is
        ``gone``, so no command is claimed for a poll nobody reads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        woken = asyncio.Event()
        self._waiting[service].add(woken)
        try:
            while True:
                woken.clear()
                found = await look()
                remaining = deadline - loop.time()
                if found or remaining <= 0:
                    return found
                timeout = remaining if self._listening else min(remaining, _FALLBACK_POLL_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout)
                if await gone():
                    return []
        finally:
            waiters = self._waiting[service]
            waiters.discard(woken)
            if not waiters:
                del self._waiting[service]

    def _wake(self, service: str) -> None:
        for event in self._waiting.get(service, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()

    def _on_listening(self) -> None:
        self._listening = True
        # commands may have come while nobody listened
        self._wake_all()

    async def _run(self) -> None:
        async def follow(held: Callable[[], None]) -> None:
            def on_listening() -> None:
                held()
                self._on_listening()

            await listen(self._conninfo, self._wake, on_listening)

        def lost(_: bool) -> None:
            # polls look every second meanwhile, and once more now
            self._listening = False
            self._wake_all()

        await keep_following(follow, what="LISTEN on job commands", log=_log, on_lost=lost)
