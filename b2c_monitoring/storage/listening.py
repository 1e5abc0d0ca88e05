"""Postgres LISTEN on a connection of its own, and the one loop that keeps it.

Two parts of the API follow a NOTIFY channel: the hub's backplane (new events) and
the job runners' long polls (new commands). Both need the same: a dedicated
autocommit connection that LISTENs, and a task that reconnects when it is lost, with
a backoff that starts over once a connection has held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import psycopg

from b2c_monitoring.errors import StorageUnavailable
from b2c_monitoring.storage.db import translate_errors

BACKOFF_S: Final = (0.5, 10.0)


@asynccontextmanager
async def listening(
    conninfo: str, channel: str, application_name: str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection that LISTENs on ``channel``; what fails on it, in the
    block too, is a ``StorageUnavailable``."""
    with translate_errors():
        conn = await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, connect_timeout=3, application_name=application_name
        )
        async with conn:
            await conn.execute(f"LISTEN {channel}")
            yield conn


def _nothing(_: bool) -> None:
    return None


async def keep_following(
    follow: Callable[[Callable[[], None]], Awaitable[None]],
    *,
    what: str,
    log: logging.Logger,
    on_lost: Callable[[bool], None] = _nothing,
) -> None:
    """Run ``follow(held)`` until cancelled: it connects and calls ``held()`` once its
    LISTEN holds. When it fails, ``on_lost(held)``, then wait (doubling from 0.5 s to
    10 s, from 0.5 s again after a connection that held) and run it again. The task's
    edge: whatever breaks is logged, never raised; a failure that repeats while no
    connection holds is logged at debug level only."""
    backoff = BACKOFF_S[0]
    failing = False
    while True:
        held = False

        def hold() -> None:
            nonlocal held
            held = True

        try:
            await follow(hold)
        except StorageUnavailable as exc:
            level = logging.DEBUG if failing and not held else logging.WARNING
            log.log(level, "%s lost Postgres, reconnecting: %s", what, exc)
        except Exception:
            # whatever broke, the follower must keep following
            log.exception("%s failed, reconnecting", what)
        failing = not held
        if held:
            backoff = BACKOFF_S[0]
        on_lost(held)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, BACKOFF_S[1])
