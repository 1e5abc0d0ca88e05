"""The demo's connected services and components, with a script of what goes wrong.

Stand-ins for the enventa ERP, the Akeneo PIM and Salesforce answer HTTP on
loopback inside the demo process; ``crm-db`` is the local stack's Postgres. The
demo's connectors watch them with the probes library, exactly as a real connector
would, and report the health of the ``catalog`` and ``search`` components and
their resources. A script then makes things happen over the demo's duration:

- the ERP stops answering (its port is closed) for about 10 s, then comes back;
- the PIM answers slower than the monitor's degraded threshold for a while;
- search reports itself degraded (its index lags behind the PIM import).

While the ERP is down, ERP_SYNC jobs fail with the connection error and are retried.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from b2c_monitoring.probes import (
    CheckResult,
    CheckSpec,
    HealthCheckResult,
    PoolUsage,
    Probes,
    Watch,
)

CHECK_EVERY_S: Final = 1.0
HEALTH_EVERY_S: Final = 1.0
RESOURCES_EVERY_S: Final = 2.0
# above the monitor's default degraded threshold (2 s), below the check's timeout
PIM_SLOW_S: Final = 2.5
ERP_OUTAGE_S: Final = 10.0
CRM_POOL_MAX: Final = 10
_POLL_S: Final = 0.25


class StandIn:
    """A small HTTP service on loopback that can be slowed down, stopped and restarted
    on the same port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    @property
    def answering(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            stand_in = self

            class Handler(BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    time.sleep(stand_in.delay_s)
                    body = json.dumps({"service": stand_in.name, "status": "ok"}).encode()
                    try:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    except OSError:
                        pass  # the checker gave up waiting

                def log_message(self, format: str, *args: object) -> None:
                    pass  # the demo narrates; request lines would drown it

            # the same port again after a stop: the check's target does not move
            server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            server.daemon_threads = True
            self.port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"demo-{self.name}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Close the port: connections are refused until ``start``."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class JobLoad:
    """Jobs queued and running per job type, for the queue-depth and pool probes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._running: Counter[str] = Counter()

    def queued(self, job_type: str, delta: int) -> None:
        with self._lock:
            self._pending[job_type] += delta

    def started(self, job_type: str, delta: int) -> None:
        with self._lock:
            self._running[job_type] += delta

    def pending(self, job_type: str) -> int:
        with self._lock:
            return max(0, self._pending[job_type])

    def running(self, job_type: str) -> int:
        with self._lock:
            return max(0, self._running[job_type])


@dataclass(frozen=True)
class _Step:
    at_s: float
    action: Callable[[], None]
    says: str


def script_times(duration_s: float) -> dict[str, tuple[float, float]]:
    """When each trouble starts and ends, in seconds from the start: scaled to the
    demo's duration, the ERP outage about 10 s (shorter in a short demo)."""
    outage = min(ERP_OUTAGE_S, 0.4 * duration_s)
    erp_down = 0.2 * duration_s
    return {
        "erp_down": (erp_down, erp_down + outage),
        "search_degraded": (0.3 * duration_s, 0.7 * duration_s),
        "pim_slow": (0.4 * duration_s, 0.85 * duration_s),
    }


class DemoServices:
    """Stand-ins, probes and script of one demo run."""

    def __init__(
        self,
        probes: Mapping[str, Probes],
        *,
        duration_s: float,
        crm_db: str | None,
        load: JobLoad,
        say: Callable[[str], None],
    ) -> None:
        self._say = say
        self._stopping = threading.Event()
        self.erp = StandIn("enventa-erp")
        self.pim = StandIn("akeneo-pim")
        self.crm = StandIn("salesforce-crm")
        self._search_lag_min: int | None = None

        erp, catalog, crm = probes["erp-connector"], probes["catalog"], probes["crm-connector"]
        self.services: dict[str, Watch[CheckResult]] = {
            "enventa-erp": erp.watch_service(
                "enventa-erp", "ERP", CheckSpec("http", self.erp.url, timeout_s=1.5), CHECK_EVERY_S
            ),
            "akeneo-pim": catalog.watch_service(
                "akeneo-pim",
                "PIM",
                CheckSpec("http", self.pim.url, timeout_s=5.0, degraded_after_s=2.0),
                CHECK_EVERY_S,
            ),
            "salesforce-crm": crm.watch_service(
                "salesforce-crm",
                "CRM",
                CheckSpec("http", self.crm.url, timeout_s=1.5),
                CHECK_EVERY_S,
            ),
        }
        if crm_db is not None:
            self.services["crm-db"] = crm.watch_service(
                "crm-db", "Database", CheckSpec("postgres", crm_db, timeout_s=2.0), CHECK_EVERY_S
            )
        self.components: dict[str, Watch[HealthCheckResult]] = {
            "catalog": catalog.health_check("catalog", self._catalog_health, HEALTH_EVERY_S),
            "search": probes["search"].health_check("search", self._search_health, HEALTH_EVERY_S),
        }
        # the ERP stand-in runs in this process: its CPU, memory and threads are ours;
        # its queue is the ERP syncs waiting to start
        erp.watch_resources(
            owner="enventa-erp",
            every_s=RESOURCES_EVERY_S,
            queue_depth=lambda: load.pending("ERP_SYNC"),
        )
        # crm-db runs elsewhere: only the connector's pool to it, one connection per export
        crm.watch_resources(
            owner="crm-db",
            every_s=RESOURCES_EVERY_S,
            process=False,
            pool=lambda: _crm_pool(load.running("CRM_EXPORT")),
        )

        times = script_times(duration_s)
        self._script = sorted(
            [
                _Step(times["erp_down"][0], self.erp.stop, "enventa-erp stand-in stops answering"),
                _Step(times["erp_down"][1], self.erp.start, "enventa-erp stand-in answers again"),
                _Step(
                    times["search_degraded"][0],
                    lambda: self._set_search_lag(4),
                    "search index falls behind",
                ),
                _Step(
                    times["search_degraded"][1],
                    lambda: self._set_search_lag(None),
                    "search index caught up",
                ),
                _Step(
                    times["pim_slow"][0],
                    lambda: setattr(self.pim, "delay_s", PIM_SLOW_S),
                    f"akeneo-pim stand-in slows down to {PIM_SLOW_S:g} s",
                ),
                _Step(
                    times["pim_slow"][1],
                    lambda: setattr(self.pim, "delay_s", 0.0),
                    "akeneo-pim stand-in is fast again",
                ),
            ],
            key=lambda step: step.at_s,
        )
        self._thread = threading.Thread(target=self._run, name="demo-script", daemon=True)
        self._thread.start()

    def unavailable(self, job_type: str) -> str | None:
        """Why a job of this type cannot reach its system now, or None."""
        if job_type == "ERP_SYNC" and not self.erp.answering:
            return f"enventa ERP: connection to 127.0.0.1:{self.erp.port} refused"
        return None

    def _set_search_lag(self, minutes: int | None) -> None:
        self._search_lag_min = minutes

    def _catalog_health(self) -> HealthCheckResult:
        return HealthCheckResult.healthy("product catalog serving")

    def _search_health(self) -> HealthCheckResult:
        lag = self._search_lag_min
        if lag is None:
            return HealthCheckResult.healthy("index up to date")
        return HealthCheckResult.degraded(f"index {lag} min behind the PIM import")

    def _run(self) -> None:
        """Plays the script and narrates what the probes see change."""
        started = time.monotonic()
        steps = list(self._script)
        seen: dict[str, str] = {}
        while not self._stopping.wait(_POLL_S):
            elapsed = time.monotonic() - started
            while steps and steps[0].at_s <= elapsed:
                step = steps.pop(0)
                step.action()
                self._say(f"[script] {step.says}")
            for name, watch in self.services.items():
                last = watch.last
                if last is not None and seen.get(name) != last.status:
                    if name in seen or last.status != "up":
                        self._say(f"{name:<15} {_describe(last)}")
                    seen[name] = last.status
            for name, component in self.components.items():
                health = component.last
                if health is not None and seen.get(name) != health.status:
                    if name in seen or health.status != "healthy":
                        self._say(f"{name:<15} {health.status}: {health.description}")
                    seen[name] = health.status

    def summary(self) -> list[str]:
        lines = []
        for name, watch in self.services.items():
            last = watch.last
            lines.append(f"{name:<15} {watch.rounds} checks, last {_describe(last)}")
        for name, component in self.components.items():
            health = component.last
            status = f"{health.status}: {health.description}" if health else "not checked"
            lines.append(f"{name:<15} {component.rounds} health checks, last {status}")
        return lines

    def stop_script(self) -> None:
        self._stopping.set()
        self._thread.join(1.0)

    def close(self) -> None:
        """After the probes shut down: a stand-in closed earlier would show as an outage."""
        self.stop_script()
        for stand_in in (self.erp, self.pim, self.crm):
            stand_in.stop()


def _crm_pool(running_exports: int) -> PoolUsage:
    # the pool keeps two connections open and grows with the exports running
    used = min(CRM_POOL_MAX, running_exports)
    return PoolUsage(used=used, idle=max(2, used) - used, max=CRM_POOL_MAX)


def _describe(result: CheckResult | None) -> str:
    if result is None:
        return "not checked"
    latency = f" ({result.latency_s * 1000:.0f} ms)" if result.latency_s is not None else ""
    error = f": {result.error}" if result.error else ""
    return f"{result.status}{latency}{error}"
