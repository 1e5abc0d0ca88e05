"""The admin API client the CLI uses; httpx errors are translated here, once.

Where to reach the API: ``--api-url`` / ``--token``, else ``B2C_API_URL`` /
``B2C_TOKEN``, else the local stack's ``credentials.json`` (``B2C_HOME``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from b2c_monitoring.errors import ApiError, ApiUnreachable, ConfigError
from b2c_monitoring.stack.local import CREDENTIALS, default_home


@dataclass(frozen=True)
class ApiResult:
    """The API's answer: ``text`` exactly as received (for ``--json``), ``data`` parsed."""

    text: str
    data: Any


def discover(api_url: str | None = None, token: str | None = None) -> tuple[str, str]:
    url = api_url or os.environ.get("B2C_API_URL")
    secret = token or os.environ.get("B2C_TOKEN")
    if url is None or secret is None:
        path = default_home() / CREDENTIALS
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        url = url or stored.get("apiUrl")
        secret = secret or stored.get("token")
    if not url or not secret:
        raise ConfigError(
            "no admin API token found: start the local stack with 'b2c stack up', "
            "or set B2C_API_URL and B2C_TOKEN (tokens: 'b2c admin tokens create')"
        )
    return url.rstrip("/"), secret


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self.base_url = base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> ApiResult:
        try:
            response = self._http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body,
            )
        except httpx.TransportError as exc:
            raise ApiUnreachable(
                f"cannot reach the admin API at {self.base_url} ({exc.__class__.__name__}); "
                "is it running? 'b2c stack status' tells"
            ) from exc
        text = response.text
        try:
            data = response.json() if text else None
        except ValueError:
            data = None
        if response.is_error:
            problem = data if isinstance(data, dict) else {}
            detail = problem.get("detail") or problem.get("title") or text[:200]
            raise ApiError(
                f"{response.status_code} {detail}", status=response.status_code, problem=problem
            )
        return ApiResult(text=text, data=data)

    def get_job(self, job_id: str, tenant: str | None = None) -> ApiResult:
        return self.request("GET", f"/api/admin/jobs/{quote(job_id, safe='')}", {"tenant": tenant})
