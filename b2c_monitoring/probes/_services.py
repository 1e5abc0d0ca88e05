"""Connected-service checks as contract metrics (``Probes.watch_service``).

Each round checks the service once (``b2c_monitoring.checks.run_check`` for an
http / tcp / postgres ``CheckSpec``, or the host's own callable) and reports
``connected_service.up`` (1 up or degraded, 0 down) and, when the service answered,
``connected_service.check.duration``. A service that did not answer has no latency:
the monitor averages latencies, and a timeout is not one.

A failed check is also a ``connected_service.communication_error`` log record, when
the failure starts or changes and then every few minutes while it lasts, so the
service's error log says why it is down without one record per round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from opentelemetry.util.types import AnyValue

from b2c_monitoring import contract as c
from b2c_monitoring.checks import (
    CheckResult,
    CheckSpec,
    answered,
    describe_error,
    failed,
    run_check,
    server_address,
)
from b2c_monitoring.probes._metrics import Point
from b2c_monitoring.probes._watch import BoundedCall, Outcome, Raised, TimedOut
from b2c_monitoring.redaction import redact

CustomCheck = Callable[[], CheckResult | bool]
"""A check of the host's own: ``True``/``False``, or a full ``CheckResult``."""

DEFAULT_SERVICE_EVERY_S: Final = 30.0
DEFAULT_CUSTOM_TIMEOUT_S: Final = 5.0
# a lasting failure is logged again this often, so the error log shows it persists
ERROR_REPEAT_S: Final = 300.0
MAX_NAME_CHARS: Final = 128

_TYPES: Final = {t.lower(): t for t in c.SERVICE_TYPES}


def service_type(value: str) -> str:
    """The contract's spelling of a service type (``database`` -> ``Database``)."""
    canonical = _TYPES.get(str(value).strip().lower())
    if canonical is None:
        raise ValueError(f"service type must be one of {', '.join(c.SERVICE_TYPES)}, got {value!r}")
    return canonical


def check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise ValueError(
            f"{what} must be a non-empty string of at most {MAX_NAME_CHARS} characters"
        )
    return value


@dataclass(frozen=True)
class ServiceIdentity:
    name: str
    type: str
    address: str | None

    def attributes(self) -> dict[str, str]:
        attributes = {c.CONNECTED_SERVICE_NAME: self.name, c.CONNECTED_SERVICE_TYPE: self.type}
        if self.address:
            attributes[c.SERVER_ADDRESS] = self.address
        return attributes


def service_points(service: ServiceIdentity, result: CheckResult) -> list[Point]:
    attributes = service.attributes()
    points = [Point(c.SERVICE_UP, 1 if result.up else 0, attributes)]
    if result.latency_s is not None:
        points.append(Point(c.SERVICE_CHECK_DURATION, result.latency_s, attributes))
    return points


def custom_result(outcome: Outcome[CheckResult | bool]) -> CheckResult:
    """What the host's own check said, as a result; its failures are ``down``."""
    if isinstance(outcome, TimedOut):
        if outcome.still_running:
            return failed(f"the previous check has not returned after {outcome.seconds:g} s")
        return failed(f"no answer within {outcome.seconds:g} s")
    if isinstance(outcome, Raised):
        return failed(describe_error(outcome.error))
    value = outcome.value
    if isinstance(value, CheckResult):
        if value.error is not None:
            # the host's text may carry what it connected with
            return CheckResult(value.status, value.latency_s, failed(value.error).error)
        return value
    if value is True:
        return answered(outcome.seconds, None)
    if value is False:
        return failed("the check returned False", None)
    return failed(f"the check returned {type(value).__name__}, not a CheckResult or bool")


@dataclass(frozen=True)
class ErrorLogState:
    error: str
    at: float  # monotonic seconds


def error_to_log(
    last: ErrorLogState | None, result: CheckResult, now: float
) -> tuple[bool, ErrorLogState | None]:
    """Whether this result is logged as a communication error, and the state after it."""
    if result.up or result.error is None:
        return False, None
    if last is not None and last.error == result.error and now - last.at < ERROR_REPEAT_S:
        return False, last
    return True, ErrorLogState(result.error, now)


def error_record(
    service: ServiceIdentity, spec: CheckSpec | None, result: CheckResult
) -> tuple[str, dict[str, AnyValue]]:
    """Body and attributes of a ``connected_service.communication_error`` record."""
    attributes: dict[str, AnyValue] = {
        c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT,
        **service.attributes(),
        c.EXCEPTION_MESSAGE: result.error or "",
    }
    if spec is not None and spec.kind == "http":
        attributes[c.URL_FULL] = redact(spec.target)
    if result.latency_s is not None:
        attributes[c.COMMUNICATION_DURATION] = result.latency_s
    return f"{service.name} check failed: {result.error}", attributes


class ServiceProbe:
    """One round of ``watch_service``: check, report, maybe log the failure."""

    def __init__(
        self,
        service: ServiceIdentity,
        check: CheckSpec | CustomCheck,
        *,
        timeout_s: float,
        emit: Callable[[list[Point]], None],
        log_error: Callable[[str, dict[str, AnyValue]], None] | None,
    ) -> None:
        self.service = service
        self._spec = check if isinstance(check, CheckSpec) else None
        self._custom = (
            None if isinstance(check, CheckSpec) else BoundedCall(f"check-{service.name}", check)
        )
        self._timeout_s = timeout_s
        self._emit = emit
        self._log_error = log_error
        self._logged: ErrorLogState | None = None

    def __call__(self) -> CheckResult:
        if self._spec is not None:
            result = run_check(self._spec)
        else:
            assert self._custom is not None
            result = custom_result(self._custom(self._timeout_s))
        self._emit(service_points(self.service, result))
        if self._log_error is not None:
            log, self._logged = error_to_log(self._logged, result, time.monotonic())
            if log:
                self._log_error(*error_record(self.service, self._spec, result))
        return result


def identity(
    name: str, type_: str, check: CheckSpec | CustomCheck, address: str | None
) -> ServiceIdentity:
    return ServiceIdentity(
        name=check_name("name", name),
        type=service_type(type_),
        address=address
        if address is not None
        else (server_address(check) if isinstance(check, CheckSpec) else None),
    )
