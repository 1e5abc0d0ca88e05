"""The stack's private CA and server certificate, the operator's files, and the TLS
settings: pure builders with ``now`` passed in, and real files in a temporary folder."""

from __future__ import annotations

import ipaddress
import json
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from b2c_monitoring.errors import ConfigError
from b2c_monitoring.settings import load_settings
from b2c_monitoring.stack import certificates as certs
from b2c_monitoring.stack.base import Ports, StackLayout
from b2c_monitoring.stack.certificates import (
    RENEW_BEFORE,
    SERVER_VALIDITY,
    StackTls,
    check_files,
    ensure_self_signed,
    self_signed_files,
    subject_names,
)
from b2c_monitoring.tls import client_context, is_loopback, url_host

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

NO_DATABASE = "postgresql://b2c@127.0.0.1:1/b2c"  # the collector is never started


def _quiet(line: str) -> None:
    pass


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_server_certificate_names_loopback_and_the_extra_names_and_only_serves(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "tls"
    assert ensure_self_signed(folder, ["monitor.example", "10.1.2.3"], NOW, _quiet)
    files = self_signed_files(folder)
    assert files.ca_file is not None
    server, ca = _cert(files.cert_file), _cert(files.ca_file)

    assert subject_names(server) == {"localhost", "127.0.0.1", "::1", "monitor.example", "10.1.2.3"}
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
    server.verify_directly_issued_by(ca)
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    # Python's own TLS client takes the CA as it is (strict X.509 checks included)
    assert client_context(files.ca_file, setting="test").cert_store_stats()["x509_ca"] == 1


def test_validity_starts_a_little_before_now_and_never_outlives_the_ca(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, [], NOW, _quiet)
    files = self_signed_files(folder)
    assert files.ca_file is not None
    server, ca = _cert(files.cert_file), _cert(files.ca_file)
    assert server.not_valid_before_utc == NOW - certs.BACKDATE
    assert server.not_valid_after_utc == NOW + SERVER_VALIDITY
    assert ca.not_valid_after_utc == NOW + certs.CA_VALIDITY

    # made late in the CA's life (but before its renewal), it ends with the CA
    late = NOW + certs.CA_VALIDITY - certs.CA_RENEW_BEFORE - timedelta(days=1)
    ca_key = serialization.load_pem_private_key((folder / certs.CA_KEY).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    short = certs.make_server_cert(certs.new_key(), ca_key, ca, ["localhost"], late)
    assert short.not_valid_after_utc == ca.not_valid_after_utc


def test_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, [], NOW, _quiet)
    assert _mode(folder / certs.CA_KEY) == 0o600
    assert _mode(folder / certs.SERVER_KEY) == 0o600
    assert _mode(folder / certs.CA_CERT) == 0o644
    assert _mode(folder / certs.SERVER_CERT) == 0o644
    assert _mode(folder) == 0o700
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_the_files_are_made_once_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, ["monitor.example"], NOW, _quiet)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    lines: list[str] = []
    assert not ensure_self_signed(
        folder, ["monitor.example"], NOW + timedelta(days=100), lines.append
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert lines == []


def test_a_server_certificate_near_its_end_is_renewed_and_the_ca_kept(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, [], NOW, _quiet)
    files = self_signed_files(folder)
    assert files.ca_file is not None
    ca_before, server_before = files.ca_file.read_bytes(), _cert(files.cert_file)

    still_fine = server_before.not_valid_after_utc - RENEW_BEFORE - timedelta(seconds=1)
    assert not ensure_self_signed(folder, [], still_fine, _quiet)

    near_end = server_before.not_valid_after_utc - RENEW_BEFORE
    lines: list[str] = []
    assert ensure_self_signed(folder, [], near_end, lines.append)
    renewed = _cert(files.cert_file)
    assert renewed.serial_number != server_before.serial_number
    assert renewed.not_valid_after_utc == near_end + SERVER_VALIDITY
    assert files.ca_file.read_bytes() == ca_before
    renewed.verify_directly_issued_by(_cert(files.ca_file))
    assert len(lines) == 1
    assert "ends on" in lines[0]


def test_a_new_name_renews_the_server_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, [], NOW, _quiet)
    lines: list[str] = []
    assert ensure_self_signed(folder, ["Monitor.Example"], NOW, lines.append)
    assert "monitor.example" in subject_names(_cert(self_signed_files(folder).cert_file))
    assert "lacks monitor.example" in lines[0]


def test_a_ca_near_its_end_is_made_again_with_a_new_server_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, [], NOW, _quiet)
    files = self_signed_files(folder)
    assert files.ca_file is not None
    old_ca = _cert(files.ca_file)
    lines: list[str] = []
    later = old_ca.not_valid_after_utc - certs.CA_RENEW_BEFORE
    assert ensure_self_signed(folder, [], later, lines.append)
    new_ca = _cert(files.ca_file)
    assert new_ca.public_key() != old_ca.public_key()
    _cert(files.cert_file).verify_directly_issued_by(new_ca)
    assert "private CA" in lines[0]
    assert "the CA did not issue it" in lines[1]


