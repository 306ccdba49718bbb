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
import sys
import threading
import time
from datetime import datetime, timezone
from typing import IO, Any

from canary.errors import scrub

QUIET = ("mail.log", "alembic")

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


REPEAT_INTERVAL = 10.0  # seconds: one line per repeated warning or error in that time, then a summary


class RepeatFilter(logging.Filter):
    """Lets the first of identical warnings and errors through, holds back the repeats for
    ``interval`` seconds, then lets the next through with ``repeated`` (how many were held).

    Identical errors: same logger, level and message template (the arguments may differ:
    a client address, a count). Identical warnings: the same with the same arguments too,
    since each hit is one warning line of its own (``hit #12: canary #3 ...``). An
    attacker sending junk to every front end used to get about 8,000 ERROR lines a second
    (220 MB in two minutes) out of the listener. Info lines pass untouched (their events
    are counted in /metrics).
    """

    def __init__(self, interval: float = REPEAT_INTERVAL, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._seen: dict[tuple[str, int, str], list[float | int]] = {}  # key -> [window start, held]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg),
               "" if record.levelno >= logging.ERROR else repr(record.args)[:300])
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return False
            held = int(seen[1]) if seen is not None else 0
            if len(self._seen) > 10_000:  # bounded, whatever the variety of messages
                self._seen.clear()
            self._seen[key] = [now, 0]
        if held:
            record.repeated = held  # a JSON field: how many identical lines were held back
            record.msg = f"{record.msg} (and {held} more like it in the last {self.interval:g} s)"
        return True


def configure_json_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr) as JSON lines,
    repeated warnings and errors summarised (RepeatFilter)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
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
