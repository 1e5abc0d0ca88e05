"""Hub clients for tests: the real ``@microsoft/signalr`` client in a Node process."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

CLIENT_DIR = Path(__file__).with_name("hub_client")


def require_node_client() -> None:
    if not (CLIENT_DIR / "node_modules" / "@microsoft" / "signalr").is_dir():
        pytest.fail("run `npm ci --prefix tests/hub_client` (scripts/test.sh does)")


class HubClient:
    """``node client.mjs``: prints each event it receives as a JSON line."""

    def __init__(
        self, api_url: str, secret: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        """``env``: the Node process's whole environment (default: ours)."""
        require_node_client()
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self._process = subprocess.Popen(
            ["node", str(CLIENT_DIR / "client.mjs"), f"{api_url}/hubs/job-status", secret, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        with self._process.stdout as out:
            for line in out:
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    self.lines.put({"output": line.rstrip()})

    def next(self, timeout: float) -> dict[str, Any]:
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the hub client printed nothing for {timeout}s; got {self.received}")
        self.received.append(item)
        return item

    def wait_for(self, key: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            item = self.next(max(0.1, deadline - time.monotonic()))
            if key in item:
                return item

    def events(self, target: str | None = None) -> list[dict[str, Any]]:
        """What it received so far (without waiting)."""
        while True:
            try:
                self.received.append(self.lines.get_nowait())
            except queue.Empty:
                break
        return [
            r for r in self.received if "target" in r and (target is None or r["target"] == target)
        ]

    def event(self, target: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        """The first event for ``target`` whose arguments start with ``match['args']``."""
        prefix = match.get("args", [])
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(target):
                if e["arguments"][: len(prefix)] == prefix:
                    return e
            if time.monotonic() > deadline:
                pytest.fail(f"no {target} {prefix} within {timeout}s; got {self.received}")
            time.sleep(0.1)

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=5)
