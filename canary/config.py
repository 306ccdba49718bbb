"""canary.toml: one TOML file, secrets only through environment variables.

Every setting is declared once in SETTINGS (name, default, help); the loader
rejects unknown keys (a typo must not silently fall back to a default) and a
test checks that docs/configuration.md documents each setting.
"""

from __future__ import annotations

import functools
import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from canary.contacts import ContactPoints, demo_contacts
from canary.errors import ConfigError

CONFIG_ENV = "CANARY_CONFIG"
DEFAULT_CONFIG_NAME = "canary.toml"
DEFAULT_REGISTRY_URL = "sqlite:///canary-registry.db"


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # dotted: "table.key"
    default: Any
    help: str
    secret_env: bool = False  # the value names an environment variable holding a secret


SETTINGS: tuple[Setting, ...] = (
    Setting("registry.url", DEFAULT_REGISTRY_URL,
            "SQLAlchemy URL of the registry database; a relative SQLite path is "
            "relative to the folder of canary.toml. Keep it apart from every target database."),
    Setting("registry.url_env", None,
            "Name of an environment variable holding the registry URL (use it for a "
            "PostgreSQL URL with a password); wins over registry.url.", secret_env=True),
    Setting("contacts.email_domains", None,
            "Email domains we own and watch; every canary gets an address at one of them."),
    Setting("contacts.dns_zone", None,
            "DNS zone we serve; every canary gets a hostname label under it."),
    Setting("contacts.portal_url", None,
            "Base URL of the patient-portal links; the canary's access code is appended."),
    Setting("contacts.phone_pool", (),
            "Phone numbers we own (E.164 or French national writing); one is given to each canary."),
    Setting("contacts.phone_pool_file", None,
            "File with more pool numbers, one per line (# comments allowed); relative to canary.toml."),
    Setting("contacts.mailbox_pool_file", None,
            "File of watched mailboxes at ordinary providers, each forwarding to listener.smtp_relay; one "
            "per line: the address, then optionally F/M and the holder's first and last name "
            "(# comments allowed); relative to canary.toml. A free one is every new canary's email."),
    Setting("contacts.max_per_email_domain", 3,
            "At most this many live canaries of one source per email domain (0: no limit)."),
    Setting("contacts.max_per_phone_block", 2,
            "At most this many live canaries of one source per 10,000-number phone block (0: no limit)."),
    Setting("identities.age_profile", None,
            "Age bands and weights for birth dates, e.g. {\"0-17\" = 8, \"18-44\" = 22, "
            "\"45-64\" = 28, \"65-79\" = 26, \"80-100\" = 16}; default: the ages at registration of "
            "the source's 5,000 most recent patients, in five-year bands, when its seeder can read them "
            "(50 at least), else a hospital/lab population."),
    Setting("identities.operator", None,
            "Name recorded as the operator of planting batches; default: the login name."),
)

# Modules that declare their own settings next to the code that reads them.
# Imported only when the whole list is needed (loading or documenting a config).
SETTING_MODULES: tuple[str, ...] = (
    "canary.hits.classify",
    "canary.hits.journal",
    "canary.alerts.config",
    "listener.dnsconfig",
    "listener.proxy",
    "listener.http",
    "listener.wsgi",
    "listener.tls",
    "listener.smtp",
    "listener.admin.config",
    "listener.telephony",
    "canary.scan.hibp",
    "canary.doctor.checks",
    "canary.audit.settings",
    "canary.planting.pace",
    "canary.access.config",
    "listener.auditsyslog",
    "listener.auditfhir",
)


@functools.cache
def all_settings() -> tuple[Setting, ...]:
    """Every setting of every part, in documentation order."""
    collected = list(SETTINGS)
    for module_name in SETTING_MODULES:
        collected.extend(importlib.import_module(module_name).SETTINGS)
    names = [s.name for s in collected]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:  # a bug, not a user error
        raise RuntimeError(f"settings declared twice: {sorted(duplicates)}")
    return tuple(collected)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None  # None when running on built-in defaults
    registry_url: str
    contacts: ContactPoints
    age_profile: Mapping[str, float] | None = None
    operator: str = field(default_factory=lambda: _login_name())
    raw: Mapping[str, Any] = field(default_factory=dict)  # for later tables (listener, alerts)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


