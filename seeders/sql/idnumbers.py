"""The next number of a hand-kept or sequential identifier series.

Hospital identifiers (an OpenMRS identifier without an idgen source, an
OpenELIS ST or subject number) are a prefix and a counter: ``MRN004217``,
``100HN``. A canary takes the number right after the highest one of the
series the host uses today (the newest identifier's prefix and width), so it
reads like the next registration; a number far off, or in another format,
would stand out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

DECIMAL = "0123456789"
# First counter of an empty series: five characters, as idgen's usual
# firstIdentifierBase ("10000") and most hand-kept registers.
FIRST_COUNTER = "10000"


def to_base(number: int, alphabet: str, width: int = 1) -> str:
    """``number`` written with ``alphabet`` (value order), padded on the left to ``width``."""
    digits = []
    base = len(alphabet)
    while number > 0:
        number, rest = divmod(number, base)
        digits.append(alphabet[rest])
    text = "".join(reversed(digits))
    return text.rjust(width, alphabet[0])


def from_base(text: str, alphabet: str) -> int:
    value = 0
    for char in text:
        value = value * len(alphabet) + alphabet.index(char)
    return value


def split_counter(base: str, alphabet: str) -> tuple[str, str]:
    """(prefix, counter): the counter is the longest run of ``alphabet`` characters at the end."""
    end = len(base)
    start = end
    while start > 0 and base[start - 1] in alphabet:
        start -= 1
    return base[:start], base[start:]


def next_in_series(bases: Sequence[str], alphabet: str = DECIMAL, *,
                   taken: Callable[[str], bool] = lambda _base: False) -> str:
    """The base after the highest one of the newest base's series.

    ``bases`` are undecorated identifiers, oldest first. The series is the
    newest base's prefix; its highest counter (by value) plus one is written
    with the same width. ``taken(base)`` says a candidate is already used
    (under another writing, a check digit...); such candidates are skipped.
    """
    series = [split_counter(b, alphabet) for b in bases if b]
    series = [(prefix, counter) for prefix, counter in series if counter]
    if not series:
        # Every alphabet starts with the decimal digits: "10000" reads the same in all.
        prefix, number, width = "", from_base(FIRST_COUNTER, alphabet), len(FIRST_COUNTER)
    else:
        prefix, newest = series[-1]
        same = [counter for p, counter in series if p == prefix]
        highest = max(same, key=lambda counter: from_base(counter, alphabet))
        number, width = from_base(highest, alphabet) + 1, len(newest)
    candidate = prefix + to_base(number, alphabet, width)
    while taken(candidate):
        number += 1
        candidate = prefix + to_base(number, alphabet, width)
    return candidate


def undecorated_bases(identifiers: Iterable[str], undecorate: Callable[[str], str | None]) -> list[str]:
    """The bases of the identifiers a validator accepts, in the given order."""
    return [base for base in map(undecorate, identifiers) if base]


class Series:
    """One identifier series numbered in memory across a planting run.

    ``take`` hands out the next base and remembers it, so two canaries of one
    run never get the same number; ``forget`` gives back the base of a canary
    that was not planted.
    """

    def __init__(self, bases: Sequence[str], alphabet: str = DECIMAL) -> None:
        self.bases = list(bases)
        self.alphabet = alphabet

    def peek(self, taken: Callable[[str], bool] = lambda _base: False) -> str:
        return next_in_series(self.bases, self.alphabet, taken=taken)

    def take(self, taken: Callable[[str], bool] = lambda _base: False) -> str:
        base = self.peek(taken)
        self.bases.append(base)
        return base

    def forget(self, base: str) -> None:
        if base in self.bases:
            self.bases.remove(base)
