"""Dialogs of the keys page: a key's name, limits and expiry; a new key shown once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from PySide6.QtCore import QDateTime, Qt, QTime, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.keystore import MAX_RPM, MAX_SESSIONS, ApiKey
from pplex_desktop.ui.widgets.widgets import copy_text, label

MAX_EXPIRY_DAYS = 3650
DEFAULT_EXPIRY_DAYS = 30
DATE_FORMAT = "yyyy-MM-dd HH:mm"  # the keys table's own format, so both read alike


def _to_minute(when: QDateTime) -> QDateTime:
    """The box shows minutes: seconds kept out of sight would make "unchanged" look changed."""
    return QDateTime(when.date(), QTime(when.time().hour(), when.time().minute()))


class Expiry(IntEnum):
    """The choices of the expiry box, in its order."""

    NEVER = 0
    IN_DAYS = 1
    ON_DATE = 2


@dataclass(frozen=True, slots=True)
class KeyRequest:
    name: str
    rpm: int
    max_sessions: int
    expires_in_days: int | None = None  # "in N days", counted when the store saves it
    expires_at: float | None = None  # "on a date"; both None: never
    change_expiry: bool = True  # False: the key keeps the expiry it has
    can_manage_voices: bool = False  # the voices permission: store and remove custom voices


class KeyLimitsDialog(QDialog):
    """Name, limits, expiry and permissions, for a new key or an existing one.

    OK emits ``requested`` and keeps the dialog open: the page runs the store operation on the
    gateway thread and then closes it or shows the store's sentence in it.
    """

    requested = Signal(object)  # KeyRequest

    def __init__(
        self,
        parent: QWidget | None,
        *,
        title: str,
        rpm: int,
        max_sessions: int,
        name: str = "",
        expires_at: float | None = None,
        can_manage_voices: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(True)
        form = QFormLayout()
        self.name_edit = QLineEdit(name)
        self.name_edit.setPlaceholderText("e.g. kitchen tablet")
        self.rpm_spin = QSpinBox()
        self.rpm_spin.setRange(1, MAX_RPM)
        self.rpm_spin.setValue(rpm)
        self.rpm_spin.setSuffix(" per minute")
        self.sessions_spin = QSpinBox()
        self.sessions_spin.setRange(1, MAX_SESSIONS)
        self.sessions_spin.setValue(max_sessions)

        self.expiry_combo = QComboBox()
        self.expiry_combo.setObjectName("keyExpiry")
        self.expiry_combo.addItems(["never", "in a number of days", "on a date"])
        self.expiry_spin = QSpinBox()
        self.expiry_spin.setRange(1, MAX_EXPIRY_DAYS)
        self.expiry_spin.setValue(DEFAULT_EXPIRY_DAYS)
        self.expiry_spin.setSuffix(" days")
        self.expiry_date = QDateTimeEdit()
        self.expiry_date.setCalendarPopup(True)
        self.expiry_date.setDisplayFormat(DATE_FORMAT)
        soon = QDateTime.currentDateTime().addDays(DEFAULT_EXPIRY_DAYS)
        self.expiry_date.setDateTime(_to_minute(soon))
        self._initial_expiry = expires_at
        if expires_at is not None:
            self.expiry_date.setDateTime(_to_minute(QDateTime.fromSecsSinceEpoch(int(expires_at))))
            self.expiry_combo.setCurrentIndex(Expiry.ON_DATE)
        expiry = QHBoxLayout()
        expiry.setContentsMargins(0, 0, 0, 0)
        expiry.addWidget(self.expiry_combo)
        expiry.addWidget(self.expiry_spin)
        expiry.addWidget(self.expiry_date)
        expiry.addStretch(1)
        self.expiry_combo.currentIndexChanged.connect(lambda _index: self._show_expiry())
        self._show_expiry()

        form.addRow("Name", self.name_edit)
        form.addRow("Requests", self.rpm_spin)
        form.addRow("Conversations at once", self.sessions_spin)
        form.addRow("Expires", expiry)
        self.voices_check = QCheckBox("May store and remove &voices")
        self.voices_check.setObjectName("keyVoicesPermission")
        self.voices_check.setChecked(can_manage_voices)
        self.voices_check.setToolTip(
            "The voices permission: a client with this key may upload custom voices to the "
            "model servers' voice folder and remove them (/v1/voices). Every key may use the "
            "voices there."
        )
        form.addRow("Permissions", self.voices_check)
        self.error_label = label(role="error", wrap=True)
        self.error_label.setObjectName("keyError")
        self.error_label.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def _show_expiry(self) -> None:
        mode = self.expiry_combo.currentIndex()
        self.expiry_spin.setVisible(mode == Expiry.IN_DAYS)
        self.expiry_date.setVisible(mode == Expiry.ON_DATE)

    def set_expiry(self, mode: Expiry, *, days: int | None = None, at: float | None = None) -> None:
        """Choose an expiry as a user would in the box (tests and scripted use)."""
        self.expiry_combo.setCurrentIndex(mode)
        if days is not None:
            self.expiry_spin.setValue(days)
        if at is not None:
            self.expiry_date.setDateTime(QDateTime.fromSecsSinceEpoch(int(at)))

    def request(self) -> KeyRequest:
        mode = self.expiry_combo.currentIndex()
        days = self.expiry_spin.value() if mode == Expiry.IN_DAYS else None
        at = (
            float(self.expiry_date.dateTime().toSecsSinceEpoch())
            if mode == Expiry.ON_DATE
            else None
        )
        # An untouched date is the key's own expiry: sent again, a past one would be refused.
        unchanged = days is None and at == self._initial_expiry_shown()
        return KeyRequest(
            self.name_edit.text(),
            self.rpm_spin.value(),
            self.sessions_spin.value(),
            expires_in_days=days,
            expires_at=at,
            change_expiry=not unchanged,
            can_manage_voices=self.voices_check.isChecked(),
        )

    def _initial_expiry_shown(self) -> float | None:
        if self._initial_expiry is None:
            return None
        shown = _to_minute(QDateTime.fromSecsSinceEpoch(int(self._initial_expiry)))
        return float(shown.toSecsSinceEpoch())

    def _submit(self) -> None:
        if not self.name_edit.text().strip():
            self.show_error("A key needs a name, such as 'kitchen tablet'.")
            return
        self.error_label.hide()
        self.set_busy(True)
        self.requested.emit(self.request())

    def set_busy(self, busy: bool) -> None:
        self.buttons.setEnabled(not busy)

    def show_error(self, message: str) -> None:
        self.set_busy(False)
        self.error_label.setText(message)
        self.error_label.show()


class NewKeyDialog(QDialog):
    """The only time a key's plaintext is on screen: copy it now, it is not stored."""

    def __init__(self, parent: QWidget | None, key: str, record: ApiKey) -> None:
        super().__init__(parent)
        self.setWindowTitle("New API key")
        self.setModal(True)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = QVBoxLayout(self)
        layout.addWidget(label(f"The key '{record.name}' is ready.", role="title"))
        layout.addWidget(
            label(
                "Copy it now: it is shown only this once. pplex-desktop keeps only a fingerprint "
                "of it, so a lost key cannot be shown again (make a new one and revoke the old).",
                wrap=True,
            )
        )
        row = QHBoxLayout()
        self.key_edit = QLineEdit(key)
        self.key_edit.setReadOnly(True)
        self.key_edit.setProperty("role", "secret")
        self.key_edit.setObjectName("newKey")
        self.key_edit.ensurePolished()  # the style sheet's monospace font decides the width
        self.key_edit.setMinimumWidth(self.key_edit.fontMetrics().horizontalAdvance(key) + 24)
        self.key_edit.setCursorPosition(0)
        self.copy_button = QPushButton("&Copy")
        self.copy_button.clicked.connect(self._copy)
        row.addWidget(self.key_edit, 1)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        layout.addWidget(
            label(
                "Clients send it as the X-API-Key header, as Authorization: Bearer, or as "
                "?api_key=… in a WebSocket URL.",
                role="subtitle",
                wrap=True,
            )
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def _copy(self) -> None:
        copy_text(self.key_edit.text())
        self.copy_button.setText("&Copied")

    def done(self, result: int) -> None:
        # Drop the plaintext from the widget as soon as the dialog closes.
        self.key_edit.clear()
        super().done(result)
