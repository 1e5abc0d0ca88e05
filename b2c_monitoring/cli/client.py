"""The admin API client the CLI uses; httpx errors are translated here, once
(``translate_errors``): every one becomes a domain error that says what to do next.

Where to reach the API: ``B2C_API_URL`` / ``B2C_TOKEN``, else the local stack's ``credentials.json`` (``B2C_HOME``).
Which CA verifies an https API: ``--ca-cert`` / ``B2C_CA_CERT``, else the stack's own CA
(``caCert`` in ``credentials.json``) when the URL is the stack's, else the system's CAs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from b2c_monitoring.errors import (
    ApiError,
    ApiGarbled,
    ApiTimeout,
    ApiUnreachable,
    ApiUntrusted,
    B2CError,
    ConfigError,
)
from b2c_monitoring.stack.local import CREDENTIALS, default_home
from b2c_monitoring.tls import client_context, untrusted_certificate

CA_SETTING = "--ca-cert / B2C_CA_CERT"
# an export or a bundle is built before it is sent: allow for it
_DOWNLOAD_TIMEOUT_S = 300.0
_CHECK_URL = (
    "check B2C_API_URL (scheme, host and port of the admin API, e.g. http://127.0.0.1:8000)"
)


@dataclass(frozen=True)
class ApiResult:
    """The API's answer: ``text`` exactly as received (for ``--json``), ``data`` parsed."""

    text: str
    data: Any


@dataclass(frozen=True)
class ApiTarget:
    url: str
    token: str
    ca_file: Path | None  # None: the system's CAs


def discover(
    api_url: str | None = None, token: str | None = None, ca_file: Path | None = None
) -> ApiTarget:
    url = api_url or os.environ.get("B2C_API_URL")
    secret = token or os.environ.get("B2C_TOKEN")
    ca = ca_file or (Path(os.environ["B2C_CA_CERT"]) if os.environ.get("B2C_CA_CERT") else None)
    path = default_home() / CREDENTIALS
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    if url is None or secret is None:
        url = url or stored.get("apiUrl")
        secret = secret or stored.get("token")
    if not url or not secret:
        raise ConfigError(
            "no admin API token found: start the local stack with 'b2c stack up', "
            "or set B2C_API_URL and B2C_TOKEN (tokens: 'b2c admin tokens create')"
        )
    url = url.rstrip("/")
    if ca is None and stored.get("caCert") and url == str(stored.get("apiUrl", "")).rstrip("/"):
        ca = Path(stored["caCert"])
    return ApiTarget(url, secret, ca)


@contextmanager
def translate_errors(base_url: str, ca_file: Path | None, timeout: float) -> Iterator[None]:
    """httpx's errors as domain errors, each saying what to do next."""
    try:
        yield
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{base_url} is no URL httpx can use ({exc}); {_CHECK_URL}") from exc
    except httpx.HTTPError as exc:
        raise _translate(base_url, ca_file, timeout, exc) from exc


def _translate(
    base_url: str, ca_file: Path | None, timeout: float, exc: httpx.HTTPError
) -> B2CError:
    kind = exc.__class__.__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ApiTimeout(
            f"no connection to the admin API at {base_url} within {timeout:g} s ({kind}); "
            "is the host right and reachable? 'b2c stack status' tells about the local stack"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeout(
            f"the admin API at {base_url} did not answer within {timeout:g} s ({kind}); "
            "it may be busy: try again, or ask for less (a shorter --since, a smaller --limit)"
        )
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigError(f"{base_url} is not an http:// or https:// URL; {_CHECK_URL}")
    if isinstance(exc, httpx.ProxyError):
        return ApiUnreachable(
            f"the proxy refused the way to the admin API at {base_url} ({exc}); "
            "check HTTPS_PROXY / HTTP_PROXY / NO_PROXY"
        )
    if isinstance(exc, httpx.ConnectError):
        return _unreachable(base_url, ca_file, exc)
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError | httpx.TooManyRedirects):
        return ApiGarbled(
            f"what answers at {base_url} does not speak the admin API's HTTP ({kind}: {exc})",
            status=0,
            hint=f"is it the admin API (https:// for a TLS one)? {_CHECK_URL}",
        )
    if isinstance(exc, httpx.TransportError):  # ReadError, WriteError: the connection broke
        return ApiUnreachable(
            f"the connection to the admin API at {base_url} broke ({kind}); try again; "
            "'b2c stack status' tells whether it runs"
        )
    # HTTPStatusError (raise_for_status, which we do not call) and what httpx adds later
    return ApiError(f"the request to the admin API at {base_url} failed ({kind}: {exc})", status=0)


