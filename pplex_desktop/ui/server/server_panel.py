"""The server page: gateway state and controls, LAN serving with a QR code, live figures and
the model servers behind the gateway."""

from __future__ import annotations

import html
import ipaddress
import shlex
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.fs import write_atomic
from pplex_desktop.core.settings import Settings
from pplex_desktop.desktop.lan import WILDCARDS, LanAddress, lan_addresses
from pplex_desktop.gateway.server import DEMO_LABEL, BackendStatus, GatewayState, plain_host
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.server.counters import Counts
from pplex_desktop.ui.server.gateway_control import LAN_HOST, LOCAL_HOST, GatewayView
from pplex_desktop.ui.server.pair_dialog import PairDialog
from pplex_desktop.ui.server.qr import qr_image
from pplex_desktop.ui.widgets.widgets import Figure, label, selectable, styled

_STATE_TEXT = {
    GatewayState.STOPPED: "Stopped",
    GatewayState.STARTING: "Starting…",
    GatewayState.RUNNING: "Running",
    GatewayState.STOPPING: "Stopping…",
    GatewayState.FAILED: "Not running: the start failed",
}
BACKEND_COLUMNS = ("Model server", "Health", "Now", "Served", "Queue")
BACKENDS_TABLE_HEIGHT = 150


def _breakable(fingerprint: str) -> str:
    """A fingerprint is one long word; let it wrap every eight bytes so it cannot widen the
    window."""
    parts = fingerprint.split(":")
    return " ".join(":".join(parts[i : i + 8]) for i in range(0, len(parts), 8))


def _port_text(port: int) -> str:
    return "a free port" if port == 0 else f"port {port}"


