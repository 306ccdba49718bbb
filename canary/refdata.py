"""Reference data shipped inside the package (built by scripts/build_refdata.py).

Loaded lazily, once per process (``functools.cache``): importing this module
does no work. Every table is a plain immutable value ready for weighted
sampling with ``random.Random.choices(population, cum_weights=...)``.

CONTRACT (other modules rely on these exact names and shapes):

    first_names(sex: "M"|"F", decade: int) -> Weighted[str]
        INSEE first names given to that sex in that birth decade (1900..2020,
        decades before/after the data are clamped), weights ~ frequency.
    surnames() -> Weighted[str]
        Surnames by frequency (proper case, e.g. "Martin", "Le Goff").
    communes() -> tuple[Commune, ...]
        Every commune where a birth is registered (COM, plus ARM arrondissements
        for Paris/Lyon/Marseille instead of the parent commune), with population.
    commune(insee_code) -> Commune | None
    birth_communes() -> Weighted[Commune]  (weights ~ population, proxy for births)
    residence_communes(departements: tuple[str, ...] = ()) -> Weighted[Commune]
        Communes that have at least one postcode, weighted by population,
        optionally restricted to a catchment (département codes).
    postcodes(insee_code) -> tuple[str, ...]   real La Poste postcodes of that commune
    is_valid_postcode_commune(postcode, insee_code) -> bool
    countries() -> Weighted[Country]   birth countries of people born abroad
        living in France, weighted by frequency; Country.insee_code is 5 digits 99XXX.
    departement_region(departement) -> str  region code (for landline 01-05 zones)
    street_names() -> Weighted[str]    e.g. "rue de l'Église", "avenue Jean Jaurès"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Weighted(Generic[T]):
    items: tuple[T, ...]
    cum_weights: tuple[float, ...]  # same length as items, increasing


@dataclass(frozen=True, slots=True)
class Commune:
    insee_code: str  # "35238", "75115", "2A004", "97105"
    name: str  # "Rennes", "Paris 15e Arrondissement"
    departement: str  # current code: "35", "75", "2A", "971"
    population: int


@dataclass(frozen=True, slots=True)
class Country:
    insee_code: str  # "99352"
    name: str  # "Algérie"
