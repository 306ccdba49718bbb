"""Which part of each identity fingerprint the matcher looks for first.

A fingerprint (surname + first name + birth date in one record) is found in
two steps: the matcher looks for ONE part as a literal, then ``verify``
checks the two others in the record around each hit. Every hit costs a
Python call, so the looked-for part must be rare in ordinary files: "Martin"
is in one row of 130, 7 May 1984 in one of 15,000, "Trouiller" in one of a
million. Each canary needs one of its three parts looked for, and canaries
share parts (350 of 100,000 canaries are Martins), so the choice is a
weighted set cover, solved greedily: take the part with the lowest expected
work per canary newly covered, until every canary is covered. The work of a
part is its expected hits per row times the canaries holding it, since each
hit is tested for each of them (``PatternSet.checks``): "Martin" would cover
350 canaries at once but cost 350 tests on every row naming a Martin.

Expected hits per row (``rates``) come from the reference tables the
identities are drawn from: surname and first-name frequencies, street and
commune names (a literal also hits inside those), the number of dates in a
row, and a penalty for short literals, which hit inside longer words.
"""

from __future__ import annotations

import functools
import heapq
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date

from canary.scan.forms import fold

# Mentions per ordinary row: patient surname, birth name and the GP's; patient
# and GP first names; birth date plus one or two other (recent) dates.
SURNAMES_PER_ROW = 2.5
FIRST_NAMES_PER_ROW = 2.0
BIRTH_DATES_PER_ROW = 1.5
RECENT_DATES_PER_ROW = 1.0
DAYS_OF_BIRTH = 36_500  # a century of birth dates
RECENT_DAYS = 3_650  # visits, admissions: the last ten years
# Hits inside longer words and numbers, by literal length.
SHORT_PENALTY = {1: 1.0, 2: 1.0, 3: 3e-2, 4: 3e-3, 5: 1e-3, 6: 3e-4, 7: 1e-4}
LONG_PENALTY = 3e-5


@dataclass(frozen=True, slots=True)
class Parts:
    """The three fingerprint parts of one canary, folded."""

    surnames: tuple[bytes, ...]  # used name and birth name
    first_name: bytes  # the usual first name
    born: date


@functools.cache
def _word_rates() -> dict[str, float]:
    """Expected mentions per row of each folded word of the reference tables."""
    from canary.identity import refdata

    rates: dict[str, float] = defaultdict(float)

    def add(items: Sequence[str], cum: Sequence[float], per_row: float, words: bool) -> None:
        total, previous = cum[-1], 0.0
        for item, c in zip(items, cum):
            share = (c - previous) / total * per_row
            previous = c
            keys = fold(item).split() if words else [" ".join(fold(item).split())]
            for key in keys:
                rates[key] += share

    table = refdata.surnames()
    add(table.items, table.cum_weights, SURNAMES_PER_ROW, False)
    decades = range(1920, 2030, 10)
    for sex in "MF":
        for decade in decades:
            table = refdata.first_names(sex, decade)
            add(table.items, table.cum_weights, FIRST_NAMES_PER_ROW / len(decades) / 2, False)
    table = refdata.street_names()
    add(table.items, table.cum_weights, 1.0, True)
    communes = refdata.communes()
    cum, running = [], 0.0
    for commune in communes:
        running += max(commune.population, 1)
        cum.append(running)
    add([c.name for c in communes], cum, 1.0, True)
    return dict(rates)


def name_rate(name: str | bytes) -> float:
    key = " ".join((name.decode() if isinstance(name, bytes) else fold(name)).split())
    penalty = SHORT_PENALTY.get(len(key), LONG_PENALTY)
    return _word_rates().get(key, 0.0) + penalty


def date_rate(born: date, today: date) -> float:
    rate = BIRTH_DATES_PER_ROW / DAYS_OF_BIRTH
    if (today - born).days < RECENT_DAYS:
        rate += RECENT_DATES_PER_ROW / RECENT_DAYS
    return rate


def choose(parts: Sequence[Parts], today: date | None = None) -> list[tuple[Hashable, list[int]]]:
    """The parts to look for: [(("surname", names) | ("first", name) | ("date", date), canary indexes)].

    Every canary index appears in at least one returned entry.
    """
    today = today or date.today()
    nodes: dict[Hashable, list[int]] = defaultdict(list)
    for index, part in enumerate(parts):
        if part.surnames:
            nodes["surname", part.surnames].append(index)
        if part.first_name:
            nodes["first", part.first_name].append(index)
        nodes["date", part.born].append(index)
    cost: dict[Hashable, float] = {}
    for node in nodes:
        kind, value = node
        if kind == "surname":
            cost[node] = sum(name_rate(n) for n in value)
        elif kind == "first":
            cost[node] = name_rate(value)
        else:
            cost[node] = date_rate(value, today)
    covered = [False] * len(parts)

    def ratio(node: Hashable, fresh: int) -> float:
        # Each hit is tested for every owner of the part (``PatternSet.checks``):
        # a part shared by hundreds ("Martin") costs hundreds of tests per hit.
        return cost[node] * len(nodes[node]) / fresh

    heap = [(ratio(node, len(members)), len(members), i, node) for i, (node, members) in enumerate(nodes.items())]
    heapq.heapify(heap)
    chosen: list[tuple[Hashable, list[int]]] = []
    remaining = len(parts)
    while remaining and heap:
        _ratio, count, order, node = heapq.heappop(heap)
        fresh = [i for i in nodes[node] if not covered[i]]
        if not fresh:
            continue
        if len(fresh) != count:  # stale priority: push back with the true one
            heapq.heappush(heap, (ratio(node, len(fresh)), len(fresh), order, node))
            continue
        for i in fresh:
            covered[i] = True
        remaining -= len(fresh)
        chosen.append((node, nodes[node]))
    return chosen
