"""Watched mailboxes at common providers: which canary gets which, and who holds it.

An address on a domain only canaries use is a tell (docs/concealment.md): in a
stolen table, each of our domains is held by a handful of patients, all
recent. A real mailbox at gmail.com or orange.fr that forwards to our relay is
not. The operator lists them in ``contacts.mailbox_pool_file``; each is given
to at most one canary, ever (the registry keeps a retired canary's tokens, so
its address is never handed out again: an old leak must still name the right
source).

A line that names the holder ("marie.lefort74@gmail.com Marie Lefort") makes
the canary that holder: an adult of that sex (inferred from the first name,
or given on the line when the name is worn by both sexes), carrying those
names, born in a decade where that first name was given (a "Kevin" born in
1940 would be a tell of its own).
"""

from __future__ import annotations

import functools
import random
import unicodedata
from collections.abc import Callable, Iterable

from canary.contacts import Mailbox
from canary.errors import ConfigError
from canary.identity import refdata
from canary.identity.ages import BirthDateSampler

# A first name decides the sex when at least this share of its bearers (all
# decades of the name data) are of one sex: Marie 0.97 F, Jean 0.99 M;
# Camille, Dominique, Claude, Sacha need F/M on their line.
_SEX_SURE = 0.95
ADULT_AGE = 18
# Birth draws tried to find one where the holder's first name fits the decade.
_FIT_ATTEMPTS = 60
_DECADES = range(1900, 2020, 10)


def fold(name: str) -> str:
    """Lower case, no accents: "Zoé" and "ZOE" are one name."""
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@functools.cache
def _first_name_weights() -> dict[str, dict[tuple[str, int], tuple[float, float]]]:
    """folded name -> {(sex, decade): (births, share of that decade's births)}."""
    table: dict[str, dict[tuple[str, int], tuple[float, float]]] = {}
    for sex in ("F", "M"):
        for decade in _DECADES:
            weighted = refdata.first_names(sex, decade)
            total = weighted.cum_weights[-1]
            previous = 0.0
            for name, cum in zip(weighted.items, weighted.cum_weights):
                table.setdefault(fold(name), {})[(sex, decade)] = (cum - previous, (cum - previous) / total)
                previous = cum
    return table


def _weights(first_name: str) -> dict[tuple[str, int], tuple[float, float]]:
    table = _first_name_weights()
    folded = fold(first_name)
    if folded in table:
        return table[folded]
    # "Marie-Lou" missing from the data: its first part says as much as it can.
    return table.get(folded.split("-")[0], {})


def sex_of_first_name(first_name: str) -> str | None:
    """"F" or "M" when nearly all bearers of the name are of one sex, else None."""
    births = {"F": 0.0, "M": 0.0}
    for (sex, _), (count, _) in _weights(first_name).items():
        births[sex] += count
    total = births["F"] + births["M"]
    if not total:
        return None
    for sex in ("F", "M"):
        if births[sex] / total >= _SEX_SURE:
            return sex
    return None


def name_fit(first_name: str, sex: str, birth_year: int) -> float:
    """How common the name was in the birth decade, relative to its best decade (0..1); 1 if unknown."""
    shares = {decade: share for (s, decade), (_, share) in _weights(first_name).items() if s == sex}
    if not shares:
        return 1.0
    decade = min(max(birth_year // 10 * 10, _DECADES[0]), _DECADES[-1])
    return shares.get(decade, 0.0) / max(shares.values())


class MailboxAllocator:
    """Hands out the pool's mailboxes in an order shuffled once by the person stream.

    ``claim(address)`` takes an address if nobody uses it (the generator's
    uniqueness check: this run and the registry); a mailbox it refuses is
    skipped for the rest of the run. ``take()`` returns None when the pool is
    used up, and the generator falls back to the owned domains.
    """

    def __init__(self, pool: Iterable[Mailbox], rng: random.Random, claim: Callable[[str], bool]) -> None:
        self._order = list(pool)
        rng.shuffle(self._order)
        self._next = 0
        self._claim = claim
        self._sexes = {m.address: self._sex(m) for m in self._order if m.first_name}

    @staticmethod
    def _sex(mailbox: Mailbox) -> str:
        if mailbox.sex:
            return mailbox.sex
        inferred = sex_of_first_name(mailbox.first_name or "")
        if inferred is None:
            raise ConfigError(
                f"contacts.mailbox_pool_file: the sex of {mailbox.first_name!r} ({mailbox.address}) cannot be "
                "told from the first name; write F or M after the address")
        return inferred

    def __len__(self) -> int:
        return len(self._order)

    def take(self) -> Mailbox | None:
        while self._next < len(self._order):
            mailbox = self._order[self._next]
            self._next += 1
            if self._claim(mailbox.address):
                return mailbox
        return None

    def sex_of(self, mailbox: Mailbox) -> str:
        return self._sexes[mailbox.address]


def holder_birth(rng: random.Random, births: BirthDateSampler, first_name: str, sex: str):
    """(birth date, age) of a mailbox holder: an adult, in a decade that gave that first name.

    Drawn from the age profile, each adult draw kept with the probability
    ``name_fit``, so ages follow the profile weighted by the name's history.
    After ``_FIT_ATTEMPTS`` the last adult draw is kept (the last draw at all
    if the profile has no adults).
    """
    last = last_adult = None
    for _ in range(_FIT_ATTEMPTS):
        last = births.draw(rng)
        if last[1] < ADULT_AGE:
            continue
        last_adult = last
        if rng.random() < name_fit(first_name, sex, last[0].year):
            return last
    return last_adult or last
