"""Who may do what: roles and tenant scopes of admin API tokens (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from b2c_monitoring.errors import Forbidden


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


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: Role
    tenants: tuple[str, ...] | None  # None: every tenant

    def require(self, role: Role) -> None:
        if not self.role.allows(role):
            raise Forbidden(
                f"this action needs the {role.value} role; the token {self.name!r} is {self.role.value}"
            )

    def sees(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants

    def scope(self, requested: Sequence[str] | None = None) -> list[str] | None:
        """The tenants a query may read: the requested ones within the token's scope."""
        if not requested:
            return None if self.tenants is None else list(self.tenants)
        return [t for t in requested if self.sees(t)]
