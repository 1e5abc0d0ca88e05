"""Opaque page cursors: the sort key of a page's last item, as base64url JSON.

Clients pass ``nextCursor`` back as it is; what is inside is ours to change. Each
list checks the shape of the key it unpacks and answers anything else with
``problems.invalid_cursor`` (a 422), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue


def pack(key: Sequence[JsonValue]) -> str:
    raw = json.dumps(list(key), separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def unpack(cursor: str, length: int) -> list[Any]:
    """The key ``pack`` made, a JSON array of ``length`` items; ValueError if it is not."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError("not base64url JSON") from exc
    if not isinstance(key, list) or len(key) != length:
        raise ValueError(f"not a key of {length} items")
    return key
