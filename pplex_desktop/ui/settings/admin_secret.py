"""Resetting the admin secret from the app: ask first, then show the new one once.

Only a digest is stored, so a lost secret cannot be shown again, only replaced. The old one
stops working the moment the new digest is written: every admin request reads it afresh.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.admin_secret import ADMIN_SECRET_ENV
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.widgets.widgets import copy_text, label


class NewSecretDialog(QDialog):
    """The new secret with a copy button; forgotten when the dialog closes."""

    def __init__(self, secret: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New admin secret")
        self.setObjectName("newAdminSecret")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        layout.addWidget(
            label(
                "This is the new admin secret; the old one no longer works. It is shown only "
                "now: save it in your password manager and update the scripts that use it.",
                wrap=True,
            )
        )
        if os.environ.get(ADMIN_SECRET_ENV):
            layout.addWidget(
                label(
                    f"{ADMIN_SECRET_ENV} is set for this app, so its secret replaces this one "
                    "again at the next start. Change or unset it to keep this one.",
                    role="error",
                    wrap=True,
                )
            )
        row = QHBoxLayout()
        self.secret_edit = QLineEdit(secret)
        self.secret_edit.setObjectName("adminSecret")
        self.secret_edit.setReadOnly(True)
        self.secret_edit.setProperty("role", "secret")
        self.secret_edit.ensurePolished()
        self.secret_edit.setMinimumWidth(
            self.secret_edit.fontMetrics().horizontalAdvance(secret) + 24
        )
        self.secret_edit.setCursorPosition(0)
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self._copy)
        row.addWidget(self.secret_edit, 1)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.accept)
        layout.addWidget(buttons)

    def _copy(self) -> None:
        copy_text(self.secret_edit.text())
        self.copy_button.setText("Copied")

    def done(self, result: int) -> None:
        self.secret_edit.clear()  # the plaintext leaves the screen with the dialog
        super().done(result)


class AdminSecretReset:
    """ "Reset admin secret…": a confirmation, the reset on the gateway thread, the new secret."""

    def __init__(self, ctx: DesktopContext, parent: QWidget) -> None:
        self._ctx = ctx
        self._parent = parent
        self.confirm_box: QMessageBox | None = None
        self.shown: NewSecretDialog | None = None

    def ask(self) -> None:
        if self.confirm_box is not None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Reset the admin secret",
            "Make a new admin secret? The current one stops working at once: scripts and tools "
            "that manage keys with it get 401 until they use the new one. API keys are not "
            "affected.",
            parent=self._parent,
        )
        self.reset_button = box.addButton("Reset", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            self.confirm_box = None
            if box.clickedButton() is self.reset_button:
                self._reset()

        box.finished.connect(finished)
        self.confirm_box = box
        box.open()

    def _reset(self) -> None:
        self._ctx.io.call_fn(
            self._ctx.keystore.new_admin_secret,
            on_done=self._show,
            on_error=lambda error: self._ctx.errors.report("resetting the admin secret", error),
            what="resetting the admin secret",
        )

    def _show(self, secret: str) -> None:
        dialog = NewSecretDialog(secret, self._parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _r: setattr(self, "shown", None))
        self.shown = dialog
        dialog.open()
        self._ctx.status.post("The admin secret was reset; the old one no longer works.")
