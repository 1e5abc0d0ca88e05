"""Opaque page cursors: the sort key of a page's last item, as base64url JSON.

Clients pass ``nextCursor`` back as it is; what is inside is ours to change. Every
list decodes its cursor here, with ``unpack`` and a parser of its key built from the
readers below; anything we did not hand out is ``InvalidCursor`` (a 422 problem like
any invalid parameter, ``problems.py``), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from pydantic import JsonValue

from b2c_monitoring.errors import InvalidCursor
from b2c_monitoring.storage.jobs import ListKey
from b2c_monitoring.storage.logs import LogPosition, Order

T = TypeVar("T")

NOT_OURS: Final = "not a cursor of this list; pass nextCursor of the previous page as it is"


def pack(key: Sequence[JsonValue]) -> str:
    raw = json.dumps(list(key), separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def unpack(cursor: str, parse: Callable[..., T], *, message: str = NOT_OURS) -> T:
    """``parse(*key)`` of the key ``pack`` made. ``parse`` refuses a key by raising
    ValueError, TypeError (a wrong number of items) or IndexError; the readers below
    check one item each."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, list):
            raise ValueError("not a JSON array")
        return parse(*key)
    # JSONDecodeError is a ValueError
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, IndexError) as exc:
        raise InvalidCursor(message) from exc


def sequence(cursor: str) -> int:
    """A cursor that is a positive integer as text (the audit log's)."""
    if not cursor.isascii() or not cursor.isdigit() or int(cursor) < 1:
        raise InvalidCursor(NOT_OURS)
    return int(cursor)


def text(item: object) -> str:
    if not isinstance(item, str):
        raise ValueError("not a string")
    return item


def integer(item: object) -> int:
    if not isinstance(item, int) or isinstance(item, bool):
        raise ValueError("not an integer")
    return item


def moment(item: object) -> datetime:
    """An aware ``datetime.isoformat()``."""
    at = datetime.fromisoformat(text(item))
    if at.tzinfo is None:
        raise ValueError("not an aware time")
    return at


def uuid_text(item: object) -> str:
    """A uuid, as the text it was written."""
    uuid.UUID(text(item))
    return text(item)


def equal(item: object, expected: JsonValue) -> None:
    if item != expected:
        raise ValueError(f"not {expected!r}")


# --------------------------------------------------------------------------------------
# the keys of each list


def job_cursor(key: ListKey) -> str:
    """The job list: newest first, ``(created_at, tenant_id, job_id)``."""
    return pack([key.created_at.isoformat(), key.tenant_id, key.job_id])


def job_key(cursor: str) -> ListKey:
    return unpack(cursor, lambda at, tenant, job: ListKey(moment(at), text(tenant), text(job)))


def service_cursor(tenant_id: str, name: str) -> str:
    """The service list: by tenant, then name."""
    return pack([tenant_id, name])


def service_key(cursor: str) -> tuple[str, str]:
    return unpack(cursor, lambda tenant, name: (text(tenant), text(name)))


def alert_cursor(key: tuple[datetime, str]) -> str:
    """The alert list: newest first, ``(started_at, id)``."""
    return pack([key[0].isoformat(), key[1]])


def alert_key(cursor: str) -> tuple[datetime, str]:
    return unpack(cursor, lambda at, alert_id: (moment(at), uuid_text(alert_id)))


def log_cursor(order: Order, position: LogPosition) -> str:
    """A job's log and a service's errors: the order and the sort key of the last line."""
    return pack([order, position.timestamp_ns, position.index, position.seq_no])


def log_position(cursor: str, order: Order) -> LogPosition:
    def parse(in_order: object, timestamp_ns: object, index: object, seq_no: object) -> LogPosition:
        equal(in_order, order)
        return LogPosition(integer(timestamp_ns), text(index), integer(seq_no))

    return unpack(
        cursor,
        parse,
        message="not a cursor of this log in this order; pass nextCursor of the previous page "
        "as it is, with the same order",
    )
