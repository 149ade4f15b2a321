"""The keys page: create (shown once), edit limits, revoke, delete; filter and sort.

Every store operation runs in the desktop's disk thread through the I/O bridge, so neither the
window nor the gateway's loop waits on SQLite. It works the same while the gateway is stopped:
the store is the same file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.expiry import expiry_time
from pplex_desktop.core.keystore import KIND_OWNER, UNSET, ApiKey, KeyState, KeyStore, NewKey
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.keys.key_dialogs import KeyLimitsDialog, KeyRequest, NewKeyDialog
from pplex_desktop.ui.keys.keys_model import CREATED, KEY_ROLE, NAME, KeysFilter, KeysTableModel
from pplex_desktop.ui.widgets.widgets import label

T = TypeVar("T")
REFRESH_DEBOUNCE_MS = 100
# Usage is booked without a KeysChanged event (that would be one per request): while the page
# is on screen, its usage and "last used" columns are re-read this often.
USAGE_REFRESH_MS = 5_000


def _expiry(store: KeyStore, request: KeyRequest) -> float | None:
    return expiry_time(store.clock.wall(), in_days=request.expires_in_days, at=request.expires_at)


class KeysPanel(QWidget):
    def __init__(self, ctx: DesktopContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self.model = KeysTableModel(parent=self)
        self.proxy = KeysFilter(self)
        self.proxy.setSourceModel(self.model)
        self.limits_dialog: KeyLimitsDialog | None = None
        self.new_key_dialog: NewKeyDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.loaded = 0  # how many refreshes completed (tests wait on it)

        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.addWidget(label("API keys", role="title"))
        root.addWidget(
            label(
                "Every client of the gateway (a phone, a script, a LAN browser) uses its own "
                "key with its own limits. A key is shown once, when it is made.",
                role="subtitle",
                wrap=True,
            )
        )
        bar = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name, prefix or state")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.owner_check = QCheckBox("Show this app's own key")
        self.owner_check.toggled.connect(self.proxy.set_show_owner)
        self.new_button = QPushButton("&New key…")
        self.new_button.setObjectName("newKeyButton")
        self.edit_button = QPushButton("&Edit limits…")
        self.revoke_button = QPushButton("&Revoke…")
        self.delete_button = QPushButton("De&lete…")
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.owner_check)
        for button in (self.new_button, self.edit_button, self.revoke_button, self.delete_button):
            bar.addWidget(button)
        root.addLayout(bar)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        # Every column as wide as its text; the name takes what is left and elides a long one
        # (the whole of every cell is in its tooltip).
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.table.doubleClicked.connect(lambda _index: self.edit_selected())
        root.addWidget(self.table, 1)
        self.empty_label = label(
            "No keys yet. Make one with “New key…” and give it to a client.", role="subtitle"
        )
        root.addWidget(self.empty_label)

        self.new_button.clicked.connect(self.create_key)
        self.edit_button.clicked.connect(self.edit_selected)
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(REFRESH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh)
        ctx.bridge.keys_changed.connect(self._debounce.start)
        self._usage_timer = QTimer(self)
        self._usage_timer.setInterval(USAGE_REFRESH_MS)
        self._usage_timer.timeout.connect(self.refresh)
        self._update_buttons()
        self.refresh()

    # -- reading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        selected = self.selected()
        self._ctx.io.call_fn(
            self._ctx.keystore.list_keys,
            on_done=lambda keys: self._loaded(keys, selected.id if selected else None),
            what="reading the API keys",
            read_only=True,
        )

    def _loaded(self, keys: list[ApiKey], keep_id: int | None) -> None:
        self.model.set_keys(keys)
        self.loaded += 1
        self.empty_label.setVisible(not any(k.kind != KIND_OWNER for k in keys))
        if keep_id is not None:
            self.select_key(keep_id)
        self._update_buttons()

    def selected(self) -> ApiKey | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        record = rows[0].data(KEY_ROLE)
        return record if isinstance(record, ApiKey) else None

    def select_key(self, key_id: int) -> bool:
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            record = index.data(KEY_ROLE)
            if isinstance(record, ApiKey) and record.id == key_id:
                self.table.selectionModel().select(
                    index,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
                return True
        return False

    def _update_buttons(self) -> None:
        record = self.selected()
        mine = record is not None and record.kind != KIND_OWNER
        revoked = record is not None and record.revoked_at is not None
        # An expired key stays editable: a later expiry brings it back; a revoked one never.
        self.edit_button.setEnabled(mine and not revoked)
        self.delete_button.setEnabled(mine)
        active = record is not None and record.state(time.time()) is KeyState.ACTIVE
        self.revoke_button.setEnabled(mine and active)
        if record is None:
            tip = "Select a key to change its name, limits and expiry."
        elif not mine:
            tip = "This app's own key is made anew at every start; its limits are the defaults."
        elif revoked:
            tip = "A revoked key cannot be changed or brought back; make a new key instead."
        else:
            tip = "Change the name, limits, expiry and voices permission of the selected key."
        self.edit_button.setToolTip(tip)

    # -- writing -------------------------------------------------------------------------------

    def _run(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        def failed(error: BaseException) -> None:
            if isinstance(error, PplexError) and on_error is not None:
                on_error(error.message)
            else:
                self._ctx.errors.report(what, error)

        self._ctx.io.call_fn(fn, *args, on_done=on_done, on_error=failed, what=what)

    def create_key(self) -> None:
        settings = self._ctx.settings.current
        store = self._ctx.keystore
        dialog = KeyLimitsDialog(
            self,
            title="New API key",
            rpm=settings.default_rpm,
            max_sessions=settings.default_max_sessions,
        )

        def make(request: KeyRequest) -> NewKey:
            return store.create(
                request.name,
                rpm=request.rpm,
                max_sessions=request.max_sessions,
                expires_at=_expiry(store, request),
                can_manage_voices=request.can_manage_voices,
            )

        def made(new: NewKey) -> None:
            self._after(f"The key '{new.record.name}' was created.")
            self._show_new_key(new)

        self._ask(dialog, "createKeyDialog", "creating a key", make, made)

    def edit_selected(self) -> None:
        record = self.selected()
        if record is None or record.kind == KIND_OWNER or record.revoked_at is not None:
            return
        store = self._ctx.keystore
        dialog = KeyLimitsDialog(
            self,
            title=f"Limits of '{record.name}'",
            rpm=record.rpm,
            max_sessions=record.max_sessions,
            name=record.name,
            expires_at=record.expires_at,
            can_manage_voices=record.can_manage_voices,
        )

        def change(request: KeyRequest) -> ApiKey:
            # The store call of PATCH /admin/keys/{id}, with the expiry worked out alike.
            return store.update(
                record.id,
                name=request.name,
                rpm=request.rpm,
                max_sessions=request.max_sessions,
                expires_at=_expiry(store, request) if request.change_expiry else UNSET,
                can_manage_voices=request.can_manage_voices,
            )

        def changed(updated: ApiKey) -> None:
            self._after(f"The limits of '{updated.name}' were saved.")

        self._ask(dialog, "editKeyDialog", "changing a key", change, changed)

    def _ask(
        self,
        dialog: KeyLimitsDialog,
        name: str,
        what: str,
        apply: Callable[[KeyRequest], T],
        then: Callable[[T], None],
    ) -> None:
        """Open ``dialog``; each OK runs ``apply`` in the disk thread, then closes the dialog
        and calls ``then``, or shows the store's refusal in the dialog and keeps it open."""
        dialog.setObjectName(name)

        def done(result: T) -> None:
            dialog.accept()
            then(result)

        dialog.requested.connect(
            lambda request: self._run(
                what, apply, request, on_done=done, on_error=dialog.show_error
            )
        )

        def closed(_result: int) -> None:
            if self.limits_dialog is dialog:
                self.limits_dialog = None
            dialog.deleteLater()

        dialog.finished.connect(closed)
        self.limits_dialog = dialog
        dialog.open()

    def _show_new_key(self, new: NewKey) -> None:
        dialog = NewKeyDialog(self, new.key, new.record)
        self.new_key_dialog = dialog
        dialog.finished.connect(lambda _result: setattr(self, "new_key_dialog", None))
        dialog.open()

    def _confirm(self, title: str, text: str, verb: str, then: Callable[[], None]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self)
        confirm = box.addButton(f"&{verb}", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            self.confirm_box = None
            if box.clickedButton() is confirm:
                then()

        box.finished.connect(finished)
        self.confirm_box = box
        box.open()

    def revoke_selected(self) -> None:
        record = self.selected()
        if record is None or record.kind == KIND_OWNER:
            return
        self._confirm(
            "Revoke key",
            f"Revoke the key '{record.name}' ({record.prefix}…)? Clients using it are refused "
            "from their next request. This cannot be undone.",
            "Revoke",
            lambda: self._run(
                "revoking a key",
                self._ctx.keystore.revoke,
                record.id,
                on_done=lambda key: self._after(f"The key '{key.name}' was revoked."),
            ),
        )

    def delete_selected(self) -> None:
        record = self.selected()
        if record is None or record.kind == KIND_OWNER:
            return
        self._confirm(
            "Delete key",
            f"Delete the key '{record.name}' and its usage history? Clients using it are "
            "refused from their next request.",
            "Delete",
            lambda: self._run(
                "deleting a key",
                self._ctx.keystore.delete,
                record.id,
                on_done=lambda _none: self._after(f"The key '{record.name}' was deleted."),
            ),
        )

    def _after(self, message: str) -> None:
        self._ctx.status.post(message)
        self.refresh()

    def page_shown(self) -> None:
        self.refresh()
        self._usage_timer.start()

    def page_hidden(self) -> None:
        self._usage_timer.stop()

    def shutdown(self) -> None:
        self._usage_timer.stop()
        self._debounce.stop()
