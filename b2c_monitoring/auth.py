"""Who may do what: roles and tenant scopes of admin API tokens (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from b2c_monitoring.errors import Forbidden


class Role(StrEnum):
    """``viewer`` reads; ``operator`` may also retry and cancel; ``admin`` may also manage tokens."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def level(self) -> int:
        return _LEVELS[self]


_LEVELS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: Role
    tenants: tuple[str, ...] | None  # None: every tenant

    def require(self, role: Role) -> None:
        if self.role.level < role.level:
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
