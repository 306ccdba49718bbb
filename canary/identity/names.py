"""Names of a fake patient: sex, civility, given names, surnames.

Rates (and why) are listed in docs/identities.md; the numbers live here.
"""

from __future__ import annotations

import functools
import random
from datetime import date

from canary.identity import refdata
from canary.model import Sex
from canary.identity.refdata import Weighted
from canary.identity.sampling import by_age_steps, pick

# Share of women by age among hospital/lab patients. Births are 51 % boys,
# but women consult more from 18 to 45 (pregnancy, contraception follow-up)
# and outlive men (63 % of people aged 80+ are women, INSEE 2023).
_FEMALE_SHARE = ((17, 0.488), (44, 0.56), (64, 0.52), (79, 0.54), (200, 0.63))

# How many given names are on the civil record, by birth year: three names
# were the norm for older generations, two today; a single name is a minority.
_NAME_COUNTS = ((1969, (0.15, 0.40, 0.45)), (1999, (0.25, 0.50, 0.25)), (9999, (0.30, 0.52, 0.18)))

# Share of women whose used name (nom d'usage) is not their birth name, by
# age: married women mostly take their husband's name (about 8 in 10 of
# married women), marriage comes later than it used to, and widows keep it.
_MARRIED_NAME_SHARE = ((17, 0.0), (24, 0.02), (29, 0.15), (34, 0.30), (44, 0.45), (54, 0.55), (64, 0.62),
                       (79, 0.70), (200, 0.75))
_HYPHENATED_USAGE = 0.10  # "Dupont-Martin": husband's name then hers

# Double-barrelled birth surnames: possible for all births since 2005 (about
# 1 child in 10 gets both parents' names); before, only inherited compounds.
_DOUBLE_NAME_SINCE_2005 = 0.10
_DOUBLE_NAME_BEFORE = 0.015
# Civil records write "Martin Durand"; many files keep a hyphen.
_DOUBLE_NAME_WITH_SPACE = 0.6
# Middle names are often a grandparent's: drawn from names given 30 years earlier.
_GRANDPARENT_NAME = 0.5


_NAME_COUNTS_BY_YEAR = {year: next(shares for last, shares in _NAME_COUNTS if year <= last)
                        for year in range(1800, 2200)}
_FEMALE_BY_AGE = by_age_steps(_FEMALE_SHARE)
_MARRIED_BY_AGE = by_age_steps(_MARRIED_NAME_SHARE)
# Enum members read through their class cost a metaclass lookup: read them once.
_MALE, _FEMALE = Sex.MALE, Sex.FEMALE


def civility(sex: Sex) -> str:
    return "M." if sex is _MALE else "Mme"


def sex_code(sex: Sex) -> str:
    """"M"/"F" without going through Enum.value (a Python-level property)."""
    return "M" if sex is _MALE else "F"


def female_share(age: int) -> float:
    """Expected share of women at this age (tests check the drawn ratio)."""
    return _FEMALE_BY_AGE[age]


def married_name_share(age: int) -> float:
    """Expected share of women of this age using a married name."""
    return _MARRIED_BY_AGE[age]


@functools.cache
def first_name_table(sex: str, decade: int) -> Weighted[str]:
    return refdata.first_names(sex, decade)


@functools.cache
def surname_table() -> Weighted[str]:
    return refdata.surnames()


@functools.cache
def _surname_set() -> frozenset[str]:
    return frozenset(surname_table().items)


def split_double_name(name: str) -> tuple[str, str] | None:
    """("Martin", "Durand") for "Martin Durand" or "Martin-Durand", made of two
    known surnames; None for a single surname, even one with a space ("Le Goff")."""
    known = _surname_set()
    if name in known:
        return None
    for index, char in enumerate(name):
        if char in " -" and name[:index] in known and name[index + 1:] in known:
            return name[:index], name[index + 1:]
    return None


@functools.cache  # bounded by the first-name vocabulary (~26,000 names)
def _parts(name: str) -> frozenset[str]:
    return frozenset(name.replace(" ", "-").split("-"))


def name_parts(name: str) -> frozenset[str]:
    """The parts of a given name: {"Jean", "Pierre"} for "Jean-Pierre"."""
    return _parts(name)


def draw_sex(rng: random.Random, age: int) -> Sex:
    return _FEMALE if rng.random() < _FEMALE_BY_AGE[age] else _MALE


def draw_first_names(rng: random.Random, sex: str, birth_year: int) -> tuple[str, ...]:
    """1-3 given names; the first is the usual one, of the birth decade.

    No name repeats a part of another ("Marie-Claire" is never followed by "Marie").
    """
    decade = birth_year // 10 * 10
    one, two, _ = _NAME_COUNTS_BY_YEAR.get(birth_year) or _NAME_COUNTS[-1][1]
    roll = rng.random()
    first = pick(rng, first_name_table(sex, decade))
    if roll < one:
        return (first,)
    count = 2 if roll < one + two else 3
    names = [first]
    used = _parts(first)
    for _ in range(20):
        source = decade - 30 if rng.random() < _GRANDPARENT_NAME else decade
        candidate = pick(rng, first_name_table(sex, source))
        parts = _parts(candidate)
        if not parts & used:
            names.append(candidate)
            if len(names) == count:
                break
            used = used | parts
    return tuple(names)


def draw_surname(rng: random.Random, unlike: str = "") -> str:
    table = surname_table()
    for _ in range(10):
        name = pick(rng, table)
        if name != unlike:
            return name
    return name


def draw_birth_name(rng: random.Random, birth_year: int) -> str:
    """Birth surname; sometimes double-barrelled (see the rates above)."""
    first = draw_surname(rng)
    if birth_year >= 2005:
        if rng.random() < _DOUBLE_NAME_SINCE_2005:
            second = draw_surname(rng, unlike=first)
            return f"{first} {second}" if rng.random() < _DOUBLE_NAME_WITH_SPACE else f"{first}-{second}"
    elif rng.random() < _DOUBLE_NAME_BEFORE:
        return f"{first}-{draw_surname(rng, unlike=first)}"
    return first


def draw_used_name(rng: random.Random, sex: Sex, age: int, birth_name: str) -> str:
    """The name in use: a husband's for a share of women, else the birth name."""
    if sex is _FEMALE and rng.random() < _MARRIED_BY_AGE[age]:
        husband = draw_surname(rng, unlike=birth_name)
        return f"{husband}-{birth_name}" if rng.random() < _HYPHENATED_USAGE else husband
    return birth_name


def draw_names(rng: random.Random, sex: Sex, birth: date, age: int) -> tuple[tuple[str, ...], str, str]:
    """(first names, used name, birth name)."""
    first_names = draw_first_names(rng, sex_code(sex), birth.year)
    birth_name = draw_birth_name(rng, birth.year)
    return first_names, draw_used_name(rng, sex, age, birth_name), birth_name
