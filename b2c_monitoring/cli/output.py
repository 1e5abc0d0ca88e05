"""Rendering for people (tables, colour where the terminal has it) and for programs (--json)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)

STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "healthy": "green",
    "up": "green",
    "degraded": "yellow",
    "unhealthy": "bold red",
    "down": "bold red",
    "unknown": "dim",
}


def status(value: str | None) -> str:
    if value is None:
        return "-"
    style = STATUS_STYLES.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def raw_json(text: str) -> None:
    """Exactly what the API returned."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("-" if v is None else str(v) for v in row))
    console.print(t)


def fields(title: str, pairs: Sequence[tuple[str, Any]]) -> None:
    t = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key, value in pairs:
        t.add_row(key, "-" if value is None or value == "" else str(value))
    console.print(t)


def fail(message: str, hint: str | None = None) -> None:
    errors.print(f"[bold red]error:[/bold red] {message}")
    if hint:
        errors.print(f"[dim]{hint}[/dim]")
