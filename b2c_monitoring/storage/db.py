"""The Postgres boundary: connection pools, and psycopg's errors translated once.

Everything that talks to Postgres goes through a pool made here and runs inside
``translate_errors()``, so callers above see only ``errors.StorageError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import orjson
import psycopg
import psycopg_pool
from psycopg import errors as pg

from b2c_monitoring.errors import StorageRejected, StorageUnavailable

T = TypeVar("T")

# Transient by nature: the same statement may well succeed when tried again.
_RETRYABLE_SQLSTATE_CLASSES = ("08", "40", "53", "57")  # connection, rollback, resources, shutdown


@contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise StorageUnavailable(f"no database connection available: {exc}") from exc
    except psycopg.Error as exc:
        sqlstate = exc.sqlstate or ""
        if isinstance(exc, psycopg.OperationalError | pg.InternalError) or sqlstate.startswith(
            _RETRYABLE_SQLSTATE_CLASSES
        ):
            raise StorageUnavailable(f"database unavailable: {exc}".strip()) from exc
        raise StorageRejected(f"database refused the data: {exc}".strip()) from exc


_CONFLICTS: tuple[type[psycopg.Error], ...] = (pg.DeadlockDetected, pg.SerializationFailure)
_CONFLICT_ATTEMPTS = 5


def retry_conflicts(
    transaction: Callable[[], T], *, also: tuple[type[psycopg.Error], ...] = ()
) -> T:
    """Run a whole write transaction, again on a deadlock or serialization failure
    between replicas (a few times); psycopg's errors translated.

    ``also``: errors that mean the same for this transaction, such as a unique
    violation when two replicas insert the same new row at once.
    """
    for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
        with translate_errors():
            try:
                return transaction()
            except also as exc:
                # a race lost every time is still a race, not bad data: refused as
                # permanent, the collector would drop the batch
                if attempt == _CONFLICT_ATTEMPTS:
                    raise StorageUnavailable(
                        f"lost {attempt} races with other writers; retry: {exc}"
                    ) from exc
            except _CONFLICTS:
                if attempt == _CONFLICT_ATTEMPTS:
                    raise
    raise AssertionError("unreachable")


def copy_rows(
    cur: psycopg.Cursor[Any], statement: str, types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Write rows with ``COPY ... FROM STDIN (FORMAT BINARY)``.

    For whole batches: psycopg formats binary COPY rows in C, while the elements of
    an array parameter (``unnest(%b::text[])``) are dumped one by one in Python; on
    the job store this halved the time per row.
    """
    with cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


# A jsonb field of a binary COPY is jsonb's wire form: a version byte, then the text.
# Written as bytes (the column's type in ``set_types`` is ``JSONB_BYTES``), a document
# costs one orjson call; a ``Jsonb`` wrapper costs an object and a dumper's dispatch
# too, for each of a job's two documents.
JSONB_BYTES: Final = "bytea"
_JSONB_VERSION: Final = b"\x01"


def copy_jsonb(document: object) -> bytes:
    """``document`` (a mapping, a list or a tuple) as a jsonb field of a binary COPY."""
    return _JSONB_VERSION + orjson.dumps(document, default=dict)


def make_pool(
    conninfo: str, *, max_size: int, name: str, utc: bool = False
) -> psycopg_pool.ConnectionPool:
    """A pool that opens lazily and survives the database restarting.

    ``check`` validates a connection before it is lent, so a restarted Postgres costs
    one failed batch (answered with a retryable status), not a broken pool.

    ``utc``: sessions in UTC, whatever the server's zone, so that psycopg loads every
    ``timestamptz`` with ``datetime.UTC``, the zone the processor's own times carry.
    In another zone (a ``ZoneInfo``, even ``Etc/UTC``) each load converts, and each
    comparison of a loaded time with a decoded one asks both for their offsets: the
    derivation compares times many times a report.
    """
    kwargs: dict[str, Any] = {"connect_timeout": 3, "application_name": name}
    if utc:
        kwargs["options"] = "-c TimeZone=UTC"
    return psycopg_pool.ConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        name=name,
        open=False,
        timeout=5.0,
        reconnect_timeout=0,  # keep trying to reconnect for ever; never give up the pool
        check=psycopg_pool.ConnectionPool.check_connection,
        kwargs=kwargs,
    )
