"""Where a fake patient was born and where they live.

Birthplaces follow the coding valid on the birth date (see canary/identity/nir.py)
and avoid places whose old coding we cannot reproduce; addresses are real
postcode-commune pairs with a plausible street line.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from datetime import date

from canary.identity import refdata
from canary.model import Address, Birthplace
from canary.identity.nir import historical_code
from canary.identity.refdata import Commune, Weighted
from canary.identity.sampling import by_age_steps, choice, pick, randint, weighted

# Share born abroad, by age. About 10 % of residents are immigrants and 2-3 %
# more are French people born abroad (INSEE 2022), with a higher share among
# working-age and older adults than among children born here.
_ABROAD_BY_AGE = ((17, 0.05), (29, 0.10), (59, 0.14), (74, 0.14), (200, 0.13))

# Share of people born in France who live in their département of birth.
_BORN_LOCALLY = 0.50

# Since the 1970s nearly every birth takes place in a maternity ward, i.e. in
# a town; before the 1950s many were home births in every village. Towns are
# approximated by communes of at least this population.
_TOWN_POPULATION = 10_000
_ALL_BIRTHS_IN_TOWNS_FROM = 1975
_VILLAGE_BIRTHS_UNTIL = 1955

# Births in today's Yvelines, Essonne, Hauts-de-Seine, Seine-Saint-Denis,
# Val-de-Marne and Val-d'Oise before 1968 were coded under the old Seine
# (75) and Seine-et-Oise (78) with other commune numbers: we do not emit them.
_REDRAWN_BEFORE_1968 = frozenset({"78", "91", "92", "93", "94", "95"})
_IDF_REFORM = date(1968, 1, 1)
_OVERSEAS_DEPARTEMENTS_FROM = date(1947, 1, 1)  # departmentalisation, 1946
_MAYOTTE_FROM = date(2011, 4, 1)  # Mayotte became a département on 31 March 2011
_OVERSEAS = frozenset({"971", "972", "973", "974"})

# Countries whose natives were coded with old French département numbers
# (Algeria 91-94, Morocco 95, Tunisia 96) for births before these dates: we
# cannot reproduce those, so such births are redrawn.
_COUNTRY_FROM = {"99352": date(1963, 1, 1), "99350": date(1964, 1, 1), "99351": date(1964, 1, 1)}

_ARRONDISSEMENT_CITIES = {"751": "Paris", "693": "Lyon", "132": "Marseille"}

_LIEUX_DITS = ("Le Bourg", "La Croix Blanche", "Les Granges", "Le Moulin", "La Métairie", "Les Landes",
               "La Garenne", "Le Pré Long", "La Bergerie", "Les Vignes", "La Fontaine", "Le Grand Chêne",
               "La Borde", "Le Haut Bourg", "Les Forges", "La Croix Rouge", "Le Champ de la Cour")
_RESIDENCES = ("les Pins", "du Parc", "les Tilleuls", "le Clos Fleuri", "les Jardins", "Beau Site",
               "les Acacias", "du Lac", "Bellevue", "les Érables", "les Cèdres", "du Château",
               "les Marronniers", "Le Moulin", "les Peupliers", "Saint-Exupéry", "Victor Hugo")


_ABROAD_AT_AGE = by_age_steps(_ABROAD_BY_AGE)


def abroad_share(age: int) -> float:
    return _ABROAD_AT_AGE[age]


def _emittable(commune: Commune, birth: date) -> bool:
    dept = commune.departement
    if dept in _REDRAWN_BEFORE_1968:
        return birth >= _IDF_REFORM
    if len(dept) == 3:
        if dept in _OVERSEAS:
            return birth >= _OVERSEAS_DEPARTEMENTS_FROM
        return dept == "976" and birth >= _MAYOTTE_FROM
    return True


class PlaceDrawer:
    """Draws birthplaces and addresses; caches per-département tables.

    ``site_postcodes`` (postcode -> patients of the site living there), when
    given and no ``catchment`` is, makes addresses follow where the site's own
    patients live rather than where France's population lives: a postcode is
    drawn as often as the site has it, then one of its communes by population.
    """

    def __init__(self, catchment: tuple[str, ...] = (), site_postcodes: Mapping[str, int] | None = None) -> None:
        self.catchment = tuple(catchment)
        self._site = None if catchment else learned_catchment(site_postcodes or {})
        births = refdata.birth_communes()
        self._births_all = births
        self._births_towns = weighted([(c, c.population) for c in births.items if c.population >= _TOWN_POPULATION])
        by_dept: dict[str, list[Commune]] = {}
        for commune in births.items:
            by_dept.setdefault(commune.departement, []).append(commune)
        self._by_dept = by_dept
        self._local_tables: dict[tuple[str, bool], Weighted[Commune]] = {}
        residences = refdata.residence_communes(self.catchment)
        if not self.catchment:
            # Without a catchment: metropolitan France. Overseas residents
            # would need overseas (+262, +590...) numbers that we do not issue.
            residences = weighted([(c, c.population) for c in residences.items if len(c.departement) == 2])
        self._residences = residences
        self._streets = refdata.street_names()
        self._house_numbers = house_numbers()
        self._postal: dict[str, tuple[tuple[str, ...], str]] = {}  # commune -> (postcodes, city)

    # -- birthplace ---------------------------------------------------------

    def birthplace(self, rng: random.Random, birth: date, age: int, home_departement: str
                   ) -> tuple[Birthplace, int]:
        """(birthplace, population of the birth commune; 0 when born abroad)."""
        if rng.random() < _ABROAD_AT_AGE[age]:
            return self._abroad(rng, birth), 0
        while True:
            town_only = self._town_only(rng, birth.year)
            if rng.random() < _BORN_LOCALLY:
                commune = pick(rng, self._local(home_departement, town_only))
            else:
                commune = pick(rng, self._births_towns if town_only else self._births_all)
            dept = commune.departement
            if (len(dept) == 2 and dept not in _REDRAWN_BEFORE_1968) or _emittable(commune, birth):
                break
        if dept in ("2A", "2B"):
            code, dept = historical_code(commune.insee_code, birth)
        else:
            code = commune.insee_code
        return Birthplace(code, commune.name, dept), commune.population

    def _town_only(self, rng: random.Random, year: int) -> bool:
        if year >= _ALL_BIRTHS_IN_TOWNS_FROM:
            return True
        if year <= _VILLAGE_BIRTHS_UNTIL:
            return False
        span = _ALL_BIRTHS_IN_TOWNS_FROM - _VILLAGE_BIRTHS_UNTIL
        return rng.random() < (year - _VILLAGE_BIRTHS_UNTIL) / span

    def _local(self, departement: str, town_only: bool) -> Weighted[Commune]:
        key = (departement, town_only)
        table = self._local_tables.get(key)
        if table is None:
            communes = self._by_dept.get(departement) or list(self._births_all.items)
            towns = [c for c in communes if c.population >= _TOWN_POPULATION] if town_only else []
            table = weighted([(c, c.population) for c in (towns or communes)])
            self._local_tables[key] = table
        return table

    def _abroad(self, rng: random.Random, birth: date) -> Birthplace:
        # Only countries that existed under their code in the birth year.
        table = refdata.countries(born_in=birth.year)
        while True:
            country = pick(rng, table)
            start = _COUNTRY_FROM.get(country.insee_code)
            if start is None or birth >= start:
                return Birthplace(insee_code=country.insee_code, name=country.name,
                                  departement="99", country=country.name)

    # -- address --------------------------------------------------------------

    def address(self, rng: random.Random) -> Address:
        site_postcode = None
        if self._site is not None:
            commune, site_postcode = pick(rng, self._site)
        else:
            commune = pick(rng, self._residences)
        postal = self._postal.get(commune.insee_code)
        if postal is None:
            postal = self._postal[commune.insee_code] = (refdata.postcodes(commune.insee_code), _postal_city(commune))
        postcodes, city = postal
        if site_postcode is not None:
            postcode = site_postcode
        else:
            postcode = postcodes[0] if len(postcodes) == 1 else choice(rng, postcodes)
        line1, line2 = self._street_lines(rng, commune.population)
        return Address(line1, postcode, city, commune.insee_code, commune.departement, line2)

    def _street_lines(self, rng: random.Random, population: int) -> tuple[str, str]:
        rural = population < 2_000
        if rural and rng.random() < 0.15:
            return choice(rng, _LIEUX_DITS), ""  # a lieu-dit, no street at all
        line1 = f"{pick(rng, self._house_numbers)} {pick(rng, self._streets)}"
        roll = rng.random()
        if rural:
            return line1, (f"Lieu-dit {choice(rng, _LIEUX_DITS)}" if roll < 0.05 else "")
        if population >= 20_000 and roll < 0.10:
            return line1, f"Résidence {choice(rng, _RESIDENCES)}, Bât. {choice(rng, 'ABCDEF')}"
        if roll < 0.16:
            return line1, choice(rng, _FLAT_FORMS)(rng)
        return line1, ""


def learned_catchment(site_postcodes: Mapping[str, int]) -> Weighted[tuple[Commune, str]] | None:
    """(commune, postcode) pairs weighted by the site's patients per postcode; None if none is known.

    Metropolitan postcodes only (overseas residents would need overseas numbers).
    """
    index = refdata.communes_by_postcode()
    pairs = []
    for postcode, patients in site_postcodes.items():
        found = [c for c in index.get(str(postcode).strip(), ()) if len(c.departement) == 2]
        population = sum(c.population for c in found) or 1
        pairs += [((c, postcode), patients * max(c.population, 1) / population) for c in found]
    return weighted(pairs) if pairs else None


def _postal_city(commune: Commune) -> str:
    """La Poste writes "Paris", not "Paris 15e Arrondissement"."""
    city = _ARRONDISSEMENT_CITIES.get(commune.insee_code[:3])
    return city if city and "rrondissement" in commune.name else commune.name


# Most streets are short: half the numbers are 1-20, few exceed 150
# (number range, share); then 4 % "bis" and 0.7 % "ter".
_HOUSE_NUMBER_RANGES = (((1, 20), 0.50), ((21, 60), 0.32), ((61, 150), 0.14), ((151, 400), 0.04))
_SUFFIXES = (("", 0.953), (" bis", 0.04), (" ter", 0.007))


@functools.cache
def house_numbers() -> Weighted[str]:
    """Every house number as written ("12", "12 bis"), weighted: one draw each."""
    pairs = []
    for (low, high), share in _HOUSE_NUMBER_RANGES:
        for number in range(low, high + 1):
            for suffix, suffix_share in _SUFFIXES:
                pairs.append((f"{number}{suffix}", share / (high - low + 1) * suffix_share))
    return weighted(pairs)


_FLAT_FORMS = (
    lambda r: f"Appartement {randint(r, 1, 60)}",
    lambda r: f"Apt {randint(r, 1, 120)}",
    lambda r: f"Bât. {choice(r, 'ABCD')}, {randint(r, 1, 9)}e étage",
    lambda r: f"Esc. {choice(r, 'ABC')}",
)


def address_complement(rng: random.Random) -> str:
    """A second address line of the kinds an address gets in a town (a flat, a residence's building), for a
    record whose staff write complements where the identity has none: the identity's own line is used when
    it has one. Same forms and mix as ``PlaceDrawer`` gives large towns (6 % flats, 10 % residences)."""
    if rng.random() < 0.625:
        return f"Résidence {choice(rng, _RESIDENCES)}, Bât. {choice(rng, 'ABCDEF')}"
    return choice(rng, _FLAT_FORMS)(rng)
