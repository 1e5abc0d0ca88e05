"""Refusal at the edge of text no store can hold: NUL characters and lone surrogates.

Postgres refuses ``\\u0000`` in ``text`` and cannot encode a lone surrogate
(``"\\ud800"`` in JSON) as UTF-8; Elasticsearch queries carry the same strings. Before
this guard, such a character in any string reached a store and the API answered 500.

One ASGI middleware checks every string of a request before any route sees it: the
path (path parameters), every query parameter's name and value, and every key and
string of a JSON body. A per-field string type would have to be used in every model
and parameter, and a new route that forgot it would answer 500 again; the middleware
holds for routes that do not exist yet. It answers 422 ``invalid-request`` with an
``errors`` list shaped like the API's other validation errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from b2c_monitoring.api.problems import problem_response

# NUL, and the UTF-16 surrogate code points, which are never a character on their own
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")

MAX_BODY_BYTES: Final = 1024 * 1024
"""Admin API bodies are a few kilobytes (a rule, a channel, a token request); the guard
reads a JSON body whole, so it bounds it."""

_MESSAGE: Final = "contains a NUL character or a lone surrogate, which cannot be stored"


def unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def unstorable_locations(scope: Scope, body: bytes | None) -> list[str]:
    """Where a request carries text no store can hold, as ``query.tenant``,
    ``body.rules.0.name``, ``path``; empty if nowhere."""
    found: list[str] = []
    if unstorable(scope.get("path", "")):
        found.append("path")
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if unstorable(name) or unstorable(value):
            found.append(f"query.{name if not unstorable(name) else '?'}")
    if body:
        try:
            document = json.loads(body)
        except ValueError:  # not JSON (or not UTF-8): the route's own validation answers
            document = None
        found.extend(f"body.{where}" if where else "body" for where in _strings_at(document, ""))
    return found


def _strings_at(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, str):
        if unstorable(value):
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            key_where = f"{where}.{key}" if where else str(key)
            if unstorable(key):
                yield f"{where}.?" if where else "?"
            else:
                yield from _strings_at(item, key_where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings_at(item, f"{where}.{index}" if where else str(index))


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return False


class StorableTextGuard:
    """ASGI middleware: a request with unstorable text answers 422 before any route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if unstorable_locations(scope, None):
                # refused before accept: the server answers the upgrade with 403
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body: bytes | None = None
        if _is_json(scope):
            body, too_large = await _read_body(receive)
            if too_large:
                response = problem_response(
                    Request(scope),
                    413,
                    "too-large",
                    "Content too large",
                    f"a request body is at most {MAX_BODY_BYTES} bytes",
                )
                await response(scope, receive, send)
                return
            receive = _replay(body, receive)
        locations = unstorable_locations(scope, body)
        if not locations:
            await self.app(scope, receive, send)
            return
        errors = [{"location": where, "message": _MESSAGE} for where in locations]
        response = problem_response(
            Request(scope),
            422,
            "invalid-request",
            "Invalid request",
            "; ".join(f"{e['location']}: {e['message']}" for e in errors),
            errors=errors,
        )
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, server_receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read, then the server's
    own messages (a streaming response listens there for the disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await server_receive()

    return receive
