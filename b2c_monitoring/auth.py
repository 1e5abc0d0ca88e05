"""Who may do what: roles, tenant and service scopes, and the lifetime of admin API
tokens (pure: the clock is passed in)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from b2c_monitoring.errors import Forbidden, Unauthenticated


class Role(StrEnum):
    """``viewer`` reads; ``operator`` may also retry and cancel; ``admin`` may also manage tokens.

    ``probe`` stands beside that ladder, below it: the token a service's job runner
    uses to fetch and acknowledge retry and cancel commands (``/api/probes``). It reads
    nothing of the admin API, and no other role acts as a probe, so a token embedded
    in a service can never read jobs and an operator cannot take a runner's commands.
    """

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    PROBE = "probe"

    @property
    def level(self) -> int:
        return _LEVELS[self]

    def allows(self, needed: Role) -> bool:
        """May a token of this role do what needs ``needed``?"""
        if Role.PROBE in (self, needed):
            return self is needed
        return self.level >= needed.level


_LEVELS = {Role.PROBE: -1, Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def token_state(
    revoked_at: datetime | None, expires_at: datetime | None, now: datetime
) -> TokenState:
    """Revocation wins over expiry: a revoked token never comes back by any clock."""
    if revoked_at is not None and revoked_at <= now:
        return TokenState.REVOKED
    # the instant itself is past it, so "expires at 12:00" is refused at 12:00:00
    if expires_at is not None and expires_at <= now:
        return TokenState.EXPIRED
    return TokenState.ACTIVE


def check_usable(
    name: str, revoked_at: datetime | None, expires_at: datetime | None, now: datetime
) -> None:
    """Raise ``Unauthenticated`` unless the token may be used at ``now``."""
    state = token_state(revoked_at, expires_at, now)
    if state is TokenState.REVOKED:
        # the same words as an unknown token: a guessed secret learns nothing
        raise Unauthenticated("the token is unknown or revoked")
    if state is TokenState.EXPIRED:
        assert expires_at is not None
        raise Unauthenticated(
            f"the token {name!r} expired at {expires_at.isoformat()}; ask an admin for a new one"
        )


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: Role
    tenants: tuple[str, ...] | None  # None: every tenant
    services: tuple[str, ...] | None = None  # None: any service (probe tokens only)
    expires_at: datetime | None = None  # None: never

    def require(self, role: Role) -> None:
        if not self.role.allows(role):
            raise Forbidden(
                f"this action needs the {role.value} role; the token {self.name!r} is {self.role.value}"
            )

    def serves(self, service: str) -> bool:
        return self.services is None or service in self.services

    def require_service(self, service: str) -> None:
        if not self.serves(service):
            raise Forbidden(
                f"the token {self.name!r} acts only for the services "
                f"{', '.join(self.services or ())}, not for {service!r}"
            )

    def sees(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants

    def scope(self, requested: Sequence[str] | None = None) -> list[str] | None:
        """The tenants a query may read: the requested ones within the token's scope."""
        if not requested:
            return None if self.tenants is None else list(self.tenants)
        return [t for t in requested if self.sees(t)]
