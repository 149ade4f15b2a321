"""WebSocket close codes the package sends and reads (RFC 6455 section 7.4), with their meaning."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # a server (the gateway or a model server) is shutting down
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never sent: a close frame arrived without a code
    ABNORMAL = 1006  # never sent: the connection dropped without a close frame
    INVALID_DATA = 1007  # the audio is not a valid Ogg Opus stream
    POLICY = 1008  # revoked key, limits, ended by an administrator, client not reading
    MESSAGE_TOO_BIG = 1009
    BACKEND_ERROR = 1011  # the model server failed during the session
    TRY_LATER = 1013  # queue full or queue wait exceeded
    BAD_GATEWAY = 1014  # the model server could not be reached or refused the session


# Codes with which a model server refuses what it was sent, not codes of a failing server:
# it is up and answering, so it stays in service and the caller hears the code.
INPUT_REFUSALS: dict[int, str] = {
    CloseCode.PROTOCOL_ERROR: "a protocol error",
    CloseCode.UNSUPPORTED_DATA: "data it cannot accept",
    CloseCode.INVALID_DATA: "invalid data",
    CloseCode.MESSAGE_TOO_BIG: "a message too big",
}
