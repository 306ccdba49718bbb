"""French phone numbers: the demo (fiction) pool, pool validation, formats.

Everything here works on E.164 strings ("+33612345678"). The per-identity
path (``kind``, ``landline_zone``, ``to_e164`` on usual writings) uses plain
string tests; ``phonenumbers`` is only used to validate a configured pool,
to classify on demand and as a fallback for unusual writings.

Ranges (ARCEP national numbering plan):

* fiction: 01 99 00, 02 61 91, 03 53 01, 04 65 71, 05 36 49 and 06 39 98
  (+ 4 digits) are reserved for films and books and never reach anybody.
  They make the demo pool, and are refused in a production pool because a
  leaked record carrying one is obviously fake and nobody watches them.
* telemarketing: since 1 January 2023, calls from call centres must come from
  01 62, 01 63, 02 70, 02 71, 03 77, 03 78, 04 24, 04 25, 05 68, 05 69, 09 48,
  09 49 (and 09 475-09 479 overseas). A patient with such a number would be
  an oddity, so a pool may not hold them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from canary.errors import ConfigError

# National significant number prefixes (without the leading 0), + 4 free digits.
FICTION_BLOCKS: tuple[str, ...] = ("19900", "26191", "35301", "46571", "53649", "63998")
_FICTION_E164 = tuple("+33" + block for block in FICTION_BLOCKS)

TELEMARKETING_PREFIXES: tuple[str, ...] = (
    "0162", "0163", "0270", "0271", "0377", "0378", "0424", "0425", "0568", "0569", "0948", "0949",
    "09475", "09476", "09477", "09478", "09479",
)
_TELEMARKETING_E164 = tuple("+33" + p[1:] for p in TELEMARKETING_PREFIXES)

# Kinds a patient's own line can have; anything else (toll-free, premium...)
# is refused in a pool.
PERSONAL_KINDS = ("mobile", "landline", "voip")

_SEPARATORS = str.maketrans("", "", " .-/()\u00a0\u202f\t")


def is_demo_number(e164: str) -> bool:
    """True for numbers in the ARCEP fiction ranges (+33 1 99 00 xx xx ...)."""
    return e164.startswith(_FICTION_E164) and len(e164) == 12


def is_telemarketing_number(e164: str) -> bool:
    return e164.startswith(_TELEMARKETING_E164)


@functools.cache
def demo_pool() -> tuple[str, ...]:
    """Every fiction number: 6 blocks x 10,000, E.164, in block then numeric order."""
    return tuple(f"+33{block}{n:04d}" for block in FICTION_BLOCKS for n in range(10_000))


def kind(e164: str) -> str:
    """Cheap kind from the prefix alone: "mobile", "landline", "voip" or "other".

    Good enough for numbers that passed ``validate_pool``; use ``classify``
    for anything else.
    """
    if not e164.startswith("+33") or len(e164) != 12:
        return "other"
    first = e164[3]
    if first in "67":
        return "mobile"
    if first in "12345":
        return "landline"
    if first == "9":
        return "voip"
    return "other"


def landline_zone(e164: str) -> str | None:
    """"01".."05" for a metropolitan geographic number, else None."""
    if kind(e164) != "landline":
        return None
    return "0" + e164[3]


def to_e164(text: str) -> str | None:
    """E.164 for a French number in any common writing, or None.

    Fast path for "06 12 34 56 78", "06.12.34.56.78", "+33 6 12...",
    "+33 (0)6 12...", "0033 6 12..."; other writings go through phonenumbers.
    """
    digits = text.strip().translate(_SEPARATORS)
    if digits.startswith("+330") and len(digits) == 13 and digits[1:].isdigit():
        return "+33" + digits[4:]
    if digits.startswith("+33") and len(digits) == 12 and digits[1:].isdigit():
        return digits
    if digits.startswith("0033") and digits.isdigit():
        rest = digits[4:]
        rest = rest[1:] if len(rest) == 10 and rest[0] == "0" else rest
        if len(rest) == 9:
            return "+33" + rest
    if len(digits) == 10 and digits[0] == "0" and digits[1] != "0" and digits.isdigit():
        return "+33" + digits[1:]
    return _parse_e164(text)


def _parse_e164(text: str) -> str | None:
    import phonenumbers  # slow to import: only for unusual writings

    try:
        number = phonenumbers.parse(text, "FR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def classify(e164: str) -> str:
    """"mobile", "landline", "voip", "toll_free", "premium", "shared_cost",
    "telemarketing", "other" or "invalid" (phonenumbers; not for hot paths).

    Fiction numbers are classified by their block (phonenumbers does not
    know the unallocated 06 39 98 block).
    """
    if is_demo_number(e164):
        return kind(e164)
    if is_telemarketing_number(e164):
        return "telemarketing"
    import phonenumbers
    from phonenumbers import PhoneNumberType as T

    try:
        number = phonenumbers.parse(e164, "FR")
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return {
        T.MOBILE: "mobile",
        T.FIXED_LINE: "landline",
        T.FIXED_LINE_OR_MOBILE: "landline",
        T.VOIP: "voip",
        T.TOLL_FREE: "toll_free",
        T.PREMIUM_RATE: "premium",
        T.SHARED_COST: "shared_cost",
    }.get(phonenumbers.number_type(number), "other")


def validate_pool(numbers: Iterable[str], *, demo: bool = False) -> tuple[str, ...]:
    """Normalise a configured pool to E.164, in order, without duplicates.

    Refuses (ConfigError naming the entry) anything that is not a valid French
    personal line: foreign numbers, toll-free/premium numbers, telemarketing
    ranges, and fiction ranges unless ``demo`` is set.
    """
    seen: dict[str, None] = {}
    for raw in numbers:
        entry = str(raw).strip()
        e164 = to_e164(entry)
        if e164 is None:
            raise ConfigError(f"phone pool entry {entry!r} is not a phone number: write it like +33612345678")
        if not e164.startswith("+33"):
            raise ConfigError(f"phone pool entry {entry!r} is not a French (+33) number: use French numbers")
        if is_demo_number(e164):
            if not demo:
                raise ConfigError(
                    f"phone pool entry {entry!r} is in an ARCEP fiction range (demo only): use numbers you own"
                )
        elif is_telemarketing_number(e164):
            raise ConfigError(
                f"phone pool entry {entry!r} is in an ARCEP telemarketing range: no patient has one, remove it"
            )
        else:
            line_kind = classify(e164)
            if line_kind == "invalid":
                raise ConfigError(f"phone pool entry {entry!r} is not a valid French number: check its digits")
            if line_kind not in PERSONAL_KINDS:
                raise ConfigError(
                    f"phone pool entry {entry!r} is a {line_kind.replace('_', '-')} number, "
                    "not a personal line: use mobile, landline or 09 numbers"
                )
        seen.setdefault(e164, None)
    return tuple(seen)


def formats(e164: str) -> dict[str, str]:
    """The usual writings of a French number, for seeders and the scanner."""
    if not (e164.startswith("+33") and len(e164) == 12 and e164[1:].isdigit()):
        raise ValueError(f"not a French E.164 number: {e164!r}")
    national = "0" + e164[3:]
    pairs = [national[i:i + 2] for i in range(0, 10, 2)]
    return {
        "e164": e164,
        "national": national,
        "spaced": " ".join(pairs),
        "dotted": ".".join(pairs),
        "dashed": "-".join(pairs),
        "international": "+33 " + national[1] + " " + " ".join(pairs[1:]),
    }
