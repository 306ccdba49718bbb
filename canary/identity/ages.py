"""Age profiles: which ages the canary patients have.

A profile is a table of inclusive age bands and weights, e.g.
``{"0-17": 11, "18-44": 24, "45-64": 27, "65-79": 24, "80-99": 14}``.
Within a band, single years are weighted by the shape of the French age
pyramid (flat up to 60, then thinning out), so an "80-99" band gives far
more 82-year-olds than 98-year-olds, as in a real patient file.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from canary.errors import ConfigError

# Default: patients of a hospital or medical lab, not the general population.
# People over 65 are ~21 % of the French population but ~40 % of hospital
# stays and lab work (chronic disease follow-up), children are fewer than
# their population share (~21 %) since they need less care.
DEFAULT_AGE_PROFILE: dict[str, float] = {
    "0-17": 11,
    "18-44": 24,
    "45-64": 27,
    "65-79": 24,
    "80-99": 14,
}

MAX_AGE = 110

# Relative number of people alive at each age, France ~2023 (INSEE pyramid,
# rounded): flat up to 60, then mortality thins each cohort.
_PYRAMID = ((0, 1.0), (60, 1.0), (65, 0.95), (70, 0.9), (75, 0.75), (80, 0.55),
            (85, 0.38), (90, 0.2), (95, 0.06), (100, 0.012), (105, 0.001), (110, 0.0001))


def _pyramid(age: int) -> float:
    for (a0, w0), (a1, w1) in zip(_PYRAMID, _PYRAMID[1:]):
        if a0 <= age <= a1:
            return w0 + (w1 - w0) * (age - a0) / (a1 - a0)
    return _PYRAMID[-1][1]


MIN_SITE_PATIENTS = 50  # fewer dated patients say too little of a site's ages: the default profile then
SITE_BAND_YEARS = 5


def site_age_profile(ages: Mapping[int, int] | None) -> dict[str, float] | None:
    """An age profile ({"low-high": weight}) from the ages at registration of a site's patients.

    Five-year bands weighted by the site's patients in each (the national pyramid shapes the
    ages inside a band); None when fewer than ``MIN_SITE_PATIENTS`` are known, so the caller
    keeps the default.
    """
    known = {int(age): int(n) for age, n in (ages or {}).items() if 0 <= int(age) <= MAX_AGE and n > 0}
    if sum(known.values()) < MIN_SITE_PATIENTS:
        return None
    bands: dict[str, float] = {}
    for age, n in known.items():
        low = age - age % SITE_BAND_YEARS
        band = f"{low}-{min(low + SITE_BAND_YEARS - 1, MAX_AGE)}"
        bands[band] = bands.get(band, 0.0) + n
    return dict(sorted(bands.items(), key=lambda item: parse_band(item[0])))


def parse_band(band: str) -> tuple[int, int]:
    """"18-44" -> (18, 44); "90+" -> (90, 99). Raises ConfigError."""
    text = str(band).strip()
    if text.endswith("+") and text[:-1].isdigit():
        low, high = int(text[:-1]), max(int(text[:-1]), 99)
    else:
        low_text, sep, high_text = text.partition("-")
        if not (sep and low_text.strip().isdigit() and high_text.strip().isdigit()):
            raise ConfigError(f"age band {band!r} must look like \"18-44\" or \"90+\"")
        low, high = int(low_text), int(high_text)
    if not 0 <= low <= high <= MAX_AGE:
        raise ConfigError(f"age band {band!r} must go from low to high age, within 0-{MAX_AGE}")
    return low, high


@dataclass(frozen=True, slots=True)
class AgeProfile:
    ages: tuple[int, ...]
    cum_weights: tuple[float, ...]
    bands: tuple[tuple[int, int, float], ...]  # (low, high, share) as configured, shares sum to 1

    @classmethod
    def from_mapping(cls, table: Mapping[str, float] | None = None) -> "AgeProfile":
        """Build from {"low-high": weight}; ``None`` gives the hospital default."""
        table = DEFAULT_AGE_PROFILE if table is None else table
        weights: dict[int, float] = {}
        bands = []
        for band, weight in table.items():
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"age band {band!r}: weight must be a number >= 0")
            low, high = parse_band(band)
            if any(age in weights for age in range(low, high + 1)):
                raise ConfigError(f"age band {band!r} overlaps another band: make the bands disjoint")
            shape = [_pyramid(age) for age in range(low, high + 1)]
            total = sum(shape)
            for age, s in zip(range(low, high + 1), shape):
                weights[age] = float(weight) * s / total
            bands.append((low, high, float(weight)))
        grand = sum(weights.values())
        if grand <= 0:
            raise ConfigError("age profile: at least one band needs a weight above 0")
        ages = tuple(sorted(a for a, w in weights.items() if w > 0))
        cum, running = [], 0.0
        for age in ages:
            running += weights[age]
            cum.append(running)
        return cls(ages, tuple(cum), tuple((lo, hi, w / grand) for lo, hi, w in bands))

    def draw_age(self, rng: random.Random) -> int:
        return self.ages[bisect.bisect(self.cum_weights, rng.random() * self.cum_weights[-1])]

    def draw_birth_date(self, rng: random.Random, today: date) -> date:
        """A birth date giving an age drawn from the profile on ``today``."""
        return self.sampler(today).draw(rng)[0]

    def sampler(self, today: date) -> "BirthDateSampler":
        return BirthDateSampler(self, today)


class BirthDateSampler:
    """Draws (birth date, age) for a fixed ``today``; day ranges precomputed."""

    def __init__(self, profile: AgeProfile, today: date) -> None:
        self._cum = profile.cum_weights
        self._total = profile.cum_weights[-1]
        self._ranges = []
        for age in profile.ages:
            latest = _years_before(today, age).toordinal()  # turns ``age`` today at the latest
            earliest = _years_before(today, age + 1).toordinal() + 1
            self._ranges.append((age, earliest, latest - earliest + 1))

    def draw(self, rng: random.Random) -> tuple[date, int]:
        age, earliest, days = self._ranges[bisect.bisect(self._cum, rng.random() * self._total)]
        return date.fromordinal(earliest + int(rng.random() * days)), age


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
