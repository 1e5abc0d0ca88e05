"""Certificates for TLS: the local stack's private CA and server certificate, and the
operator's own files, checked before anything is started with them.

``B2C_TLS=self-signed``: the stack makes a private CA (a key and a self-signed
certificate, ten years) and a server certificate it signs (``localhost``,
``127.0.0.1``, ``::1`` and ``B2C_TLS_EXTRA_NAMES``, about 13 months) in
``<home>/data/tls``, once, and keeps them. A server certificate within
:data:`RENEW_BEFORE` of its end, or without a name now asked for, or not issued by
the CA on disk, is made again at the next start; so is the CA near its own end
(clients then need the new ``ca.pem``). Keys are ECDSA P-256, written with mode 0600.

``B2C_TLS=files``: the operator's certificate (PEM, the leaf first, then any
intermediates), its key and the CA that clients trust; :func:`check_files` refuses a
file that is missing, unreadable or not PEM, a key that does not belong to the
certificate, a certificate out of its validity, and one the CA did not issue.

The certificate builders are pure (``now`` is passed in; only the keys and serial
numbers are random); reading and writing files is in :func:`ensure_self_signed` and
:func:`check_files`.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from b2c_monitoring.errors import ConfigError
from b2c_monitoring.stack.base import Progress, file_lock

TlsMode = Literal["off", "self-signed", "files"]

DEFAULT_NAMES: Final = ("localhost", "127.0.0.1", "::1")
CA_VALIDITY: Final = timedelta(days=3650)
# browsers refuse server certificates valid for longer than 398 days
SERVER_VALIDITY: Final = timedelta(days=397)
RENEW_BEFORE: Final = timedelta(days=30)
CA_RENEW_BEFORE: Final = timedelta(days=90)
# a client whose clock is a little behind still accepts a certificate made just now
BACKDATE: Final = timedelta(hours=1)

CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca-key.pem"
SERVER_CERT: Final = "server.pem"
SERVER_KEY: Final = "server-key.pem"

_KEY_MODE: Final = 0o600
_CERT_MODE: Final = 0o644


@dataclass(frozen=True)
class TlsFiles:
    """What a server is started with, and what its clients trust."""

    cert_file: Path  # PEM: the server's certificate, then any intermediates
    key_file: Path
    ca_file: Path | None  # the CA clients verify it with; None: the system's roots


def self_signed_files(folder: Path) -> TlsFiles:
    """Where :func:`ensure_self_signed` keeps its files (whether made yet or not)."""
    return TlsFiles(folder / SERVER_CERT, folder / SERVER_KEY, folder / CA_CERT)


# --------------------------------------------------------------------------------------
# pure: building and judging certificates


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not name or any(ch.isspace() or ch in "/:@" for ch in name):
        raise ConfigError(f"{name!r} is neither a host name nor an IP address")
    return x509.DNSName(name.lower())


def server_names(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The names a self-signed server certificate holds: the loopback ones first."""
    names: list[str] = []
    for name in (*DEFAULT_NAMES, *(n.strip() for n in extra)):
        canonical = _name_text(_general_name(name))
        if canonical not in names:
            names.append(canonical)
    return tuple(names)


def _name_text(general: x509.GeneralName) -> str:
    return str(general.value)  # an IP address in its canonical text ("::1", not "0::1")


