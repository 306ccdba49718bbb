"""Structured logs for the listener: one JSON object per line on stderr.

``configure_json_logging()`` is called by ``canary listen`` (never at import);
it returns the handler so that a caller running the listener in-process (the
demo, tests) can take it off again with ``remove_json_logging``.

Each line carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` and,
for errors, ``exc`` (the traceback as text); fields passed with
``extra={"event": ..., ...}`` are added as keys. Log messages of this
project name canaries, sources and hits by id only: no patient data, no
password, no secret goes into them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any

QUIET = ("mail.log", "alembic")

# Attributes every LogRecord has: anything else was passed with ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


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
