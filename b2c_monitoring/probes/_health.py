"""Component health checks in the style of ASP.NET Core (``Probes.health_check``).

The host's function returns a ``HealthCheckResult`` (healthy / degraded / unhealthy
with a description) and is reported as ``component.health.status`` (2 / 1 / 0) with
``component.name`` and ``component.health.description``. A function that raises is
unhealthy with its message; one that overruns its timeout is unhealthy too, and is
not called again until it has returned (``BoundedCall``).

The description is a label in Prometheus and an attribute set in the SDK: it is
kept short and redacted, so a description that embeds a connection string neither
leaks it nor multiplies series without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from b2c_monitoring import contract as c
from b2c_monitoring.checks import describe_error
from b2c_monitoring.probes._metrics import Point
from b2c_monitoring.probes._watch import BoundedCall, Outcome, Raised, TimedOut
from b2c_monitoring.redaction import redact

HealthStatus = Literal["healthy", "degraded", "unhealthy"]

DEFAULT_HEALTH_EVERY_S: Final = 15.0
DEFAULT_HEALTH_TIMEOUT_S: Final = 5.0
MAX_DESCRIPTION_CHARS: Final = 256
_VALUES: Final[dict[str, int]] = {"healthy": 2, "degraded": 1, "unhealthy": 0}


@dataclass(frozen=True)
class HealthCheckResult:
    """What a health function says about its component."""

    status: HealthStatus
    description: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _VALUES:
            raise ValueError(f"status must be healthy, degraded or unhealthy, got {self.status!r}")

    @classmethod
    def healthy(cls, description: str | None = None) -> HealthCheckResult:
        return cls("healthy", description)

    @classmethod
    def degraded(cls, description: str | None = None) -> HealthCheckResult:
        return cls("degraded", description)

    @classmethod
    def unhealthy(cls, description: str | None = None) -> HealthCheckResult:
        return cls("unhealthy", description)


HealthCheck = Callable[[], HealthCheckResult | bool]
"""The host's health function: a ``HealthCheckResult``, or ``True``/``False``."""


def clean_description(text: str | None) -> str | None:
    if text is None or not str(text).strip():
        return None
    cleaned = redact(" ".join(str(text).split()))
    if len(cleaned) > MAX_DESCRIPTION_CHARS:
        cleaned = cleaned[: MAX_DESCRIPTION_CHARS - 1] + "…"
    return cleaned


def health_result(outcome: Outcome[HealthCheckResult | bool]) -> HealthCheckResult:
    """The health function's answer, or unhealthy with what went wrong."""
    if isinstance(outcome, TimedOut):
        if outcome.still_running:
            return HealthCheckResult.unhealthy(
                f"the previous health check has not returned after {outcome.seconds:g} s"
            )
        return HealthCheckResult.unhealthy(f"health check timed out after {outcome.seconds:g} s")
    if isinstance(outcome, Raised):
        return HealthCheckResult.unhealthy(describe_error(outcome.error))
    value = outcome.value
    if isinstance(value, HealthCheckResult):
        return value
    if value is True:
        return HealthCheckResult.healthy()
    if value is False:
        return HealthCheckResult.unhealthy()
    return HealthCheckResult.unhealthy(
        f"health check returned {type(value).__name__}, not a HealthCheckResult"
    )


def health_points(component: str, result: HealthCheckResult) -> list[Point]:
    attributes = {c.COMPONENT_NAME: component}
    description = clean_description(result.description)
    if description is not None:
        attributes[c.COMPONENT_HEALTH_DESCRIPTION] = description
    return [Point(c.COMPONENT_HEALTH_STATUS, _VALUES[result.status], attributes)]


class HealthProbe:
    """One round of ``health_check``: call the function (bounded), report."""

    def __init__(
        self,
        component: str,
        fn: HealthCheck,
        *,
        timeout_s: float,
        emit: Callable[[list[Point]], None],
    ) -> None:
        self.component = component
        self._call = BoundedCall(f"health-{component}", fn)
        self._timeout_s = timeout_s
        self._emit = emit

    def __call__(self) -> HealthCheckResult:
        result = health_result(self._call(self._timeout_s))
        self._emit(health_points(self.component, result))
        return result
