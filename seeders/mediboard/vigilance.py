"""Names as Mediboard's identity vigilance stores them, and the patient signature built from them.

``CPatient::updatePlainFields`` passes ``nom``, ``nom_jeune_fille``,
``prenom``, ``prenom_usuel`` and each word of ``prenoms`` through
``CPatient::applyModeIdentitoVigilance`` (OX 2023
``modules/dPpatients/classes/CPatient.php``):

- ``light``: first names ``capitalize(lower())``, other names ``upper()``,
  accents kept;
- ``medium``: ``CMbString::removeBanCharacter($s, true)`` (accents removed,
  anything but ``[A-Za-z0-9]`` becomes a space), then as ``light``;
- ``strict``: ``upper(removeBanCharacter($s, $anonyme, true))`` (anything but
  ``[A-Za-z-']`` becomes a space), then runs of hyphens collapse to one.

``CMbString::removeAccents`` (``core/classes/CMbString.php``) is a fixed
table of Latin-1 and a few Latin Extended-A letters, not a Unicode
decomposition: ``ß`` becomes ``b`` and ``œ`` ``oe``; a letter outside the
table is left alone and then turned into a space by removeBanCharacter.

``CPatientSignature::createSignature`` (``modules/dPpatients/classes/
CPatientSignature.php``) keys the duplicate finder:
``removeDiacritics(lower("nom_prenom_naissance"))`` with whitespace,
apostrophes and hyphens removed from each part.
"""

from __future__ import annotations

import re

MODES = ("light", "medium", "strict")

# CMbString::removeAccents, UTF-8 branch: the letters it knows and what it writes for them.
_ACCENTS = {
    **dict.fromkeys("ÀÁÂÃÄÅ", "A"), "Æ": "AE", "Ç": "C", **dict.fromkeys("ÈÉÊË", "E"),
    **dict.fromkeys("ÌÍÎÏ", "I"), "Ð": "D", "Ñ": "N", **dict.fromkeys("ÒÓÔÕÖ", "O"),
    **dict.fromkeys("ÙÚÛÜ", "U"), "Ý": "Y", "ß": "b", **dict.fromkeys("àáâãäå", "a"), "æ": "ae",
    "ç": "c", **dict.fromkeys("èéêë", "e"), **dict.fromkeys("ìíîï", "i"), "ð": "d", "ñ": "n",
    **dict.fromkeys("òóôõö", "o"), **dict.fromkeys("ùúûü", "u"), "ý": "y", "ÿ": "y", "Đ": "D", "đ": "d",
    "Œ": "OE", "œ": "oe", "Š": "S", "š": "s", "Ÿ": "Y", "Ž": "Z", "ž": "z",
}
# CMbString::removeDiacritics: letter for letter, both cases (the signature is lower case by then).
_DIACRITICS = str.maketrans({k: v for k, v in _ACCENTS.items() if len(v) == 1 and k not in "ßÐð"})


def remove_accents(text: str) -> str:
    return "".join(_ACCENTS.get(ch, ch) for ch in text)


def remove_ban_character(text: str, allowed_number: bool = False, allowed_hyphen_apostrophe: bool = False) -> str:
    """CMbString::removeBanCharacter: accents off, every character outside the allowed set -> one space."""
    plain = remove_accents(text)
    if allowed_number:
        return re.sub(r"[^A-Za-z0-9]", " ", plain)
    if allowed_hyphen_apostrophe:
        return re.sub(r"[^A-Za-z\-']", " ", plain)
    return re.sub(r"[^A-Za-z]", " ", plain)


def apply_mode(text: str, *, firstname: bool, mode: str, anonyme: bool = False) -> str:
    """CPatient::applyModeIdentitoVigilance for one name."""
    if mode == "medium":
        text = remove_ban_character(text, True)
        return _capitalize(text) if firstname else text.upper()
    if mode == "strict":
        return re.sub(r"-[-]+", "-", remove_ban_character(text, anonyme, True).upper())
    return _capitalize(text) if firstname else text.upper()


def apply_mode_prenoms(first_names: tuple[str, ...] | list[str], mode: str) -> str:
    """``prenoms`` as updatePlainFields stores it: each space-separated word through the mode, rejoined."""
    words = [w.strip() for w in " ".join(first_names).split(" ") if w.strip()]
    return " ".join(apply_mode(w, firstname=True, mode=mode) for w in words)


def signature(nom: str, prenom: str, naissance: str) -> str:
    """CPatientSignature::createSignature(FromInfos)."""
    parts = [re.sub(r"[\s'\-]+", "", part or "") for part in (nom, prenom, naissance)]
    return "_".join(parts).lower().translate(_DIACRITICS)


def guess_mode(names: list[tuple[str, str]]) -> str | None:
    """The mode a site's stored (nom, prenom) pairs were written in; None with too few to tell.

    Light keeps accents (a few hundred French names always hold some);
    strict upper-cases first names; medium does neither.
    """
    names = [(n, p) for n, p in names if n and p and not n.isdigit()]
    if len(names) < 50:
        return None
    if any(not (n + p).isascii() for n, p in names):
        return "light"
    upper = sum(p == p.upper() for _, p in names)
    return "strict" if upper >= 0.8 * len(names) else "medium"


def _capitalize(text: str) -> str:
    """CMbString::capitalize(lower()): mb_convert_case title case, "jean-pierre" -> "Jean-Pierre"."""
    return text.lower().title()
