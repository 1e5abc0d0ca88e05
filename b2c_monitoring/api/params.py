"""Query parameters more than one router reads the same way."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError

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
