"""`b2c jobs list --since`: durations back from now, or ISO 8601 times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from b2c_monitoring.cli.jobs import parse_since

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 90m ", timedelta(minutes=90)),
    ],
)
def test_a_duration_counts_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - back


def test_an_iso_time_keeps_its_offset() -> None:
    since = parse_since("2026-11-27T08:30:00+01:00", NOW)
    assert since == datetime(2026, 11, 27, 8, 30, tzinfo=timezone(timedelta(hours=1)))


def test_an_iso_time_or_date_without_offset_is_utc() -> None:
    assert parse_since("2026-11-27T08:30:00", NOW) == datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    assert parse_since("2026-11-27", NOW) == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_since("2026-11-27T08:30:00Z", NOW) == datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "24", "h", "-3h", "1.5h", "3y", ""])
def test_anything_else_is_a_bad_parameter(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="neither a duration"):
        parse_since(text, NOW)
