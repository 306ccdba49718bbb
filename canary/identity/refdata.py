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
    countries(born_in: int | None = None) -> Weighted[Country]
        birth countries of people born abroad living in France, weighted by
        frequency; Country.insee_code is 5 digits 99XXX. With ``born_in``,
        only countries whose code already designated them that year.
    departement_region(departement) -> str  region code (for landline 01-05 zones)
    landline_zone(departement) -> str  ARCEP geographic zone "01".."05"
    departements() -> tuple[str, ...]  every current département code
    street_names() -> Weighted[str]    e.g. "rue de l'Église", "avenue Jean Jaurès"

Unknown département codes raise ConfigError (one line, names the bad code).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import accumulate, compress
from typing import Generic, Sequence, TypeVar

from canary.errors import ConfigError

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


# The name tables stop at the 2010s and start at the 1900s.
_FIRST_DECADE, _LAST_DECADE = 1900, 2010


# -- loading ---------------------------------------------------------------


@cache
def _columns(filename: str) -> tuple[list[str], ...]:
    """A shipped TSV (optionally gzip'd) as columns, without # comments and header.

    Split in one pass over the whole text: much faster than row by row for
    the 100,000-line tables.
    """
    raw = resources.files("canary.identity").joinpath("data", filename).read_bytes()
    if filename.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    while text.startswith("#"):
        text = text.split("\n", 1)[1]
    header, body = text.split("\n", 1)
    width = header.count("\t") + 1
    cells = body.rstrip("\n").replace("\n", "\t").split("\t")
    if len(cells) % width:
        raise RuntimeError(f"canary/identity/data/{filename} is corrupt: ragged rows")  # a packaging bug
    return tuple(cells[i::width] for i in range(width))


def _weighted(items: Sequence[T], weights: Sequence[int]) -> Weighted[T]:
    if min(weights, default=1) <= 0:
        # Zero weights are dropped so that cum_weights stay strictly increasing.
        keep = [w > 0 for w in weights]
        items, weights = list(compress(items, keep)), list(compress(weights, keep))
    return Weighted(tuple(items), tuple(map(float, accumulate(weights))))


@cache
def _first_name_tables() -> dict[tuple[str, int], Weighted[str]]:
    sexes, decades, names, weights = _columns("first_names.tsv.gz")
    # Rows are grouped by (sex, decade): slice each run instead of row loops.
    starts = [i for i in range(len(sexes)) if i == 0 or (sexes[i], decades[i]) != (sexes[i - 1], decades[i - 1])]
    tables = {}
    for start, end in zip(starts, starts[1:] + [len(sexes)]):
        key = (sexes[start], int(decades[start]))
        tables[key] = _weighted(names[start:end], [int(w) for w in weights[start:end]])
    return tables


@cache
def _postcode_table() -> dict[str, tuple[str, ...]]:
    insee, _, _, _, codes = _columns("communes.tsv.gz")
    return {code: tuple(pcs.split(",")) for code, pcs in zip(insee, codes) if pcs}


@cache
def _departement_table() -> dict[str, tuple[str, str, str]]:
    """Code -> (name, region code, landline zone)."""
    codes, names, regions, zones = _columns("departements.tsv")
    return {code: (name, region, zone) for code, name, region, zone in zip(codes, names, regions, zones)}


@cache
def _country_rows() -> tuple[tuple[Country, int, int], ...]:
    """(country, weight, first birth year its code applies to; 0 = always)."""
    return tuple(
        (Country(code, name), int(weight), int(since or 0))
        for code, name, weight, since in zip(*_columns("countries.tsv"))
    )


def _departement_code(value: str | int) -> str:
    """Normalise a user-given code ("2a", 35, "7" -> "2A", "35", "07") or raise."""
    code = str(value).strip().upper()
    if code.isdigit() and len(code) == 1:
        code = "0" + code
    if code not in _departement_table():
        hint = " (Corsica is 2A or 2B)" if code == "20" else ""
        raise ConfigError(f"unknown département code {str(value)!r}{hint}: use INSEE codes like 01, 2A, 75, 971")
    return code