def will_listen_text(settings: Settings) -> str:
    """Where a stopped gateway will listen, as it really will: plain HTTP stays on loopback
    whenever the network is served over HTTPS."""
    port = _port_text(settings.port)
    if settings.serve_lan:
        local = plain_host(settings)
        network = (
            "on every network interface"
            if settings.lan_host in WILDCARDS
            else f"on {settings.lan_host}"
        )
        return (
            f"Will listen on {local}, {port}, for this computer, and over HTTPS "
            f"{network}, {_port_text(settings.lan_port)}, for your network"
        )
    if settings.host in WILDCARDS:
        return f"Will listen on every network interface, {port}, over plain HTTP"
    if settings.host == "localhost" or _loopback(settings.host):
        return f"Will listen on {settings.host}, {port}, for this computer only"
    return f"Will listen on {settings.host}, {port}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerPanel(QWidget):
    def __init__(self, ctx: DesktopContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self.pair_dialog: PairDialog | None = None
        self.lan_confirm: QMessageBox | None = None
        self.lan_urls: list[str] = []
        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.setSpacing(12)
        root.addLayout(self._build_header())
        root.addWidget(self._build_banners())
        root.addLayout(self._build_figures())
        middle = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(self._build_backends())
        left.addWidget(self._build_clients(), 1)
        middle.addLayout(left, 3)
        middle.addWidget(self._build_lan(), 2)
        root.addLayout(middle, 1)

        ctx.gateway.changed.connect(self._show_view)
        ctx.counters.changed.connect(self._show_counts)
        ctx.counters.backends_changed.connect(self._show_backends)
        ctx.settings.changed.connect(lambda _s: self._show_view(ctx.gateway.view))
        self._show_view(ctx.gateway.view)
        self._show_counts(ctx.counters.counts)
        self._show_backends(ctx.counters.backends)

    # -- layout -------------------------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        row = QHBoxLayout()
        left = QVBoxLayout()
        self.state_label = label(role="state")
        self.state_label.setObjectName("gatewayState")
        self.address_label = selectable(label(role="subtitle"))
        self.address_label.setOpenExternalLinks(True)
        self.failure_label = selectable(label(role="error", wrap=True))
        self.failure_label.setObjectName("gatewayFailure")
        left.addWidget(self.state_label)
        left.addWidget(self.address_label)
        left.addWidget(self.failure_label)
        row.addLayout(left, 1)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.restart_button = QPushButton("Restart")
        for button in (self.start_button, self.stop_button, self.restart_button):
            row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        self.start_button.clicked.connect(self._ctx.gateway.start)
        self.stop_button.clicked.connect(self._stop)
        self.restart_button.clicked.connect(self._ctx.gateway.restart)
        return row

    def _stop(self) -> None:
        self._ctx.gateway.stop()

    def _build_banners(self) -> QWidget:
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.demo_badge = label(f"Demo backend ({DEMO_LABEL})", role="badge")
        self.demo_hint = label(
            "The built-in simulator answers instead of a model. Add your PersonaPlex or Moshi "
            "server in Settings.",
            role="subtitle",
            wrap=True,
        )
        self.use_demo_button = QPushButton("Use the demo backend")
        self.use_demo_button.setToolTip(f"Serve the built-in simulator ({DEMO_LABEL}).")
        self.use_demo_button.clicked.connect(self._use_demo)
        layout.addWidget(self.demo_badge)
        layout.addWidget(self.demo_hint, 1)
        layout.addWidget(self.use_demo_button)
        return box

    def _build_figures(self) -> QVBoxLayout:
        column = QVBoxLayout()
        row = QHBoxLayout()
        self.rpm_figure = Figure("requests in the last minute")
        self.sessions_figure = Figure("active conversations")
        self.audio_figure = Figure("audio minutes today")
        for figure in (self.rpm_figure, self.sessions_figure, self.audio_figure):
            row.addWidget(figure)
        column.addLayout(row)
        self.figures_note = label(
            "Paused while the gateway is not running: nothing is served, past requests age out "
            "of the last minute, and today's audio minutes stay as they were.",
            role="subtitle",
            wrap=True,
        )
        self.figures_note.setObjectName("figuresPaused")
        column.addWidget(self.figures_note)
        return column

    def _build_backends(self) -> QGroupBox:
        group = QGroupBox("Model servers")
        layout = QVBoxLayout(group)
        self.backends_table = QTableWidget(0, len(BACKEND_COLUMNS))
        self.backends_table.setHorizontalHeaderLabels(list(BACKEND_COLUMNS))
        self.backends_table.verticalHeader().setVisible(False)
        self.backends_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.backends_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.backends_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.backends_table.setMaximumHeight(BACKENDS_TABLE_HEIGHT)
        layout.addWidget(self.backends_table)
        self.no_backend_label = label(role="error", wrap=True)
        layout.addWidget(self.no_backend_label)
        return group

    def _build_clients(self) -> QGroupBox:
        group = QGroupBox("Connect a client")
        layout = QVBoxLayout(group)
        self.clients_label = selectable(label(wrap=True))
        self.clients_label.setObjectName("clientsHelp")
        self.clients_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.clients_label)
        layout.addStretch(1)
        return group

    def _show_clients(self, view: GatewayView) -> None:
        if view.address is None or view.url is None:
            self.clients_label.setText("Clients can connect once the gateway runs.")
            return
        commands = [f'curl -H "X-API-Key: YOUR_KEY" {view.url}/v1/info']
        network = self.lan_urls[0] if self.lan_urls and view.lan_address is not None else None
        tls = view.tls
        if network is not None and tls is not None:
            # curl trusts only the system's authorities: name ours, or it refuses the site.
            ca = f"--cacert {shlex.quote(str(tls.ca_path))} " if tls.ca_path is not None else ""
            commands.append(f'curl {ca}-H "X-API-Key: YOUR_KEY" {network}/v1/info')
        if len(commands) == 1:
            where = "Check a key from any terminal:"
        elif tls is not None and tls.generated:
            where = (
                "From this computer, then over your network (another device needs the CA "
                "certificate saved below and its own path after <code>--cacert</code>):"
            )
        else:
            where = "From this computer, then over your network:"
        self.clients_label.setText(
            "Each client needs an API key from the <b>Keys</b> page, sent as the "
            "<code>X-API-Key</code> header (or <code>?api_key=…</code> where headers are not "
            f"possible). {where}"
            f"<pre>{html.escape(chr(10).join(commands))}</pre>"
            f"Is the gateway up? <code>{html.escape(view.url)}/healthz</code> needs no key."
        )

    def _build_lan(self) -> QGroupBox:
        group = QGroupBox("Local network")
        layout = QVBoxLayout(group)
        self.lan_switch = QCheckBox("Serve on &local network")
        self.lan_switch.setObjectName("lanSwitch")
        self.lan_switch.setToolTip(
            "Off: only this computer can connect (127.0.0.1). On: phones and laptops on your "
            "network connect over HTTPS (browsers only allow the microphone on a secure page); "
            "they still need an API key."
        )
        self.lan_switch.toggled.connect(self._lan_toggled)
        layout.addWidget(self.lan_switch)
        self.lan_label = selectable(label(role="subtitle", wrap=True))
        self.lan_label.setObjectName("lanUrls")
        layout.addWidget(self.lan_label)
        self.qr_label = QLabel()
        self.qr_label.setObjectName("lanQr")
        self.qr_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.qr_label, 1)
        self.tls_label = selectable(label(role="subtitle", wrap=True))
        self.tls_label.setObjectName("lanCertificate")
        layout.addWidget(self.tls_label)
        buttons = QHBoxLayout()
        self.pair_button = QPushButton("&Pair a device…")
        self.pair_button.setToolTip(
            "Make a short-lived key and a QR code that opens the talk page."
        )
        self.pair_button.clicked.connect(self._pair)
        self.save_ca_button = QPushButton("Save CA certificate…")
        self.save_ca_button.setToolTip(
            "The certificate authority a phone must trust once to open the talk page."
        )
        self.save_ca_button.clicked.connect(self._save_ca)
        buttons.addWidget(self.pair_button)
        buttons.addWidget(self.save_ca_button)
        layout.addLayout(buttons)
        return group

    # -- reacting -----------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        # Rich text bakes the link colour in when set, and QLabel ignores setText() of the
        # same text: clear and re-set it when light/dark switches.
        if event.type() == QEvent.Type.PaletteChange:
            text = self.address_label.text()
            self.address_label.clear()
            self.address_label.setText(text)
        super().changeEvent(event)

    def _show_view(self, view: GatewayView) -> None:
        styled(self.state_label, state=view.state.value)
        self.state_label.setText(_STATE_TEXT[view.state])
        if view.address is not None and view.lan_address is not None:
            self.address_label.setText(
                f'This computer: <a href="{view.url}">{view.url}</a> · your network: HTTPS on '
                f"port {view.lan_address.port}"
            )
        elif view.address is not None and view.address.host == LAN_HOST:
            self.address_label.setText(
                f"Listening on every network interface, port {view.address.port}. "
                f'From this computer: <a href="{view.url}">{view.url}</a>'
            )
        elif view.address is not None:
            self.address_label.setText(
                f'Listening on <a href="{view.url}">{view.url}</a>, for this computer only'
            )
        else:
            self.address_label.setText(will_listen_text(self._ctx.gateway.settings))
        self.failure_label.setText(view.failure or "")
        self.failure_label.setVisible(bool(view.failure))
        running = view.state is GatewayState.RUNNING
        self.figures_note.setVisible(not running)
        self.start_button.setEnabled(view.state in (GatewayState.STOPPED, GatewayState.FAILED))
        self.stop_button.setEnabled(running)
        self.restart_button.setEnabled(running or view.state is GatewayState.FAILED)
        self.demo_badge.setVisible(view.demo)
        self.demo_hint.setVisible(view.demo)
        self.lan_switch.blockSignals(True)
        self.lan_switch.setChecked(view.serve_lan)
        self.lan_switch.blockSignals(False)
        self.lan_switch.setEnabled(not view.busy)
        self._show_lan(view)
        self._show_clients(view)
        self._show_backends(self._ctx.counters.backends)

    def _show_lan(self, view: GatewayView) -> None:
        self.tls_label.setText(self._certificate_text(view))
        self.pair_button.setEnabled(False)
        self.save_ca_button.setEnabled(view.tls is not None and view.tls.generated)
        if not view.serve_lan:
            self.lan_urls = []
            self.lan_label.setText("Only this computer can connect.")
            self.qr_label.clear()
            return
        site = view.lan_address or view.address
        if site is None:
            self.lan_urls = []
            self.lan_label.setText("The gateway will listen on your network once it runs.")
            self.qr_label.clear()
            return
        if site.host in WILDCARDS:
            found = lan_addresses()
        else:
            # Bound to one address: that is the only one a device can reach it on.
            found = [LanAddress("the address in Settings", site.host)]
        self.lan_urls = [a.url(site.port, tls=site.tls) for a in found]
        self.pair_button.setEnabled(bool(self.lan_urls) and view.state is GatewayState.RUNNING)
        if not self.lan_urls:
            self.lan_label.setText(
                "No network interface with an IPv4 address is up, so no other device can reach "
                "this computer yet. Connect to a network and toggle the switch again."
            )
            self.qr_label.clear()
            return
        lines = "<br>".join(
            f"<b>{url}</b> ({a.interface})" for url, a in zip(self.lan_urls, found, strict=True)
        )
        self.lan_label.setText(
            f"Devices on your network connect to:<br>{lines}<br>Scan the code with a phone."
        )
        self.qr_label.setPixmap(QPixmap.fromImage(qr_image(self.lan_urls[0], module_px=5)))

    def _show_counts(self, counts: Counts) -> None:
        self.rpm_figure.set_value(str(counts.requests_per_min))
        if counts.active_sessions is None:
            self.sessions_figure.set_value("–", "Shown while the gateway is running.")
        else:
            self.sessions_figure.set_value(str(counts.active_sessions))
        self.audio_figure.set_value(f"{counts.audio_minutes_today:.1f}")

    def _show_backends(self, statuses: list[BackendStatus]) -> None:
        table = self.backends_table
        table.setRowCount(len(statuses))
        for row, status in enumerate(statuses):
            health = {None: "checking…", True: "answering", False: "unreachable"}[status.healthy]
            cells = (
                status.label,
                health,
                "in a conversation" if status.busy else "idle",
                str(status.sessions_served),
                str(status.queue_length),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(
                    status.url if column == 0 else status.detail if column == 1 else text
                )
                table.setItem(row, column, item)
        view = self._ctx.gateway.view
        down = (
            view.state is GatewayState.RUNNING
            and not view.demo
            and bool(statuses)
            and all(s.healthy is False for s in statuses)
        )
        self.no_backend_label.setText(
            "No model server answers, so conversations cannot start. Check that the server "
            "runs and its address in Settings, or use the demo backend to try the app."
            if down
            else ""
        )
        self.no_backend_label.setVisible(down)
        self.use_demo_button.setVisible(down)

    # -- actions ------------------------------------------------------------------------------

    @staticmethod
    def _certificate_text(view: GatewayView) -> str:
        tls = view.tls
        if tls is None or view.lan_address is None:
            return ""
        code = f"<br><code>{_breakable(tls.fingerprint_sha256)}</code>"
        if tls.generated:
            return (
                "Devices trust this gateway once they trust its certificate authority: save it "
                "below, or open /ca.crt on the device, and compare its SHA-256 fingerprint:" + code
            )
        return "Serving your own certificate, SHA-256 fingerprint:" + code

    def _pair(self) -> None:
        if not self.lan_urls:
            return
        dialog = PairDialog(self._ctx.io, self._ctx.keystore, self.lan_urls[0], self)
        dialog.setModal(True)
        dialog.open()
        self.pair_dialog = dialog

    def _save_ca(self) -> None:
        tls = self._ctx.gateway.view.tls
        if tls is None or tls.ca_der is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the CA certificate", "pplex-ca.crt", "Certificates (*.crt *.cer)"
        )
        if not path:
            return
        der = tls.ca_der

        def save() -> None:
            # Public, unlike the key files: readable by everyone, like any certificate.
            write_atomic(Path(path), der, mode=0o644)

        self._ctx.io.call_fn(
            save,
            on_done=lambda _none: self._ctx.status.post(f"The CA certificate was saved to {path}."),
            what="saving the CA certificate",  # a failure is a FileWriteError's sentence
        )

    def _lan_toggled(self, on: bool) -> None:
        live = self._ctx.counters.counts.active_sessions or 0
        if live and self._ctx.gateway.view.state is GatewayState.RUNNING:
            self._confirm_lan(on, live)
            return
        self._apply_lan(on)

    def _confirm_lan(self, on: bool, live: int) -> None:
        calls = "1 live conversation" if live == 1 else f"{live} live conversations"
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Restart the gateway?",
            f"{'Serving your local network' if on else 'Serving this computer only'} restarts "
            f"the gateway, which ends {calls}. Restart now?",
            parent=self,
        )
        self.lan_restart_button = box.addButton(
            f"Restart and end {calls}", QMessageBox.ButtonRole.DestructiveRole
        )
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            self.lan_confirm = None
            if box.clickedButton() is self.lan_restart_button:
                self._apply_lan(on)
            else:
                self._show_view(self._ctx.gateway.view)  # the switch goes back

        box.finished.connect(finished)
        self.lan_confirm = box
        box.open()

    def _apply_lan(self, on: bool) -> None:
        current = self._ctx.settings.current
        # Plain HTTP stays on this computer; the network gets its own HTTPS listener.
        wanted = current.replace(serve_lan=on, host=LOCAL_HOST)
        self.lan_switch.setEnabled(False)

        def done(_settings: object) -> None:
            self.lan_switch.setEnabled(True)
            self._ctx.status.post(
                "The gateway now serves your local network."
                if on
                else "The gateway now serves this computer only."
            )

        def failed(error: BaseException) -> None:
            self.lan_switch.setEnabled(True)
            self._show_view(self._ctx.gateway.view)
            self._ctx.errors.report("changing network serving", error)

        self._ctx.settings.update(wanted, done, failed)

    def _use_demo(self) -> None:
        wanted = self._ctx.settings.current.replace(demo=True)
        self._ctx.settings.update(
            wanted,
            lambda _s: self._ctx.status.post(
                f"The gateway now uses the demo backend ({DEMO_LABEL})."
            ),
            lambda error: self._ctx.errors.report("switching to the demo backend", error),
        )
