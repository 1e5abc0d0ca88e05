"""When a token may be used, and for which services (pure: the clock is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from b2c_monitoring.auth import Principal, Role, TokenState, check_usable, token_state
from b2c_monitoring.errors import Forbidden, Unauthenticated
from b2c_monitoring.hub.connection import next_check_in

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_a_token_is_expired_from_the_instant_of_its_expiry_on() -> None:
    assert token_state(None, None, T) is TokenState.ACTIVE
    assert token_state(None, T + SECOND, T) is TokenState.ACTIVE
    assert token_state(None, T, T) is TokenState.EXPIRED
    assert token_state(None, T - SECOND, T) is TokenState.EXPIRED


def test_revocation_wins_over_expiry() -> None:
    assert token_state(T - SECOND, T - 2 * SECOND, T) is TokenState.REVOKED
    assert token_state(T - SECOND, T + SECOND, T) is TokenState.REVOKED


def test_an_expired_token_is_refused_saying_when_and_a_revoked_one_as_if_unknown() -> None:
    check_usable("ci", None, T + SECOND, T)
    with pytest.raises(Unauthenticated, match=r"'ci' expired at 2026-11-28T12:00:00\+00:00"):
        check_usable("ci", None, T, T)
    with pytest.raises(Unauthenticated) as revoked:
        check_usable("ci", T - SECOND, None, T)
    assert revoked.value.message == "the token is unknown or revoked"


def test_a_token_bound_to_services_acts_for_those_only() -> None:
    anywhere = Principal("1", "runner", Role.PROBE, ("acme",))
    bound = Principal("2", "erp-runner", Role.PROBE, ("acme",), services=("erp", "pim"))
    anywhere.require_service("crm")
    bound.require_service("erp")
    with pytest.raises(Forbidden, match="only for the services erp, pim, not for 'crm'"):
        bound.require_service("crm")


def test_the_hub_looks_at_a_token_again_at_its_expiry_when_that_comes_first() -> None:
    assert next_check_in(T, None, 60.0) == 60.0
    assert next_check_in(T, T + timedelta(minutes=5), 60.0) == 60.0
    assert next_check_in(T, T + 2.5 * SECOND, 60.0) == 2.5
    assert next_check_in(T, T - SECOND, 60.0) == 0.0
