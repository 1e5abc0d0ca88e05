"""Expected schedules of job types and missed runs (pure).

A schedule says when a job type of a tenant should run: a cron expression read in a
time zone, and a grace period. A run is *missed* when the latest expected time ``E``
with ``E + grace <= now`` has no run of that type whose first report is at or after
``E - grace`` (a run a little early counts). A run that arrives later resolves it.

Daylight saving time follows cron's rule (vixie cron): a time that falls in the hour
skipped in spring runs at the first valid minute after it, and a time in the hour
repeated in autumn runs once, at its first occurrence.

No clock, database or network here: ``now`` is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

# raised here: validate() and next_expected() refuse with it
from b2c_monitoring.errors import InvalidSchedule as InvalidSchedule


@dataclass(frozen=True)
class Schedule:
    job_type: str
    cron: str
    timezone: str
    grace: timedelta
    created_at: datetime  # no run is expected before the schedule existed


def validate(cron: str, timezone: str) -> None:
    """Raise ``InvalidSchedule`` naming what is wrong with ``cron`` or ``timezone``."""
    if not croniter.is_valid(cron) or len(cron.split()) != 5:
        raise InvalidSchedule(
            f"{cron!r} is not a five-field cron expression (m h dom mon dow)", field="cron"
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(
            f"{timezone!r} is not an IANA time zone (e.g. Europe/Berlin)", field="timezone"
        ) from exc


def _second_occurrence(at: datetime) -> bool:
    """Is ``at`` the repeated instance of a wall-clock time (autumn's fold)?"""
    first = at.replace(fold=0)
    return at.utcoffset() != first.utcoffset()


def next_expected(cron: str, timezone: str, after: datetime) -> datetime:
    """The first expected run strictly after ``after`` (aware), in the schedule's zone."""
    zone = ZoneInfo(timezone)
    try:
        it = croniter(cron, after.astimezone(zone))
    except CroniterBadCronError as exc:
        raise InvalidSchedule(str(exc), field="cron") from exc
    while True:
        at: datetime = it.get_next(datetime)
        if not _second_occurrence(at):
            return at


def previous_expected(cron: str, timezone: str, at_or_before: datetime) -> datetime:
    """The last expected run at or before ``at_or_before``."""
    zone = ZoneInfo(timezone)
    it = croniter(cron, (at_or_before + timedelta(microseconds=1)).astimezone(zone))
    while True:
        at: datetime = it.get_prev(datetime)
        if not _second_occurrence(at):
            return at


def missed_slot(schedule: Schedule, last_run: datetime | None, now: datetime) -> datetime | None:
    """The expected time whose run is missing at ``now``, or None."""
    slot = previous_expected(schedule.cron, schedule.timezone, now - schedule.grace)
    if slot < schedule.created_at:
        return None
    if last_run is not None and last_run >= slot - schedule.grace:
        return None
    return slot
