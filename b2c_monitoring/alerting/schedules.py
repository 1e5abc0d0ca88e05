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
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

# raised here: validate() and next_expected() refuse with it
from b2c_monitoring.errors import InvalidSchedule as InvalidSchedule


def _field(value: str) -> str:
    item = rf"(\*|{value}(-{value})?)(/[1-9][0-9]?)?"
    return rf"{item}(,{item})*"


_DAY_OF_MONTH = r"([1-9]|[12][0-9]|3[01])"
# a day every month has once in a while (29 February): any month may name it
_DAY_OF_EVERY_MONTH = r"([1-9]|[12][0-9])"
_MONTH = r"([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)"
_DAY_OF_WEEK = r"([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)"
CRON_PATTERN = (
    rf"^{_field(r'([0-5]?[0-9])')} {_field(r'([01]?[0-9]|2[0-3])')} "
    rf"({_field(_DAY_OF_MONTH)} \*(/[1-9][0-9]?)?|{_field(_DAY_OF_EVERY_MONTH)} {_field(_MONTH)}) "
    rf"{_field(_DAY_OF_WEEK)}$"
)
"""Five-field cron expressions ``validate`` accepts, as a regular expression for the API's
document: every one matching it has a next run (30 February has none, so a day past the
29th comes with every month, ``*``). ``validate`` also takes what croniter reads beyond it."""


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
    try:
        croniter(cron, _EPOCH).get_next(datetime)
    except CroniterBadDateError as exc:  # 30 February: valid syntax, never a run
        raise InvalidSchedule(f"{cron!r} names no date that exists", field="cron") from exc


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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
