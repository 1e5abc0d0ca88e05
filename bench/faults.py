"""The fault suite's long version: each fault under steady load, with figures.

Starts a stack of its own (``--home``, ``--port-offset``; by default beside the test
stack), runs OTLP job-state load through its real collector (four reports a job, a
second apart, ``--rate`` spans a second; log records beside at ``--logs``), breaks one
part for ``--fault-seconds`` (see ``tests/fault_load.py``), keeps the load on for
``--after`` seconds, then waits until everything the collector acknowledged is
stored. Prints per fault: reports and log records sent, acknowledged, stored, lost
(acknowledged, not stored), duplicated (stored more than once), and the seconds
from the part mended to everything acknowledged stored.

    uv run python bench/faults.py --rate 2000 --fault-seconds 30
    uv run python bench/faults.py --faults kill-collector,kill-processor --keep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b2c_monitoring.stack.base import Ports, StackLayout, repo_root
from b2c_monitoring.stack.local import LocalStack
from tests.fault_load import FAULTS, run_fault


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="job-state spans a second")
    parser.add_argument("--logs", type=int, default=500, help="log records a second")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"of {', '.join(FAULTS)}")
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--fault-seconds", type=float, default=30.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--wait", type=float, default=600.0)
    parser.add_argument("--home", type=Path, default=repo_root() / ".b2c-test" / "faults-bench")
    parser.add_argument("--port-offset", type=int, default=2700)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    names = [n for n in args.faults.split(",") if n]
    unknown = set(names) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")

    stack = LocalStack(StackLayout(home=args.home, ports=Ports(args.port_offset)), fast_unsafe=True)
    stack.up(lambda line: print(f"[stack] {line}", flush=True))
    header = (
        f"{'fault':<26} {'what':<8} {'sent':>8} {'acked':>8} {'stored':>8} "
        f"{'lost':>6} {'dup':>6} {'recover s':>9}"
    )
    lines = [header]
    failed = False
    try:
        for name in names:
            print(f"[bench] {name} ...", flush=True)
            o = run_fault(
                stack,
                name,
                rate=args.rate,
                before=args.before,
                fault_seconds=args.fault_seconds,
                after=args.after,
                wait=args.wait,
                logs_per_s=args.logs,
            )
            c, ledger = o.count, o.ledger
            rows = [
                ("reports", ledger.sent_reports, c.acked_reports, c.missing_rows, c.duplicate_rows),
                ("jobs", "", c.acked_final_jobs, c.jobs_not_final, ""),
                ("logs", ledger.sent_logs, c.acked_logs, c.missing_logs, c.duplicate_logs),
            ]
            for what, sent, acked, lost, dup in rows:
                stored = acked - lost if isinstance(lost, int) else ""
                lines.append(
                    f"{name:<26} {what:<8} {sent!s:>8} {acked:>8} {stored!s:>8} "
                    f"{lost!s:>6} {dup!s:>6} {o.recover_seconds:>9.1f}"
                )
            failed = failed or not c.complete or c.duplicate_rows > 0 or c.duplicate_logs > 0
            print(lines[-3], lines[-2], lines[-1], sep="\n", flush=True)
    finally:
        if not args.keep:
            stack.down(lambda line: print(f"[stack] {line}", flush=True))
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
