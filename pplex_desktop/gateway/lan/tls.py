"""HTTPS for LAN clients: the user's own certificate, or one from a local certificate authority.

Browsers only give a page the microphone on a secure origin, and a phone on the Wi-Fi reaches
the gateway by its LAN address, so the gateway needs a certificate for that address. A
self-signed leaf would have to be re-trusted on every phone whenever the address changes; a
small local CA is trusted once (``GET /ca.crt``) and its leaf is re-issued silently when the
machine's names or addresses change or the leaf nears expiry. Nothing here sends traffic: the
addresses are read from the network interfaces.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pplex_desktop.core import net
from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.fs import PRIVATE, PUBLIC, write_atomic
from pplex_desktop.core.paths import data_dir, make_private
from pplex_desktop.core.settings import Settings

_log = logging.getLogger(__name__)

IPAddress = net.IPAddress
KeyPair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
TLS_FOLDER = "tls"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CA_DAYS = 3650
# Apple refuses leaves valid for more than 825 days even from a user-trusted CA, and public
# CAs are held to 398; staying under both keeps every browser quiet.
SERVER_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)
BACKDATE = dt.timedelta(hours=1)  # tolerate a phone whose clock runs a little behind


@dataclass(frozen=True, slots=True)
class LocalNames:
    """What a client may type to reach this machine: DNS names and IP addresses."""

    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in self.dns]
        names += [x509.IPAddress(ip) for ip in self.ips]
        return names


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """The certificate the gateway serves, and what the desktop shows about it."""

    cert_path: Path
    key_path: Path
    fingerprint_sha256: str  # of the CA when generated, else of the supplied certificate
    ca_der: bytes | None  # the local CA for download; None for a supplied certificate
    names: LocalNames
    not_after: dt.datetime

    @property
    def generated(self) -> bool:
        return self.ca_der is not None

    @property
    def ca_path(self) -> Path | None:
        """The local CA's certificate file, for ``curl --cacert``; None for a supplied one."""
        return self.cert_path.parent / CA_CERT if self.generated else None

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_path, self.key_path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"The TLS certificate {self.cert_path} or its key {self.key_path} cannot be "
                f"loaded ({exc}); check that both files exist, are PEM and belong together.",
                code="invalid_tls",
            ) from None
        return context


# Where the running app keeps the LAN certificate, for /ca.crt.
LAN_TLS = web.AppKey("pplex_lan_tls", TlsInfo)


def lan_ips() -> list[IPAddress]:
    """This machine's usable LAN addresses (core/net.py, as the desktop's QR code uses)."""
    return net.lan_ips()


def local_names(hostname: str | None = None, ips: Iterable[IPAddress] | None = None) -> LocalNames:
    """Loopback names plus the host name (and its mDNS .local form) and the LAN addresses."""
    host = (hostname if hostname is not None else socket.gethostname()).strip().lower()
    dns = ["localhost"]
    if host and host != "localhost":
        dns.append(host)
        if "." not in host:
            dns.append(f"{host}.local")  # what phones resolve by Bonjour/Avahi
    found = list(lan_ips() if ips is None else ips)
    addresses: list[IPAddress] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    addresses += [ip for ip in found if ip not in addresses]
    return LocalNames(tuple(dict.fromkeys(dns)), tuple(addresses))


