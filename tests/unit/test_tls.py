"""The local CA and its server certificate: contents, reuse, re-issue, and a real handshake."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.lan import tls
from pplex_desktop.gateway.server import GatewayRunner

LAN_V4 = ipaddress.ip_address("192.168.77.20")
LAN_V6 = ipaddress.ip_address("fd00:77::20")
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _names(*ips: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tls.LocalNames:
    return tls.local_names("deskbox", ips)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_certificate_covers_loopback_and_lan_addresses(tmp_path: Path) -> None:
    info = tls.ensure_local_certificates(tmp_path, _names(LAN_V4, LAN_V6), now=NOW)
    leaf = _cert(info.cert_path)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "deskbox", "deskbox.local"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        LAN_V4,
        LAN_V6,
    }
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert leaf.not_valid_before_utc <= NOW < leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc - NOW <= dt.timedelta(days=398)

    ca = _cert(tmp_path / tls.CA_CERT)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is True
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign
    assert ca.not_valid_after_utc - NOW > dt.timedelta(days=3000)
    leaf.verify_directly_issued_by(ca)
    assert info.ca_der == ca.public_bytes(serialization.Encoding.DER)
    assert info.fingerprint_sha256 == tls.fingerprint(ca)
    assert len(info.fingerprint_sha256.split(":")) == 32


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=NOW)
    for name in (tls.CA_KEY, tls.SERVER_KEY):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_certificates_are_reused_across_restarts(tmp_path: Path) -> None:
    first = tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=NOW)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    later = tls.ensure_local_certificates(
        tmp_path, _names(LAN_V4), now=NOW + dt.timedelta(days=100)
    )
    assert later.fingerprint_sha256 == first.fingerprint_sha256
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_a_new_address_reissues_the_leaf_but_keeps_the_ca(tmp_path: Path) -> None:
    first = tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=NOW)
    ca_before = (tmp_path / tls.CA_CERT).read_bytes()
    leaf_before = (tmp_path / tls.SERVER_CERT).read_bytes()
    moved = ipaddress.ip_address("10.1.2.3")
    second = tls.ensure_local_certificates(tmp_path, _names(moved), now=NOW)
    assert (tmp_path / tls.CA_CERT).read_bytes() == ca_before
    assert second.fingerprint_sha256 == first.fingerprint_sha256
    assert (tmp_path / tls.SERVER_CERT).read_bytes() != leaf_before
    san = _cert(second.cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert moved in san.value.get_values_for_type(x509.IPAddress)
    assert LAN_V4 not in san.value.get_values_for_type(x509.IPAddress)


def test_a_leaf_near_expiry_is_reissued(tmp_path: Path) -> None:
    tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=NOW)
    before = _cert(tmp_path / tls.SERVER_CERT)
    near = before.not_valid_after_utc - dt.timedelta(days=10)
    tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=near)
    after = _cert(tmp_path / tls.SERVER_CERT)
    assert after.serial_number != before.serial_number
    assert after.not_valid_after_utc > before.not_valid_after_utc


def test_a_damaged_key_file_is_replaced(tmp_path: Path) -> None:
    tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=NOW)
    (tmp_path / tls.SERVER_KEY).write_text("not a key")
    info = tls.ensure_local_certificates(tmp_path, _names(LAN_V4), now=NOW)
    info.server_context()  # loads: the pair was re-issued, not left broken


def test_local_names_come_from_the_interfaces() -> None:
    names = tls.local_names()
    assert names.dns[0] == "localhost"
    assert socket.gethostname().lower() in names.dns
    assert ipaddress.ip_address("127.0.0.1") in names.ips
    assert ipaddress.ip_address("::1") in names.ips
    for ip in tls.lan_ips():
        assert ip in names.ips
        assert not ip.is_loopback and not ip.is_link_local


def test_lan_urls_put_private_ipv4_first() -> None:
    urls = tls.lan_urls(8443, ips=[LAN_V6, ipaddress.ip_address("8.8.4.4"), LAN_V4])
    assert urls == [
        "https://192.168.77.20:8443",
        "https://8.8.4.4:8443",
        "https://[fd00:77::20]:8443",
    ]


def test_a_supplied_certificate_that_does_not_load_is_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("garbage")
    (tmp_path / "key.pem").write_text("garbage")
    with pytest.raises(ConfigError, match="cannot be read as a PEM certificate"):
        tls.supplied_certificate(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    made = tls.ensure_local_certificates(tmp_path / "made", _names(LAN_V4), now=NOW)
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        # The CA's own certificate with the leaf's key: a mismatched pair.
        tls.supplied_certificate(str(tmp_path / "made" / tls.CA_CERT), str(made.key_path))


def _handshake(port: int, server_name: str, cafile: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))  # trusts only the generated CA
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as conn,
    ):
        conn.sendall(
            f"GET /healthz HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


# The refused handshake below is logged as an ERROR by asyncio's debug mode, which the test
# run turns on (tests/loop_debug.py): "Error on transport creation for incoming connection".
@pytest.mark.expect_error_logs
async def test_gateway_serves_https_trusted_through_the_generated_ca(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite3")
    settings = Settings(
        host="127.0.0.1",
        port=0,
        serve_lan=True,
        lan_host="127.0.0.1",
        lan_port=0,
        backends=(BackendConfig("ws://127.0.0.1:9"),),
    )
    runner = GatewayRunner(settings, store, tls_folder=tmp_path / "tls")
    try:
        plain = await runner.start()
        assert runner.lan_address is not None and runner.tls is not None
        assert plain.url.startswith("http://127.0.0.1:") and not plain.tls
        assert runner.lan_address.tls and runner.lan_address.url.startswith("https://")
        for name in ("127.0.0.1", "localhost"):
            reply = await asyncio.to_thread(
                _handshake, runner.lan_address.port, name, tmp_path / "tls" / tls.CA_CERT
            )
            assert reply.startswith(b"HTTP/1.1 200"), reply[:80]
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(
                _handshake,
                runner.lan_address.port,
                "not-this-host.example",
                tmp_path / "tls" / tls.CA_CERT,
            )
        fingerprint = runner.tls.fingerprint_sha256
    finally:
        await runner.stop()
    # A restart serves the same CA: phones that trusted it keep working.
    runner = GatewayRunner(settings, store, tls_folder=tmp_path / "tls")
    try:
        await runner.start()
        assert runner.tls is not None and runner.tls.fingerprint_sha256 == fingerprint
    finally:
        await runner.stop()
        store.close()


def test_plain_http_stays_on_loopback_when_the_lan_is_served() -> None:
    from pplex_desktop.gateway.server import plain_host

    lan = Settings(host="0.0.0.0", serve_lan=True)
    assert plain_host(lan) == "127.0.0.1"
    assert plain_host(lan.replace(host="::1")) == "::1"
    assert plain_host(lan.replace(host="localhost")) == "localhost"
    assert plain_host(lan.replace(serve_lan=False)) == "0.0.0.0"