def _problem(status: int, text: str) -> ApiError:
    """An error answer as ``ApiError``: the problem document's detail, else the text."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    problem = data if isinstance(data, dict) else {}
    detail = problem.get("detail") or problem.get("title") or text[:200]
    return ApiError(f"{status} {detail}", status=status, problem=problem)


def _unreachable(base_url: str, ca_file: Path | None, exc: httpx.ConnectError) -> ApiUnreachable:
    refused = untrusted_certificate(exc)
    if refused is None:
        return ApiUnreachable(
            f"cannot reach the admin API at {base_url} ({exc.__class__.__name__}); "
            "is it running? 'b2c stack status' tells"
        )
    reason = str(getattr(refused, "verify_message", None) or refused).rstrip(".")
    if "mismatch" in reason.lower():  # "Hostname mismatch", "IP address mismatch"
        return ApiUntrusted(
            f"the admin API at {base_url} presented a certificate for other names "
            f"({reason}); nothing was sent",
            hint="connect by a name the certificate holds, or add this one to it "
            "(B2C_TLS_EXTRA_NAMES for the local stack's own certificate)",
        )
    trusted = f"the CA in {ca_file}" if ca_file else "the system's CAs"
    local_ca = default_home() / "data" / "tls" / "ca.pem"
    return ApiUntrusted(
        f"the admin API at {base_url} presented a certificate that {trusted} cannot "
        f"verify ({reason}); nothing was sent",
        hint="pass the CA that issued the API's certificate: --ca-cert FILE or "
        f"B2C_CA_CERT=FILE (the local stack's own CA is {local_ca})",
    )


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            verify=client_context(ca_file, setting=CA_SETTING),
        )
        self.base_url = base_url
        self.ca_file = ca_file
        self.timeout = timeout

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> ApiResult:
        with translate_errors(self.base_url, self.ca_file, self.timeout):
            response = self._http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body,
            )
            text = response.text
        if response.is_error:
            raise _problem(response.status_code, text)
        try:
            data = response.json() if text else None
        except ValueError as exc:
            kind = response.headers.get("content-type", "no content type")
            raise ApiGarbled(
                f"{self.base_url} answered {method} {path} with {response.status_code} and "
                f"{kind}, not the admin API's JSON",
                status=response.status_code,
                hint=f"something else answers there (the console, a proxy?); {_CHECK_URL}",
            ) from exc
        return ApiResult(text=text, data=data)

    def get_job(self, job_id: str, tenant: str | None = None) -> ApiResult:
        return self.request("GET", f"/api/admin/jobs/{quote(job_id, safe='')}", {"tenant": tenant})

    def job_command(self, job_id: str, kind: str, tenant: str | None = None) -> ApiResult:
        """``kind``: ``cancel`` or ``retry``; answers the command (202)."""
        return self.request(
            "POST", f"/api/admin/jobs/{quote(job_id, safe='')}/{kind}", {"tenant": tenant}
        )

    def job_commands(self, job_id: str, tenant: str | None = None) -> ApiResult:
        """The retry and cancel commands of a job, newest first."""
        return self.request(
            "GET", f"/api/admin/jobs/{quote(job_id, safe='')}/commands", {"tenant": tenant}
        )

    def list_audit(
        self,
        *,
        tenants: Sequence[str] = (),
        actions: Sequence[str] = (),
        since: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ApiResult:
        """One page of ``GET /api/admin/audit``, newest first."""
        return self.request(
            "GET",
            "/api/admin/audit",
            {
                "tenant": list(tenants),
                "action": list(actions),
                "since": since.isoformat() if since is not None else None,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        job_type: str | None = None,
        tenants: Sequence[str] = (),
        since: datetime | None = None,
        flag: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ApiResult:
        """One page of ``GET /api/admin/jobs``; ``data["nextCursor"]`` leads to the next."""
        return self.request(
            "GET",
            "/api/admin/jobs",
            {
                "status": list(statuses),
                "jobType": job_type,
                "tenant": list(tenants),
                "since": since.isoformat() if since is not None else None,
                "flag": flag,
                "q": search,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def job_logs(
        self,
        job_id: str,
        *,
        tenant: str | None = None,
        level: str | None = None,
        search: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ApiResult:
        """One page of ``GET /api/admin/jobs/{id}/logs``, oldest first."""
        return self.request(
            "GET",
            f"/api/admin/jobs/{quote(job_id, safe='')}/logs",
            {
                "tenant": tenant,
                "level": level,
                "q": search,
                "since": since.isoformat() if since is not None else None,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def create_token(
        self,
        name: str,
        role: str,
        tenants: Sequence[str] | None,
        *,
        expires_at: datetime | None = None,
        services: Sequence[str] | None = None,
    ) -> ApiResult:
        """``tenants=None``: a token of every tenant (only an unscoped admin may);
        ``services``: the services a probe token is bound to (None: any)."""
        body: dict[str, Any] = {
            "name": name,
            "role": role,
            "tenants": list(tenants) if tenants is not None else None,
        }
        if expires_at is not None:
            body["expiresAt"] = expires_at.isoformat()
        if services is not None:
            body["services"] = list(services)
        return self.request("POST", "/api/admin/tokens", body=body)

    def list_tokens(self, *, include_revoked: bool = False) -> ApiResult:
        return self.request(
            "GET", "/api/admin/tokens", {"includeRevoked": "true" if include_revoked else None}
        )

    def revoke_token(self, token_id: str) -> ApiResult:
        return self.request("DELETE", f"/api/admin/tokens/{quote(token_id, safe='')}")

    def download(self, path: str, params: dict[str, Any], out: IO[bytes]) -> int:
        """Stream a binary answer (an export, a bundle) into ``out``; the bytes written."""
        query = {k: v for k, v in params.items() if v is not None}
        with (
            translate_errors(self.base_url, self.ca_file, _DOWNLOAD_TIMEOUT_S),
            self._http.stream("GET", path, params=query, timeout=_DOWNLOAD_TIMEOUT_S) as response,
        ):
            if response.is_error:
                response.read()
                raise _problem(response.status_code, response.text)
            written = 0
            for chunk in response.iter_bytes():
                out.write(chunk)
                written += len(chunk)
            return written
