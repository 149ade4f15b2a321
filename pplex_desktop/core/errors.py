"""Domain errors that carry a stable code, an HTTP status and a human sentence.

Every layer raises these; the gateway turns them into JSON responses in one place and the
desktop shows `message` as is, so the message must be a sentence a user can act on.
"""

from __future__ import annotations


class PplexError(Exception):
    """Base of every error a user may see."""

    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ConfigError(PplexError):
    code = "invalid_config"
    status = 400


class ValidationError(PplexError):
    code = "invalid_request"
    status = 400


class AuthError(PplexError):
    code = "unauthorized"
    status = 401


class ForbiddenError(PplexError):
    code = "forbidden"
    status = 403


class NotFoundError(PplexError):
    code = "not_found"
    status = 404


class PayloadTooLargeError(PplexError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaError(PplexError):
    code = "unsupported_media_type"
    status = 415


class UnprocessableError(PplexError):
    code = "unprocessable"
    status = 422


class RateLimitedError(PplexError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class UnavailableError(PplexError):
    code = "unavailable"
    status = 503

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, code: str | None = None
    ):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
