"""Waiting for what the stack does asynchronously, without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 60, every: float = 0.25, what: str = ""
) -> T:
    """Poll ``probe`` every ``every`` seconds until it returns something; fail the test
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
