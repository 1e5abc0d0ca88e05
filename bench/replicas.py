"""One processor against several, on one machine: job-state spans/s end to end and the
CPU they cost, and how long the death of a replica takes to be absorbed.

Throughput (the default): for each count in ``--processors`` (1,3,1,3: alternating,
so a shared machine's changing load touches both alike), the stack in ``--home`` is
brought to that many processor replicas (``b2c stack up --processors N``; the
collector restarts with the new target), then ``bench/stack_cpu.py`` runs
``bench/job_spans.py`` against it. The workers are shared out (3 replicas x 1 worker
against 1 x 3), so the comparison is the cost of replicas, not of more workers.

    uv run python bench/replicas.py --home .b2c-test/replicas --port-offset 4600 \\
        --processors 1,3,1,3 --seconds 20 --rate 6000 --spread

``--absorb``: with the stack's replicas, a steady load (tests/fault_load.py), then a
``kill -9`` of one replica's process group, not restarted while measuring: the
seconds until every report acknowledged before the kill is stored, and until the
backlog (acknowledged but not yet stored) is back to what it was before the kill.

    uv run python bench/replicas.py --home .b2c-test/replicas --port-offset 4600 \\
        --absorb --rate 2000
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b2c_monitoring.stack.base import Ports, StackLayout
from b2c_monitoring.stack.local import LocalStack, Replicas, stored_replicas
from tests.fault_load import ROWS, Ledger, Load, count, wait_stored

BENCH = Path(__file__).resolve().parent
_CPU_LINE = re.compile(r"^\s+(?P<label>.+?)\s+(?P<cpu>[\d.]+) CPU-s$")
_END_TO_END = re.compile(r"end-to-end: (?P<rate>[\d,]+) spans/s stored")
_SENT = re.compile(r"sent (?P<spans>\d+) spans")


def _say(line: str) -> None:
    print(f"  [stack] {line}", flush=True)


def _stack(layout: StackLayout, processors: int) -> LocalStack:
    apis = stored_replicas(layout).apis
    return LocalStack(layout, fast_unsafe=True, replicas=Replicas(processors, apis))


@dataclass(frozen=True)
class Round:
    processors: int
    spans_per_s: float
    spans: int
    cpu: dict[str, float]

    @property
    def stack_cpu(self) -> float:
        """CPU-seconds of the stack's parts (not the load generator's)."""
        return sum(v for k, v in self.cpu.items() if k != "command")

    @property
    def postgres_cpu(self) -> float:
        return sum(v for k, v in self.cpu.items() if k.startswith("postgres"))

    @property
    def us_per_span(self) -> float:
        return 1e6 * self.stack_cpu / max(self.spans, 1)


def throughput_round(layout: StackLayout, processors: int, args: argparse.Namespace) -> Round:
    stack = _stack(layout, processors)
    stack.up(lambda line: None if line.endswith(("already running", "healthy")) else _say(line))
    time.sleep(args.settle)  # the restarted collector connects to every replica
    command = [
        sys.executable,
        str(BENCH / "job_spans.py"),
        "--home",
        str(layout.home),
        "--port-offset",
        str(layout.ports.offset),
        "--seconds",
        str(args.seconds),
        "--rate",
        str(args.rate),
        *(["--spread"] if args.spread else []),
    ]
    done = subprocess.run(
        [sys.executable, str(BENCH / "stack_cpu.py"), "--home", str(layout.home), "--", *command],
        capture_output=True,
        text=True,
        check=False,
    )
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
    rate = _END_TO_END.search(done.stdout)
    sent = _SENT.search(done.stdout)
    cpu = {
        m.group("label"): float(m.group("cpu"))
        for line in done.stdout.splitlines()
        if (m := _CPU_LINE.match(line))
    }
    return Round(
        processors,
        float(rate.group("rate").replace(",", "")) if rate else 0.0,
        int(sent.group("spans")) if sent else 0,
        cpu,
    )


def throughput(layout: StackLayout, args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.processors.split(",")]
    rounds = []
    for n in counts:
        print(f"== {n} processor replica(s): {args.seconds:g} s at {args.rate:,.0f} spans/s")
        rounds.append(throughput_round(layout, n, args))
    print("\nprocessors  end-to-end spans/s  stack CPU-s  us/span  (processor workers, Postgres)")
    for r in rounds:
        print(
            f"{r.processors:10d}  {r.spans_per_s:18,.0f}  {r.stack_cpu:11.1f}  {r.us_per_span:7.1f}"
            f"  ({r.cpu.get('processor workers', 0):.1f}, {r.postgres_cpu:.1f})"
        )
    by = {n: [r for r in rounds if r.processors == n] for n in sorted(set(counts))}
    if len(by) >= 2:
        one, *others = by
        base_rate = statistics.mean(r.spans_per_s for r in by[one])
        base_cost = statistics.mean(r.us_per_span for r in by[one])
        for n in others:
            rate = statistics.mean(r.spans_per_s for r in by[n])
            cost = statistics.mean(r.us_per_span for r in by[n])
            print(
                f"{n} against {one}: throughput x{rate / base_rate:.3f}, "
                f"CPU per span x{cost / base_cost:.3f} ({100 * (cost / base_cost - 1):+.1f} %)"
            )
    print(f"machine load at the end: {os.getloadavg()[0]:.1f}")
    return 0


def _stored_rows(stack: LocalStack, tenant: str) -> int:
    with psycopg.connect(stack.postgres.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM job_changes WHERE tenant_id = %s", (tenant,)
        ).fetchone()
    return int(row[0]) if row else 0


def _backlog(stack: LocalStack, ledger: Ledger) -> int:
    with ledger.lock:
        acked = len(ledger.acked)
    return acked - _stored_rows(stack, ledger.tenant)


def absorb(layout: StackLayout, args: argparse.Namespace) -> int:
    stack = LocalStack(layout, fast_unsafe=True)
    if stack.replicas.processors < 2:
        print("--absorb needs a stack with several processor replicas", file=sys.stderr)
        return 2
    stack.up(lambda line: None)
    victim = stack.processors[-1]
    load = Load(stack, int(args.rate)).start()
    try:
        time.sleep(args.before / 2)
        backlogs = []
        for _ in range(int(args.before / 2 / 0.5)):
            backlogs.append(_backlog(stack, load.ledger))
            time.sleep(0.5)
        steady = statistics.median(backlogs)
        with load.ledger.lock:
            before_kill = Ledger(tenant=load.ledger.tenant, acked=set(load.ledger.acked))
        pid = stack.supervisor.pid(victim)
        assert pid is not None, f"{victim.name} is not running"
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        killed = time.monotonic()
        print(
            f"killed {victim.name} (pid {pid}) under {args.rate:,.0f} spans/s; backlog {steady:.0f}"
        )
        all_stored: float | None = None
        back_to_steady: float | None = None
        peak = 0
        while time.monotonic() - killed < args.after and (
            all_stored is None or back_to_steady is None
        ):
            now = time.monotonic() - killed
            backlog = _backlog(stack, load.ledger)
            peak = max(peak, backlog)
            if back_to_steady is None and now > 1 and backlog <= max(steady * 1.5, args.rate / 2):
                back_to_steady = now
            if all_stored is None and count(stack, before_kill).missing_rows == 0:
                all_stored = now
            time.sleep(0.25)
    finally:
        ledger = load.stop()
    print(f"every report acknowledged before the kill stored after: {all_stored} s")
    print(f"backlog back to its level before the kill after: {back_to_steady} s (peak {peak})")
    final, waited = wait_stored(stack, ledger, args.after)
    print(f"after the load (everything stored {waited:.1f} s after it stopped):")
    print(
        f"  {final.acked_reports} acknowledged, {final.missing_rows} missing, "
        f"{final.duplicate_rows} duplicate (rows of {len(ROWS)} reports a job)"
    )
    stack.supervisor.start(victim, _say)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port-offset", type=int, required=True)
    parser.add_argument("--processors", default="1,3,1,3", help="replica counts, in order")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=6000.0, help="offered spans/s")
    parser.add_argument("--spread", action="store_true", help="a job's reports ~1 s apart")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after a restart")
    parser.add_argument("--absorb", action="store_true", help="measure a replica's death")
    parser.add_argument("--before", type=float, default=10.0, help="--absorb: load before")
    parser.add_argument("--after", type=float, default=60.0, help="--absorb: at most after")
    args = parser.parse_args()
    layout = StackLayout(home=args.home.resolve(), ports=Ports(args.port_offset))
    return absorb(layout, args) if args.absorb else throughput(layout, args)


if __name__ == "__main__":
    sys.exit(main())