def subject_names(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses of the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {_name_text(n) for n in san if isinstance(n, x509.DNSName | x509.IPAddress)}


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(
    key: ec.EllipticCurvePrivateKey, now: datetime, *, common_name: str = "b2c-monitoring local CA"
) -> x509.Certificate:
    """A self-signed CA certificate for ``key``, valid from ``now`` for CA_VALIDITY; it
    signs server certificates only (path length 0)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_server_cert(
    key: ec.EllipticCurvePrivateKey,
    ca_key: CertificateIssuerPrivateKeyTypes,
    ca_cert: x509.Certificate,
    names: Sequence[str],
    now: datetime,
) -> x509.Certificate:
    """A server certificate for ``key`` and ``names`` (host names and IP addresses),
    signed by the CA, valid from ``now`` for SERVER_VALIDITY (never past the CA's end)."""
    if not names:
        raise ConfigError("a server certificate needs at least one name")
    public = key.public_key()
    not_after = min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_matches(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
    )


def ca_renewal_due(ca_cert: x509.Certificate, ca_key: PrivateKeyTypes, now: datetime) -> str | None:
    """Why the CA must be made again, or None to keep it."""
    if not _key_matches(ca_key, ca_cert):
        return "its key does not match it"
    if now >= ca_cert.not_valid_after_utc - CA_RENEW_BEFORE:
        return f"it ends on {ca_cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def server_renewal_due(
    cert: x509.Certificate,
    key: PrivateKeyTypes,
    ca_cert: x509.Certificate,
    names: Iterable[str],
    now: datetime,
) -> str | None:
    """Why the server certificate must be made again, or None to keep it."""
    if not _key_matches(key, cert):
        return "its key does not match it"
    if not _issued_by(cert, ca_cert):
        return "the CA did not issue it"
    missing = set(names) - subject_names(cert)
    if missing:
        return f"it lacks {', '.join(sorted(missing))}"
    if now < cert.not_valid_before_utc:
        return "it is not valid yet"
    if now >= cert.not_valid_after_utc - RENEW_BEFORE:
        return f"it ends on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


# --------------------------------------------------------------------------------------
# files


def _pem_key(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, with ``mode`` from the first byte on (a key is never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, PrivateKeyTypes] | None:
    """The certificate and key we wrote before, or None if either is missing or broken."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return cert, key


def ensure_self_signed(
    folder: Path, extra_names: Iterable[str], now: datetime, progress: Progress
) -> bool:
    """The stack's private CA and server certificate in ``folder`` (at
    :func:`self_signed_files`): made if missing, made again when due (see the module's
    docstring), else kept as they are. True if anything was made."""
    names = server_names(extra_names)
    files = self_signed_files(folder)
    ca_cert_path, ca_key_path = folder / CA_CERT, folder / CA_KEY
    made = False
    with file_lock(folder / ".lock"):
        folder.chmod(0o700)
        ca = _read_pair(ca_cert_path, ca_key_path)
        reason = "none yet" if ca is None else ca_renewal_due(ca[0], ca[1], now)
        if ca is None or reason is not None:
            ca_key = new_key()
            ca_cert = make_ca(ca_key, now)
            _write(ca_key_path, _pem_key(ca_key), _KEY_MODE)
            _write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)
            progress(f"tls: made a private CA ({reason}): clients trust {ca_cert_path}")
            ca = (ca_cert, ca_key)
            made = True
        ca_cert, ca_key_any = ca
        if not isinstance(ca_key_any, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{ca_key_path}: not an ECDSA key; delete {folder} to make a new CA")

        server = _read_pair(files.cert_file, files.key_file)
        reason = "none yet" if server is None else server_renewal_due(*server, ca_cert, names, now)
        if server is None or reason is not None:
            key = new_key()
            cert = make_server_cert(key, ca_key_any, ca_cert, names, now)
            _write(files.key_file, _pem_key(key), _KEY_MODE)
            _write(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)
            progress(
                f"tls: made a server certificate for {', '.join(names)} ({reason}), "
                f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"
            )
            made = True
    return made


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting} {path}: cannot be read ({exc.strerror})") from exc


def _certificates(setting: str, path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(setting, path))
    except ValueError as exc:
        raise ConfigError(f"{setting} {path}: not a PEM certificate ({exc})") from exc
    return certs


def check_files(
    cert_file: Path, key_file: Path, ca_file: Path | None, now: datetime
) -> x509.Certificate:
    """Refuse operator-given files that cannot work (ConfigError, naming the setting
    and the file); the server certificate when they can."""
    chain = _certificates("B2C_TLS_CERT_FILE", cert_file)
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(_read("B2C_TLS_KEY_FILE", key_file), None)
    except TypeError as exc:  # encrypted: neither the collector nor uvicorn is given a passphrase
        raise ConfigError(
            f"B2C_TLS_KEY_FILE {key_file}: the key is encrypted; give it unencrypted, "
            "readable only by the stack's user (mode 0600)"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"B2C_TLS_KEY_FILE {key_file}: not a PEM private key ({exc})") from exc
    if not _key_matches(key, leaf):
        raise ConfigError(
            f"B2C_TLS_KEY_FILE {key_file} is not the key of the certificate in "
            f"B2C_TLS_CERT_FILE {cert_file}"
        )
    if now < leaf.not_valid_before_utc:
        raise ConfigError(
            f"B2C_TLS_CERT_FILE {cert_file}: valid only from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now >= leaf.not_valid_after_utc:
        raise ConfigError(
            f"B2C_TLS_CERT_FILE {cert_file}: expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    for cert, issuer in itertools.pairwise(chain):
        if not _issued_by(cert, issuer):
            raise ConfigError(
                f"B2C_TLS_CERT_FILE {cert_file}: the certificates are not a chain "
                f"({cert.subject.rfc4514_string()} is not issued by the next one)"
            )
    if ca_file is not None:
        cas = _certificates("B2C_TLS_CA_FILE", ca_file)
        top = chain[-1]
        if not any(top == ca or _issued_by(top, ca) for ca in cas):
            raise ConfigError(
                f"B2C_TLS_CA_FILE {ca_file} did not issue the certificate in "
                f"B2C_TLS_CERT_FILE {cert_file} ({top.issuer.rfc4514_string()})"
            )
    return leaf


# --------------------------------------------------------------------------------------
# the stack's choice


@dataclass(frozen=True)
class StackTls:
    """What the stack serves OTLP and the admin API with: plaintext, its own CA's
    certificate, or the operator's. ``files`` are known (paths) before they exist."""

    mode: TlsMode
    files: TlsFiles | None
    extra_names: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls,
        folder: Path,
        mode: TlsMode,
        *,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        ca_file: Path | None = None,
        extra_names: Sequence[str] = (),
    ) -> StackTls:
        """``folder``: where a self-signed CA lives (``<home>/data/tls``)."""
        if mode == "self-signed":
            return cls(mode, self_signed_files(folder), tuple(extra_names))
        if mode == "files":
            if cert_file is None or key_file is None:
                raise ConfigError("B2C_TLS=files needs B2C_TLS_CERT_FILE and B2C_TLS_KEY_FILE")
            return cls(
                mode,
                TlsFiles(cert_file.resolve(), key_file.resolve(), ca_file and ca_file.resolve()),
            )
        return cls("off", None)

    def ensure(self, now: datetime, progress: Progress) -> bool:
        """Make (self-signed) or check (files) the certificate before a part uses it;
        True if a new one was made (running servers still hold the old one)."""
        if self.mode == "self-signed" and self.files is not None:
            return ensure_self_signed(self.files.cert_file.parent, self.extra_names, now, progress)
        if self.mode == "files" and self.files is not None:
            files = self.files
            leaf = check_files(files.cert_file, files.key_file, files.ca_file, now)
            if now >= leaf.not_valid_after_utc - RENEW_BEFORE:
                progress(
                    f"tls: WARNING the certificate in {files.cert_file} ends on "
                    f"{leaf.not_valid_after_utc:%Y-%m-%d}; replace it before then"
                )
            if not subject_names(leaf) & {"localhost", "127.0.0.1"}:
                progress(
                    f"tls: the certificate in {files.cert_file} names neither localhost nor "
                    f"127.0.0.1: clients must use one of {', '.join(sorted(subject_names(leaf)))}"
                )
        return False

    def fingerprint(self) -> str:
        """What the servers were started with, to tell a change at the next start."""
        files = self.files
        paths = [] if files is None else [files.cert_file, files.key_file, files.ca_file]
        return json.dumps([self.mode, *(str(p) if p else None for p in paths)])

    def describe(self) -> str:
        """One line for people: what the endpoints speak."""
        if self.files is None:
            return "plaintext, loopback only (B2C_TLS=off)"
        trust = f"clients trust {self.files.ca_file}" if self.files.ca_file else "the system's CAs"
        source = "the stack's own CA" if self.mode == "self-signed" else str(self.files.cert_file)
        return f"TLS ({source}; {trust})"
