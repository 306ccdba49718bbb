"""The admin dashboard served by ``canary listen`` on ``listener.admin`` (see docs/admin.md).

``create_admin_app(registry, config, metrics=None, readiness=None)`` builds the
Flask app; ``AdminConfig.from_table`` reads the ``[admin]`` table.
"""

from __future__ import annotations

from typing import Any

from listener.admin.config import AdminConfig, admin_bind

__all__ = ["AdminConfig", "admin_bind", "create_admin_app"]


def __getattr__(name: str) -> Any:
    # Loading a configuration imports listener.admin.config for its SETTINGS:
    # the web stack (Flask-WTF, bcrypt) is only imported when the app is built.
    if name == "create_admin_app":
        from listener.admin.app import create_admin_app

        return create_admin_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
