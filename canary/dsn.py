"""Database URLs: hide their passwords, find them, make SQLite paths absolute.

A URL here is an SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``,
``sqlite:////var/lib/canary/registry.db``). Passwords reach us only through
environment variables; everything that prints or stores a URL goes through
``redact`` first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from sqlalchemy.engine import URL, make_url

from canary.errors import ConfigError
from canary.model import SourceSpec

UNPARSEABLE = "<unparseable URL>"
MASK = "***"

# Drivers also accept a password as a query parameter (``?password=...``); HTTP
# sources (FHIR) may carry a token there.
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "secret",
                                "token", "access_token", "api_key", "apikey"})
# Fallback for strings make_url rejects: "scheme://user:secret@".
_USERINFO_WITH_PASSWORD = re.compile(r"^[^:/]+://[^/@]*:[^/@]*@")


def _parse(url: object) -> URL | None:
    if isinstance(url, URL):
        return url
    if not isinstance(url, str):
        return None
    try:
        return make_url(url)
    except Exception:  # make_url raises ArgumentError, ValueError (bad port)...
        return None


def _secret_keys(parsed: URL) -> list[str]:
    return [key for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS]


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``; never raises."""
    parsed = _parse(url)
    if parsed is None:
        return UNPARSEABLE
    try:
        secret_keys = _secret_keys(parsed)
        if secret_keys:
            parsed = parsed.update_query_dict({key: MASK for key in secret_keys})
        # render_as_string percent-encodes the query mask; show it as typed.
        return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)
    except Exception:
        return UNPARSEABLE


def has_password(url: str) -> bool:
    """True if the URL carries a password (in the user part or the query)."""
    parsed = _parse(url)
    if parsed is None:
        # Unparseable but may still hold "user:secret@": err on the safe side.
        return isinstance(url, str) and bool(_USERINFO_WITH_PASSWORD.match(url))
    return bool(parsed.password) or bool(_secret_keys(parsed))


def is_sqlite(url: str) -> bool:
    parsed = _parse(url)
    return parsed is not None and parsed.get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for other engines and in-memory databases."""
    parsed = _parse(url)
    if parsed is None or parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def absolutize_sqlite(url: str, base_dir: str | os.PathLike[str]) -> str:
    """Resolve a relative SQLite path against ``base_dir`` (the config file's folder).

    Other URLs, absolute paths and in-memory databases come back unchanged.
    """
    path = sqlite_path(url)
    if path is None:
        return url
    if path.is_absolute():
        return url
    path = path.expanduser()  # "~/registry.db" is meant from the user's home
    if not path.is_absolute():
        path = Path(base_dir).expanduser().absolute() / path
    return make_url(url).set(database=str(path)).render_as_string(hide_password=False)


def resolve_url(spec: SourceSpec, environ: Mapping[str, str] = os.environ) -> str:
    """The URL to connect to a source: from its environment variable, else its stored URL."""
    if spec.url_env:
        value = environ.get(spec.url_env)
        if not value:
            raise ConfigError(
                f"source '{spec.name}': environment variable {spec.url_env} is not set"
            )
        return value
    if spec.url:
        return spec.url
    raise ConfigError(
        f"source '{spec.name}' has no database URL: re-add it with --url-env or --url"
    )
