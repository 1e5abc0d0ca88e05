"""The passwords of the stack's stores, generated once per home.

``<home>/data/stores/passwords.json`` (folder 0700, file 0600) maps a login name
(``postgres``, ``b2c``, ``b2c_api``, ..., ``es:elastic``, ``es:b2c_api``, ...) to its
password. A password is made the first time it is asked for and never changes: the
Postgres roles and Elasticsearch users are set to what this file holds at every start,
so the file is the truth, and losing it locks the stack out of its own data (the parts
say so and what to do).
"""

from __future__ import annotations

import json
import os
import secrets

from b2c_monitoring.stack.base import StackLayout, file_lock


class StackSecrets:
    def __init__(self, layout: StackLayout) -> None:
        self.path = layout.data("stores") / "passwords.json"

    def _read(self) -> dict[str, str]:
        try:
            loaded: dict[str, str] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return loaded

    def known(self, name: str) -> bool:
        return name in self._read()

    def password(self, name: str) -> str:
        """``name``'s password, made now if this home has none yet."""
        stored = self._read()
        if name in stored:
            return stored[name]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        # the Postgres and Elasticsearch parts may start in two processes at once
        with file_lock(self.path.with_suffix(".lock")):
            stored = self._read()
            if name not in stored:
                # URL-safe: the passwords go into DSNs and URLs without escaping
                stored[name] = secrets.token_urlsafe(24)
                partial = self.path.with_suffix(".partial")
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump(stored, handle, indent=2)
                partial.replace(self.path)
            return stored[name]
