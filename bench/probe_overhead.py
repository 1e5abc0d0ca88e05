"""CPU and memory the probes cost their host: processes with and without probes.

Starts one child process per profile, side by side, for ``--seconds`` (after a
warm-up), and reads each child's CPU time and resident memory from outside:

- ``bare``: an idle Python, nothing imported;
- ``imported``: the probes library and the OpenTelemetry SDK imported, no probes;
- ``configured``: ``configure()`` called (the job reporting's export threads), no probes;
- ``probes-1s``: three service checks (HTTP, TCP, PostgreSQL ``SELECT 1``), two
  health checks and the resource probe, every second, exporting to the collector;
- ``probes-default``: the same at the library's default intervals (services 30 s,
  health and resources 15 s).

The targets (an HTTP server, its TCP port) run in this process, so their work is
not counted in the children; the PostgreSQL check uses ``--postgres`` (the test
stack's by default) and is left out when that does not answer.

    uv run python bench/probe_overhead.py [--seconds 30] [--endpoint http://127.0.0.1:5317]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil

PROFILES = ("bare", "imported", "configured", "probes-1s", "probes-default")
WARM_UP_S = 5.0


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def child(profile: str, endpoint: str, http_url: str, tcp: str, postgres: str | None) -> None:
    """The measured process: set up its profile, say so, then idle until killed."""
    if profile != "bare":
        from b2c_monitoring.probes import CheckSpec, HealthCheckResult, configure

    if profile == "configured":
        configure(endpoint, service_name="bench-host")
    if profile.startswith("probes"):
        from b2c_monitoring.probes._health import DEFAULT_HEALTH_EVERY_S
        from b2c_monitoring.probes._resources import DEFAULT_RESOURCES_EVERY_S
        from b2c_monitoring.probes._services import DEFAULT_SERVICE_EVERY_S

        fast = profile == "probes-1s"
        service_s = 1.0 if fast else DEFAULT_SERVICE_EVERY_S
        health_s = 1.0 if fast else DEFAULT_HEALTH_EVERY_S
        resources_s = 1.0 if fast else DEFAULT_RESOURCES_EVERY_S
        probes = configure(endpoint, service_name="bench-host")
        probes.watch_service("bench-http", "ERP", CheckSpec("http", http_url), service_s)
        probes.watch_service("bench-tcp", "Other", CheckSpec("tcp", tcp), service_s)
        if postgres is not None:
            probes.watch_service("bench-db", "Database", CheckSpec("postgres", postgres), service_s)
        probes.health_check("catalog", lambda: HealthCheckResult.healthy("ok"), health_s)
        probes.health_check("search", lambda: HealthCheckResult.degraded("lagging"), health_s)
        probes.watch_resources(every_s=resources_s)
    print("ready", flush=True)
    threading.Event().wait()


@dataclass(frozen=True)
class Figures:
    profile: str
    cpu_percent: float  # of one core
    rss_mib: float
    peak_rss_mib: float


def measure(seconds: float, endpoint: str, postgres: str | None) -> list[Figures]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    args = [endpoint, f"http://127.0.0.1:{port}/health", f"127.0.0.1:{port}", postgres or ""]
    children = {
        profile: subprocess.Popen(
            [sys.executable, __file__, "--child", profile, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        for profile in PROFILES
    }
    try:
        for popen in children.values():
            assert popen.stdout is not None
            if popen.stdout.readline().strip() != "ready":
                raise SystemExit("a child did not start")
        time.sleep(WARM_UP_S)
        processes = {name: psutil.Process(p.pid) for name, p in children.items()}
        start_cpu = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
        peak = dict.fromkeys(processes, 0)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            for name, process in processes.items():
                peak[name] = max(peak[name], process.memory_info().rss)
        elapsed = time.monotonic() - started
        return [
            Figures(
                profile=name,
                cpu_percent=100 * (sum(process.cpu_times()[:2]) - start_cpu[name]) / elapsed,
                rss_mib=process.memory_info().rss / 2**20,
                peak_rss_mib=peak[name] / 2**20,
            )
            for name, process in processes.items()
        ]
    finally:
        for popen in children.values():
            popen.kill()
            popen.wait()
        server.shutdown()


def postgres_answers(conninfo: str) -> bool:
    from b2c_monitoring.checks import CheckSpec, run_check

    return run_check(CheckSpec("postgres", conninfo, timeout_s=2)).up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--endpoint", default="http://127.0.0.1:5317")
    parser.add_argument("--postgres", default="postgresql://b2c@127.0.0.1:6433/b2c")
    parser.add_argument("--child", choices=PROFILES, help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoint, http_url, tcp, postgres = args.child_args
        child(args.child, endpoint, http_url, tcp, postgres or None)
        return

    postgres = args.postgres if postgres_answers(args.postgres) else None
    print(
        f"{args.seconds:.0f} s after {WARM_UP_S:.0f} s warm-up; collector {args.endpoint}; "
        f"postgres check {'on' if postgres else 'off (no answer)'}"
    )
    figures = measure(args.seconds, args.endpoint, postgres)
    bare = next(f for f in figures if f.profile == "bare")
    imported = next(f for f in figures if f.profile == "imported")
    print(
        f"{'profile':16} {'CPU % of a core':>16} {'RSS MiB':>9} {'peak MiB':>9} {'vs imported':>12}"
    )
    for f in figures:
        versus = (
            f"+{f.rss_mib - imported.rss_mib:.1f} MiB" if f.profile.startswith("probes") else ""
        )
        print(
            f"{f.profile:16} {f.cpu_percent:16.2f} {f.rss_mib:9.1f} {f.peak_rss_mib:9.1f} {versus:>12}"
        )
    print(
        f"importing the library costs {imported.rss_mib - bare.rss_mib:.1f} MiB over a bare Python"
    )


if __name__ == "__main__":
    main()
