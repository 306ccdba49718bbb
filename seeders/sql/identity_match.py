"""How an identity's name and NIR may already be written in a host database.

Used by application seeders to find a real patient a canary would duplicate
(``collides``) and to confirm a canary found again (``locate``): hosts store
names in any case, with or without accents, and the NIR with or without its
usual grouping.
"""

from __future__ import annotations

from seeders.common.transforms import strip_accents


def name_spellings(*names: str) -> list[str]:
    """Lower-case writings of the names, with and without accents (compare with ``lower(column)``)."""
    found = set()
    for name in names:
        found.update({name.lower(), strip_accents(name).lower()})
    return sorted(found)


def nir_writings(nir: str) -> list[str]:
    """The NIR as hosts store it: 15 characters, or grouped "1 84 05 75 115 123 45"."""
    grouped = " ".join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]))
    return [nir, grouped]
