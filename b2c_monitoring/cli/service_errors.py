"""A service's errors and error patterns for people, and their export (no Typer in here)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.markup import escape

from b2c_monitoring.cli import output
from b2c_monitoring.cli.client import ApiClient, ApiResult


def _path(service: str, tail: str) -> str:
    return f"/api/admin/services/{quote(service, safe='')}/{tail}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def fetch_errors(
    api: ApiClient, service: str, *, tenant: str | None, since: datetime | None, limit: int
) -> ApiResult:
    return api.request(
        "GET", _path(service, "errors"), {"tenant": tenant, "since": _iso(since), "limit": limit}
    )


def fetch_patterns(
    api: ApiClient, service: str, *, tenant: str | None, since: datetime | None
) -> ApiResult:
    return api.request(
        "GET", _path(service, "error-patterns"), {"tenant": tenant, "since": _iso(since)}
    )


def export_format(path: Path) -> str:
    """CSV for a ``.csv`` file, JSON otherwise."""
    return "csv" if path.suffix.lower() == ".csv" else "json"


def download(
    api: ApiClient,
    service: str,
    target: Path,
    *,
    bundle: bool,
    tenant: str | None,
    since: datetime | None,
) -> int:
    """The export (or the support bundle) into ``target``; the bytes written. A failed
    download leaves no partial file behind."""
    tail = "support-bundle" if bundle else "errors/export"
    params: dict[str, Any] = {"tenant": tenant, "since": _iso(since)}
    if not bundle:
        params["format"] = export_format(target)
    partial = target.with_name(target.name + ".part")
    try:
        with open(partial, "wb") as out:
            written = api.download(_path(service, tail), params, out)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _short(text: str | None, width: int = 100) -> str | None:
    """One line of at most ``width`` characters, shown as it is (no rich markup)."""
    if text is None:
        return None
    line = " ".join(text.split())
    return escape(line if len(line) <= width else line[: width - 1] + "…")


def show_errors(service: str, data: dict[str, Any]) -> None:
    items = data["items"]
    if not items:
        output.console.print(f"{service}: no errors in this range")
        return
    output.table(
        f"Errors of {service} (newest first)",
        ["time", "level", "kind", "job", "message"],
        [
            (
                e["time"],
                e["severityText"],
                "communication" if e["communicationError"] else "log",
                e["jobId"],
                _short(e["attributes"].get("exception.message") or e["body"]),
            )
            for e in items
        ],
    )
    if data.get("nextCursor") and len(items) > 0:
        output.console.print("[dim]more errors: narrow with --since, or use --export FILE[/dim]")


def show_patterns(service: str, data: dict[str, Any]) -> None:
    output.console.print(
        f"{service}: {data['total']} communication errors in {data['patternCount']} patterns "
        f"since {data['since']}"
    )
    output.table(
        "Error patterns (most frequent first)",
        ["count", "trend", "first seen", "last seen", "jobs", "pattern", "example"],
        [
            (
                p["count"],
                p["trend"],
                p["firstSeen"],
                p["lastSeen"],
                p["jobsAffected"],
                _short(p["pattern"], 60),
                _short(_example(p["example"]), 60),
            )
            for p in data["items"]
        ],
    )


def _example(example: dict[str, Any] | None) -> str | None:
    if example is None:
        return None
    call = " ".join(str(v) for v in (example["method"], example["url"]) if v)
    status = example["statusCode"]
    return " ".join(
        part for part in (call, str(status) if status else "", example["message"]) if part
    )
