"""The admin console in a real browser: Debian's Chromium driven by Playwright.

Never ``playwright install``: it downloads a browser from outside the registries.
Playwright drives ``/usr/bin/chromium`` (``B2C_CHROMIUM`` overrides it) instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect, sync_playwright

from b2c_monitoring.stack.base import repo_root

CHROMIUM = os.environ.get("B2C_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = repo_root() / "console" / "node_modules" / "axe-core" / "axe.min.js"
# what an administrator's laptop shows
VIEWPORT = {"width": 1280, "height": 800}


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def signed_in(browser: Browser, api_url: str, secret: str, path: str = "") -> Page:
    """A new browser session (its own sessionStorage) signed in with ``secret`` through
    the sign-in form, then at ``/console/<path>``."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{api_url}/console/sign-in")
    page.get_by_label("API token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
    if path:
        page.goto(f"{api_url}/console/{path}")
        expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
    return page


def mark_document(page: Page) -> None:
    """Tag the loaded document, so that :func:`same_document` tells a reload."""
    page.evaluate("window.__b2cTestMark = 'not reloaded'")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__b2cTestMark === 'not reloaded'"))


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical WCAG 2 A/AA violations of the page as shown."""
    # evaluated through the DevTools protocol: the console's policy allows no injected
    # script tag, and rightly so
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [
                {"target": n["target"], "why": n.get("failureSummary", "")} for n in v["nodes"][:5]
            ],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def screenshots_dir() -> Path:
    folder = Path(
        os.environ.get("B2C_SCREENSHOTS_DIR") or repo_root() / ".b2c-test" / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str) -> Path:
    path = screenshots_dir() / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}", flush=True)
    return path


def session_storage(page: Page) -> dict[str, str]:
    stored: dict[str, str] = json.loads(page.evaluate("JSON.stringify(sessionStorage)"))
    return stored
