"""The real-time hub: how soon an event reaches clients, and with 1,000 of them.

1. Latency: job-state spans from the probes library through the real collector (its
   default batching), the processor and Postgres to a hub client: the time from each
   span's end in the probe to its ``JobStatusChanged`` at the client (p50, p95). The
   probe's own export interval is part of it (``--export-interval``).
2. Fan-out: ``--clients`` WebSocket clients on the stack's API instance, speaking the
   SignalR JSON protocol; events published into the outbox one at a time, and the time
   from each commit to its arrival at every client (p50, p95, p99).

    uv run b2c stack up
    uv run python bench/hub_latency.py --jobs 200 --clients 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

import psycopg
import websockets

from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.storage.hub_events import publish

RS = "\x1e"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(url: str, *args: str) -> websockets.ClientConnection:
    socket = await websockets.connect(url, max_queue=None, open_timeout=60)
    await socket.send(json.dumps({"protocol": "json", "version": 1}) + RS)
    assert await socket.recv() == "{}" + RS
    for i, job in enumerate(args):
        await socket.send(
            json.dumps(
                {"type": 1, "invocationId": str(i), "target": "SubscribeJob", "arguments": [job]}
            )
            + RS
        )
    return socket


async def _events(socket: websockets.ClientConnection, until: int, seen: dict[str, float]) -> None:
    """Record the arrival time of each invocation by its first argument, until ``until`` are in."""
    while len(seen) < until:
        for message in str(await socket.recv()).split(RS)[:-1]:
            body = json.loads(message)
            if body.get("type") == 1:
                seen.setdefault(f"{body['arguments'][0]}:{body['arguments'][1]}", time.time())


async def latency(stack: LocalStack, hub_url: str, jobs: int, export_interval: float) -> None:
    tenant = f"bench-hub-{uuid.uuid4().hex[:6]}"
    socket = await _client(hub_url)
    seen: dict[str, float] = {}
    ended: dict[str, float] = {}
    probes = Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="bench-hub",
            tenant_id=tenant,
            export_interval=export_interval,
        )
    )
    reader = asyncio.create_task(_events(socket, jobs, seen))

    def run_jobs() -> None:
        for _ in range(jobs):
            with probes.job_run("ERP_SYNC", tenant_id=tenant) as job:
                pass
            ended[f"{job.job_id}:succeeded"] = time.time()
            time.sleep(0.02)

    await asyncio.to_thread(run_jobs)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, 60)
    probes.shutdown()
    await socket.close()
    delays = [seen[k] - ended[k] for k in ended if k in seen]
    print(
        f"span end -> hub client ({len(delays)}/{jobs} jobs, probe export interval "
        f"{export_interval}s): p50 {_quantile(delays, 0.5) * 1000:.0f} ms, "
        f"p95 {_quantile(delays, 0.95) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    # the part after the processor: from the batch's store time to the client
    with psycopg.connect(stack.postgres.url) as conn:
        stored = {
            f"{job_id}:succeeded": at.timestamp()
            for job_id, at in conn.execute(
                "SELECT job_id, max(recorded_at) FROM job_changes WHERE tenant_id = %s "
                "AND status = 'succeeded' GROUP BY job_id",
                (tenant,),
            )
        }
    after_store = [seen[k] - stored[k] for k in stored if k in seen]
    print(
        f"  of which stored -> hub client: p50 {_quantile(after_store, 0.5) * 1000:.0f} ms, "
        f"p95 {_quantile(after_store, 0.95) * 1000:.0f} ms"
    )


async def fan_out(stack: LocalStack, hub_url: str, clients: int, events: int) -> None:
    tenant = f"bench-fan-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    sockets = []
    for i in range(0, clients, 50):
        sockets += await asyncio.gather(*(_client(hub_url) for _ in range(min(50, clients - i))))
    print(f"{clients} clients connected in {time.monotonic() - started:.1f}s")
    seen: list[dict[str, float]] = [{} for _ in sockets]
    readers = [
        asyncio.create_task(_events(s, events, d)) for s, d in zip(sockets, seen, strict=True)
    ]
    committed: dict[str, float] = {}
    with psycopg.connect(stack.postgres.url, autocommit=False) as conn:
        for n in range(events):
            key = f"fan-{n}"
            with conn.transaction():
                publish(
                    conn, [HubEvent(tenant, "JobStatusChanged", (key, "running", n), job_id=key)]
                )
            committed[f"{key}:running"] = time.time()
            await asyncio.sleep(0.1)
    _done, _ = await asyncio.wait(readers, timeout=60)
    delays = [d[k] - committed[k] for d in seen for k in d]
    print(
        f"fan-out to {clients} clients, {events} events: {len(delays)}/{clients * events} "
        f"deliveries; p50 {_quantile(delays, 0.5) * 1000:.0f} ms, "
        f"p95 {_quantile(delays, 0.95) * 1000:.0f} ms, p99 {_quantile(delays, 0.99) * 1000:.0f} ms"
    )
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--export-interval", type=float, default=0.2, help="the probe's, s")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()
    stack = LocalStack(default_layout(args.home, args.port_offset))
    token = stack.credentials()["token"]
    hub_url = f"ws://127.0.0.1:{stack.layout.ports.api}/hubs/job-status?access_token={token}"
    await latency(stack, hub_url, args.jobs, args.export_interval)
    await fan_out(stack, hub_url, args.clients, args.events)


if __name__ == "__main__":
    asyncio.run(main())
