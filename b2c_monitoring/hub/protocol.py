"""The ASP.NET Core SignalR JSON hub protocol, version 1, over text WebSocket frames (pure).

Every message is a JSON object followed by the record separator ``\\x1e``; one
WebSocket frame may hold several. A connection starts with the client's handshake
``{"protocol":"json","version":1}`` answered by ``{}`` (or ``{"error": ...}``). Then:

- 1 ``Invocation``: ``target`` + ``arguments``; from the client with an
  ``invocationId`` when it awaits a result (``invoke``), without one when not (``send``);
- 3 ``Completion``: the result (or ``error``) of a client's invocation;
- 6 ``Ping``: both ways, to keep the connection and detect a dead peer;
- 7 ``Close``: the end, with an ``error`` text and ``allowReconnect``.

Stream messages (2, 4, 5) are refused with a completion error: the hub has no
streaming methods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from pydantic import JsonValue

# the peer broke the protocol; the connection ends with its text (readers catch
# protocol.ProtocolError)
from b2c_monitoring.errors import ProtocolError as ProtocolError

RS: Final = "\x1e"
PROTOCOL: Final = "json"
VERSION: Final = 1

INVOCATION: Final = 1
STREAM_ITEM: Final = 2
COMPLETION: Final = 3
STREAM_INVOCATION: Final = 4
CANCEL_INVOCATION: Final = 5
PING: Final = 6
CLOSE: Final = 7

PING_FRAME: Final = json.dumps({"type": PING}) + RS
HANDSHAKE_OK: Final = "{}" + RS


def split(data: str) -> list[str]:
    """The messages of one WebSocket text frame (a frame holds whole messages)."""
    if not data.endswith(RS):
        raise ProtocolError("a message must end with the record separator 0x1e")
    return data.split(RS)[:-1]


def parse_handshake(message: str) -> str | None:
    """None if the handshake asks for JSON version 1, else the error to answer with."""
    try:
        request = json.loads(message)
    except ValueError:
        return "the handshake is not JSON"
    if not isinstance(request, dict):
        return "the handshake is not a JSON object"
    if request.get("protocol") != PROTOCOL:
        return f"Requested protocol '{request.get('protocol')}' is not available."
    if request.get("version") != VERSION:
        return (
            f"The server does not support version {request.get('version')} of the 'json' protocol."
        )
    return None


def handshake_error(error: str) -> str:
    return json.dumps({"error": error}) + RS


@dataclass(frozen=True, slots=True)
class Invocation:
    target: str
    arguments: tuple[JsonValue, ...]
    invocation_id: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Close:
    error: str | None


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A message the hub does not serve; answered with an error if it has an id."""

    kind: int
    invocation_id: str | None


Message = Invocation | Ping | Close | Unsupported


def parse(message: str) -> Message:
    try:
        body: Any = json.loads(message)
    except ValueError as exc:
        raise ProtocolError(f"a message is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("type"), int):
        raise ProtocolError("a message must be a JSON object with an integer 'type'")
    kind: int = body["type"]
    invocation_id = body.get("invocationId")
    if invocation_id is not None and not isinstance(invocation_id, str):
        raise ProtocolError("'invocationId' must be a string")
    if kind == INVOCATION:
        target, arguments = body.get("target"), body.get("arguments", [])
        if not isinstance(target, str) or not isinstance(arguments, list):
            raise ProtocolError("an invocation needs a string 'target' and an 'arguments' array")
        if body.get("streamIds"):
            return Unsupported(kind, invocation_id)
        return Invocation(target, tuple(arguments), invocation_id)
    if kind == PING:
        return Ping()
    if kind == CLOSE:
        error = body.get("error")
        return Close(error if isinstance(error, str) else None)
    return Unsupported(kind, invocation_id)


def invocation(target: str, arguments: list[JsonValue]) -> str:
    """A server-to-client invocation; no id, as the hub awaits no result."""
    return json.dumps({"type": INVOCATION, "target": target, "arguments": arguments}) + RS


def completion(invocation_id: str, result: JsonValue = None, error: str | None = None) -> str:
    body: dict[str, JsonValue] = {"type": COMPLETION, "invocationId": invocation_id}
    if error is not None:
        body["error"] = error
    elif result is not None:
        body["result"] = result
    return json.dumps(body) + RS


def close(error: str | None = None, *, allow_reconnect: bool = False) -> str:
    body: dict[str, JsonValue] = {"type": CLOSE}
    if error is not None:
        body["error"] = error
    if allow_reconnect:
        body["allowReconnect"] = True
    return json.dumps(body) + RS