def find_config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """--config, then $CANARY_CONFIG, then ./canary.toml if it exists."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.exists() else None


def load_config(path: Path, environ: Mapping[str, str] = os.environ) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}: run `canary init` or pass --config") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    return parse_config(data, path=path, environ=environ)


def parse_config(data: Mapping[str, Any], *, path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    where = str(path) if path else "configuration"
    _reject_unknown(data, where)
    base = path.parent if path else Path.cwd()
    registry = data.get("registry", {})
    contacts = data.get("contacts")
    identities = data.get("identities", {})
    if contacts is None:
        raise ConfigError(f"{where}: missing [contacts] table (email_domains, dns_zone, portal_url, phone_pool)")
    contact_points = _contacts(contacts, base, where)
    listener = data.get("listener")
    if contact_points.mailbox_pool and not (isinstance(listener, dict) and listener.get("smtp_relay")):
        raise ConfigError(f"{where}: contacts.mailbox_pool_file is set but listener.smtp_relay is not: name the "
                          "relay address the mailboxes forward to, or their mail is recorded nowhere")
    return Config(
        path=path,
        registry_url=_registry_url(registry, base, where, environ),
        contacts=contact_points,
        age_profile=_age_profile(identities.get("age_profile"), where),
        operator=str(identities.get("operator") or _login_name()),
        raw=dict(data),
    )


def default_config() -> Config:
    """Built-in defaults for commands that need no setup (``canary generate``)."""
    return Config(path=None, registry_url=DEFAULT_REGISTRY_URL, contacts=demo_contacts())


# -- pieces ---------------------------------------------------------------


def _reject_unknown(data: Mapping[str, Any], where: str) -> None:
    if _only_core(data):  # the other parts' settings import their modules (Flask...): 0.1-0.3 s of every start
        return
    names = {s.name for s in all_settings()}
    tables = {name.rsplit(".", i)[0] for name in names for i in range(1, name.count(".") + 1)}

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for key, value in table.items():
            path = f"{prefix}{key}"
            if path in names:
                continue
            if path in tables:
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: [{path}] must be a table")
                walk(value, path + ".")
                continue
            if not prefix:
                top = sorted(t for t in tables if "." not in t)
                raise ConfigError(f"{where}: unknown table [{path}] (known: {', '.join(top)})")
            siblings = sorted(n[len(prefix):] for n in names | tables
                              if n.startswith(prefix) and "." not in n[len(prefix):])
            raise ConfigError(f"{where}: unknown setting {path} (known in [{prefix[:-1]}]: {', '.join(siblings)})")

    walk(data, "")


def _only_core(data: Mapping[str, Any]) -> bool:
    """Whether every value of ``data`` is a setting of this module's ``SETTINGS``, at its place."""
    names = {s.name for s in SETTINGS}

    def known(table: Mapping[str, Any], prefix: str) -> bool:
        for key, value in table.items():
            path = f"{prefix}{key}"
            if path in names:
                continue
            if not isinstance(value, dict) or not any(n.startswith(path + ".") for n in names) \
                    or not known(value, path + "."):
                return False
        return True

    return known(data, "")


def _registry_url(registry: Mapping[str, Any], base: Path, where: str, environ: Mapping[str, str]) -> str:
    from canary.dsn import absolutize_sqlite, has_password

    env_name = registry.get("url_env")
    if env_name:
        url = environ.get(env_name)
        if not url:
            raise ConfigError(f"{where}: registry.url_env names {env_name}, which is not set")
        return absolutize_sqlite(url, base)
    url = registry.get("url", DEFAULT_REGISTRY_URL)
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: registry.url must be a non-empty string")
    if has_password(url):
        raise ConfigError(f"{where}: registry.url holds a password; put the URL in an environment "
                          "variable and name it with registry.url_env")
    return absolutize_sqlite(url, base)


def _str_list(value: Any, name: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: {name} must be a list of strings")
    return tuple(v.strip() for v in value)


def _contacts(contacts: Mapping[str, Any], base: Path, where: str) -> ContactPoints:
    from canary.phones import validate_pool

    missing = [k for k in ("email_domains", "dns_zone", "portal_url") if not contacts.get(k)]
    if missing:
        raise ConfigError(f"{where}: [contacts] needs {', '.join(missing)}")
    domains = tuple(d.lower().strip(".") for d in _str_list(contacts["email_domains"], "contacts.email_domains", where))
    zone = str(contacts["dns_zone"]).lower().strip(".")
    portal_url = str(contacts["portal_url"])
    if not portal_url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: contacts.portal_url must start with https://")
    numbers = list(_str_list(contacts.get("phone_pool", []), "contacts.phone_pool", where)) if contacts.get("phone_pool") else []
    if contacts.get("phone_pool_file"):
        numbers += _read_pool_file(base / str(contacts["phone_pool_file"]), where)
    if not numbers:
        raise ConfigError(f"{where}: [contacts] needs phone_pool or phone_pool_file (numbers we own)")
    from canary.contacts import DEFAULT_MAX_PER_BLOCK, DEFAULT_MAX_PER_DOMAIN, DEMO_DNS_ZONE, DEMO_EMAIL_DOMAINS
    from canary.contacts import read_mailbox_file

    mailboxes = ()
    if contacts.get("mailbox_pool_file") is not None:
        name = contacts["mailbox_pool_file"]
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: contacts.mailbox_pool_file must be a file path")
        mailboxes = read_mailbox_file(base / name, owned_domains=domains)

    demo = bool(set(domains) & set(DEMO_EMAIL_DOMAINS)) or zone == DEMO_DNS_ZONE
    # A demo configuration may hold fiction numbers; validate_pool refuses them otherwise.
    pool = validate_pool(numbers, demo=demo)
    return ContactPoints(email_domains=domains, dns_zone=zone, portal_url=portal_url, phone_pool=pool, demo=demo,
                         mailbox_pool=mailboxes,
                         max_per_email_domain=_cap(contacts, "max_per_email_domain", DEFAULT_MAX_PER_DOMAIN, where),
                         max_per_phone_block=_cap(contacts, "max_per_phone_block", DEFAULT_MAX_PER_BLOCK, where))


def _cap(contacts: Mapping[str, Any], key: str, default: int, where: str) -> int | None:
    value = contacts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: contacts.{key} must be a whole number >= 0 (0: no limit)")
    return value or None


def _read_pool_file(path: Path, where: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"{where}: cannot read phone_pool_file {path}: {err.strerror}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _age_profile(value: Any, where: str) -> dict[str, float] | None:
    if value is None or value == "hospital":
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: identities.age_profile must be a table like {{\"18-44\" = 30}}")
    profile: dict[str, float] = {}
    for band, weight in value.items():
        lo, sep, hi = str(band).partition("-")
        if not (sep and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi) <= 110):
            raise ConfigError(f"{where}: identities.age_profile band {band!r} must look like \"18-44\"")
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{where}: identities.age_profile weight for {band!r} must be a number >= 0")
        profile[str(band)] = float(weight)
    return profile


def _login_name() -> str:
    for var in ("CANARY_OPERATOR", "SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    return "unknown"