def test_a_damaged_key_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    ensure_self_signed(folder, [], NOW, _quiet)
    (folder / certs.SERVER_KEY).write_text("not a key")
    assert ensure_self_signed(folder, [], NOW, _quiet)
    files = self_signed_files(folder)
    check_files(files.cert_file, files.key_file, files.ca_file, NOW)
    assert _mode(files.key_file) == 0o600


def test_names_that_are_neither_hosts_nor_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a host name nor an IP address"):
        ensure_self_signed(tmp_path / "tls", ["https://monitor.example"], NOW, _quiet)


# the operator's files


@pytest.fixture
def made(tmp_path: Path) -> certs.TlsFiles:
    ensure_self_signed(tmp_path / "tls", [], NOW, _quiet)
    return self_signed_files(tmp_path / "tls")


def test_operator_files_that_work_are_taken(made: certs.TlsFiles) -> None:
    leaf = check_files(made.cert_file, made.key_file, made.ca_file, NOW)
    assert "localhost" in subject_names(leaf)
    check_files(made.cert_file, made.key_file, None, NOW)  # the system's CAs: not checked


def test_a_missing_or_unreadable_file_names_its_setting(
    made: certs.TlsFiles, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigError, match=r"B2C_TLS_CERT_FILE .*nowhere.pem: cannot be read"):
        check_files(missing, made.key_file, made.ca_file, NOW)
    with pytest.raises(ConfigError, match=r"B2C_TLS_KEY_FILE .*nowhere.pem: cannot be read"):
        check_files(made.cert_file, missing, made.ca_file, NOW)
    with pytest.raises(ConfigError, match=r"B2C_TLS_CA_FILE .*nowhere.pem: cannot be read"):
        check_files(made.cert_file, made.key_file, missing, NOW)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(ConfigError, match=r"B2C_TLS_CERT_FILE .* not a PEM certificate"):
        check_files(garbage, made.key_file, made.ca_file, NOW)
    with pytest.raises(ConfigError, match=r"B2C_TLS_KEY_FILE .* not a PEM private key"):
        check_files(made.cert_file, garbage, made.ca_file, NOW)


def test_a_key_of_another_certificate_is_refused(made: certs.TlsFiles, tmp_path: Path) -> None:
    ensure_self_signed(tmp_path / "other", [], NOW, _quiet)
    other = self_signed_files(tmp_path / "other")
    with pytest.raises(ConfigError, match="is not the key of the certificate"):
        check_files(made.cert_file, other.key_file, made.ca_file, NOW)


