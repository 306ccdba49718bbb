"""Test helpers for planting through the library: a production-like config and a registry.

The pool holds valid French numbers outside the fiction and telemarketing
ranges, in blocks libphonenumber attributes to the four network operators
(Orange 06 07, SFR 06 01, Bouygues 06 50, Free 06 51). Nothing ever dials
them: the tests stay on loopback.
"""

from __future__ import annotations

from pathlib import Path

from canary.config import Config
from canary.contacts import ContactPoints
from canary.model import SourceSpec
from canary.phones import validate_pool
from canary.registry import Registry

POOL = tuple(
    [f"+33607{n:06d}" for n in range(100, 400)]   # Orange
    + [f"+33601{n:06d}" for n in range(200, 400)]  # SFR
    + [f"+33650{n:06d}" for n in range(300, 500)]  # Bouygues
    + [f"+33651{n:06d}" for n in range(400, 600)]  # Free
    + [f"+33299{n:06d}" for n in range(100, 200)]  # Rennes landlines
)


def production_config(registry_url: str, pool=POOL, domains=("mel-famille.fr", "boite-perso.fr")) -> Config:
    contacts = ContactPoints(
        email_domains=tuple(domains),
        dns_zone="mon-rdv-sante.fr",
        portal_url="https://espace.mon-rdv-sante.fr/acces/",
        phone_pool=validate_pool(pool),
    )
    return Config(path=None, registry_url=registry_url, contacts=contacts, operator="tester")


def new_registry(tmp_path: Path) -> tuple[Registry, Config]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    return Registry.open(url, create=True), production_config(url)


def add_source(registry: Registry, name: str, seeder: str, *, url: str | None = None,
               mapping: str | None = None, options: dict | None = None,
               catchment: tuple[str, ...] = ()) -> SourceSpec:
    spec = SourceSpec(name=name, seeder=seeder, url=url, mapping=mapping, options=dict(options or {}),
                      catchment=catchment)
    registry.add_source(spec)
    return spec
