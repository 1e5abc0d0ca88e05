"""The client side of TLS, shared by the CLI, the probes and the stack's own checks:
an SSL context that trusts a given CA, and what a refused certificate looks like.

The server side (certificates, the stack's own CA) is ``stack/certificates.py``.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from b2c_monitoring.errors import ConfigError

LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def client_context(ca_file: Path | str | None, *, setting: str) -> ssl.SSLContext:
    """Verify servers with ``ca_file`` (PEM) alone, else with the system's CAs. A file
    that cannot be read or holds no certificate is a ConfigError naming ``setting``."""
    if ca_file is None:
        return ssl.create_default_context()
    path = Path(ca_file)
    try:
        data = path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not PEM text"
        raise ConfigError(f"{setting} {path}: cannot be read ({reason})") from exc
    try:
        # with cadata the system's CAs are not loaded: a private CA is trusted alone
        return ssl.create_default_context(cadata=data)
    except ssl.SSLError as exc:
        raise ConfigError(f"{setting} {path}: not a PEM CA certificate ({exc.reason})") from exc


def read_ca(ca_file: Path | str, *, setting: str) -> bytes:
    """The bytes of a PEM CA file (for gRPC's credentials), checked as
    :func:`client_context` checks them."""
    client_context(ca_file, setting=setting)
    return Path(ca_file).read_bytes()


def untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc`` (httpx and urllib wrap it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` or a loopback name; a host name is never resolved."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str:
    """The host of ``url``, also for ``host:port`` without a scheme (gRPC endpoints)."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    return parts.hostname or ""
