"""Errors meant for users: one clear line, a fixed exit code, no traceback.

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class CanaryError(Exception):
    """A problem the user can fix; the CLI prints ``str(err)`` and exits 2."""

    exit_code = 2


class ConfigError(CanaryError):
    """Malformed or incomplete configuration."""


class SourceError(CanaryError):
    """Unknown source, unreachable target database, or a target that does not fit."""


class CanaryAltered(SourceError):
    """Retire found a planted row whose identifying values changed since planting: it may now be
    a real patient's, so it was kept (``canary retire`` reports it and exits 1)."""


class MappingError(CanaryError):
    """A generic-SQL mapping that does not fit its table."""


class PoolExhausted(CanaryError):
    """No unused contact point left (phone pool, email local parts...)."""


class RegistryError(CanaryError):
    """The registry database is unreachable or not migrated."""


# Database error details that quote row values (tokens, evidence) back.
_DETAILS = re.compile(r"^(\[parameters: |DETAIL: ).*$", re.MULTILINE)


def scrub(text: str) -> str:
    """Blank the parts of database errors that quote values (SQLAlchemy's bound
    parameters, PostgreSQL's ``DETAIL: Key (value)=(...)`` lines)."""
    if "[parameters: " not in text and "DETAIL: " not in text:
        return text
    return _DETAILS.sub(lambda m: m.group(1) + "(hidden)" + ("]" if m.group(1).startswith("[") else ""), text)


def error_text(err: BaseException) -> str:
    """An error for a log line: our own messages (written to be shown), else only the
    class, since drivers put values (and sometimes connection details) into theirs."""
    if isinstance(err, CanaryError):
        return scrub(str(err))
    return type(err).__name__
