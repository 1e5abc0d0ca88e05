"""Rendering for people (tables, colour where the terminal has it) and for programs (--json)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from b2c_monitoring.cli.client import ApiResult

console = Console()
errors = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly the API's JSON.")]
CursorOpt = Annotated[
    str | None, typer.Option(help="Continue from a previous page (its next-page cursor).")
]

STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "expired": "bold red",
    "healthy": "green",
    "up": "green",
    "degraded": "yellow",
    "unhealthy": "bold red",
    "down": "bold red",
    "unknown": "dim",
    "ready": "green",
    "not ready": "bold yellow",
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


def next_page(cursor: str) -> None:
    # on one line, so that it can be copied whole
    console.print(f"[dim]next page: --cursor {cursor}[/dim]", soft_wrap=True)


def listing(
    result: ApiResult,
    json: bool,
    columns: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[Any]],
    *,
    none_match: str | None = None,
) -> None:
    """A list answer (``items``, and ``nextCursor`` where the API pages): exactly the API's
    JSON, or a table of one ``row`` per item, then how to ask for the next page, or
    ``none_match`` when there is nothing to show."""
    if json:
        raw_json(result.text)
        return
    page = result.data
    table(None, columns, [row(item) for item in page["items"]])
    if page.get("nextCursor"):
        next_page(page["nextCursor"])
    elif not page["items"] and none_match is not None:
        console.print(f"[dim]{none_match}[/dim]")


def answer(result: ApiResult, json: bool, message: str) -> None:
    """What a command did: exactly the API's JSON, or one line for people."""
    if json:
        raw_json(result.text)
    else:
        console.print(message)


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
