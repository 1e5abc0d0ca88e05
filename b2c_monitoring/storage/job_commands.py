"""Retry and cancel commands in Postgres (table ``job_commands``, 0005).

- ``request`` inserts a command and its audit row in one transaction and notifies
  the channel ``job_commands`` with the service's name; Postgres delivers a NOTIFY
  at commit, so a listener never hears of a command it cannot read yet. A second
  request while the first is live answers the first (the unique index decides, so
  two API replicas cannot both insert).
- ``claim`` hands a service's open commands to one runner: ``FOR UPDATE SKIP
  LOCKED``, so two runners never take the same one and neither waits for the other.
  A claim whose lease ran out is claimable again.
- ``decline`` hands a claimed command back: its runner cannot carry it out (the job
  runs in another instance of the service). The others are notified; the decliner is
  never handed it again; one nobody takes within the decline window fails.
- ``expire`` ends the pending commands that no runner claimed within the expiry (no
  runner of the service polls at all): ``expired``, with the reason in ``result``. It
  runs before every claim, request and read of a job's commands, and in the
  processor's maintenance round, so no command stays pending with no end.
  Each expired command is announced on the hub (``JobCommandExpired``) in the
  transaction that expires it.
- ``listen`` is the API's ear on the channel; the rows are the truth, the
  notification only says "look now".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from b2c_monitoring.errors import Conflict, Forbidden, NotFound
from b2c_monitoring.live_events import ExpiredCommand, job_command_expired
from b2c_monitoring.processors.job_commands import (
    DEFAULT_DECLINE_WINDOW,
    DEFAULT_EXPIRY,
    MAX_CLAIMS,
    CommandKind,
    CommandState,
    JobCommand,
    RetrySpec,
)
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.storage import audit
from b2c_monitoring.storage.db import translate_errors
from b2c_monitoring.storage.hub_events import publish
from b2c_monitoring.storage.listening import listening

CHANNEL: Final = "job_commands"
_COLUMNS: Final = (
    "id, tenant_id, job_id, kind, service_name, payload, requested_by, requested_by_token, "
    "requested_at, state, claimed_by, claimed_at, claims, done_at, result, declined_by"
)

_INSERT: Final = f"""
INSERT INTO job_commands (id, tenant_id, job_id, kind, service_name, payload, requested_by,
    requested_by_token, requested_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, job_id, kind) WHERE state NOT IN ('failed', 'expired') DO NOTHING
RETURNING {_COLUMNS}
"""

_LIVE: Final = f"""
SELECT {_COLUMNS} FROM job_commands
WHERE tenant_id = %s AND job_id = %s AND kind = %s AND state NOT IN ('failed', 'expired')
"""

_SCOPE: Final = "(%(tenants)s::text[] IS NULL OR tenant_id = ANY(%(tenants)s::text[]))"
_EXPIRED: Final = "state = 'claimed' AND claimed_at < %(cutoff)s"

# A command claimed MAX_CLAIMS times and never marked is given up rather than handed
# out for ever (it may be what kills the runner that takes it).
_GIVE_UP: Final = f"""
WITH dead AS (
    SELECT id FROM job_commands
    WHERE service_name = %(service)s AND {_EXPIRED} AND claims >= %(max_claims)s AND {_SCOPE}
    FOR UPDATE SKIP LOCKED
)
UPDATE job_commands c SET state = 'failed', done_at = %(now)s,
    result = jsonb_build_object('error', 'claimed ' || c.claims || ' times and never marked done')
FROM dead WHERE c.id = dead.id
"""

# Declined by the runners that polled, and taken by none within the decline window: no
# live instance of the service can carry it out.
_GIVE_UP_DECLINED: Final = f"""
WITH unwanted AS (
    SELECT id FROM job_commands
    WHERE service_name = %(service)s AND (state = 'pending' OR ({_EXPIRED}))
      AND declined_at < %(decline_cutoff)s AND {_SCOPE}
    FOR UPDATE SKIP LOCKED
)
UPDATE job_commands c SET state = 'failed', done_at = %(now)s,
    result = jsonb_build_object('error', c.decline_reason,
        'declinedBy', array_to_string(c.declined_by, ', '))
