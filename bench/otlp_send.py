"""Prebuilt OTLP requests sent to the stack's collector at a steady pace: the one
sending loop of the throughput benches (job spans, log records, metric points, and
the mixed load of all three)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc

from b2c_monitoring.stack.local import LocalStack

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

Metadata = tuple[tuple[str, str], ...]


def target(stack: LocalStack) -> tuple[str, Metadata]:
    """The collector's OTLP/gRPC address and the probe token's header."""
    return (
        f"127.0.0.1:{stack.layout.ports.otlp_grpc}",
        (("authorization", f"Bearer {stack.probe_token}"),),
    )


def paced(
    endpoint: str,
    metadata: Metadata,
    method: str,
    requests: Sequence[bytes],
    interval: float,
    accepted: Callable[[int], None],
) -> int:
    """Send each request ``interval`` s after the last one's slot, on one channel;
    ``accepted(i)`` for each request the collector took. The number refused.

    A refused request keeps its slot: refusals must not raise the offered rate."""
    refused = 0
    next_at = time.monotonic()
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(method, None, None)
        for i, data in enumerate(requests):
            try:
                export(data, timeout=30, metadata=metadata)
            except grpc.RpcError:
                refused += 1
            else:
                accepted(i)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return refused


def in_threads(work: Callable[..., None], arguments: Iterable[tuple[Any, ...]]) -> None:
    """``work(*args)`` for each tuple, each in a thread of its own; returns when all end."""
    threads = [threading.Thread(target=work, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
