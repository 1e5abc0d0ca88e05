"""Prebuilt OTLP requests sent to the stack's collector at a steady pace: the one
sending loop of the throughput benches (job spans, log records, metric points, and
the mixed load of all three)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import grpc

from b2c_monitoring.auth import Role
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.tokens import TokenStore

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


@contextmanager
def own_tokens(stack: LocalStack, names: Sequence[str]) -> Iterator[list[Metadata]]:
    """A probe token of every tenant for each name, known to the collector, revoked at
    the end: the door's rate limit (``B2C_INGEST_RATE_PER_S``) is a token's, so kinds
    a deployment sends from different services each get a token of their own."""
    pool = make_pool(stack.postgres.url, max_size=1, name="bench-tokens")
    pool.open(wait=True)
    store = TokenStore(pool)
    made = [store.create(f"bench-{name}", Role.PROBE, None, datetime.now(UTC)) for name in names]
    try:
        endpoint = f"127.0.0.1:{stack.layout.ports.otlp_grpc}"
        tokens: list[Metadata] = [(("authorization", f"Bearer {secret}"),) for _, secret in made]
        with grpc.insecure_channel(endpoint) as channel:
            export = channel.unary_unary(TRACES, None, None)
            deadline = time.monotonic() + 30
            for metadata in tokens:
                # an empty request: the collector reads the tokens every 2 s
                while True:
                    try:
                        export(b"", timeout=5, metadata=metadata)
                        break
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                            raise
                        if time.monotonic() > deadline:
                            raise SystemExit(
                                "the collector never learned the bench's tokens"
                            ) from exc
                        time.sleep(0.5)
        yield tokens
    finally:
        for record, _ in made:
            store.revoke(str(record.id), datetime.now(UTC))
        pool.close()


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
