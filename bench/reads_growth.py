"""Cost as the work grows: the reads of bench/reads_at_scale.py at 1x, 2x and 4x the jobs.

Fills (or, with ``--keep``, reuses) one database per size, ``b2c_bench_reads_<jobs>``,
exactly as ``bench/reads_at_scale.py`` does, times the same reads through an API
process of its own on each, and prints a table: each read's p50 and p99 at 1x and
the ratio of the larger sizes' p50 and p99 to it (1.0: the read costs the same
however many jobs are stored; 2.0 at 2x: it grows with them). The fill's seconds per
million jobs are printed too, and the job writer's CPU per report (its own and its
Postgres backend's, ``bench/job_updates.py`` on new jobs reported over time) at each
size.

    uv run python bench/reads_growth.py --home .b2c-test --port-offset 1000 \\
        [--jobs 1000000] [--factors 1 2 4] [--requests 100] [--page 200] [--keep]

The machine is shared: the sizes are measured one after the other, so compare ratios
from one run, and read the load average printed beside each size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import job_updates
import jobs_list
import reads_at_scale

from b2c_monitoring.stack.postgres import ROLE


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def table(factors: list[int], by_size: dict[int, dict[str, list[float]]]) -> list[str]:
    """The ratio table: a row per read, p50 and p99 at the first size and the ratios."""
    first, *others = factors
    head = f"{'read':52s} {'p50 1x':>7s} " + " ".join(f"{f'x{f}':>6s}" for f in others)
    head += f" {'p99 1x':>8s} " + " ".join(f"{f'x{f}':>6s}" for f in others)
    lines = [head]
    for name, base in by_size[first].items():

        def ratios(q: int, name: str = name, base: list[float] = base) -> str:
            # a deep page that a larger size does not reach (its list ended) has no figure
            return " ".join(
                f"{_p(by_size[f][name], q) / _p(base, q):6.2f}" if name in by_size[f] else "     -"
                for f in others
            )

        row = f"{name[:52]:52s} {_p(base, 50):6.1f}  {ratios(50)} {_p(base, 99):7.1f}  {ratios(99)}"
        lines.append(row)
    return lines


def write_cost(url: str, jobs: int) -> job_updates.Writer:
    """The job writer's cost per report with this database's jobs stored: spread
    reports of ``jobs`` new jobs (``bench/job_updates.py``), deleted afterwards."""
    run = f"growth{uuid.uuid4().hex[:8]}"
    lag = 30
    work = job_updates.batches(jobs, 100, lag, datetime.now(UTC) - timedelta(hours=1), run)
    try:
        return job_updates.measure(url, work, lag)
    finally:
        job_updates.remove(url, run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="the jobs at 1x")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per figure")
    parser.add_argument("--page", type=int, default=200, help="the deep page")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the databases")
    parser.add_argument(
        "--write-jobs", type=int, default=20_000, help="jobs the writer reports at each size"
    )
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = jobs_list.stack_with_postgres(args.home, args.port_offset)
    by_size: dict[int, dict[str, list[float]]] = {}
    fills: dict[int, float] = {}
    writes: dict[int, job_updates.Writer] = {}
    for factor in args.factors:
        jobs = args.jobs * factor
        database = f"b2c_bench_reads_{jobs}"
        url = stack.postgres.url_for(ROLE, database)
        print(f"\n== x{factor}: {jobs:,} jobs in {database}, load {os.getloadavg()}", flush=True)
        started = time.monotonic()
        reads_at_scale.prepare(
            stack.postgres.admin_url(), url, database, jobs, args.services, args.keep
        )
        fills[factor] = time.monotonic() - started
        try:
            by_size[factor] = reads_at_scale.reads(
                stack, url, jobs, args.requests, args.page, args.limit
            )
            writes[factor] = write_cost(url, args.write_jobs)
        finally:
            if not args.keep:
                reads_at_scale.drop(stack, database)
        print(f"   load after x{factor}: {os.getloadavg()}", flush=True)

    print(f"\nCost as the jobs stored grow ({args.jobs:,} jobs at 1x), ms and ratios to 1x")
    for line in table(args.factors, by_size):
        print(line)
    base = writes[args.factors[0]]
    print(
        f"\nwriter ({args.write_jobs:,} new jobs reported over time, 4 reports each), us per "
        "report, writer CPU + Postgres CPU: "
        + ", ".join(
            f"x{f} {1e6 * w.cpu:.1f} + {1e6 * w.postgres:.1f} "
            f"({(w.cpu + w.postgres) / (base.cpu + base.postgres):.2f})"
            for f, w in writes.items()
        )
    )
    print(
        "fill, s per million jobs (0: reused): "
        + ", ".join(f"x{f} {fills[f] * 1e6 / (args.jobs * f):.0f}" for f in args.factors)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
