"""The admin console in a real Chromium: its bundle, how soon it is usable, how fast a
job's change reaches the page, and the jobs page over 1,000,000 stored jobs.

1. Bundle: the gzipped size of the built console's scripts and styles.
2. Overview: from navigation to a usable overview (overall health shown, the hub
   live), on the running local stack, a fresh browser session each time.
3. Live: job-state spans from the probes library through the real collector and
   processor; the time from each span's end in the probe to its row turning
   ``succeeded`` in the jobs page's DOM (a MutationObserver's clock; one machine, so
   one wall clock).
4. Scale: a database of its own filled with ``--jobs`` jobs (``bench/jobs_list.py``'s
   fill), an API of its own on it serving the console; the jobs page's first rows
   after the list's answer arrived (resource timing -> first row in the DOM), and
   ``--updates`` ``JobStatusChanged`` events a minute on that page's jobs for
   ``--seconds``: whether every row shows its last update, and the page's long tasks.

    uv run b2c stack up
    uv run python bench/console.py [--jobs 1000000] [--spans 100] [--updates 1000]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import Browser, Page, sync_playwright

from b2c_monitoring.auth import Role
from b2c_monitoring.live_events import HubEvent
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.stack.console import ensure_console_build
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.stack.postgres import ROLE
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.hub_events import publish
from b2c_monitoring.storage.tokens import TokenStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobs_list

CHROMIUM = os.environ.get("B2C_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
# records when the first job row appears and when each row turns succeeded
OBSERVER = """
window.__rows = {};
window.__firstRow = null;
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push(e.duration);
}).observe({ type: "longtask", buffered: true });
const seen = (el) => {
  if (!(el instanceof Element) || el.dataset.testid !== "job-row") return;
  if (window.__firstRow === null) window.__firstRow = performance.now();
  if (el.dataset.status === "succeeded" && !(el.dataset.jobId in window.__rows))
    window.__rows[el.dataset.jobId] = Date.now();
};
new MutationObserver((records) => {
  for (const r of records) {
    seen(r.target);
    for (const n of r.addedNodes) {
      seen(n);
      if (n instanceof Element) n.querySelectorAll('[data-testid="job-row"]').forEach(seen);
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true,
                       attributeFilter: ["data-status"] });
"""


def pct(samples: list[float]) -> str:
    q = (
        statistics.quantiles(samples, n=100, method="inclusive")
        if len(samples) > 1
        else samples * 99
    )
    return f"p50 {q[49]:7.1f}  p95 {q[94]:7.1f}  max {max(samples):7.1f} ms  (n={len(samples)})"


def session(browser: Browser, secret: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    # signed in already: the token where the sign-in form puts it
    context.add_init_script(f"sessionStorage.setItem('b2c.token', {secret!r});")
    context.add_init_script(OBSERVER)
    return context.new_page()


def bundle(build: Path) -> None:
    total = 0
    for path in sorted((build / "assets").iterdir()):
        if path.suffix in (".js", ".css"):
            size = len(gzip.compress(path.read_bytes(), 9))
            total += size
            print(
                f"  {path.name:40s} {path.stat().st_size / 1024:7.1f} kB, gzipped {size / 1024:6.1f} kB"
            )
    print(f"  total gzipped: {total / 1024:.1f} kB")


def overview(browser: Browser, base: str, secret: str, runs: int) -> None:
    samples = []
    for _ in range(runs):
        page = session(browser, secret)
        started = time.perf_counter()
        page.goto(f"{base}/console/")
        page.wait_for_selector('[data-testid="overall-health"][data-status]')
        page.wait_for_selector('[data-testid="live-status"][data-state="live"]')
        samples.append((time.perf_counter() - started) * 1000)
        page.context.close()
    print(f"  navigation -> overall health shown and hub live: {pct(samples)}")


def live(browser: Browser, stack: LocalStack, base: str, secret: str, spans: int) -> None:
    tenant = f"bench-console-{uuid.uuid4().hex[:6]}"
    page = session(browser, secret)
    page.goto(f"{base}/console/jobs?tenant={tenant}")
    page.wait_for_selector('[data-testid="live-status"][data-state="live"]')
    probes = Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="bench-console",
            tenant_id=tenant,
        )
    )
    ended: dict[str, float] = {}
    try:
        for _ in range(spans):
            with probes.job_run("ERP_SYNC", tenant_id=tenant) as job:
                job.progress(50)
            ended[job.job_id] = time.time() * 1000
            time.sleep(0.25)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown: dict[str, float] = page.evaluate("window.__rows")
            if all(j in shown for j in ended):
                break
            time.sleep(0.5)
    finally:
        probes.shutdown()
    shown = page.evaluate("window.__rows")
    missing = [j for j in ended if j not in shown]
    samples = [shown[j] - ended[j] for j in ended if j in shown]
    print(f"  span end in the probe -> row succeeded in the DOM: {pct(samples)}")
    if missing:
        print(f"  NOT SHOWN within 60 s: {len(missing)} of {spans}")
    page.context.close()


def scale(
    browser: Browser,
    stack: LocalStack,
    build: Path,
    jobs: int,
    updates: int,
    seconds: int,
    keep: bool,
) -> None:
    url = stack.postgres.url_for(ROLE, jobs_list.DATABASE)
    jobs_list.prepare(stack.postgres.admin_url(), url, jobs, keep)
    pool = make_pool(url, max_size=2, name="bench-console")
    pool.open(wait=True)
    secret = TokenStore(pool).create("bench-console", Role.ADMIN, None, datetime.now(UTC))[1]
    os.environ["B2C_CONSOLE_DIR"] = str(build)
    log = stack.layout.home / "logs" / "bench-console-api.log"
    try:
        with jobs_list.api_process(url, log) as base:
            for label, query in (("tenant=bench-big", "?tenant=bench-big"), ("all tenants", "")):
                renders, totals = [], []
                for _ in range(10):
                    page = session(browser, secret)
                    started = time.perf_counter()
                    page.goto(f"{base}/console/jobs{query}")
                    page.wait_for_selector('[data-testid="job-row"]')
                    totals.append((time.perf_counter() - started) * 1000)
                    answered = page.evaluate(
                        "Math.max(...performance.getEntriesByType('resource')"
                        ".filter(e => e.name.includes('/api/admin/jobs')).map(e => e.responseEnd))"
                    )
                    renders.append(page.evaluate("window.__firstRow") - answered)
                    page.context.close()
                print(f"  {label}: list answer -> first rows in the DOM: {pct(renders)}")
                print(f"  {label}: navigation -> rows shown:             {pct(totals)}")
            page = session(browser, secret)
            page.goto(f"{base}/console/jobs?tenant=bench-big")
            page.wait_for_selector('[data-testid="live-status"][data-state="live"]')
            ids: list[str] = page.eval_on_selector_all(
                '[data-testid="job-row"]', "rows => rows.map(r => r.dataset.jobId)"
            )
            last: dict[str, int] = {}
            every = 60.0 / updates
            sent = 0
            started = time.monotonic()
            with psycopg.connect(url, autocommit=True) as conn:
                while time.monotonic() - started < seconds:
                    job_id = random.choice(ids)
                    progress = random.randint(1, 99)
                    with conn.transaction():
                        publish(
                            conn,
                            [
                                HubEvent(
                                    "bench-big",
                                    "JobStatusChanged",
                                    (job_id, "running", progress),
                                    job_id=job_id,
                                )
                            ],
                        )
                    last[job_id] = progress
                    sent += 1
                    time.sleep(max(0.0, started + sent * every - time.monotonic()))
            settled_at = time.monotonic()
            behind: list[str] = list(last)
            while behind and time.monotonic() - settled_at < 10:
                shown: dict[str, Any] = page.evaluate(
                    "Object.fromEntries([...document.querySelectorAll('[data-testid=job-row]')]"
                    ".map(r => [r.dataset.jobId, r.querySelector('[role=progressbar]')"
                    "?.getAttribute('aria-valuenow')]))"
                )
                behind = [j for j, p in last.items() if shown.get(j) != str(p)]
                time.sleep(0.1)
            caught_up = time.monotonic() - settled_at
            tasks: list[float] = page.evaluate("window.__longTasks")
            verdict = (
                f"within {caught_up:.1f} s of the last event"
                if not behind
                else f"NO: {len(behind)} rows behind"
            )
            print(
                f"  {sent} JobStatusChanged in {seconds} s ({sent * 60 / seconds:.0f}/min) on "
                f"{len(ids)} rows: every row at its last update {verdict}; "
                f"long tasks: {len(tasks)}, longest {max(tasks, default=0):.0f} ms"
            )
            page.context.close()
    finally:
        pool.close()
        if not keep:
            with psycopg.connect(stack.postgres.admin_url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{jobs_list.DATABASE}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20, help="overview loads")
    parser.add_argument("--updates", type=int, default=1000, help="live updates a minute")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the 1M database")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    if not stack.api.healthy():
        raise SystemExit("the stack is not running: 'uv run b2c stack up'")
    build = ensure_console_build(stack.layout, print)
    secret = stack.credentials()["token"]
    base = f"http://127.0.0.1:{stack.layout.ports.api}"
    print("\nbundle")
    bundle(build)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        print("\noverview")
        overview(browser, base, secret, args.runs)
        print("\nlive")
        live(browser, stack, base, secret, args.spans)
        print(f"\njobs page over {args.jobs:,} jobs")
        scale(browser, stack, build, args.jobs, args.updates, args.seconds, args.keep)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