def test_an_encrypted_key_is_refused(made: certs.TlsFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(made.key_file.read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted"):
        check_files(made.cert_file, encrypted, made.ca_file, NOW)


def test_a_certificate_out_of_its_validity_is_refused(made: certs.TlsFiles) -> None:
    with pytest.raises(ConfigError, match="expired on"):
        check_files(made.cert_file, made.key_file, made.ca_file, NOW + SERVER_VALIDITY)
    with pytest.raises(ConfigError, match="valid only from"):
        check_files(made.cert_file, made.key_file, made.ca_file, NOW - timedelta(days=1))


def test_a_ca_that_did_not_issue_the_certificate_is_refused(
    made: certs.TlsFiles, tmp_path: Path
) -> None:
    ensure_self_signed(tmp_path / "other", [], NOW, _quiet)
    other = self_signed_files(tmp_path / "other")
    with pytest.raises(ConfigError, match=r"B2C_TLS_CA_FILE .* did not issue the certificate"):
        check_files(made.cert_file, made.key_file, other.ca_file, NOW)


def test_a_chain_in_the_certificate_file_is_checked_link_by_link(
    made: certs.TlsFiles, tmp_path: Path
) -> None:
    assert made.ca_file is not None
    chained = tmp_path / "chain.pem"
    chained.write_bytes(made.cert_file.read_bytes() + made.ca_file.read_bytes())
    check_files(chained, made.key_file, made.ca_file, NOW)
    ensure_self_signed(tmp_path / "other", [], NOW, _quiet)
    other = self_signed_files(tmp_path / "other")
    assert other.ca_file is not None
    broken = tmp_path / "broken.pem"
    broken.write_bytes(made.cert_file.read_bytes() + other.ca_file.read_bytes())
    with pytest.raises(ConfigError, match="not a chain"):
        check_files(broken, made.key_file, None, NOW)


def test_stack_tls_warns_of_operator_files_near_their_end(made: certs.TlsFiles) -> None:
    tls = StackTls.from_settings(
        Path("/unused"), "files", cert_file=made.cert_file, key_file=made.key_file
    )
    lines: list[str] = []
    assert not tls.ensure(NOW + SERVER_VALIDITY - RENEW_BEFORE, lines.append)
    assert any("WARNING" in line and "ends on" in line for line in lines)
    assert tls.describe().startswith("TLS (")
    assert "system's CAs" in tls.describe()


# settings and the stack's choice


def test_the_settings_refuse_files_half_given_or_given_without_files() -> None:
    with pytest.raises(ConfigError, match="needs B2C_TLS_CERT_FILE and B2C_TLS_KEY_FILE"):
        load_settings(tls="files", tls_cert_file=Path("/c.pem"))
    # files set and B2C_TLS forgotten would serve plaintext without a word
    with pytest.raises(ConfigError, match="B2C_TLS_CERT_FILE set, but B2C_TLS is 'off'"):
        load_settings(tls_cert_file=Path("/c.pem"))
    assert load_settings().tls == "off"


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2C_TLS", "self-signed")
    monkeypatch.setenv("B2C_TLS_EXTRA_NAMES", json.dumps(["monitor.example"]))
    settings = load_settings()
    assert (settings.tls, settings.tls_extra_names) == ("self-signed", ("monitor.example",))


def test_a_stack_with_self_signed_tls_serves_https_and_tells_its_clients_the_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from b2c_monitoring.cli.client import discover
    from b2c_monitoring.stack.local import LocalStack

    monkeypatch.setenv("B2C_TLS", "self-signed")
    stack = LocalStack(StackLayout(home=tmp_path, ports=Ports(0)))
    files = self_signed_files(stack.layout.data("tls"))
    assert stack.collector.tls == files
    assert stack.api.tls == files
    endpoints = stack.collector.endpoints()
    assert endpoints["otlp_grpc"] == "https://127.0.0.1:4317"
    assert endpoints["otlp_http"] == "https://127.0.0.1:4318"
    assert endpoints["health"].startswith("http://")  # loopback only, no tenant data
    assert stack.api.endpoints()["api"] == "https://127.0.0.1:8000"
    assert stack.api.tls_env()["B2C_TLS"] == "files"
    assert stack.api.tls_env()["B2C_TLS_CA_FILE"] == str(files.ca_file)

    stack._write_credentials({"token": "secret", "probeToken": "probe-secret"})
    monkeypatch.setenv("B2C_HOME", str(tmp_path))
    target = discover()
    assert (target.url, target.token, target.ca_file) == (
        "https://127.0.0.1:8000",
        "secret",
        files.ca_file,
    )
    # another API than the stack's own is not verified with the stack's CA
    assert discover(api_url="https://monitor.example").ca_file is None
    assert discover(ca_file=Path("/given.pem")).ca_file == Path("/given.pem")


def test_the_collector_gets_the_tls_overlay_only_with_tls_on(
    tmp_path: Path, made: certs.TlsFiles
) -> None:
    from b2c_monitoring.stack.collector import Collector, render_tls_config

    overlay = json.loads(render_tls_config(made).split("\n", 1)[1])
    grpc_tls = overlay["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
    assert grpc_tls == {"cert_file": str(made.cert_file), "key_file": str(made.key_file)}
    assert overlay["receivers"]["otlp"]["protocols"]["http"]["tls"] == grpc_tls

    layout = StackLayout(home=tmp_path / "home")
    binary = tmp_path / "otelcol-b2c"
    binary.write_text("")
    on = Collector(layout, "tok", ingest_auth_dsn=NO_DATABASE, tls=made)
    on._binary = binary
    argv = on.prepare().argv
    assert argv[-2:] == ["--config", str(on.tls_config_path)]
    assert on.tls_config_path.is_file()
    off = Collector(layout, "tok", ingest_auth_dsn=NO_DATABASE)
    off._binary = binary
    assert str(off.tls_config_path) not in off.prepare().argv
    assert not off.tls_config_path.exists()  # a stale overlay is not left to mislead


def test_loopback_is_told_without_resolving_names() -> None:
    assert all(is_loopback(h) for h in ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
    assert not any(is_loopback(h) for h in ["0.0.0.0", "10.0.0.1", "monitor.example", ""])
    assert url_host("https://[::1]:4317") == "::1"
    assert url_host("collector:4317") == "collector"


def test_a_ca_file_that_is_no_ca_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"--ca-cert .*ca\.pem: not a PEM CA certificate"):
        client_context(bad, setting="--ca-cert")
    with pytest.raises(ConfigError, match="cannot be read"):
        client_context(tmp_path / "none.pem", setting="--ca-cert")
    assert isinstance(client_context(None, setting="x"), ssl.SSLContext)
