"""The settings dialog: model servers, conversation defaults, limits, and the app itself.

Each field is checked by the same rules as the settings file (``Settings.__post_init__``), one
field at a time, so a refusal is shown as its sentence next to the field that caused it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.keystore import MAX_RPM, MAX_SESSIONS
from pplex_desktop.core.personas import PRESETS
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.core.voices import DEFAULT_VOICES, voice_file_name
from pplex_desktop.desktop.backend_probe import ProbeResult, probe_backend
from pplex_desktop.desktop.live_audio import AudioSystem
from pplex_desktop.gateway.lan.tls import check_certificate_pair
from pplex_desktop.gateway.server import DEMO_LABEL
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.settings.admin_secret import AdminSecretReset
from pplex_desktop.ui.settings.voices_tab import VoicesTab
from pplex_desktop.ui.widgets.widgets import label, selectable

CLOSE_CHOICES = (
    ("ask", "Ask every time"),
    ("minimize", "Keep running in the tray"),
    ("quit", "Quit (stops the gateway)"),
)
CUSTOM_PERSONA = "Custom"
URL_COLUMN, NAME_COLUMN, VOICES_COLUMN, FOLDER_COLUMN = 0, 1, 2, 3


def _voice_label(file_name: str) -> str:
    return file_name.removesuffix(".pt")


class SettingsDialog(QDialog):
    def __init__(
        self,
        ctx: DesktopContext,
        parent: QWidget | None = None,
        *,
        audio: AudioSystem | None = None,
    ) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self._base = ctx.settings.current
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.setModal(True)
        self.resize(760, 560)
        self.errors: dict[str, QLabel] = {}
        self.saved: Settings | None = None
        self.last_probe: ProbeResult | None = None
        self._numbers: dict[str, QSpinBox | QDoubleSpinBox] = {}

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_servers(), "Model servers")
        self.tabs.addTab(self._build_conversation(), "Conversation")
        self.tabs.addTab(self._build_limits(), "Limits")
        self.tabs.addTab(self._build_network(), "Network")
        self.voices_tab = VoicesTab(ctx, audio)
        self.tabs.addTab(self.voices_tab, "Voices")
        self.tabs.addTab(self._build_app(), "Application")
        self.general_error = label(role="error", wrap=True)
        self.general_error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.general_error)
        layout.addWidget(self.buttons)

    # -- building -------------------------------------------------------------------------------

    def _error_label(self, field: str) -> QLabel:
        item = label(role="error", wrap=True)
        item.setObjectName(f"error_{field}")
        item.hide()
        self.errors[field] = item
        return item

    def _build_servers(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.demo_check = QCheckBox(f"Use the built-in demo backend ({DEMO_LABEL})")
        self.demo_check.setToolTip(
            "A simulator that speaks the model servers' protocol: handy to try the app and "
            "to test clients, but it does not understand anything."
        )
        self.demo_check.setChecked(self._base.demo)
        layout.addWidget(self.demo_check)
        layout.addWidget(
            label(
                "Model servers (PersonaPlex or Moshi). Addresses such as ws://gpu-box:8998, "
                "http://… or …/api/chat are all fine. Voices: a comma-separated list of the "
                "voice files the server has. Voice folder (optional): the server's voice folder "
                "(its --voice-prompt-dir), when this computer can write it: custom voices are "
                "stored there and every .wav in it is offered.",
                role="subtitle",
                wrap=True,
            )
        )
        self.backends_table = QTableWidget(0, 4)
        self.backends_table.setObjectName("backendsTable")
        self.backends_table.setHorizontalHeaderLabels(
            ["Address", "Name (optional)", "Voices", "Voice folder (optional)"]
        )
        self.backends_table.verticalHeader().setVisible(False)
        self.backends_table.setWordWrap(False)  # eighteen voices elide on one line
        self.backends_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.backends_table.horizontalHeader()
        header.setSectionResizeMode(URL_COLUMN, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(VOICES_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.backends_table.setColumnWidth(URL_COLUMN, 240)
        self.backends_table.setColumnWidth(NAME_COLUMN, 140)
        header.setSectionResizeMode(FOLDER_COLUMN, QHeaderView.ResizeMode.Interactive)
        self.backends_table.setColumnWidth(FOLDER_COLUMN, 180)
        for backend in self._base.backends:
            self.add_backend_row(backend.url, backend.name, backend.voices, backend.voice_dir)
        layout.addWidget(self.backends_table, 1)
        layout.addWidget(self._error_label("backends"))
        row = QHBoxLayout()
        add = QPushButton("Add")
        add.clicked.connect(lambda: self.add_backend_row("ws://localhost:8998", "", DEFAULT_VOICES))
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_backend)
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("Checks that the selected server answers.")
        self.test_button.clicked.connect(self.test_selected)
        self.folder_button = QPushButton("Voice folder…")
        self.folder_button.setToolTip(
            "Choose the selected server's voice folder, where custom voices are stored."
        )
        self.folder_button.clicked.connect(self._choose_voice_folder)
        self.handshake_check = QCheckBox("with a conversation handshake")
        self.handshake_check.setToolTip(
            "Also opens a conversation with the default persona and voice; the model is busy "
            "for a few seconds."
        )
        for widget in (add, remove, self.folder_button, self.test_button, self.handshake_check):
            row.addWidget(widget)
        row.addStretch(1)
        layout.addLayout(row)
        self.probe_label = selectable(label(wrap=True))
        self.probe_label.setObjectName("probeResult")
        layout.addWidget(self.probe_label)
        return page

    def add_backend_row(
        self, url: str, name: str, voices: tuple[str, ...], voice_dir: str | None = None
    ) -> int:
        table = self.backends_table
        row = table.rowCount()
        table.insertRow(row)
        table.setItem(row, URL_COLUMN, QTableWidgetItem(url))
        table.setItem(row, NAME_COLUMN, QTableWidgetItem(name))
        table.setItem(row, VOICES_COLUMN, QTableWidgetItem(", ".join(map(_voice_label, voices))))
        folder = QTableWidgetItem(voice_dir or "")
        folder.setToolTip(voice_dir or "No voice folder: custom voices cannot be stored.")
        table.setItem(row, FOLDER_COLUMN, folder)
        return row

    def _choose_voice_folder(self) -> None:
        rows = sorted({i.row() for i in self.backends_table.selectedIndexes()})
        if not rows:
            self.probe_label.setText("Select a model server first.")
            return
        item = self.backends_table.item(rows[0], FOLDER_COLUMN)
        start = item.text().strip() if item is not None and item.text().strip() else ""
        path = QFileDialog.getExistingDirectory(
            self, "Voice folder of the model server", start or str(Path.home())
        )
        if path:
            self.set_voice_folder(rows[0], path)

    def set_voice_folder(self, row: int, path: str) -> None:
        """What choosing a folder does to the row (tests and scripted use)."""
        item = self.backends_table.item(row, FOLDER_COLUMN)
        if item is None:
            item = QTableWidgetItem()
            self.backends_table.setItem(row, FOLDER_COLUMN, item)
        item.setText(path)
        item.setToolTip(path)

    def _remove_backend(self) -> None:
        rows = sorted({i.row() for i in self.backends_table.selectedIndexes()}, reverse=True)
        for row in rows:
            self.backends_table.removeRow(row)

    def _build_conversation(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.persona_combo = QComboBox()
        self.persona_combo.addItems([p.title for p in PRESETS] + [CUSTOM_PERSONA])
        self.persona_edit = QPlainTextEdit(self._base.default_persona)
        self.persona_edit.setObjectName("personaEdit")
        self.persona_edit.setMinimumHeight(90)
        match = next((p.title for p in PRESETS if p.text == self._base.default_persona), None)
        self.persona_combo.setCurrentText(match or CUSTOM_PERSONA)
        self.persona_combo.currentTextChanged.connect(self._preset_chosen)
        self.persona_edit.textChanged.connect(self._persona_edited)
        self.voice_combo = QComboBox()
        self.voice_combo.setEditable(True)
        voices: dict[str, None] = {}
        for backend in self._base.backends:
            voices.update(dict.fromkeys(backend.voices))
        self.voice_combo.addItems([_voice_label(v) for v in voices or DEFAULT_VOICES])
        self.voice_combo.setCurrentText(_voice_label(self._base.default_voice))
        form.addRow("Persona preset", self.persona_combo)
        form.addRow("Persona (text prompt)", self.persona_edit)
        form.addRow("", self._error_label("default_persona"))
        form.addRow("Voice", self.voice_combo)
        form.addRow("", self._error_label("default_voice"))
        form.addRow(
            "",
            label(
                "Used when a client does not choose: live talk, offline files and clients "
                "that send no prompt.",
                role="subtitle",
                wrap=True,
            ),
        )
        return page

    def _preset_chosen(self, title: str) -> None:
        preset = next((p for p in PRESETS if p.title == title), None)
        if preset is not None and self.persona_edit.toPlainText() != preset.text:
            self.persona_edit.setPlainText(preset.text)

    def _persona_edited(self) -> None:
        text = self.persona_edit.toPlainText()
        match = next((p.title for p in PRESETS if p.text == text), CUSTOM_PERSONA)
        if self.persona_combo.currentText() != match:
            self.persona_combo.blockSignals(True)
            self.persona_combo.setCurrentText(match)
            self.persona_combo.blockSignals(False)

    def _number(
        self,
        form: QFormLayout,
        field: str,
        caption: str,
        low: float,
        high: float,
        *,
        suffix: str = "",
        decimals: int = 0,
        special: str = "",
    ) -> None:
        spin: QSpinBox | QDoubleSpinBox
        value = getattr(self._base, field)
        if decimals:
            spin = QDoubleSpinBox()
            spin.setDecimals(decimals)
            spin.setRange(low, high)
            spin.setValue(float(value))
        else:
            spin = QSpinBox()
            spin.setRange(int(low), int(high))
            spin.setValue(int(value))
        spin.setObjectName(f"spin_{field}")
        if suffix:
            spin.setSuffix(suffix)
        if special:
            spin.setSpecialValueText(special)
        self._numbers[field] = spin
        form.addRow(caption, spin)
        form.addRow("", self._error_label(field))

    def _build_limits(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self._number(form, "port", "Gateway port", 0, 65535, special="any free port")
        self._number(form, "default_rpm", "New keys: requests", 1, MAX_RPM, suffix=" per minute")
        self._number(
            form, "default_max_sessions", "New keys: conversations at once", 1, MAX_SESSIONS
        )
        self._number(
            form, "max_upload_mb", "Largest upload", 0.1, 100_000, suffix=" MB", decimals=1
        )
        self._number(form, "max_audio_s", "Longest offline file", 1, 86_400, suffix=" s")
        self._number(form, "max_session_s", "Longest conversation", 1, 86_400, suffix=" s")
        self._number(form, "idle_timeout_s", "Silent client cut off after", 1, 3_600, suffix=" s")
        self._number(form, "queue_max", "Callers waiting at most", 0, 10_000, special="no queue")
        self._number(form, "queue_max_wait_s", "Longest wait in the queue", 1, 86_400, suffix=" s")
        return page

    def _build_network(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.addRow(
            label(
                'Used when the server page\'s "Serve on local network" is on: devices on your '
                "network connect over HTTPS here, while plain HTTP stays on this computer.",
                role="subtitle",
                wrap=True,
            )
        )
        self.lan_host_edit = QLineEdit(self._base.lan_host)
        self.lan_host_edit.setObjectName("edit_lan_host")
        self.lan_host_edit.setToolTip(
            "0.0.0.0 listens on every network interface; one of this computer's addresses "
            "(192.168.1.20, say) listens on that network only."
        )
        form.addRow("Network address", self.lan_host_edit)
        form.addRow("", self._error_label("lan_host"))
        self._number(form, "lan_port", "Network HTTPS port", 0, 65535, special="any free port")
        form.addRow(
            label(
                "Your own certificate (optional): a PEM certificate and its key without a "
                "password. It replaces the generated one, so devices need not trust this app's "
                "certificate authority. Leave both empty to use the generated one.",
                role="subtitle",
                wrap=True,
            )
        )
        self.tls_cert_edit = self._file_row(
            form, "tls_cert", "Certificate file", self._base.tls_cert
        )
        self.tls_key_edit = self._file_row(form, "tls_key", "Key file", self._base.tls_key)
        form.addRow("", self._error_label("tls_cert"))
        return page

    def _file_row(
        self, form: QFormLayout, field: str, caption: str, value: str | None
    ) -> QLineEdit:
        edit = QLineEdit(value or "")
        edit.setObjectName(f"edit_{field}")
        edit.setPlaceholderText("empty: the generated certificate")
        browse = QPushButton("Choose…")

        def choose() -> None:
            path, _ = QFileDialog.getOpenFileName(
                self,
                caption,
                edit.text() or str(Path.home()),
                "PEM files (*.pem *.crt *.key);;All files (*)",
            )
            if path:
                edit.setText(path)

        browse.clicked.connect(choose)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        form.addRow(caption, row)
        return edit

    def _network_errors(self, values: dict[str, Any], errors: dict[str, str]) -> None:
        """The network fields' own rules, beyond the settings file's."""
        host = values["lan_host"]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            errors["lan_host"] = (
                f"'{host}' is not an IP address; use 0.0.0.0 for every network interface or "
                "one of this computer's addresses, such as 192.168.1.20."
            )
        cert, key = values["tls_cert"], values["tls_key"]
        if (cert is None) != (key is None):
            errors["tls_cert"] = (
                "A certificate and its key go together: choose both files, or clear both to "
                "use the generated certificate."
            )
        elif cert is not None and key is not None:
            try:
                check_certificate_pair(cert, key)
            except PplexError as exc:
                errors["tls_cert"] = exc.message

    def _build_app(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        folder = QHBoxLayout()
        self.folder_label = selectable(label(self._ctx.settings.folder))
        self.folder_label.setObjectName("dataFolder")
        open_button = QPushButton("Open in file manager")
        open_button.clicked.connect(self._open_folder)
        folder.addWidget(self.folder_label, 1)
        folder.addWidget(open_button)
        form.addRow("Data folder", folder)
        form.addRow(
            "",
            label(
                "Keys, usage, jobs and settings.json live here. Start with --data-dir or "
                "PPLEX_DATA_DIR to use another folder.",
                role="subtitle",
                wrap=True,
            ),
        )
        self.minimized_check = QCheckBox("Start minimized (in the tray when there is one)")
        self.minimized_check.setChecked(self._base.start_minimized)
        form.addRow("Start-up", self.minimized_check)
        self.close_combo = QComboBox()
        for value, text in CLOSE_CHOICES:
            self.close_combo.addItem(text, value)
        self.close_combo.setCurrentIndex(
            max(0, [v for v, _ in CLOSE_CHOICES].index(self._base.close_action))
        )
        form.addRow("Closing the window", self.close_combo)
        self.secret_reset = AdminSecretReset(self._ctx, self)
        self.reset_secret_button = QPushButton("Reset admin secret…")
        self.reset_secret_button.setObjectName("resetAdminSecret")
        self.reset_secret_button.setToolTip(
            "Make a new admin secret (the X-Admin-Secret header) and show it once; the old "
            "one stops working at once."
        )
        self.reset_secret_button.clicked.connect(self.secret_reset.ask)
        secret_row = QHBoxLayout()
        secret_row.addWidget(self.reset_secret_button)
        secret_row.addStretch(1)
        form.addRow("Admin secret", secret_row)
        return page

    def _open_folder(self) -> None:
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(self._ctx.settings.folder)):
            self._ctx.errors.user_error(
                f"No file manager could open {self._ctx.settings.folder}; open it yourself."
            )

    # -- reading and checking -------------------------------------------------------------------

    def _backends(self) -> tuple[BackendConfig, ...]:
        table = self.backends_table
        found: list[BackendConfig] = []
        for row in range(table.rowCount()):

            def cell(column: int, row: int = row) -> str:
                item = table.item(row, column)
                return item.text().strip() if item is not None else ""

            url = cell(URL_COLUMN)
            if not url:
                continue
            voices = tuple(v.strip() for v in cell(VOICES_COLUMN).split(",") if v.strip())
            folder = os.path.expanduser(cell(FOLDER_COLUMN)) or None
            try:
                backend = BackendConfig(url, voices or DEFAULT_VOICES, cell(NAME_COLUMN), folder)
            except PplexError as exc:
                raise PplexError(f"Row {row + 1}: {exc.message}") from None
            found.append(backend)
            item = table.item(row, URL_COLUMN)
            if item is not None and item.text() != backend.url:
                item.setText(backend.url)  # show the normalised form that will be used
        return tuple(found)

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Each field's value, and each field's refusal checked against the saved settings."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        try:
            values["backends"] = self._backends()
        except PplexError as exc:
            errors["backends"] = exc.message
        values["demo"] = self.demo_check.isChecked()
        values["default_persona"] = self.persona_edit.toPlainText().strip()
        values["default_voice"] = self.voice_combo.currentText().strip()
        for field, spin in self._numbers.items():
            values[field] = spin.value()
        values["lan_host"] = self.lan_host_edit.text().strip()
        values["tls_cert"] = self.tls_cert_edit.text().strip() or None
        values["tls_key"] = self.tls_key_edit.text().strip() or None
        self._network_errors(values, errors)
        values["start_minimized"] = self.minimized_check.isChecked()
        values["close_action"] = self.close_combo.currentData()
        for field, value in values.items():
            # The key file is checked with its certificate, as one pair.
            if field in errors or field in ("demo", "tls_key"):
                continue
            if field == "tls_cert":
                try:
                    self._base.replace(tls_cert=value, tls_key=values["tls_key"])
                except PplexError as exc:
                    errors["tls_cert"] = exc.message
                continue
            # The servers and the demo switch are one rule ("at least one server, or the
            # demo"), so they are checked together; every other field alone.
            change = (
                {field: value, "demo": values["demo"]} if field == "backends" else {field: value}
            )
            try:
                self._base.replace(**change)
            except PplexError as exc:
                errors[field] = exc.message
        return values, errors

    def _show_errors(self, errors: dict[str, str]) -> None:
        for field, item in self.errors.items():
            message = errors.get(field, "")
            item.setText(message)
            item.setVisible(bool(message))
        general = [m for f, m in errors.items() if f not in self.errors]
        self.general_error.setText(" ".join(general))
        self.general_error.setVisible(bool(general))
        if errors:
            self._show_tab_of(next(iter(errors)))

    def _show_tab_of(self, field: str) -> None:
        target = self.errors.get(field)
        for index in range(self.tabs.count()):
            page = self.tabs.widget(index)
            if target is not None and page is not None and page.isAncestorOf(target):
                self.tabs.setCurrentIndex(index)
                return

    def save(self) -> None:
        values, errors = self.values()
        if not errors:
            try:
                wanted = self._base.replace(**values)
            except PplexError as exc:
                errors["general"] = exc.message
        self._show_errors(errors)
        if errors:
            return
        self.buttons.setEnabled(False)

        def saved(settings: Settings) -> None:
            self.saved = settings
            self._ctx.status.post("The settings were saved.")
            self.accept()

        def failed(error: BaseException) -> None:
            self.buttons.setEnabled(True)
            message = error.message if isinstance(error, PplexError) else str(error)
            self._show_errors({"general": f"The settings could not be saved: {message}"})

        self._ctx.settings.update(wanted, saved, failed)

    # -- testing a server ---------------------------------------------------------------------

    def test_selected(self) -> None:
        rows = sorted({i.row() for i in self.backends_table.selectedIndexes()})
        row = rows[0] if rows else 0
        item = self.backends_table.item(row, URL_COLUMN)
        if item is None or not item.text().strip():
            self.probe_label.setText("Add a model server address first.")
            return
        self.test_button.setEnabled(False)
        self.probe_label.setText(f"Testing {item.text().strip()}…")
        try:
            voice = voice_file_name(self.voice_combo.currentText())
        except PplexError:
            voice = self._base.default_voice
        persona = self.persona_edit.toPlainText().strip() or self._base.default_persona
        self._probe(
            item.text().strip(), self.handshake_check.isChecked(), persona, voice, self._probed
        )

    def _probe(
        self,
        url: str,
        handshake: bool,
        persona: str,
        voice: str,
        then: Callable[[ProbeResult], None],
    ) -> None:
        def failed(error: BaseException) -> None:
            self.test_button.setEnabled(True)
            self._ctx.errors.report("testing a model server", error)

        self._ctx.io.call(
            probe_backend(url, handshake=handshake, persona=persona, voice=voice),
            then,
            failed,
            what="testing a model server",
        )

    def _probed(self, result: ProbeResult) -> None:
        self.last_probe = result
        self.test_button.setEnabled(True)
        self.probe_label.setText(result.message)
        self.probe_label.setProperty("role", "ok" if result.ok else "error")
        self.probe_label.style().unpolish(self.probe_label)
        self.probe_label.style().polish(self.probe_label)
