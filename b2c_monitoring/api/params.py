"""Query parameters more than one router reads the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

DEFAULT_HISTORY = timedelta(hours=24)

# ?tenant=a&tenant=b: narrows a list to some of the token's tenants (Principal.scope)
TenantFilter = Annotated[
    list[str] | None,
    Query(description="repeatable; only tenants within your token's scope count"),
]


def time_range(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """``since``..``until``, by default the last 24 hours; a 422 if they are reversed."""
    end = until or now
    start = since or end - DEFAULT_HISTORY
    if start >= end:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "since"),
                    "msg": "since must be before until",
                    "input": start.isoformat(),
                }
            ]
        )
    return start, end


# Times a store can take: Elasticsearch's date_nanos ends in 2262 and refuses times
# before 1970, and `since` defaults to `until` - 24 h, so `until` keeps a day above it.
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _iso_text(value: object) -> object:
    """Only ISO 8601 text: pydantic would read ``0.5`` as seconds since 1970."""
    if not isinstance(value, str | datetime):
        raise ValueError("a time is ISO 8601 text with an offset, e.g. 2026-12-07T08:00:00Z")
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("a time is ISO 8601 text with an offset, e.g. 2026-12-07T08:00:00Z")
    return value


def _bounded(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"a time is between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return value


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_text),
    AfterValidator(_bounded),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            # JSON Schema has no bounds for date-time text; the year's pattern is one
            "pattern": r"^2[01][0-9]{2}-",
            "description": "ISO 8601 with an offset, between 2000 and 2200",
        }
    ),
]
"""A time parameter or field: ISO 8601 with an offset, within what every store takes."""
