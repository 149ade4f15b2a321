"""Window geometry and similar UI state, in QSettings (the settings file is for the gateway)."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANIZATION = "pplex"
APPLICATION = "pplex-desktop"


def ui_state() -> QSettings:
    # INI everywhere: readable, and tests can move it with QSettings.setPath.
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
    )
