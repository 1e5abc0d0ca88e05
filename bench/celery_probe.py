"""The Celery integration's cost per task: 10,000 no-op tasks run eagerly in this
process (Celery's own task machinery, prerun/success/postrun signals; no broker), with
and without ``instrument_celery``; reports go to an in-memory exporter, so the figure
is the probe's CPU and memory, not the network. Prints µs of CPU and bytes per task.

    uv run python bench/celery_probe.py [--tasks 10000]

Not measured here yet: tasks per second through a real worker (see docs/celery.md).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from celery import Celery
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.probes.celery import instrument_celery


def run(tasks: int, instrumented: bool) -> tuple[float, float]:
    app = Celery("bench", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    app.conf.task_store_eager_result = False

    @app.task  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    monitor = None
    if instrumented:
        exporter = InMemorySpanExporter()
        settings = ProbeSettings(service_name="bench", tenant_id="bench", max_queue_size=4096)
        monitor = instrument_celery(
            app,
            settings,
            keep_args=False,
            probes_factory=lambda: Probes(settings, span_exporter=exporter),
        )
    for _ in range(200):
        noop.apply()
    # CPU without tracemalloc (it slows every allocation), then memory with it
    start = time.process_time()
    for _ in range(tasks):
        noop.apply()
    cpu = time.process_time() - start
    tracemalloc.start()
    start_mem = tracemalloc.get_traced_memory()[0]
    for _ in range(tasks):
        noop.apply()
    allocated = tracemalloc.get_traced_memory()[1] - start_mem
    tracemalloc.stop()
    if monitor is not None:
        monitor.uninstall()
    return cpu / tasks * 1e6, allocated / tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    plain_us, plain_b = run(args.tasks, False)
    probe_us, probe_b = run(args.tasks, True)
    print(f"no-op task without the integration: {plain_us:.1f} us CPU, {plain_b:.0f} B peak/task")
    print(f"no-op task with the integration:    {probe_us:.1f} us CPU, {probe_b:.0f} B peak/task")
    print(
        f"the integration's cost: {probe_us - plain_us:.1f} us CPU a task "
        f"({(probe_us - plain_us) / plain_us * 100:.0f} % of the task's own)"
    )


if __name__ == "__main__":
    main()
