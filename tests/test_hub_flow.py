"""The hub under pressure and after pruning: a stalled client is cut loose without
holding back the others; a client whose missed events were pruned is told to reload."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import psycopg_pool
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from b2c_monitoring.auth import Role
from b2c_monitoring.hub.connection import QUEUE_FRAMES
from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.hub_events import prune, publish
from b2c_monitoring.storage.tokens import TokenStore
from tests.api_process import api_process
from tests.hub_clients import HubClient
from tests.tokens import token

pytestmark = pytest.mark.integration

RS = "\x1e"


@contextmanager
def _raw(api_url: str, secret: str, *, max_queue: int = 16) -> Iterator[ClientConnection]:
    """A bare WebSocket client speaking the JSON hub protocol itself (no negotiate)."""
    with connect(
        f"{api_url.replace('http', 'ws', 1)}/hubs/job-status?access_token={secret}",
        compression=None,
        max_queue=max_queue,
    ) as socket:
        socket.send(json.dumps({"protocol": "json", "version": 1}) + RS)
        assert socket.recv(timeout=10) == "{}" + RS
        yield socket


def _messages(socket: ClientConnection, timeout: float) -> Iterator[dict[str, object]]:
    while True:
        for message in str(socket.recv(timeout=timeout)).split(RS)[:-1]:
            yield json.loads(message)


@pytest.fixture
def api_on(stack: LocalStack, tmp_path: Path, fresh_db: str) -> Iterator[str]:
    with api_process(stack, tmp_path / "api.log", B2C_DATABASE_URL=fresh_db) as url:
        yield url


@pytest.fixture
def fresh_pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    pool = make_pool(fresh_db, max_size=2, name="hub-flow-test")
    pool.open(wait=True)
    yield pool
    pool.close()


def test_a_client_that_stops_reading_is_cut_loose_and_holds_back_no_one(
    api_on: str, fresh_pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(fresh_pool, Role.VIEWER, [tenant])
    with _raw(api_on, secret, max_queue=1) as stalled, _raw(api_on, secret) as reading:
        _flood(fresh_pool, tenant, stalled, reading)


def _flood(
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    stalled: ClientConnection,
    reading: ClientConnection,
) -> None:
    # far more than the stalled client's queue and its TCP buffers hold
    events = 3 * QUEUE_FRAMES
    payload = os.urandom(1500).hex()
    with pool.connection() as conn, conn.transaction():
        publish(
            conn,
            [HubEvent(tenant, "HealthStatusChanged", (f"c{n}", payload)) for n in range(events)],
        )

    received = 0
    for message in _messages(reading, timeout=30):
        if message["type"] == 1:
            received += 1
            if received == events:
                break

    stalled_got = _until_closed(stalled)
    assert len([m for m in stalled_got if m["type"] == 1]) < events
    for close in (m for m in stalled_got if m["type"] == 7):
        assert str(close["error"]).startswith("reload")
        assert close["allowReconnect"] is True


def _until_closed(socket: ClientConnection, timeout: float = 30) -> list[dict[str, object]]:
    """Everything a client still gets, until the server closes it (fails when nothing
    comes for ``timeout`` seconds)."""
    got: list[dict[str, object]] = []
    try:
        got.extend(_messages(socket, timeout=timeout))
    except ConnectionClosed:
        return got
    raise AssertionError("unreachable: _messages ends only by raising")


def test_a_client_whose_missed_events_were_pruned_is_told_to_reload(
    api_on: str, fresh_db: str, fresh_pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(fresh_pool, Role.VIEWER, [tenant])
    with psycopg.connect(fresh_db) as conn:
        with conn.transaction():
            publish(conn, [HubEvent(tenant, "HealthStatusChanged", ("db", "healthy"))] * 3)
        with conn.transaction():
            assert prune(conn, datetime.now(UTC) + timedelta(minutes=1)) == 3
        with conn.transaction():
            publish(conn, [HubEvent(tenant, "HealthStatusChanged", ("db", "degraded"))])
    client = HubClient(api_on, secret, "--resume", "1")
    try:
        assert client.wait_for("resume")["resume"] == {"reload": True}
    finally:
        client.close()


def test_the_websocket_itself_refuses_a_wrong_or_probe_token(
    api_on: str, fresh_pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    for secret in ("not-a-token", token(fresh_pool, Role.PROBE, [tenant])):
        with pytest.raises(InvalidStatus) as refused, _raw(api_on, secret):
            pass
        assert refused.value.response.status_code == 403


def test_events_published_while_nobody_listens_are_followed_and_replayed_on_resume(
    api_on: str, fresh_db: str, fresh_pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    # with no connection, the API follows the ids without reading the events
    secret = token(fresh_pool, Role.VIEWER, [tenant])
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with conn.transaction():
            events = [
                HubEvent(tenant, "HealthStatusChanged", (f"c{n}", "healthy")) for n in range(3)
            ]
            publish(conn, events)
        missed = [row[0] for row in conn.execute("SELECT id FROM hub_events ORDER BY id")]
        with _raw(api_on, secret) as socket:
            with conn.transaction():
                publish(conn, [HubEvent(tenant, "HealthStatusChanged", ("live", "degraded"))])
            live = next(m for m in _messages(socket, timeout=30) if m["type"] == 1)
            assert live["arguments"] == ["live", "degraded", missed[-1] + 1]

            socket.send(
                json.dumps({"type": 1, "invocationId": "1", "target": "Resume", "arguments": [0]})
                + RS
            )
            replayed: list[object] = []
            for message in _messages(socket, timeout=30):
                if message["type"] == 1:
                    replayed.append(message["arguments"])
                elif message["type"] == 3:
                    assert message["result"] == {"replayed": len(missed)}
                    break
    assert replayed == [[f"c{n}", "healthy", id_] for n, id_ in enumerate(missed)]


def test_a_connection_whose_token_is_revoked_is_closed_and_the_others_stay(
    stack: LocalStack, tmp_path: Path, fresh_db: str, fresh_pool: psycopg_pool.ConnectionPool
) -> None:
    tenant = "t-revoked"
    tokens = TokenStore(fresh_pool)
    now = datetime.now(UTC)
    revoked, revoked_secret = tokens.create("revoked", Role.VIEWER, [tenant], now)
    _, kept_secret = tokens.create("kept", Role.VIEWER, [tenant], now)
    with (
        api_process(
            stack, tmp_path / "api.log", B2C_DATABASE_URL=fresh_db, B2C_HUB_REAUTHENTICATE_S="0.5"
        ) as url,
        _raw(url, revoked_secret) as doomed,
        _raw(url, kept_secret) as kept,
    ):
        tokens.revoke(revoked.id, datetime.now(UTC))
        # well before the 15 s pings and the 60 s default: only the re-check closes it
        closes = [m for m in _until_closed(doomed, timeout=10) if m["type"] == 7]
        assert closes == [{"type": 7, "error": "the token was revoked"}]
        with fresh_pool.connection() as conn, conn.transaction():
            publish(conn, [HubEvent(tenant, "HealthStatusChanged", ("db", "healthy"))])
        event = next(m for m in _messages(kept, timeout=10) if m["type"] == 1)
        assert event["target"] == "HealthStatusChanged"
