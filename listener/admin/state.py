"""The admin app's per-app state, shared by the app factory and the views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Protocol

from flask import current_app

from listener.admin.auth import Authenticator
from listener.admin.config import AdminConfig

if TYPE_CHECKING:
    from canary.registry import Registry

EXTENSION = "canary.admin"
OPEN_ENDPOINTS = frozenset({"static", "healthz", "readyz", "metrics", "admin.login"})


class Metrics(Protocol):
    def exposition(self, full: bool = True) -> tuple[bytes, str]: ...


Readiness = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class AdminState:
    """Per-app state, in ``app.extensions``."""

    registry: "Registry"
    config: AdminConfig
    auth: Authenticator
    metrics: Metrics | None
    readiness: Readiness | None


def state() -> AdminState:
    return current_app.extensions[EXTENSION]
