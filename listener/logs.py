"""Structured logs for the listener: one JSON object per line on stderr.

``configure_json_logging()`` is called by ``canary listen`` (never at import);
it returns the handler so that a caller running the listener in-process (the
demo, tests) can take it off again with ``remove_json_logging``.

Each line carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` and,
for errors, ``exc`` (the traceback as text); fields passed with
``extra={"event": ..., ...}`` are added as keys. Log messages of this
project name canaries, sources and hits by id only: no patient data, no
password, no secret goes into them.

What a log line may carry: canary, hit, alert and incident ids, source and
sink names, channels, classifications, client and resolver addresses, counts.
Never: a token value (DNS label, URL code, email address, phone number,
portal login), an identity field, a message body, a password or a secret.
Error texts need care, as drivers put values into them: ``error_text()``
keeps our own one-line errors and only the class of the others, and the
formatter blanks the bound parameters SQLAlchemy adds to database errors and
the DETAIL lines of PostgreSQL (``Key (value)=(...) already exists``), in
messages and tracebacks alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import IO, Any

from canary.errors import CanaryError

QUIET = ("mail.log", "alembic")
# Database error details that quote row values (tokens, evidence) back.
_DETAILS = re.compile(r"^(\[parameters: |DETAIL: ).*$", re.MULTILINE)

# Attributes every LogRecord has: anything else was passed with ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = scrub(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


def scrub(text: str) -> str:
    """Blank the parts of database errors that quote values."""
    if "[parameters: " not in text and "DETAIL: " not in text:
        return text
    return _DETAILS.sub(lambda m: m.group(1) + "(hidden)" + ("]" if m.group(1).startswith("[") else ""), text)


def error_text(err: BaseException) -> str:
    """An error for a log line: our own messages (written to be shown), else only the class."""
    if isinstance(err, CanaryError):
        return scrub(str(err))
    return type(err).__name__


def configure_json_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    handler._canary_previous_level = root.level  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Chatter of the libraries under us: per-session SMTP lines (raw client input)
    # and Alembic's start-up notes add nothing to the listener's log.
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


def remove_json_logging(handler: logging.Handler) -> None:
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(getattr(handler, "_canary_previous_level", root.level))
    handler.close()