# -- names -----------------------------------------------------------------


def first_names(sex: str, decade: int) -> Weighted[str]:
    """First names given to babies of ``sex`` ("M"/"F") born in ``decade``."""
    sex = getattr(sex, "value", sex)  # accept canary.model.Sex too
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', not {sex!r}")
    clamped = min(max(int(decade) // 10 * 10, _FIRST_DECADE), _LAST_DECADE)
    return _first_name_tables()[(sex, clamped)]


@cache
def surnames() -> Weighted[str]:
    names, weights = _columns("surnames.tsv.gz")
    return _weighted(names, [int(w) for w in weights])


# -- places ----------------------------------------------------------------


@cache
def communes() -> tuple[Commune, ...]:
    insee, names, deps, populations, _ = _columns("communes.tsv.gz")
    return tuple(map(Commune, insee, names, deps, map(int, populations)))


@cache
def _commune_index() -> dict[str, Commune]:
    return {c.insee_code: c for c in communes()}


def commune(insee_code: str) -> Commune | None:
    return _commune_index().get(insee_code)


@cache
def birth_communes() -> Weighted[Commune]:
    every = communes()
    return _weighted(every, [c.population for c in every])


def residence_communes(departements: tuple[str, ...] = ()) -> Weighted[Commune]:
    """Communes with a postcode, by population, within the catchment if given."""
    codes = tuple(sorted({_departement_code(d) for d in departements}))
    return _residence_communes(codes)


@cache
def _residence_communes(codes: tuple[str, ...]) -> Weighted[Commune]:
    with_postcode = _postcode_table()
    wanted = set(codes)
    chosen = [
        c for c in communes() if c.insee_code in with_postcode and (not wanted or c.departement in wanted)
    ]
    table = _weighted(chosen, [c.population for c in chosen])
    if not table.items:  # cannot happen with the shipped data; be loud if it does
        raise ConfigError(f"no inhabited commune with a postcode in départements {', '.join(codes)}")
    return table


@cache
def communes_by_postcode() -> dict[str, tuple[Commune, ...]]:
    """Postcode -> the inhabited communes La Poste serves under it."""
    index: dict[str, list[Commune]] = {}
    every = _commune_index()
    for insee, codes in _postcode_table().items():
        commune = every.get(insee)
        if commune is not None:
            for code in codes:
                index.setdefault(code, []).append(commune)
    return {code: tuple(found) for code, found in index.items()}


def postcodes(insee_code: str) -> tuple[str, ...]:
    return _postcode_table().get(insee_code, ())


def is_valid_postcode_commune(postcode: str, insee_code: str) -> bool:
    return postcode in _postcode_table().get(insee_code, ())


@cache
def departements() -> tuple[str, ...]:
    return tuple(_departement_table())


def departement_region(departement: str) -> str:
    """INSEE region code of a département ("35" -> "53"); "20" is Corsica (94)."""
    return _departement_table()[_current(departement)][1]


def landline_zone(departement: str) -> str:
    """ARCEP zone of landlines in a département: "01".."05" ("35" -> "02")."""
    return _departement_table()[_current(departement)][2]


def _current(departement: str) -> str:
    # "20" (Corsica before 1976) is unambiguous for region and phone zone.
    return "2A" if str(departement).strip() == "20" else _departement_code(departement)


# -- abroad and streets ------------------------------------------------------


@cache
def countries(born_in: int | None = None) -> Weighted[Country]:
    rows = _country_rows()
    if born_in is not None:
        rows = tuple(row for row in rows if row[2] <= born_in)
    return _weighted([country for country, _, _ in rows], [weight for _, weight, _ in rows])


@cache
def street_names() -> Weighted[str]:
    names, weights = _columns("street_names.tsv")
    return _weighted(names, [int(w) for w in weights])
