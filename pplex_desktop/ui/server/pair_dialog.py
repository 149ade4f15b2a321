""" "Pair a device": a short-lived key and a QR code of the talk page's URL carrying it.

The key travels in the URL's fragment, which a browser never sends to a server, and the page
removes it from the address bar once stored. It is an ordinary key of kind "paired": listed on
the Keys page, limited and revocable like any other.
"""

from __future__ import annotations

import time

from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.gateway.lan.pairing import Pairing, make_pairing
from pplex_desktop.ui.bridge import LoopBridge
from pplex_desktop.ui.server.qr import qr_image
from pplex_desktop.ui.widgets.widgets import label, selectable

MINUTE, HOUR, DAY = 60, 3600, 86_400
# How long a paired key lives, in words a person uses; 12 hours covers an evening or a day.
DURATIONS = (30 * MINUTE, HOUR, 2 * HOUR, 12 * HOUR, DAY, 7 * DAY, 30 * DAY)
DEFAULT_DURATION_S = 12 * HOUR


def duration_text(seconds: float) -> str:
    """ "30 minutes", "1 hour", "12 hours", "7 days": whole units, never "12.00 h"."""
    for unit, name in ((DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        if seconds >= unit and seconds % unit == 0:
            count = int(seconds // unit)
            return f"{count} {name}{'' if count == 1 else 's'}"
    count = max(1, round(seconds / MINUTE))
    return f"{count} minute{'' if count == 1 else 's'}"


class PairDialog(QDialog):
    """Choose the limits, make the key on the gateway thread, then show the code once."""

    def __init__(
        self,
        bridge: LoopBridge,
        keystore: KeyStore,
        base_url: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pair a device")
        self._bridge = bridge
        self._keystore = keystore
        self._base_url = base_url
        self.pairing: Pairing | None = None
        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_form())
        self.pages.addWidget(self._build_code())
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)

    def _build_form(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.addRow(
            label(
                "Make a key for a phone or laptop on your network. Scan the code with its camera:"
                " the talk page opens with the key filled in.",
                wrap=True,
            )
        )
        self.name_edit = QLineEdit("Paired device")
        self.rpm_spin = QSpinBox()
        self.rpm_spin.setRange(1, 100_000)
        self.rpm_spin.setValue(60)
        self.sessions_spin = QSpinBox()
        self.sessions_spin.setRange(1, 100)
        self.sessions_spin.setValue(1)
        self.duration_combo = QComboBox()
        self.duration_combo.setObjectName("pairDuration")
        for seconds in DURATIONS:
            self.duration_combo.addItem(duration_text(seconds), seconds)
        self.duration_combo.setCurrentIndex(DURATIONS.index(DEFAULT_DURATION_S))
        form.addRow("Name", self.name_edit)
        form.addRow("Requests per minute", self.rpm_spin)
        form.addRow("Conversations at once", self.sessions_spin)
        form.addRow("Valid for", self.duration_combo)
        self.form_error = label(role="error", wrap=True)
        form.addRow(self.form_error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = QPushButton("&Make the code")
        buttons.addButton(self.create_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.create_button.clicked.connect(self._create)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        return page

    def _build_code(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.code_label = QLabel()
        self.code_label.setObjectName("pairQr")
        layout.addWidget(self.code_label)
        self.url_label = selectable(label(wrap=True))
        layout.addWidget(self.url_label)
        self.expiry_label = label(role="subtitle", wrap=True)
        layout.addWidget(self.expiry_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("&Copy link")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self._copy)
        buttons.rejected.connect(self.accept)
        layout.addWidget(buttons)
        return page

    def _create(self) -> None:
        name = self.name_edit.text()
        rpm, sessions = self.rpm_spin.value(), self.sessions_spin.value()
        ttl_s = float(self.duration_combo.currentData())
        store, base = self._keystore, self._base_url
        self.create_button.setEnabled(False)
        self.form_error.clear()

        def make() -> Pairing:
            return make_pairing(
                store, base_url=base, name=name, rpm=rpm, max_sessions=sessions, ttl_s=ttl_s
            )

        self._bridge.call_fn(make, on_done=self._show, on_error=self._failed, what="pairing")

    def _failed(self, error: BaseException) -> None:
        self.create_button.setEnabled(True)
        self.form_error.setText(str(error))

    def _show(self, pairing: Pairing) -> None:
        self.pairing = pairing
        self.code_label.setPixmap(QPixmap.fromImage(qr_image(pairing.url, module_px=5)))
        self.url_label.setText(pairing.url)
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(pairing.expires_at))
        valid = duration_text(float(self.duration_combo.currentData()))
        self.expiry_label.setText(
            f"The key works for {valid}, until {until}; revoke it on the Keys page at any "
            "time. This code is shown only now."
        )
        self.pages.setCurrentIndex(1)

    def _copy(self) -> None:
        if self.pairing is not None:
            QGuiApplication.clipboard().setText(self.pairing.url)

    def done(self, result: int) -> None:
        # The key is in the QR code and the label: forget both when the dialog closes.
        self.code_label.clear()
        self.url_label.clear()
        self.pairing = None
        super().done(result)
