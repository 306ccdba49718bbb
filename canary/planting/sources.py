"""Building a SourceSpec from `canary source add` arguments, with every check
that can be done before touching the target database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from canary.errors import ConfigError
from canary.model import SourceSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def build_source_spec(
    name: str,
    seeder: str,
    *,
    url_env: str | None = None,
    url: str | None = None,
    mapping: str | None = None,
    settings: Iterable[str] = (),
    establishment: str | None = None,
    tenant: str | None = None,
    alert_to: Iterable[str] = (),
    catchment: str | None = None,
    base_dir: Path = Path("."),
) -> SourceSpec:
    from canary.dsn import has_password
    from canary.planting.catalog import get_seeder_class

    if not _NAME.match(name):
        raise ConfigError(f"source name {name!r}: use letters, digits, '-', '_' or '.' (at most 64)")
    seeder_class = get_seeder_class(seeder)
    if bool(url_env) == bool(url):
        raise ConfigError("give exactly one of --url-env VAR (URL with password) or --url URL (no password)")
    if url_env and not _ENV_NAME.match(url_env):
        raise ConfigError(f"--url-env {url_env!r} is not an environment variable name")
    if url and has_password(url):
        raise ConfigError("--url holds a password: put the URL in an environment variable and use --url-env")
    mapping_path = None
    if mapping:
        mapping_path = (base_dir / mapping).resolve()
        if not mapping_path.is_file():
            raise ConfigError(f"mapping file {mapping} not found")
    elif seeder_class.needs_mapping:
        raise ConfigError(f"seeder {seeder!r} needs --mapping FILE (see docs/seeders.md)")
    options = seeder_class.validate_options(_parse_settings(settings))
    recipients = tuple(alert_to)
    for address in recipients:
        if not _EMAIL.match(address):
            raise ConfigError(f"--alert-to {address!r} is not an email address")
    return SourceSpec(
        name=name,
        seeder=seeder,
        url_env=url_env,
        url=url,
        mapping=str(mapping_path) if mapping_path else None,
        options=options,
        establishment=establishment,
        tenant=tenant,
        alert_to=recipients,
        catchment=_parse_catchment(catchment),
    )


def _parse_settings(settings: Iterable[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        parsed[key.strip()] = value.strip()
    return parsed


def _parse_catchment(catchment: str | None) -> tuple[str, ...]:
    if not catchment:
        return ()
    from canary.identity import refdata

    deps = tuple(d.strip().upper() for d in catchment.split(",") if d.strip())
    refdata.residence_communes(deps)  # raises ConfigError on an unknown département
    return deps
