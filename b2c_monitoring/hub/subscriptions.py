"""What one hub connection receives: its token's tenants, narrowed by hub methods (pure).

A connection that narrowed nothing receives every event of its tenants. Each
``Subscribe*`` method adds a key; once any key is set, the connection receives only
the events that carry one of its keys (a job id, a service id or a job type), so a
page about one job gets that job's changes and alerts, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from b2c_monitoring.live_events import HubEvent

Key = Literal["job", "service", "jobType"]

# hub method -> (key, subscribe?)
METHODS: Final[dict[str, tuple[Key, bool]]] = {
    "SubscribeJob": ("job", True),
    "UnsubscribeJob": ("job", False),
    "SubscribeService": ("service", True),
    "UnsubscribeService": ("service", False),
    "SubscribeJobType": ("jobType", True),
    "UnsubscribeJobType": ("jobType", False),
}

# enough for a dashboard of many jobs; a bound, so one client cannot grow without end
MAX_KEYS: Final = 1000


class TooManyKeys(ValueError):
    pass


@dataclass(slots=True)
class Subscriptions:
    tenants: frozenset[str] | None  # None: every tenant (the token's scope)
    jobs: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    job_types: set[str] = field(default_factory=set)

    def change(self, key: Key, value: str, subscribe: bool) -> None:
        keys = {"job": self.jobs, "service": self.services, "jobType": self.job_types}[key]
        if not subscribe:
            keys.discard(value)
            return
        if len(self.jobs) + len(self.services) + len(self.job_types) >= MAX_KEYS:
            raise TooManyKeys(f"a connection may hold at most {MAX_KEYS} subscriptions")
        keys.add(value)

    @property
    def narrowed(self) -> bool:
        return bool(self.jobs or self.services or self.job_types)

    def wants(self, event: HubEvent) -> bool:
        if self.tenants is not None and event.tenant_id not in self.tenants:
            return False
        if not self.narrowed:
            return True
        return (
            (event.job_id is not None and event.job_id in self.jobs)
            or (event.service_id is not None and event.service_id in self.services)
            or (event.job_type is not None and event.job_type in self.job_types)
        )
