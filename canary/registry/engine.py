"""Connecting to the registry database: SQLite file safety, pragmas, errors.

The registry says which hospital database holds which fake patient: it is
sensitive. A new SQLite file is created 0600 before SQLAlchemy opens it, and an
existing one readable by others is tightened.

SQLite is shared with the listener process, so it runs in WAL mode (readers
never block the writer), waits for locks (busy_timeout) instead of failing at
once, and write transactions start with ``BEGIN IMMEDIATE``: a deferred
transaction that reads then writes can fail with "database is locked" without
waiting, whatever the busy timeout.
"""

from __future__ import annotations

import logging
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from canary.dsn import is_sqlite, redact, sqlite_path
from canary.errors import RegistryError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
SQLITE_BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 10

# Execution option telling the SQLite "begin" hook to take the write lock now.
_WRITE = "canary_write"


def prepare_sqlite_file(path: Path, *, create: bool, url_redacted: str) -> None:
    """Create the file 0600 if asked; refuse to let SQLite invent an empty one."""
    if path.exists():
        _tighten(path)
        return
    if not create:
        raise RegistryError(f"registry at {url_redacted} is not initialised: run `canary init`")
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:  # created meanwhile by another process: fine
        _tighten(path)
        return
    except OSError as err:
        raise RegistryError(
            f"cannot create registry file {path}: {err.strerror}; check the directory"
        ) from None
    try:
        os.fchmod(fd, FILE_MODE)  # the umask could have removed bits, never added: be explicit
    finally:
        os.close(fd)


def _tighten(path: Path) -> None:
    """Make an existing registry file private to its owner, if we may."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 and path.is_file():
            os.chmod(path, mode & 0o700)
            log.info("registry file %s was readable by others: now mode %o", path, mode & 0o700)
    except OSError:
        pass  # not our file (e.g. a shared service account): leave it to its owner


def create_engine(url: str, *, create: bool) -> sa.Engine:
    """An engine for the registry, or RegistryError with one line (password hidden)."""
    url_redacted = redact(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise RegistryError(
            f"registry URL {url_redacted} is not a database URL "
            "(e.g. sqlite:////var/lib/canary/registry.db)"
        ) from None
    backend = parsed.get_backend_name()
    kwargs: dict = {"pool_pre_ping": True}
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            prepare_sqlite_file(path, create=create, url_redacted=url_redacted)
        else:  # in memory: one shared connection, or each would see its own database
            kwargs = {"poolclass": sa.pool.StaticPool}
            kwargs["connect_args"] = {"check_same_thread": False}
    elif backend == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except Exception as err:  # unknown dialect, driver not installed
        raise RegistryError(
            f"cannot use registry at {url_redacted}: {type(err).__name__}: "
            f"{_one_line(err, parsed.password)}"
        ) from None
    if backend == "sqlite":
        _set_up_sqlite(engine)
    return engine


def _set_up_sqlite(engine: sa.Engine) -> None:
    in_memory = sqlite_path(engine.url.render_as_string(hide_password=False)) is None

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # We emit BEGIN ourselves (below); pysqlite's own handling would defer it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that will write; commits on success."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as connection:
        with connection.begin():
            yield connection


def unreachable(err: BaseException, url: str) -> RegistryError:
    """Turn a driver error at connect time into one line without the password."""
    password = None
    try:
        password = make_url(url).password
    except Exception:
        pass
    orig = getattr(err, "orig", None) or err
    verb = "open" if is_sqlite(url) else "reach"
    return RegistryError(f"cannot {verb} registry at {redact(url)}: {_one_line(orig, password)}")


def _one_line(err: BaseException, password: str | None) -> str:
    text = str(err).strip() or type(err).__name__
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if password:
        text = text.replace(str(password), "***")
    return text[:300]
