"""Value transforms a mapping may apply: text case, accents, phone writings.

Each one turns text into text the way a hospital application would have
written it (many French LIS store names upper case without accents). There is
deliberately no truncation: a value too long for its column is an error, not
something to cut silently (a cut name is a telltale).
"""

from __future__ import annotations

import unicodedata
from typing import Callable

# Letters NFKD does not decompose but an ASCII-only application spells out.
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "capitalize": str.capitalize,
    "strip": str.strip,
    "strip_accents": strip_accents,
}

# How a French number is written, for "+33612345678".
PHONE_FORMATS: dict[str, str] = {
    "e164": "+33612345678",
    "national": "0612345678",
    "spaced": "06 12 34 56 78",
    "dotted": "06.12.34.56.78",
    "dashed": "06-12-34-56-78",
    "international": "+33 6 12 34 56 78",
}


def apply_transforms(text: str, names: tuple[str, ...]) -> str:
    for name in names:
        text = TRANSFORMS[name](text)
    return text


def format_phone(e164: str, style: str) -> str:
    """``e164`` written in ``style`` (a key of PHONE_FORMATS); ValueError if not French."""
    if style == "e164":
        return e164
    from canary.phones import formats  # lazy: the phone module loads its number plan

    return formats(e164)[style]
