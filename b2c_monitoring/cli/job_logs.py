"""A job's log for people, and following it while the job runs (no Typer in here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from rich.markup import escape

from b2c_monitoring.cli.client import ApiClient, ApiResult
from b2c_monitoring.contract import JobState

TERMINAL: Final = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# A job's last lines reach Elasticsearch through the collector (batches flushed each
# second) and an index refresh (each second), while its terminal state reaches
# Postgres on another path: keep reading this long after the job ended.
TRAILING_LINES_S: Final = 3.0

_LEVEL_STYLES: Final = (
    (21, "bold red"),
    (17, "red"),
    (13, "yellow"),
    (9, "green"),
    (1, "dim"),
)


def _style(severity_number: int | None) -> str | None:
    for floor, style in _LEVEL_STYLES:
        if severity_number is not None and severity_number >= floor:
            return style
    return None


def _time(text: str) -> str:
    """The API's ISO time as ``2026-11-28T10:00:01.123Z`` (UTC, milliseconds)."""
    moment = datetime.fromisoformat(text)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_line(line: dict[str, Any]) -> str:
    """One line as rich markup: time, level (coloured), service, message."""
    level = escape(f"{line.get('severityText') or '-':<5}")
    service = escape(line.get("serviceName") or "-")
    body = escape(line.get("body") or "")
    style = _style(line.get("severityNumber"))
    if style is not None:
        level = f"[{style}]{level}[/{style}]"
        if line["severityNumber"] >= 17:
            body = f"[{style}]{body}[/{style}]"
    return f"{_time(line['time'])} {level} {service}  {body}"


@dataclass(frozen=True)
class LogFilter:
    tenant: str | None = None
    level: str | None = None
    search: str | None = None
    since: datetime | None = None
    limit: int = 100


def read_page(
    api: ApiClient, job_id: str, log_filter: LogFilter, cursor: str | None = None
) -> ApiResult:
    """One page of the job's lines that ``log_filter`` selects, after ``cursor``."""
    return api.job_logs(
        job_id,
        tenant=log_filter.tenant,
        level=log_filter.level,
        search=log_filter.search,
        since=log_filter.since,
        limit=log_filter.limit,
        cursor=cursor,
    )


def follow(
    api: ApiClient,
    job_id: str,
    log_filter: LogFilter,
    on_page: Callable[[ApiResult], None],
    *,
    cursor: str | None = None,
    interval: float = 1.0,
    trailing: float = TRAILING_LINES_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Hand every page with lines to ``on_page`` as they arrive, polling each
    ``interval`` seconds from the last cursor, until the job has ended and its
    trailing lines are in; returns the job as ``GET /api/admin/jobs/{id}`` gives it."""
    ended_at: float | None = None
    job: dict[str, Any] = {}
    while True:
        result = read_page(api, job_id, log_filter, cursor)
        items = result.data["items"]
        if items:
            on_page(result)
            cursor = result.data["nextCursor"] or cursor
        if len(items) >= log_filter.limit:
            continue  # more is waiting already
        if ended_at is None:
            job = api.get_job(job_id, log_filter.tenant).data
            if job["status"] in TERMINAL:
                ended_at = clock()
        elif not items and clock() - ended_at >= trailing:
            return job
        sleep(interval)