def lan_urls(port: int, *, tls: bool = True, ips: Iterable[IPAddress] | None = None) -> list[str]:
    """URLs a device on the network can open, private IPv4 addresses first."""
    found = lan_ips() if ips is None else net.sort_lan_ips(ips)
    return [net.host_url(str(ip), port, tls=tls) for ip in found]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate as browsers and phones display it: AB:CD:..."""
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def spki_sha256_base64(cert: x509.Certificate) -> str:
    """The public-key hash Chromium's --ignore-certificate-errors-spki-list expects."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_pair(cert_path: Path, key_path: Path) -> KeyPair | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return None
    return cert, key


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _make_ca(now: dt.datetime, hostname: str) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    # The host name in the subject tells the user which computer a trusted CA belongs to.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pplex-desktop"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"pplex-desktop local CA ({hostname})"[:64]),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
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
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_server(
    now: dt.datetime,
    names: LocalNames,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    common = names.dns[1] if len(names.dns) > 1 else names.dns[0]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
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
        .add_extension(x509.SubjectAlternativeName(names.general_names()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _sans(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[IPAddress]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    ips = (
        ip
        for ip in ext.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )
    return frozenset(ext.get_values_for_type(x509.DNSName)), frozenset(ips)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure_local_certificates(
    folder: Path, names: LocalNames | None = None, *, now: dt.datetime | None = None
) -> TlsInfo:
    """Make or reuse the local CA and a server certificate for ``names`` in ``folder``.

    The CA is made once and kept (phones trust it by its fingerprint); the server certificate
    is re-issued only when the names differ, the CA changed, or expiry is within 30 days.
    """
    names = names or local_names()
    now = now or dt.datetime.now(dt.UTC)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert_path, ca_key_path = folder / CA_CERT, folder / CA_KEY
    cert_path, key_path = folder / SERVER_CERT, folder / SERVER_KEY
    # Keys an older version or a copy left readable by others become owner-only again.
    for private in (folder, ca_key_path, key_path):
        make_private(private)

    ca = _load_pair(ca_cert_path, ca_key_path)
    if ca is None or not _fresh(ca[0], now):
        replaced = ca_cert_path.exists()
        hostname = names.dns[1] if len(names.dns) > 1 else "this computer"
        ca = _make_ca(now, hostname)
        write_atomic(ca_key_path, _key_pem(ca[1]), mode=PRIVATE)
        write_atomic(ca_cert_path, ca[0].public_bytes(serialization.Encoding.PEM), mode=PUBLIC)
        _log.info(
            "Made a %slocal certificate authority for HTTPS (fingerprint %s)%s.",
            "new " if replaced else "",
            fingerprint(ca[0]),
            "; devices that trusted the old one must trust this one" if replaced else "",
        )
    ca_cert, ca_key = ca

    leaf = _load_pair(cert_path, key_path)
    wanted = (frozenset(names.dns), frozenset(names.ips))
    if (
        leaf is None
        or not _fresh(leaf[0], now)
        or not _signed_by(leaf[0], ca_cert)
        or _sans(leaf[0]) != wanted
    ):
        leaf = _make_server(now, names, ca_cert, ca_key)
        write_atomic(key_path, _key_pem(leaf[1]), mode=PRIVATE)
        write_atomic(cert_path, leaf[0].public_bytes(serialization.Encoding.PEM), mode=PUBLIC)
        _log.info(
            "Issued a TLS certificate for %s.",
            ", ".join([*names.dns, *(str(ip) for ip in names.ips)]),
        )
    return TlsInfo(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint_sha256=fingerprint(ca_cert),
        ca_der=ca_cert.public_bytes(serialization.Encoding.DER),
        names=names,
        not_after=leaf[0].not_valid_after_utc,
    )


def _invalid(message: str) -> ConfigError:
    return ConfigError(message, code="invalid_tls")


def _spki(public_key: object) -> bytes:
    if not hasattr(public_key, "public_bytes"):
        return b""
    data: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def check_certificate_pair(
    cert_file: str, key_file: str, *, now: dt.datetime | None = None
) -> x509.Certificate:
    """The user's certificate and key, checked one fault at a time, each told as a sentence:
    a file that is missing, not PEM, a key behind a password, a key of another certificate,
    or a certificate out of its validity."""
    cert_path, key_path = Path(cert_file).expanduser(), Path(key_file).expanduser()
    for path, what in ((cert_path, "certificate"), (key_path, "key")):
        if not path.is_file():
            raise _invalid(f"The TLS {what} file {path} does not exist.")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        raise _invalid(
            f"The TLS certificate {cert_path} cannot be read as a PEM certificate; give the "
            "file that starts with -----BEGIN CERTIFICATE-----."
        ) from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except TypeError:
        raise _invalid(
            f"The TLS key {key_path} is protected by a password; the gateway needs the key "
            "without one (keep the file readable only by you)."
        ) from None
    except (OSError, ValueError):
        raise _invalid(
            f"The TLS key {key_path} cannot be read as a PEM private key; give the file that "
            "starts with -----BEGIN PRIVATE KEY----- (or EC/RSA PRIVATE KEY)."
        ) from None
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise _invalid(
            f"The TLS key {key_path} does not belong to the certificate {cert_path}; give "
            "the key the certificate was made for."
        )
    now = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        raise _invalid(
            f"The TLS certificate {cert_path} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}; browsers refuse it. Renew it, or clear "
            "both files to use the generated certificate."
        )
    if cert.not_valid_before_utc > now + BACKDATE:
        raise _invalid(
            f"The TLS certificate {cert_path} is only valid from "
            f"{cert.not_valid_before_utc:%Y-%m-%d}; check this computer's clock."
        )
    return cert


def supplied_certificate(cert_file: str, key_file: str) -> TlsInfo:
    """The user's own certificate, replacing the generated one: checked now, so a bad file
    is a sentence at start-up, not a traceback at the first handshake."""
    cert = check_certificate_pair(cert_file, key_file)
    cert_path, key_path = Path(cert_file).expanduser(), Path(key_file).expanduser()
    dns, ips = _sans(cert)
    info = TlsInfo(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint_sha256=fingerprint(cert),
        ca_der=None,
        names=LocalNames(tuple(sorted(dns)), tuple(sorted(ips, key=lambda ip: (ip.version, ip)))),
        not_after=cert.not_valid_after_utc,
    )
    info.server_context()  # what the checks cannot see (an unsupported key type) fails here
    return info


def prepare_tls(settings: Settings, folder: Path | None = None) -> TlsInfo:
    """The certificate for the LAN site: the configured files, else the local CA's."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return supplied_certificate(settings.tls_cert, settings.tls_key)
    return ensure_local_certificates(folder or data_dir() / TLS_FOLDER)
