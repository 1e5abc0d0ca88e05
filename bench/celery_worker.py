"""Tasks per second through a real Celery worker (prefork, ``--concurrency``
children) on the stack's Redis: without instrumentation, with the integration, and with
the standard ``opentelemetry-instrumentation-celery`` for comparison (both report to the
real collector of the test stack; ``--setups`` picks). The tasks are published to a queue first; the clock runs
from the moment the worker is told to consume it (``add_consumer``) until the last task
has counted itself. Prints tasks/s and the worker's CPU (main process and children,
from /proc) per task.

    uv run python bench/celery_worker.py [--tasks 10000] [--concurrency 2] [--rounds 2] [--setups plain,b2c,otel,b2c-noop,signals]
    uv run python bench/celery_worker.py --setups plain,b2c,b2c@/path/to/old-checkout   # old and new in one run

Uses database 15 of the test stack's Redis (B2C_TEST_HOME, B2C_TEST_PORT_OFFSET).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import redis
from celery import Celery

from b2c_monitoring.stack.base import Ports

ROOT = Path(__file__).resolve().parent.parent
DATABASE = 15


def _cpu(process: psutil.Process) -> tuple[float, float]:
    """CPU-seconds of the worker's main process and of its pool children. The
    integration works in the children only (the main process publishes nothing), so
    their figure carries its cost with less of the main process' noise."""
    children = 0.0
    for p in process.children(recursive=True):
        try:
            times = p.cpu_times()
            children += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    times = process.cpu_times()
    return times.user + times.system, children


SETUPS = ("plain", "b2c", "otel", "b2c-noop", "b2c-timed", "signals")
_LABELS = {
    "plain": "without instrumentation",
    "b2c": "with the integration",
    "otel": "opentelemetry-instrumentation-celery",
    "b2c-noop": "the integration, spans dropped",
    "b2c-timed": "the integration, handlers timed",
    "signals": "no-op receivers on its signals",
}


def _label(setup: str) -> str:
    name, _, tree = setup.partition("@")
    return _LABELS[name] + (f" ({tree})" if tree else "")


def run_once(
    setup: str, tasks: int, concurrency: int, redis_url: str, otlp: str, token: str
) -> tuple[float, float, float]:
    """Tasks/s, and µs of CPU a task of the main process and of the children. A setup
    ``NAME@PATH`` runs setup NAME with the checkout at PATH (old against new)."""
    setup, _, tree = setup.partition("@")
    root = Path(tree) if tree else ROOT
    run = uuid.uuid4().hex[:8]
    queue = f"bench-{run}"
    env = {
        **os.environ,
        "B2C_BENCH_CELERY_REDIS": redis_url,
        "B2C_BENCH_CELERY_SETUP": setup,
        "B2C_BENCH_CELERY_OTLP": otlp,
        "B2C_BENCH_CELERY_TOKEN": token,
        "B2C_BENCH_CELERY_TENANT": f"bench-{run}",
        "PYTHONPATH": f"{root}{os.pathsep}{root / 'bench'}",
    }
    times = Path(tempfile.mkdtemp(prefix="b2c-bench-times-"))
    env["B2C_BENCH_CELERY_TIMES_DIR"] = str(times)
    producer = Celery(broker=redis_url)
    for _ in range(tasks):
        producer.send_task("bench.noop", args=(run,), queue=queue, ignore_result=True)
    counter = redis.Redis.from_url(redis_url)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_worker_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "-n",
            f"{queue}@%h",
            "-Q",
            f"idle-{run}",
        ],
        env=env,
        cwd=root / "bench",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not producer.control.ping(
            destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the bench worker did not start")
        process = psutil.Process(worker.pid)
        time.sleep(1.0)  # the children's imports and the probes' set-up settle
        cpu_before = _cpu(process)
        started = time.monotonic()
        producer.control.add_consumer(queue, destination=[f"{queue}@{os.uname().nodename}"])
        while int(counter.get(f"bench:done:{run}") or 0) < tasks:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        main_after, children_after = _cpu(process)
        return (
            tasks / elapsed,
            (main_after - cpu_before[0]) / tasks * 1e6,
            (children_after - cpu_before[1]) / tasks * 1e6,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        counter.delete(f"bench:done:{run}")
        for child in sorted(times.glob("*.json")):  # b2c-timed: us a task in each child
            spent = json.loads(child.read_text())
            print(
                f"  {setup}, child {child.stem}: "
                + ", ".join(f"{k} {v:.1f} us" for k, v in spent.items() if k != "tasks")
            )
        shutil.rmtree(times, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--setups", default=",".join(SETUPS), help="of: " + ", ".join(SETUPS))
    args = parser.parse_args()
    home = Path(os.environ.get("B2C_TEST_HOME") or ROOT / ".b2c-test")
    ports = Ports(int(os.environ.get("B2C_TEST_PORT_OFFSET", "1000")))
    token = json.loads((home / "credentials.json").read_text())["probeToken"]
    redis_url = f"redis://127.0.0.1:{ports.redis}/{DATABASE}"
    redis.Redis.from_url(redis_url).flushdb()
    otlp = f"http://127.0.0.1:{ports.otlp_grpc}"
    setups = args.setups.split(",")
    figures: dict[str, list[tuple[float, float, float]]] = {setup: [] for setup in setups}
    for _ in range(args.rounds):
        for setup in setups:
            figures[setup].append(
                run_once(setup, args.tasks, args.concurrency, redis_url, otlp, token)
            )
    print(f"{args.tasks} no-op tasks, prefork x{args.concurrency}, {args.rounds} rounds, medians")
    for setup in setups:
        rate = statistics.median(f[0] for f in figures[setup])
        main_us = statistics.median(f[1] for f in figures[setup])
        children_us = statistics.median(f[2] for f in figures[setup])
        print(
            f"  {_label(setup):>36}: {rate:,.0f} tasks/s, worker CPU {main_us + children_us:.0f}"
            f" us a task (main process {main_us:.0f}, pool children {children_us:.0f})"
        )
    if "plain" not in figures:
        return
    # each round's runs went back to back: differences within a round are the least
    # disturbed figures
    for setup in setups:
        if setup == "plain":
            continue
        added = [
            (with_[2] - without[2], without[1] + without[2])
            for without, with_ in zip(figures["plain"], figures[setup], strict=True)
        ]
        print(
            f"  {_label(setup)}, median over the rounds: "
            f"+{statistics.median(a[0] for a in added):.0f} us of the children's CPU a task, "
            f"{statistics.median(a[0] / a[1] for a in added) * 100:.1f} % of a no-op task's "
            "whole worker CPU without it"
        )


if __name__ == "__main__":
    main()
