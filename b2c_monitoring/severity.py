"""Log levels as floors of the OpenTelemetry SeverityNumber ranges (pure, light to import)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class LogLevel(StrEnum):
    """A minimum level: ``warn`` means SeverityNumber 13 (WARN) and above."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    FATAL = "fatal"

    @property
    def min_severity(self) -> int:
        return _SEVERITY_FLOORS[self]


_SEVERITY_FLOORS: Final = {
    LogLevel.TRACE: 1,
    LogLevel.DEBUG: 5,
    LogLevel.INFO: 9,
    LogLevel.WARN: 13,
    LogLevel.ERROR: 17,
    LogLevel.FATAL: 21,
}
