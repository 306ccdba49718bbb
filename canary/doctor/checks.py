"""`canary doctor`: the whole installation checked, one line per finding.

Each check is a ``Probe`` (a group name and a function of a ``Context``)
yielding ``Check`` results: ``ok``, ``warn`` or ``fail`` with one line of
detail. Checks are independent: each opens what it needs itself, runs in its
own thread under a deadline, and never raises; an exception becomes a
``fail`` line with its reason. A check that cannot run because something it
depends on is broken (no configuration, no registry) says ``warn ... not
checked`` so that the broken thing fails once, in its own line.

Nothing here writes to a target database, sends an email or records a hit:
sources are opened the way ``canary verify`` opens them and asked for their
rights (``Seeder.check_access``), the SMTP sink only logs in, webhooks get an
unsigned request that a healthy listener refuses. Secrets are only named,
never shown: every line is scrubbed of the values of the variables it could
hold. The checks themselves live in ``canary.doctor.install`` (configuration,
registry, sources, verify, audit) and ``canary.doctor.network`` (listener, alerts);
``canary.doctor.run`` runs them. This module holds what they share.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from canary.config import Setting
from canary.errors import CanaryError

OK, WARN, FAIL = "ok", "warn", "fail"
DEFAULT_TIMEOUT = 2.0  # seconds per network question
SOURCE_DEADLINE = 60.0  # seconds to open one source (FHIR and application seeders read samples)
VERIFY_HINT = "run canary verify; is the canary-verify.timer enabled?"
# Check groups in running order (--skip / --only); probes() gives each its function.
GROUPS = ("config", "registry", "sources", "verify", "dns", "http", "webhooks", "admin", "smtp", "alerts", "audit",
          "scanner", "files", "limits")

SETTINGS: tuple[Setting, ...] = (
    Setting("doctor.verify_max_age", "48h",
            "`canary doctor` fails a source whose planted canaries were last verified longer ago "
            "than this (or never): `canary verify` should run from a timer."),
)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``status`` is ok, warn or fail; ``detail`` is one line."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


class NotChecked(Exception):
    """What a check needs is broken; that is reported by its own check."""


@dataclass
class Context:
    """What the checks share: where the configuration is, the environment, the limits."""

    config_path: str | os.PathLike[str] | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    timeout: float = DEFAULT_TIMEOUT
    listener_host: str | None = None  # check this node instead of the configured addresses
    now: Callable[[], datetime] = field(default_factory=lambda: lambda: datetime.now(timezone.utc))
    _loaded: tuple[Any, CanaryError | None] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def load_config(self):
        """The configuration (read once), or CanaryError saying why not (the config check reports it)."""
        from canary.config import find_config_path, load_config
        from canary.errors import ConfigError

        with self._lock:
            if self._loaded is None:
                try:
                    path = find_config_path(self.config_path, self.environ)
                    if path is None:
                        raise ConfigError("no configuration found: pass --config or set CANARY_CONFIG")
                    self._loaded = (load_config(Path(path), self.environ), None)
                except CanaryError as err:
                    self._loaded = (None, err)
        config, error = self._loaded
        if error is not None:
            raise error
        return config

    @property
    def config(self):
        try:
            return self.load_config()
        except CanaryError:
            raise NotChecked("the configuration does not load (see config)") from None

    @contextlib.contextmanager
    def registry(self) -> Iterator[Any]:
        from canary.registry import Registry

        url = self.config.registry_url
        try:
            registry = Registry.open(url)
        except CanaryError:
            raise NotChecked("the registry cannot be opened (see registry)") from None
        try:
            yield registry
        finally:
            registry.close()


@dataclass(frozen=True, slots=True)
class Probe:
    group: str  # what --skip / --only name
    run: Callable[[Context], Iterable[Check]]
    help: str
    deadline: float | None = 30.0  # seconds for the whole probe; None: it bounds itself


# -- running -------------------------------------------------------------------------


def call_with_deadline(fn: Callable[[], Any], seconds: float) -> tuple[bool, Any, BaseException | None]:
    """(finished, value, error) of ``fn()`` run in a daemon thread for at most ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed back to the caller
            box["error"] = err

    thread = threading.Thread(target=target, name="canary-doctor", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("error")


def error_check(name: str, error: BaseException) -> Check:
    if isinstance(error, NotChecked):
        return Check(name, WARN, f"not checked: {error}")
    if isinstance(error, CanaryError):
        return Check(name, FAIL, str(error))
    return Check(name, FAIL, f"{type(error).__name__}: {first_line(error)}")


def first_line(value: object, limit: int = 200) -> str:
    text = str(value).strip()
    return (text.splitlines()[0] if text else "")[:limit] or "no detail"


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(text.split())


# -- secrets named by the configuration and the sources -------------------------------


def named_secrets(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(setting, environment variable) of every ``*_env`` setting the file sets."""
    from canary.config import all_settings

    found = []
    for setting in all_settings():
        if setting.secret_env:
            value = lookup(raw, setting.name)
            if isinstance(value, str) and value:
                found.append((setting.name, value))
    return found


def source_secrets(spec) -> list[tuple[str, str]]:
    """(what, environment variable) a source reads: its URL, and seeder options ending in _env."""
    found = [("its URL", spec.url_env)] if spec.url_env else []
    found += [(f"option {name}", str(value)) for name, value in sorted(spec.options.items())
              if name.endswith("_env") and value]
    return found


def lookup(raw: Mapping[str, Any], dotted: str) -> Any:
    value: Any = raw
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def secret_values(ctx: Context) -> set[str]:
    """Values that must never appear in a line: every named secret, and source URLs' passwords."""
    from sqlalchemy.engine import make_url

    names: list[str] = []
    with contextlib.suppress(Exception):
        names += [env for _, env in named_secrets(ctx.load_config().raw)]
        with ctx.registry() as registry:
            names += [env for s in registry.list_sources() for _, env in source_secrets(s.spec)]
    values = set()
    for name in names:
        value = ctx.environ.get(name)
        if value and len(value) >= 4:
            values.add(value)
            with contextlib.suppress(Exception):
                password = make_url(value).password
                if password and len(password) >= 4:
                    values.add(str(password))
    return values
