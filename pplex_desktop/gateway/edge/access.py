"""Who may call a handler: anyone, holders of an API key (the default), or the admin."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from aiohttp import web

F = TypeVar("F", bound=Callable[..., object])
_ATTR = "pplex_access"


class Access(StrEnum):
    PUBLIC = "public"
    KEY = "key"
    ADMIN = "admin"


def public(handler: F) -> F:
    setattr(handler, _ATTR, Access.PUBLIC)
    return handler


def admin_only(handler: F) -> F:
    setattr(handler, _ATTR, Access.ADMIN)
    return handler


def access_of(request: web.Request) -> Access:
    route = request.match_info.route
    if isinstance(route.resource, web.StaticResource):
        return Access.PUBLIC
    return Access(getattr(request.match_info.handler, _ATTR, Access.KEY))
