"""The notification outbox (tables ``notifications``, ``notification_attempts``, 0008).

``enqueue`` writes one row per enabled channel of the tenant whose minimum severity
the alert reaches, inside the transaction that changed the alert. A notifier
``claim``s due rows with a conditional UPDATE and checks the row count (two notifiers
never send the same row), sends *after* that commit, and ``finish``es each with its
outcome: sent, or due again after an exponential back-off, or given up once past
its maximum age. Every attempt is a row; a claim whose notifier died is due again
when its lease ends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from b2c_monitoring.alerting.channels import Channel, ChannelKind, backoff
from b2c_monitoring.alerting.lifecycle import AlertState, ChangeKind
from b2c_monitoring.alerting.records import AlertRecord
from b2c_monitoring.alerting.rules import Severity
from b2c_monitoring.storage.db import translate_errors


def enqueue(
    conn: psycopg.Connection[Any], alert: AlertState, event: ChangeKind, now: datetime
) -> int:
    """Outbox rows for ``alert``'s ``event``; how many."""
    payload = {"event": event.value, "alert": AlertRecord.of(alert).json_body()}
    channels = conn.execute(
        "SELECT id::text, min_severity FROM notification_channels WHERE tenant_id = %s AND enabled",
        (alert.tenant_id,),
    ).fetchall()
    n = 0
    for channel_id, min_severity in channels:
        if alert.severity.rank < Severity(min_severity).rank:
            continue
        conn.execute(
            "INSERT INTO notifications (id, tenant_id, alert_id, channel_id, event, payload, "
            "next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                str(uuid.uuid4()),
                alert.tenant_id,
                alert.id,
                channel_id,
                event.value,
                Jsonb(payload),
                now,
                now,
            ),
        )
        n += 1
    return n


@dataclass(frozen=True)
class Claimed:
    id: str
    attempts: int  # including this one
    created_at: datetime
    payload: dict[str, Any]
    channel: Channel


@dataclass(frozen=True)
class NotificationView:
    id: str
    channel_id: str
    channel_name: str
    event: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None


class NotificationStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def claim(self, now: datetime, lease: timedelta, limit: int = 20) -> list[Claimed]:
        """Due rows, each claimed by a conditional UPDATE this notifier won."""
        out: list[Claimed] = []
        with translate_errors(), self._pool.connection() as conn:
            conn.autocommit = True
            due = conn.execute(
                "SELECT id::text FROM notifications WHERE state IN ('pending', 'sending') "
                "AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s",
                (now, limit),
            ).fetchall()
            for (notification_id,) in due:
                row = conn.execute(
                    "UPDATE notifications n SET state = 'sending', attempts = attempts + 1, "
                    "claimed_until = %(until)s, next_attempt_at = %(until)s "
                    "FROM notification_channels c WHERE n.id = %(id)s AND c.id = n.channel_id "
                    "AND n.state IN ('pending', 'sending') AND n.next_attempt_at <= %(now)s "
                    "RETURNING n.attempts, n.created_at, n.payload, c.id::text, c.name, c.kind, "
                    "c.config, c.secret",
                    {"id": notification_id, "now": now, "until": now + lease},
                ).fetchone()
                if row is None:  # another notifier won it
                    continue
                attempts, created_at, payload, cid, name, kind, config, secret = row
                out.append(
                    Claimed(
                        notification_id,
                        attempts,
                        created_at,
                        payload,
                        Channel(cid, name, ChannelKind(kind), config, secret),
                    )
                )
        return out

    def finish(
        self,
        claimed: Claimed,
        error: str | None,
        now: datetime,
        *,
        base: timedelta,
        cap: timedelta,
        max_age: timedelta,
        permanent: bool = False,
    ) -> str:
        """Record the attempt; the row's new state."""
        if error is None:
            state, next_at = "sent", None
        elif permanent or now - claimed.created_at >= max_age:
            state, next_at = "failed", None
        else:
            state, next_at = "pending", now + backoff(claimed.attempts, base, cap)
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE notifications SET state = %s, next_attempt_at = coalesce(%s, next_attempt_at), "
                "claimed_until = NULL, last_error = coalesce(%s, last_error), sent_at = %s "
                "WHERE id = %s",
                (state, next_at, error, now if error is None else None, claimed.id),
            )
            conn.execute(
                "INSERT INTO notification_attempts (notification_id, at, ok, error) "
                "VALUES (%s, %s, %s, %s)",
                (claimed.id, now, error is None, error),
            )
        return state

    def for_alert(self, alert_id: str) -> list[NotificationView]:
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT n.id::text, n.channel_id::text, c.name, n.event, n.state, n.attempts, "
                "n.last_error, n.created_at, n.sent_at, "
                "CASE WHEN n.state IN ('pending', 'sending') THEN n.next_attempt_at END "
                "FROM notifications n JOIN notification_channels c ON c.id = n.channel_id "
                "WHERE n.alert_id = %s ORDER BY n.created_at, c.name",
                (alert_id,),
            ).fetchall()
        return [NotificationView(*r) for r in rows]
