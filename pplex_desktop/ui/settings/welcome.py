"""First launch: the admin secret, shown once, and which model server to use (or the demo)."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.desktop.backend_probe import ProbeResult, probe_backend
from pplex_desktop.gateway.server import DEMO_LABEL
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.widgets.widgets import copy_text, label, selectable, styled

RESULT_LINES = 4  # the longest result, a failure and the way on, at the dialog's width


def _text_width(edit: QLineEdit, text: str) -> int:
    """Wide enough to show ``text`` whole (a secret one scrolls is easy to copy half of)."""
    edit.ensurePolished()  # the style sheet's monospace font decides the width
    return edit.fontMetrics().horizontalAdvance(text) + 24


@dataclass(frozen=True, slots=True)
class WelcomeChoice:
    demo: bool
    backend_url: str | None = None


class WelcomeDialog(QDialog):
    chosen = Signal(object)  # WelcomeChoice, exactly once

    def __init__(
        self,
        ctx: DesktopContext,
        admin_secret: str | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self._done = False
        self.last_probe: ProbeResult | None = None
        self.probe_future: concurrent.futures.Future[ProbeResult] | None = None
        self.setWindowTitle("Welcome to pplex-desktop")
        self.setObjectName("welcomeDialog")
        self.setModal(True)
        self.setMinimumWidth(620)
        layout = QVBoxLayout(self)
        # Never smaller than the wrapped sentences need; the user may still make it larger.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        layout.addWidget(label("Welcome to pplex-desktop", role="title"))
        layout.addWidget(
            label(
                "pplex-desktop runs a gateway in front of your PersonaPlex or Moshi model "
                "server: API keys, limits and a queue, for you and for the devices on your "
                "network.",
                role="subtitle",
                wrap=True,
            )
        )
        self.secret_edit: QLineEdit | None = None
        if admin_secret is not None:
            layout.addWidget(self._build_secret(admin_secret))
        layout.addWidget(self._build_server())
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.demo_button = QPushButton(f"Use the &demo backend ({DEMO_LABEL})")
        self.demo_button.setObjectName("useDemo")
        self.server_button = QPushButton("Use this &server")
        self.server_button.setObjectName("useServer")
        self.demo_button.clicked.connect(lambda: self._accept(WelcomeChoice(demo=True)))
        self.server_button.clicked.connect(self._use_server)
        buttons.addWidget(self.demo_button)
        buttons.addWidget(self.server_button)
        layout.addLayout(buttons)

    def _build_secret(self, secret: str) -> QGroupBox:
        group = QGroupBox("Your admin secret")
        layout = QVBoxLayout(group)
        layout.addWidget(
            label(
                "Scripts and tools use it to manage keys (the X-Admin-Secret header). It is "
                "shown only now: pplex-desktop keeps just a fingerprint of it. Save it in your "
                "password manager.",
                wrap=True,
            )
        )
        row = QHBoxLayout()
        self.secret_edit = QLineEdit(secret)
        self.secret_edit.setObjectName("adminSecret")
        self.secret_edit.setReadOnly(True)
        self.secret_edit.setProperty("role", "secret")
        self.secret_edit.setMinimumWidth(_text_width(self.secret_edit, secret))
        self.secret_edit.setCursorPosition(0)
        self.copy_button = QPushButton("&Copy")
        self.copy_button.clicked.connect(self._copy_secret)
        row.addWidget(self.secret_edit, 1)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        return group

    def _build_server(self) -> QGroupBox:
        group = QGroupBox("Your model server")
        layout = QVBoxLayout(group)
        layout.addWidget(
            label(
                "Where does your PersonaPlex or Moshi server listen? For example "
                "ws://localhost:8998 or http://gpu-box:8998.",
                wrap=True,
            )
        )
        row = QHBoxLayout()
        settings = self._ctx.settings.current
        default = settings.backends[0].url if settings.backends else "ws://localhost:8998"
        self.url_edit = QLineEdit(default)
        self.url_edit.setObjectName("serverAddress")
        self.test_button = QPushButton("&Test")
        self.test_button.clicked.connect(self.test)
        row.addWidget(self.url_edit, 1)
        row.addWidget(self.test_button)
        layout.addLayout(row)
        self.handshake_check = QCheckBox(
            "Also open a conversation with the default persona and voice (a few seconds)"
        )
        layout.addWidget(self.handshake_check)
        self.result_label = selectable(label(wrap=True))
        self.result_label.setObjectName("probeResult")
        # Room for the longest result from the start: the dialog must not jump, shrink or
        # clip a sentence when one result replaces another.
        self.result_label.setMinimumHeight(
            RESULT_LINES * self.result_label.fontMetrics().lineSpacing()
        )
        self.result_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.result_label)
        return group

    def _copy_secret(self) -> None:
        if self.secret_edit is not None:
            copy_text(self.secret_edit.text())
            self.copy_button.setText("&Copied")

    def check_on_open(self) -> None:
        """Test the suggested server, unless this run uses the demo backend anyway."""
        if not self._ctx.settings.current.demo:
            self.test()
            return
        self.result_label.setText(
            f"This run uses the demo backend ({DEMO_LABEL}), so no model server is tested. "
            "To use your own, enter its address and press Test, or add it later in Settings."
        )
        styled(self.result_label, role="subtitle")
        self.demo_button.setDefault(True)

    def test(self) -> None:
        url = self.url_edit.text().strip()
        settings = self._ctx.settings.current
        self.test_button.setEnabled(False)
        self.result_label.setText(f"Testing {url}…")
        styled(self.result_label, role="subtitle")

        def failed(error: BaseException) -> None:
            if not self._done:
                self.test_button.setEnabled(True)
            self._ctx.errors.report("testing the model server", error)

        self.probe_future = self._ctx.io.call(
            probe_backend(
                url,
                handshake=self.handshake_check.isChecked(),
                persona=settings.default_persona,
                voice=settings.default_voice,
            ),
            self._probed,
            failed,
            what="testing the model server",
        )

    def _probed(self, result: ProbeResult) -> None:
        if self._done:
            return  # closed while the test ran: its widgets may already be gone
        self.last_probe = result
        self.test_button.setEnabled(True)
        if result.ok:
            self.result_label.setText(result.message)
            self.server_button.setDefault(True)
        else:
            self.result_label.setText(
                f"{result.message} You can still use this address (the gateway keeps checking "
                f"it), or try the app now with the demo backend ({DEMO_LABEL})."
            )
            self.demo_button.setDefault(True)
        styled(self.result_label, role="ok" if result.ok else "error")

    def _use_server(self) -> None:
        self._accept(WelcomeChoice(demo=False, backend_url=self.url_edit.text().strip()))

    def _accept(self, choice: WelcomeChoice) -> None:
        self._choose(choice)
        self.accept()

    def _choose(self, choice: WelcomeChoice) -> None:
        if self._done:
            return
        self._done = True
        if self.secret_edit is not None:
            self.secret_edit.clear()  # the plaintext leaves the screen with the dialog
        self.chosen.emit(choice)

    def reject(self) -> None:
        # Closed without a choice: keep a server that answered, else start usefully on the demo.
        probe = self.last_probe
        if probe is not None and probe.ok:
            self._choose(WelcomeChoice(demo=False, backend_url=probe.url))
        else:
            self._choose(WelcomeChoice(demo=True))
        super().reject()
