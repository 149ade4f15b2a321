"""Settings → Network: the LAN address and port, and a certificate of one's own, checked
before saving (files exist, key matches, in date) and then served instead of the generated
one. Every socket here is on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from pplex_desktop.core.settings import SETTINGS_NAME, Settings
from pplex_desktop.desktop.settings_store import SettingsStore
from pplex_desktop.gateway.lan.tls import fingerprint
from pplex_desktop.ui.server.server_panel import ServerPanel
from pplex_desktop.ui.settings.settings_dialog import SettingsDialog
from pplex_desktop.ui.shell import DesktopShell
from tests.gui.conftest import WAIT_MS, Launch, http, running

NOW = dt.datetime.now(dt.UTC)


def own_certificate(
    folder: Path, name: str, *, days: int = 30
) -> tuple[Path, Path, x509.Certificate]:
    """A self-signed certificate for 127.0.0.1, as someone might bring from their own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1 + max(0, -days)))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert


def open_network(shell: DesktopShell) -> SettingsDialog:
    dialog = shell.open_settings()
    dialog.tabs.setCurrentIndex(
        next(i for i in range(dialog.tabs.count()) if dialog.tabs.tabText(i) == "Network")
    )
    return dialog


def click_save(qtbot: QtBot, dialog: SettingsDialog) -> None:
    button = dialog.buttons.button(dialog.buttons.StandardButton.Save)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_an_own_certificate_replaces_the_generated_one(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch(settings=Settings(serve_lan=True, lan_port=0, lan_host="127.0.0.1"))
    qtbot.waitUntil(lambda: shell.gateway.view.tls is not None, timeout=WAIT_MS)
    tls = shell.gateway.view.tls
    assert tls is not None and tls.generated
    cert_path, key_path, cert = own_certificate(tmp_path / "mine", "mine")

    dialog = open_network(shell)
    assert dialog.lan_host_edit.text() == "127.0.0.1"
    assert dialog._numbers["lan_port"].value() == 0
    assert dialog.tls_cert_edit.text() == dialog.tls_key_edit.text() == ""
    dialog.tls_cert_edit.setText(str(cert_path))
    dialog.tls_key_edit.setText(str(key_path))
    click_save(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.saved is not None, timeout=WAIT_MS)
    stored = SettingsStore(shell.services.data_dir).file
    assert (stored.tls_cert, stored.tls_key) == (str(cert_path), str(key_path))

    qtbot.waitUntil(
        lambda: (
            running(shell)
            and shell.gateway.view.tls is not None
            and not shell.gateway.view.tls.generated
        ),
        timeout=WAIT_MS,
    )
    view = shell.gateway.view
    assert view.tls is not None and view.tls.fingerprint_sha256 == fingerprint(cert)
    assert view.lan_address is not None
    # The network site presents the user's certificate: trusting it alone is enough.
    site = f"https://127.0.0.1:{view.lan_address.port}"
    assert http(site + "/healthz", ca_file=cert_path)[0] == 200
    page = shell.window.show_page("server")
    assert isinstance(page, ServerPanel)
    assert "Serving your own certificate" in page.tls_label.text()
    assert not page.save_ca_button.isEnabled()


def errors_after_save(qtbot: QtBot, dialog: SettingsDialog) -> dict[str, str]:
    click_save(qtbot, dialog)
    return {field: item.text() for field, item in dialog.errors.items() if item.text()}


def test_network_fields_are_checked_with_a_sentence(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch(settings=Settings())
    before = (shell.services.data_dir / SETTINGS_NAME).read_text()
    cert_path, key_path, _cert = own_certificate(tmp_path / "a", "first")
    _other_cert, other_key, _ = own_certificate(tmp_path / "b", "second")
    old_cert, old_key, _ = own_certificate(tmp_path / "c", "old", days=-2)
    dialog = open_network(shell)

    dialog.lan_host_edit.setText("my laptop")
    dialog.tls_cert_edit.setText(str(cert_path))
    assert errors_after_save(qtbot, dialog) == {
        "lan_host": "'my laptop' is not an IP address; use 0.0.0.0 for every network "
        "interface or one of this computer's addresses, such as 192.168.1.20.",
        "tls_cert": "A certificate and its key go together: choose both files, or clear both "
        "to use the generated certificate.",
    }
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Network"
    dialog.lan_host_edit.setText("127.0.0.1")

    cases = [
        (str(tmp_path / "missing.crt"), str(key_path), "does not exist"),
        (str(key_path), str(key_path), "cannot be read as a PEM certificate"),
        (str(cert_path), str(cert_path), "cannot be read as a PEM private key"),
        (str(cert_path), str(other_key), "does not belong to the certificate"),
        (str(old_cert), str(old_key), "expired on"),
    ]
    for cert_file, key_file, sentence in cases:
        dialog.tls_cert_edit.setText(cert_file)
        dialog.tls_key_edit.setText(key_file)
        found = errors_after_save(qtbot, dialog)
        assert list(found) == ["tls_cert"] and sentence in found["tls_cert"], found
        assert "Traceback" not in found["tls_cert"]
    assert dialog.isVisible() and dialog.saved is None
    assert (shell.services.data_dir / SETTINGS_NAME).read_text() == before

    dialog.tls_cert_edit.clear()
    dialog.tls_key_edit.clear()
    dialog._numbers["lan_port"].setValue(9443)
    click_save(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.saved is not None, timeout=WAIT_MS)
    stored = SettingsStore(shell.services.data_dir).file
    assert (stored.lan_host, stored.lan_port, stored.tls_cert) == ("127.0.0.1", 9443, None)
