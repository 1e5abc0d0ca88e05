"""OTLP's times (integer nanoseconds since the Unix epoch) and ours (aware datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def from_unix_nanos(nanos: int) -> datetime:
    """An aware UTC datetime; exact to the microsecond (a datetime holds no finer)."""
    # integer arithmetic: a float of nanoseconds since 1970 has lost the microseconds
    return EPOCH + timedelta(microseconds=nanos // 1000)
