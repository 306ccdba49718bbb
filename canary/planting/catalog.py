"""Seeders by name: ``sql`` and whatever installed packages add.

Every seeder, built-in or third-party, registers the same way: an entry point
in the group ``canary.seeders`` (``name = "module:Class"``). The dict below
holds the built-ins again so a source checkout that was never pip-installed
still finds them. Nothing is imported until a seeder is asked for by name.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from canary.model import SourceSpec
    from canary.planting.seeder import Seeder

ENTRY_POINT_GROUP = "canary.seeders"

# Built-ins, also declared as entry points in pyproject.toml.
BUILTIN_SEEDERS: dict[str, str] = {
    "sql": "seeders.sql.seeder:SqlSeeder",
    "hl7v2": "seeders.hl7v2.seeder:Hl7v2Seeder",
    "gnuhealth": "seeders.gnuhealth.seeder:GnuHealthSeeder",
    "fhir": "seeders.fhir.seeder:FhirSeeder",
    "openmrs": "seeders.openmrs.seeder:OpenMrsSeeder",
    "openelis": "seeders.openelis.seeder:OpenElisSeeder",
    "openemr": "seeders.openemr.seeder:OpenEmrSeeder",
    "mediboard": "seeders.mediboard.seeder:MediboardSeeder",
}


def _registered() -> dict[str, str]:
    """name -> "module:Class"; installed entry points win over the built-in fallback."""
    found = dict(BUILTIN_SEEDERS)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.value
    return found


def seeder_names() -> list[str]:
    return sorted(_registered())


def get_seeder_class(name: str) -> type[Seeder]:
    from canary.errors import ConfigError
    from canary.planting.seeder import Seeder

    registered = _registered()
    target = registered.get(name)
    if target is None:
        raise ConfigError(f"unknown seeder {name!r} (known: {', '.join(sorted(registered))})")
    module_name, _, attribute = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"seeder {name!r} ({target}) cannot be loaded: {err}; "
                          "reinstall the package that provides it") from None
    if not (isinstance(obj, type) and issubclass(obj, Seeder)):
        raise ConfigError(f"seeder {name!r} ({target}) is not a seeders.base.Seeder subclass")
    if getattr(obj, "name", None) != name:
        raise ConfigError(f"seeder {name!r} ({target}) calls itself {getattr(obj, 'name', None)!r}: "
                          "the entry point name and the class's name must agree")
    return obj


def create_seeder(spec: SourceSpec, url: str) -> Seeder:
    """A seeder for ``spec`` (not yet opened); ``url`` may hold a password."""
    from canary.errors import ConfigError

    cls = get_seeder_class(spec.seeder)
    if cls.needs_mapping and not spec.mapping:
        raise ConfigError(f"source '{spec.name}': seeder {spec.seeder!r} needs a mapping file; "
                          "re-add the source with --mapping FILE")
    return cls(spec, url)
