"""What every command shares: the API client, and domain errors turned into exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from rich.markup import escape

from b2c_monitoring.cli import output
from b2c_monitoring.cli.client import ApiClient, discover
from b2c_monitoring.errors import ApiError, ApiUnreachable, B2CError

P = ParamSpec("P")
R = TypeVar("R")

_HINTS = {
    401: "the token is missing, unknown or revoked; set B2C_TOKEN or run 'b2c stack up' for a local one",
    403: "your token's role does not allow this; ask an admin for an operator or admin token",
    404: "check the id or name; what belongs to tenants outside your token's scope is not visible to it",
}


# ``b2c --ca-cert FILE ...`` (or B2C_CA_CERT), set by main.py's callback before any command
ca_cert_option: ContextVar[Path | None] = ContextVar("ca_cert_option", default=None)


def api_client() -> ApiClient:
    target = discover(ca_file=ca_cert_option.get())
    return ApiClient(target.url, target.token, ca_file=target.ca_file)


@contextmanager
def when_missing(what: str, next_step: str) -> Iterator[None]:
    """A 404 inside the block names what was not found and what to do instead of the
    general hint, e.g. ``when_missing(f"job {job_id}", "`b2c jobs list` shows ...")``."""
    try:
        yield
    except ApiError as exc:
        if exc.status == 404:
            exc.hint = f"{escape(what)} not found in your tenants; {next_step}"
        raise


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """The CLI's edge: a domain error becomes a message, a hint and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ApiUnreachable as exc:
            output.fail(exc.message, exc.hint)
            raise typer.Exit(code=3) from exc
        except ApiError as exc:
            output.fail(exc.message, exc.hint or _HINTS.get(exc.status))
            raise typer.Exit(code=1) from exc
        except B2CError as exc:
            output.fail(exc.message)
            raise typer.Exit(code=1) from exc

    return wrapper