FROM unwanted WHERE c.id = unwanted.id
"""

# never claimed (claims = 0: a claimed one is the lease's and MAX_CLAIMS' business), and
# requested before the cutoff; %(job)s narrows it to one job's commands
_EXPIRE: Final = """
WITH stale AS (
    SELECT id FROM job_commands
    WHERE state = 'pending' AND claims = 0 AND requested_at < %(expire_cutoff)s
      AND (%(service)s::text IS NULL OR service_name = %(service)s)
      AND (%(tenant)s::text IS NULL OR (tenant_id = %(tenant)s AND job_id = %(job)s))
    FOR UPDATE SKIP LOCKED
)
UPDATE job_commands c SET state = 'expired', done_at = %(now)s,
    result = jsonb_build_object('error', 'no job runner of ' || c.service_name
        || ' took it within ' || %(expiry_s)s || ' s; is the service running with its '
        || 'job runner (or the Celery / APScheduler integration)?')
FROM stale WHERE c.id = stale.id
RETURNING c.tenant_id, c.job_id, c.id::text, c.kind, c.result->>'error'
"""

_CLAIM: Final = f"""
WITH picked AS (
    SELECT id FROM job_commands
    WHERE service_name = %(service)s
      AND (state = 'pending' OR ({_EXPIRED}))
      AND NOT %(claimer)s = ANY(declined_by)
      AND {_SCOPE}
    ORDER BY requested_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE job_commands c SET state = 'claimed', claimed_by = %(claimer)s, claimed_at = %(now)s,
    claims = c.claims + 1
FROM picked WHERE c.id = picked.id
RETURNING c.*
"""

_COMPLETE: Final = f"""
UPDATE job_commands SET state = %(state)s, done_at = %(now)s, result = %(result)s
WHERE id = %(id)s AND state = 'claimed' AND {_SCOPE}
RETURNING {_COLUMNS}
"""

# only the runner holding the claim may hand it back; the claim it used is not counted
_DECLINE: Final = f"""
UPDATE job_commands SET state = 'pending', claimed_by = NULL, claimed_at = NULL,
    claims = claims - 1, declined_by = array_append(declined_by, %(claimer)s),
    declined_at = %(now)s, decline_reason = %(reason)s
WHERE id = %(id)s AND state = 'claimed' AND claimed_by = %(claimer)s AND {_SCOPE}
RETURNING {_COLUMNS}
"""


def _payload(command: JobCommand) -> dict[str, Any]:
    if command.retry is None:
        return {}
    return {
        "jobType": command.retry.job_type,
        "newJobId": command.retry.new_job_id,
        "attempt": command.retry.attempt,
        "params": dict(command.retry.params),
    }


def _retry(payload: Mapping[str, Any]) -> RetrySpec | None:
    if "newJobId" not in payload:
        return None
    return RetrySpec(
        job_type=payload["jobType"],
        new_job_id=payload["newJobId"],
        attempt=payload["attempt"],
        params=payload.get("params") or {},
    )


def command_from_row(row: dict[str, Any]) -> JobCommand:
    return JobCommand(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        job_id=row["job_id"],
        kind=CommandKind(row["kind"]),
        service_name=row["service_name"],
        requested_by=row["requested_by"],
        requested_by_token=row["requested_by_token"],
        requested_at=row["requested_at"],
        retry=_retry(row["payload"]),
        state=CommandState(row["state"]),
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        claims=row["claims"],
        done_at=row["done_at"],
        result=row["result"],
        declined_by=tuple(row["declined_by"]),
    )


def audit_action(kind: CommandKind) -> str:
    return f"job.{kind.value}"


def _key(command_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(command_id)
    except ValueError as exc:
        raise NotFound(f"no command {command_id!r}") from exc


def _check_service(
    cur: psycopg.Cursor[dict[str, Any]],
    params: Mapping[str, object],
    services: Sequence[str] | None,
    command_id: str,
) -> None:
    """A token bound to services answers only their commands (a command's service
    never changes, so a look before the update is enough)."""
    if services is None:
        return
    cur.execute(f"SELECT service_name FROM job_commands WHERE id = %(id)s AND {_SCOPE}", params)
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no command {command_id!r} in your tenants")
    if row["service_name"] not in services:
        raise Forbidden(
            f"command {command_id!r} is for the service {row['service_name']!r}; this token "
            f"acts only for {', '.join(services)}"
        )


def _expire(conn: psycopg.Connection[Any], params: Mapping[str, Any]) -> int:
    """Expire the stale commands ``params`` select and announce each on the hub, in
    one transaction (a savepoint inside the caller's); how many."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_EXPIRE, params)
        expired = [ExpiredCommand(*row) for row in cur.fetchall()]
        publish(conn, job_command_expired(expired))
    return len(expired)


def _expire_params(
    now: datetime,
    expiry: timedelta,
    *,
    service: str | None = None,
    tenant_id: str | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    return {
        "now": now,
        "expire_cutoff": now - expiry,
        "expiry_s": str(int(expiry.total_seconds())),
        "service": service,
        "tenant": tenant_id,
        "job": job_id,
    }


class JobCommandStore:
    def __init__(
        self, pool: psycopg_pool.ConnectionPool, *, expiry: timedelta = DEFAULT_EXPIRY
    ) -> None:
        self._pool = pool
        self._expiry = expiry

    def expire(self, now: datetime) -> int:
        """End every pending command no runner claimed within the expiry; how many."""
        with translate_errors(), self._pool.connection() as conn:
            return _expire(conn, _expire_params(now, self._expiry))

    def request(self, command: JobCommand) -> tuple[JobCommand, bool]:
        """Store ``command`` with its audit row and notify its service, in one
        transaction; or, if the job has a live command of this kind, answer that one
        (and audit the repeated request). True if ``command`` is new."""
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            # an expired command of this job must not answer the new request
            _expire(
                conn,
                _expire_params(
                    command.requested_at,
                    self._expiry,
                    tenant_id=command.tenant_id,
                    job_id=command.job_id,
                ),
            )
            cur.execute(
                _INSERT,
                (
                    uuid.UUID(command.id),
                    command.tenant_id,
                    command.job_id,
                    command.kind.value,
                    command.service_name,
                    Jsonb(_payload(command)),
                    command.requested_by,
                    command.requested_by_token,
                    command.requested_at,
                ),
            )
            row = cur.fetchone()
            created = row is not None
            if row is None:
                # the conflict waited for the other transaction: its row is visible now
                cur.execute(_LIVE, (command.tenant_id, command.job_id, command.kind.value))
                row = cur.fetchone()
                if row is None:
                    # it failed in between: the caller may simply ask again
                    raise Conflict(
                        f"a {command.kind.value} of job {command.job_id!r} changed meanwhile; try again"
                    )
            stored = command_from_row(row)
            audit.record(
                conn,
                audit.AuditEntry(
                    at=command.requested_at,
                    actor_name=command.requested_by,
                    actor_token_id=command.requested_by_token,
                    action=audit_action(command.kind),
                    tenant_id=command.tenant_id,
                    target=command.job_id,
                    details={
                        "commandId": stored.id,
                        "outcome": "requested" if created else "repeated",
                        "serviceName": command.service_name,
                    },
                ),
            )
            if created:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, command.service_name))
        return stored, created

    def claim(
        self,
        service: str,
        tenants: Sequence[str] | None,
        claimer: str,
        now: datetime,
        *,
        lease: timedelta,
        decline_window: timedelta = DEFAULT_DECLINE_WINDOW,
        limit: int = 10,
    ) -> list[JobCommand]:
        """Claim up to ``limit`` open commands of ``service`` in ``tenants`` (None: all),
        oldest first: pending ones ``claimer`` has not declined, and claimed ones whose
        lease ran out."""
        params = {
            "service": service,
            "tenants": list(tenants) if tenants is not None else None,
            "claimer": claimer,
            "now": now,
            "cutoff": now - lease,
            "decline_cutoff": now - decline_window,
            "limit": limit,
            "max_claims": MAX_CLAIMS,
        }
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            _expire(conn, _expire_params(now, self._expiry, service=service))
            cur.execute(_GIVE_UP, params)
            cur.execute(_GIVE_UP_DECLINED, params)
            cur.execute(_CLAIM, params)
            return sorted(
                (command_from_row(row) for row in cur.fetchall()),
                key=lambda c: (c.requested_at, c.id),
            )

    def complete(
        self,
        command_id: str,
        tenants: Sequence[str] | None,
        *,
        ok: bool,
        result: Mapping[str, Scalar],
        now: datetime,
        services: Sequence[str] | None = None,
    ) -> JobCommand:
        """Mark a claimed command done (``ok``) or failed. Marking it again answers it
        as it is, so a runner may repeat a mark whose answer it did not get.
        ``services``: those the caller's token is bound to (None: any); a command of
        another service is Forbidden."""
        key = _key(command_id)
        params = {
            "id": key,
            "tenants": list(tenants) if tenants is not None else None,
            "state": (CommandState.DONE if ok else CommandState.FAILED).value,
            "result": Jsonb(dict(result)),
            "now": now,
        }
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            _check_service(cur, params, services, command_id)
            cur.execute(_COMPLETE, params)
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    f"SELECT {_COLUMNS} FROM job_commands WHERE id = %(id)s AND {_SCOPE}", params
                )
                row = cur.fetchone()
        if row is None:
            raise NotFound(f"no command {command_id!r} in your tenants")
        command = command_from_row(row)
        if command.state is CommandState.PENDING:
            raise Conflict(f"command {command_id!r} was not claimed; claim it first")
        return command

    def decline(
        self,
        command_id: str,
        tenants: Sequence[str] | None,
        claimer: str,
        reason: str,
        now: datetime,
        services: Sequence[str] | None = None,
    ) -> JobCommand:
        """Hand a claimed command back to the service's other runners: ``claimer`` cannot
        carry it out (say, the job runs in another instance). They are woken now; if
        none takes it within the decline window, it fails with ``reason``. ``services``:
        as for ``complete``."""
        params = {
            "id": _key(command_id),
            "tenants": list(tenants) if tenants is not None else None,
            "claimer": claimer,
            "reason": reason,
            "now": now,
        }
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            _check_service(cur, params, services, command_id)
            cur.execute(_DECLINE, params)
            row = cur.fetchone()
            if row is not None:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, row["service_name"]))
            else:
                cur.execute(
                    f"SELECT {_COLUMNS} FROM job_commands WHERE id = %(id)s AND {_SCOPE}", params
                )
                row = cur.fetchone()
                if row is None:
                    raise NotFound(f"no command {command_id!r} in your tenants")
                if claimer not in row["declined_by"]:
                    # declining again (an answer lost on the way) is fine; anything else
                    # means the claim is someone else's or over
                    raise Conflict(
                        f"command {command_id!r} is {row['state']}, not claimed by {claimer!r}"
                    )
        return command_from_row(row)

    def for_job(self, tenant_id: str, job_id: str, now: datetime | None = None) -> list[JobCommand]:
        """The commands of one job, newest first; with ``now``, those past the expiry
        are expired first."""
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if now is not None:
                _expire(conn, _expire_params(now, self._expiry, tenant_id=tenant_id, job_id=job_id))
            cur.execute(
                f"SELECT {_COLUMNS} FROM job_commands WHERE tenant_id = %s AND job_id = %s "
                "ORDER BY requested_at DESC, id",
                (tenant_id, job_id),
            )
            return [command_from_row(row) for row in cur.fetchall()]


async def listen(
    conninfo: str,
    on_notify: Callable[[str], None],
    on_listening: Callable[[], None],
    *,
    check_every_s: float = 15.0,
) -> None:
    """LISTEN on ``job_commands`` on a connection of its own and call ``on_notify`` with
    each notified service name, until cancelled; ``on_listening`` once LISTEN holds.
    Raises ``StorageUnavailable`` when the connection fails."""
    async with listening(conninfo, CHANNEL, "b2c-api-listen") as conn:
        on_listening()
        while True:
            async for notify in conn.notifies(timeout=check_every_s):
                on_notify(notify.payload)
            # a quiet connection may be a dead one: ask, so a lost server surfaces
            await conn.execute("SELECT 1")
